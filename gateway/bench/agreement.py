"""`python -m gateway.bench.agreement`: do we and the HL7 Java validator agree on errors?

Measures, on the official validator test cases of FHIR/fhir-test-cases (`validator/manifest.json`
and the Java validator's expected outcomes in `validator/outcomes/java/`), how often the gateway's
$validate with default settings (the body parsed as a request body is, then the R4 definitions;
no CN profile applies to these cases) agrees with the reference (Java) validator on one
question: does the instance HAVE ERRORS (severity error or fatal)? Message texts, counts and
locations are not compared.

Selected: R4 cases (manifest `version` 4.0 / 4.0.1; no version means R5), JSON instances, with a
Java expectation on record, that need nothing beyond the R4 core: no `packages`, `supporting`,
`profiles`, `logical` or advisor files, no terminology server (`tx-dependent`, modules tx and
tx-advanced), no other instances (`fetcher`, `validateReference`), no non-default validator
options, and no `profile` step. `--include tx` / `--include profile-step` add the terminology
cases / the core-only first step of the cases that also have a profile step. A body the
gateway's JSON parser refuses (malformed, a repeated property) counts as an error of ours.

The test cases are not shipped: check out github.com/FHIR/fhir-test-cases and pass its root as
`--cases` (or set GATEWAY_FHIR_TEST_CASES). Nothing from it is copied into this repository.

    python -m gateway.bench.agreement --cases ~/fhir-test-cases --show 20 --json out.json
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.fhir.parse import parse_json
from gateway.validation.issues import has_errors
from gateway.validation.registry import ProfileRegistry
from gateway.validation.validator import DEFAULT_PROFILES, Validator
from gateway.vocab.outcomes import OperationOutcomeError

_R4 = ("4.0", "4.0.1")
_TX_SERVER = "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-server"
_PLAIN = ("StructureDefinition", "ValueSet", "CodeSystem")
# manifest keys that make a case need more than the core, in the order reasons are assigned
_PACKAGES: tuple[str, ...] = ("packages", "package-map", "supporting5")
_FILES: tuple[str, ...] = (
    "supporting", "profiles", "logical", "advisor", "certificate", "bundle-param",
)  # fmt: skip
_REFERENCES: tuple[str, ...] = ("fetcher", "validateReference")
_OPTIONS: tuple[str, ...] = (
    "allow-comments", "allowed-extension-domain", "assumeValidRestReferences", "best-practice",
    "default-version", "examples", "for-publication", "fhir-validator-cli-options",
    "ids-in-errors", "ips", "language", "new-xver-mode", "no-experimental-content",
    "noHtmlInMarkdown", "r5-bundle-relative-reference-policy", "sct", "scoring",
    "security-checks", "suppress", "validateContains", "wrong-displays",
)  # fmt: skip
REASONS = {
    "disabled": "use-test: false",
    "not-r4": "not FHIR R4 (no version = R5)",
    "not-json": "instance not JSON",
    "no-expectation": "no Java expectation on record",
    "missing": "instance file missing from the checkout",
    "packages": "needs packages / IGs",
    "files": "needs supporting / profile / logical files",
    "tx": "needs a terminology server (tx-dependent, module tx)",
    "references": "needs other instances (fetcher, validateReference)",
    "options": "non-default validator option",
    "profile-step": "has a profile step (base step is core-only)",
}
_INCLUDABLE = ("tx", "profile-step")


@dataclass(slots=True)
class Case:
    name: str
    file: str
    module: str | None
    expected_errors: int
    expected: list[str]  # Java's error/fatal issues, "[tx] " when a tx server produced one
    has_errors: bool | None = None  # ours; None when we crashed
    ours: list[str] = field(default_factory=list)
    crash: str | None = None

    @property
    def verdict(self) -> str:
        java = self.expected_errors > 0
        if self.has_errors is None:
            return "crash"
        if java == self.has_errors:
            return "both error" if java else "both clean"
        return "we miss" if java else "we falsely flag"


def _read(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _issue_lines(outcome: dict[str, Any]) -> list[str]:
    out = []
    for issue in outcome.get("issue", []):
        if issue.get("severity") not in ("error", "fatal"):
            continue
        tx = any(e.get("url") == _TX_SERVER for e in issue.get("extension", []))
        where = ", ".join(issue.get("expression", issue.get("location", [])))
        text = (issue.get("details") or {}).get("text") or issue.get("diagnostics", "")
        out.append(f"{'[tx] ' if tx else ''}{issue['severity']} @ {where}: {text}")
    return out


def expectation(case: dict[str, Any], folder: Path) -> tuple[int, list[str]] | None:
    """The Java validator's error count and error texts for the base step, when on record."""
    java = case.get("java")
    if isinstance(java, str):
        path = folder / "outcomes" / java
        if not path.is_file():
            return None
        lines = _issue_lines(_read(path))
        return len(lines), lines
    if not isinstance(java, dict):
        return None
    if "outcome" in java:
        lines = _issue_lines(java["outcome"])
        return len(lines), lines
    output = [s for s in java.get("output", []) if s.startswith(("ERROR", "FATAL"))]
    return int(java.get("errorCount", 0)), output  # {} is "no issues" to the Java harness


def skip_reason(case: dict[str, Any], folder: Path) -> str | None:
    if case.get("use-test") is False:
        return "disabled"
    if str(case.get("version", "5.0")) not in _R4:
        return "not-r4"
    if not str(case.get("file", "")).endswith(".json"):
        return "not-json"
    if expectation(case, folder) is None:
        return "no-expectation"
    if not (folder / case["file"]).is_file():
        return "missing"
    for reason, keys in (("packages", _PACKAGES), ("files", _FILES)):
        if any(k in case for k in keys):
            return reason
    if case.get("tx-dependent") or case.get("module") in ("tx", "tx-advanced"):
        return "tx"
    for reason, keys in (("references", _REFERENCES), ("options", _OPTIONS)):
        if any(k in case for k in keys):
            return reason
    return "profile-step" if "profile" in case else None


def _plain_supporting(case: dict[str, Any], folder: Path) -> bool:
    """Only supporting/profiles files, all JSON StructureDefinition, ValueSet or CodeSystem."""
    if any(k in case for k in (*_PACKAGES, "logical", "advisor", "certificate", "bundle-param")):
        return False
    files = [*case.get("supporting", []), *case.get("profiles", [])]
    try:
        return bool(files) and all(
            f.endswith(".json") and _read(folder / f).get("resourceType") in _PLAIN for f in files
        )
    except (OSError, orjson.JSONDecodeError):
        return False


def run_case(validator: Validator, case: dict[str, Any], folder: Path) -> Case:
    count, lines = expectation(case, folder) or (0, [])
    result = Case(case["name"], case["file"], case.get("module"), count, lines)
    try:
        resource = parse_json((folder / case["file"]).read_bytes())
    except OperationOutcomeError as exc:
        result.has_errors, result.ours = True, [f"JSON @ : {exc.issues[0].diagnostics}"]
        return result
    try:
        issues = validator.validate(resource)
    except Exception as exc:  # noqa: BLE001 - one crash is a finding, not a harness failure
        result.crash = f"{type(exc).__name__}: {exc}"[:300]
        return result
    result.has_errors = has_errors(issues)
    result.ours = [f"{i.message_id} @ {i.expression}: {i.text_en}" for i in issues if i.is_error]
    return result


def _manifest_folder(root: Path) -> Path:
    for folder in (root / "validator", root):
        if (folder / "manifest.json").is_file():
            return folder
    raise SystemExit(f"no validator/manifest.json under {root}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.validation.agreement")
    parser.add_argument("--cases", type=Path, default=os.environ.get("GATEWAY_FHIR_TEST_CASES"))
    parser.add_argument("--show", type=int, default=0, help="list up to N disagreements")
    parser.add_argument("--json", type=Path, help="write every selected case's result here")
    parser.add_argument("--include", action="append", choices=_INCLUDABLE, default=[])
    args = parser.parse_args(argv)
    if args.cases is None:
        parser.error("--cases DIR or GATEWAY_FHIR_TEST_CASES is required")
    folder = _manifest_folder(Path(args.cases))
    listed = _read(folder / "manifest.json")["test-cases"]
    by_name = {c["name"]: c for c in listed}  # the Java harness keys cases by name: last wins

    skipped: Counter[str] = Counter()
    plain = 0
    selected = []
    for case in by_name.values():
        reason = skip_reason(case, folder)
        if reason is None or reason in args.include:
            selected.append(case)
            continue
        skipped[reason] += 1
        plain += reason == "files" and _plain_supporting(case, folder)

    validator = Validator(ProfileRegistry.load(), default_profiles=DEFAULT_PROFILES)
    results = [run_case(validator, c, folder) for c in selected]
    print(f"manifest: {len(listed)} cases, {len(by_name)} distinct names ({folder})")
    print(f"selected: {len(selected)}", *(["including", *args.include] if args.include else []))
    print("skipped:")
    for reason in REASONS:
        if skipped[reason]:
            print(f"  {skipped[reason]:4d}  {REASONS[reason]}")
            if reason == "files" and plain:
                print(f"        ({plain} of them need only plain JSON SD/ValueSet/CodeSystem)")
    summary = report(results, args.show)
    if args.json:
        summary["skipped"] = skipped
        out = {"summary": summary, "cases": [asdict(r) | {"verdict": r.verdict} for r in results]}
        args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    return 0


def report(results: list[Case], show: int) -> dict[str, Any]:
    """Print the agreement, the 2x2 confusion and up to `show` disagreements."""
    verdicts = Counter(r.verdict for r in results)
    agree, total = verdicts["both error"] + verdicts["both clean"], len(results)
    pct = 100.0 * agree / total if total else 0.0
    print(f"agreement on has-errors: {agree}/{total} = {pct:.1f} % (a crash is a disagreement)")
    print("                     Java: error   Java: clean")
    print(f"  ours: error      {verdicts['both error']:12d} {verdicts['we falsely flag']:13d}")
    print(f"  ours: clean      {verdicts['we miss']:12d} {verdicts['both clean']:13d}")
    print(f"  crashes: {verdicts['crash']}")
    for r in [r for r in results if r.verdict not in ("both error", "both clean")][:show]:
        print(f"\n[{r.verdict}] {r.name} ({r.file}, module {r.module}): Java {r.expected_errors}")
        for line in r.expected[:8]:
            print(f"    java: {line[:240]}")
        for line in r.ours[:8] if r.crash is None else [r.crash]:
            print(f"    ours: {line[:240]}")
    return {"selected": total, "agree": agree, "verdicts": dict(verdicts)}


if __name__ == "__main__":
    sys.exit(main())
