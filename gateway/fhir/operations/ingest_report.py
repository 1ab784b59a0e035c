"""What $ingest answers: per record, the resources stored or updated, or the problems, each
located at the record (`record[3]`, numbered from 1) and the source field it came from
(`record[3].性别`) in `issue.location`, with the FHIR element in `issue.expression` when the
problem was found in the FHIR resource (by validation or a rule)."""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from gateway.mapping.locate import entry_path, fields_at, relative
from gateway.mapping.plan import Planned
from gateway.mapping.record import Problem
from gateway.vocab.outcomes import Issue, OperationOutcomeError

STORED, UPDATED, REJECTED = "stored", "updated", "rejected"


@dataclass
class RecordResult:
    number: int
    key: str | None
    status: str = REJECTED
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    issues: list[dict[str, Any]] = field(default_factory=list)

    def to_parameter(self) -> dict[str, Any]:
        parts: list[dict[str, Any]] = [{"name": "number", "valueInteger": self.number}]
        if self.key is not None:
            parts.append({"name": "key", "valueString": self.key})
        parts.append({"name": "status", "valueCode": self.status})
        parts += [{"name": "created", "valueReference": {"reference": r}} for r in self.created]
        parts += [{"name": "updated", "valueReference": {"reference": r}} for r in self.updated]
        if self.issues:
            outcome = {"resourceType": "OperationOutcome", "issue": self.issues}
            parts.append({"name": "outcome", "resource": outcome})
        return {"name": "record", "part": parts}


def parameters(
    source: str, mode: str, results: list[RecordResult], notes: list[Issue]
) -> dict[str, Any]:
    counts = {s: sum(1 for r in results if r.status == s) for s in (STORED, UPDATED, REJECTED)}
    params: list[dict[str, Any]] = [
        {"name": "source", "valueCode": source},
        {"name": "mode", "valueCode": mode},
        *({"name": s, "valueInteger": n} for s, n in counts.items()),
        *(r.to_parameter() for r in results),
    ]
    if notes:
        outcome = {"resourceType": "OperationOutcome", "issue": [n.to_json() for n in notes]}
        params.append({"name": "outcome", "resource": outcome})
    return {"resourceType": "Parameters", "parameter": params}


def problem_issue(number: int, problem: Problem) -> dict[str, Any]:
    code = {"GW-1700": "required", "GW-1702": "code-invalid"}.get(problem.code, "value")
    issue = Issue(code, problem.message, problem.code, problem.severity).to_json()
    where = f"record[{number}]" + (f".{problem.field}" if problem.field else "")
    issue["location"] = [where]
    if problem.field:
        issue["diagnostics"] = f"{where}: {problem.message}"
    return issue


def located_issues(
    err: OperationOutcomeError,
    entries: list[tuple[int, Planned]],
    shared: AbstractSet[int] = frozenset(),
) -> dict[int, list[dict[str, Any]]]:
    """The transaction's issues by record number (0: no one record's): `entries[i]` is
    (record number, planned resource) of Bundle.entry[i]. An issue naming no entry (a rule
    checked at the store names the resource alone) goes to the record whose resource type it
    names, when one is; one at a `shared` entry (merged from several records) to none."""
    out: dict[int, list[dict[str, Any]]] = {}
    for issue in err.issues:
        if any(_entry_of(e) in shared for e in issue.expression or _rendered_expressions(issue)):
            out.setdefault(0, []).append(issue.to_json())
            continue
        found = _place(issue, entries)
        number, fields = found if found else (entries[0][0] if _one_record(entries) else 0, [])
        body = dict(issue.to_json())
        if number:
            body["location"] = [f"record[{number}].{f}" for f in fields] or [f"record[{number}]"]
        out.setdefault(number, []).append(body)
    return out


def _entry_of(expression: str) -> int | None:
    located = entry_path(expression)
    return located[0] if located else None


def _one_record(entries: list[tuple[int, Planned]]) -> bool:
    return len({n for n, _ in entries}) == 1


def _place(issue: Issue, entries: list[tuple[int, Planned]]) -> tuple[int, list[str]] | None:
    for expression in issue.expression or _rendered_expressions(issue):
        located = entry_path(expression)
        if located is not None and located[0] < len(entries):
            number, planned = entries[located[0]]
            return number, fields_at(planned.locations, _resolve(located[1], planned))
        head = expression.split(".", 1)[0].split("(", 1)[0]
        typed = [(n, p) for n, p in entries if p.type == head]
        if len({n for n, _ in typed}) == 1:
            number, planned = typed[0]
            path = _resolve(relative(expression, planned.type), planned)
            return number, fields_at(planned.locations, path)
    return None


def _rendered_expressions(issue: Issue) -> list[str]:
    rendered = issue.rendered or {}
    return [e for e in rendered.get("expression") or [] if isinstance(e, str)]


def _resolve(path: str, planned: Planned) -> str:
    """`extension('url')` (how rules name an extension) → `extension[i]` in the resource."""
    return path if "('" not in path else _by_url(path, planned.resource)


def _by_url(path: str, resource: dict[str, Any]) -> str:
    def index(m: re.Match[str]) -> str:
        nth = int(m.group(3) or 0)
        items = resource.get(m.group(1)) or []
        same = [
            i for i, x in enumerate(items) if isinstance(x, dict) and x.get("url") == m.group(2)
        ]
        return f"{m.group(1)}[{same[nth]}]" if nth < len(same) else m.group(1)

    return re.sub(r"^(\w+)\('([^']*)'\)(?:\[(\d+)\])?", index, path)
