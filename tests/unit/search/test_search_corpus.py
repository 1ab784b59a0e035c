"""Corpus tests: every expression compiles, and the fast path equals fhirpathpy everywhere.

PARITY: for every resource in the Synthea bundles and the R4 examples, and every indexed
parameter of its type, the fast path (direct dict walks) gives exactly the rows that pure
fhirpathpy evaluation of the same per-type expression gives. Both go through the same row
emitters, so this checks navigation: choice types, ofType, where(), resolve() is, unions.
"""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import orjson
import pytest

from gateway.search.build_definitions import DATA_FILE, build, dumps
from gateway.search.extract import IndexExtractor
from gateway.search.registry import SearchParamRegistry, split_for_type
from gateway.store.rows import IndexRows

pytestmark = pytest.mark.corpus

# (resource type, code) → why the fast path hands it to fhirpathpy. Rows are still produced
# by fhirpathpy in fast mode; these are *not* parity exceptions.
FHIRPATH_ONLY = {
    ("Bundle", "composition"): "Bundle.entry[0].resource: indexing, and the target is a "
    "resource (not a Reference), so neither path yields rows",
    ("Bundle", "message"): "same as composition",
}

# (resource type, code) → reason the two paths may legitimately differ. Currently none.
PARITY_EXCEPTIONS: dict[tuple[str, str], str] = {}


def _rows_by_param(rows: IndexRows) -> dict[str, set]:
    out: dict[str, set] = {}
    for table in IndexRows.TABLES:
        for r in getattr(rows, table):
            out.setdefault(r.param, set()).add(r)
    return out


def _diff(fast: IndexExtractor, slow: IndexExtractor, resources: list[dict]) -> list[str]:
    problems: list[str] = []
    for res in resources:
        a = _rows_by_param(fast.extract(res))
        b = _rows_by_param(slow.extract(copy.deepcopy(res)))
        for param in sorted(set(a) | set(b)):
            if (res.get("resourceType"), param) in PARITY_EXCEPTIONS:
                continue
            ra, rb = a.get(param, set()), b.get(param, set())
            if ra != rb:
                problems.append(
                    f"{res.get('resourceType')}/{res.get('id')} {param}: "
                    f"fast-only={sorted(map(repr, ra - rb))[:3]} "
                    f"fhirpath-only={sorted(map(repr, rb - ra))[:3]}"
                )
    return problems


def _synthea_files(corpora_root: Path) -> list[Path]:
    return sorted((corpora_root / "synthea-r4").glob("*.json"))


def _load_bundle(path: Path) -> list[dict]:
    bundle = orjson.loads(path.read_bytes())
    return [e["resource"] for e in bundle.get("entry", ()) if "resource" in e]


def test_shipped_definitions_are_up_to_date(corpora: Path) -> None:
    """The committed data file is exactly what build_definitions derives from the corpora."""
    assert DATA_FILE.read_text(encoding="utf-8") == dumps(build(corpora))


def test_every_expression_compiles_for_every_base_type(
    registry: SearchParamRegistry, extractor: IndexExtractor, fhirpath_extractor: IndexExtractor
) -> None:
    types = registry.resource_types()
    extractor.compile_all(types)
    fhirpath_extractor.compile_all(types)
    assert extractor.errors == {}
    assert fhirpath_extractor.errors == {}

    checked = 0
    fallbacks = set()
    for rtype in types:
        for code, p in registry.for_type(rtype).items():
            plan = extractor.plan(rtype, code)
            if plan is None:
                continue
            checked += 1
            parts = split_for_type(p.expression or "", rtype)
            assert parts, (rtype, code)
            # fhirpath mode compiles every part with fhirpathpy …
            fp_plan = fhirpath_extractor.plan(rtype, code)
            assert fp_plan is not None and len(fp_plan.fallback) == len(parts), (rtype, code)
            # … and fast mode handles every part one way or the other.
            if plan.fallback:
                fallbacks.add((rtype, code))
    assert checked > 2000
    assert fallbacks == set(FHIRPATH_ONLY)


def test_every_parameter_of_every_base_has_a_plan(
    registry: SearchParamRegistry, extractor: IndexExtractor
) -> None:
    """Each (type, indexed parameter) with an expression that applies to the type is planned."""
    missing = []
    for rtype in registry.resource_types():
        for code, p in registry.for_type(rtype).items():
            indexed = (
                p.type in ("token", "string", "date", "number", "quantity", "reference", "uri")
                and p.expression
                and code != "_id"
            )
            if indexed and extractor.plan(rtype, code) is None:
                missing.append((rtype, code))
    assert missing == []


def test_parity_r4_examples(
    corpora: Path, extractor: IndexExtractor, fhirpath_extractor: IndexExtractor
) -> None:
    files = sorted((corpora / "fhir-r4-examples").glob("*.json"))
    assert len(files) > 700
    resources = [orjson.loads(p.read_bytes()) for p in files]
    assert _diff(extractor, fhirpath_extractor, resources) == []


def test_parity_synthea(
    corpora: Path, extractor: IndexExtractor, fhirpath_extractor: IndexExtractor
) -> None:
    files = _synthea_files(corpora)
    assert len(files) > 50
    problems: list[str] = []
    per_type: Counter[str] = Counter()
    for path in files:
        resources = _load_bundle(path)
        per_type.update(r["resourceType"] for r in resources)
        problems += _diff(extractor, fhirpath_extractor, resources)
    assert problems == []
    assert per_type["Observation"] > 1000


def test_synthea_rows_are_meaningful(corpora: Path, extractor: IndexExtractor) -> None:
    """Parity could hold with both paths empty: check the fast path really indexes things."""
    resources = _load_bundle(_synthea_files(corpora)[0])
    seen: Counter[tuple[str, str]] = Counter()
    for r in resources:
        for param in _rows_by_param(extractor.extract(r)):
            seen[(r["resourceType"], param)] += 1
    for key in [
        ("Patient", "name"),
        ("Patient", "birthdate"),
        ("Patient", "identifier"),
        ("Patient", "gender"),
        ("Observation", "code"),
        ("Observation", "date"),
        ("Observation", "value-quantity"),
        ("Observation", "subject"),
        ("Observation", "_tag"),
        ("Encounter", "date"),
        ("Condition", "code"),
        ("Condition", "onset-date"),
        ("Immunization", "vaccine-code"),
        ("MedicationRequest", "code"),
        ("Claim", "patient"),
    ]:
        assert seen[key] > 0, key


def test_extraction_is_pure(
    corpora: Path, extractor: IndexExtractor, fhirpath_extractor: IndexExtractor
) -> None:
    """extract() never modifies its input, and is deterministic."""
    for path in sorted((corpora / "fhir-r4-examples").glob("*.json"))[:200]:
        res = orjson.loads(path.read_bytes())
        before = copy.deepcopy(res)
        first = extractor.extract(res)
        fhirpath_extractor.extract(res)
        assert res == before, path.name
        assert extractor.extract(res) == first


def test_bench_script_runs(corpora: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.search.bench_extract import main

    main(["--corpora", str(corpora), "--files", "1", "--repeat", "1"])
    assert "resources/s" in capsys.readouterr().out
