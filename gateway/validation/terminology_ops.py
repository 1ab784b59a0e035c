"""Terminology and conformance operations over what profiles/ and the core hold.

Framework-free: each function returns a FHIR resource dict or raises TerminologyError, whose
`status` and `outcome()` the HTTP layer turns into a response.
- ValueSet/$expand        → expand_valueset(registry, url_or_id, filter=…, offset=…, count=…)
- CodeSystem/$lookup      → lookup_code(registry, system, code)
- ValueSet/$validate-code → validate_code(registry, url=…, system=…, code=…, coding=…, …)
- StructureDefinition?url=… (and CodeSystem/ValueSet/ConceptMap) → find_conformance(…)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from gateway.validation.issues import Issue, operation_outcome
from gateway.validation.registry import ProfileRegistry
from gateway.validation.terminology import Concept, ExpansionItem, strip_version

_STATUS = {"not-found": 404, "too-costly": 422, "required": 400, "code-invalid": 400}


class TerminologyError(Exception):
    """An operation failed; `status` is the HTTP status, `outcome()` the body."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(issue.text_en)
        self.issue = issue
        self.status = _STATUS.get(issue.issue_type, 400)

    def outcome(self) -> dict[str, Any]:
        return operation_outcome([self.issue])


def _fail(message_id: str, **fields: Any) -> TerminologyError:
    return TerminologyError(Issue.make(message_id, "", **fields))


def _display(item_display: str | None, concept: Concept | None, language: str | None) -> Any:
    if language and concept is not None:
        for d in concept.designations:
            if str(d.get("language", "")).lower().startswith(language.lower()[:2]):
                return d.get("value")
    return item_display


def _matches(text: str, item: ExpansionItem, concept: Concept | None) -> bool:
    needle = text.lower()
    haystack = [item.code, item.display or ""]
    if concept is not None:
        haystack += [str(d.get("value", "")) for d in concept.designations]
    return any(needle in h.lower() for h in haystack)


def expand_valueset(
    registry: ProfileRegistry,
    url_or_id: str,
    filter: str | None = None,
    offset: int = 0,
    count: int | None = None,
    display_language: str | None = None,
) -> dict[str, Any]:
    """ValueSet/$expand: the value set with an `expansion` (filter matches code, display and
    designations, case-insensitively)."""
    term = registry.terminology
    vs = term.value_set(url_or_id)
    if vs is None:
        raise _fail("VAL-2001", valueset=url_or_id)
    expansion = term.expand(vs["url"])
    if expansion is None:
        raise _fail("VAL-2002", valueset=vs["url"])
    rows = []
    for item in expansion.items:
        concept = term.lookup(item.system, item.code)
        if filter and not _matches(filter, item, concept):
            continue
        row: dict[str, Any] = {"system": item.system, "code": item.code}
        if item.version:
            row["version"] = item.version
        display = _display(item.display, concept, display_language)
        if display:
            row["display"] = display
        if concept is not None and concept.designations:
            row["designation"] = concept.designations
        rows.append(row)
    page = rows[offset : offset + count if count is not None else None]
    params = [{"name": "offset", "valueInteger": offset}]
    if filter:
        params.append({"name": "filter", "valueString": filter})
    if count is not None:
        params.append({"name": "count", "valueInteger": count})
    out = {k: v for k, v in vs.items() if k not in ("compose", "text", "expansion")}
    out["expansion"] = {
        "identifier": f"urn:uuid:{uuid.uuid4()}",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "total": len(rows),
        "offset": offset,
        "parameter": params,
    }
    if page:
        out["expansion"]["contains"] = page
    return out


def lookup_code(
    registry: ProfileRegistry, system: str, code: str, display_language: str | None = None
) -> dict[str, Any]:
    """CodeSystem/$lookup: name, version, display, designations, parent/child properties."""
    cs = registry.terminology.code_system(system)
    if cs is None:
        raise _fail("VAL-2003", system=system)
    concept = cs.find(code)
    if concept is None:
        raise _fail("VAL-2004", system=system, code=code)
    params: list[dict[str, Any]] = [{"name": "name", "valueString": cs.name or cs.url}]
    if cs.version:
        params.append({"name": "version", "valueString": cs.version})
    display = _display(concept.display, concept, display_language)
    if display:
        params.append({"name": "display", "valueString": display})
    if concept.definition:
        params.append({"name": "definition", "valueString": concept.definition})
    for d in concept.designations:
        part = [{"name": "value", "valueString": d.get("value", "")}]
        if d.get("language"):
            part.insert(0, {"name": "language", "valueCode": d["language"]})
        if d.get("use"):
            part.insert(1, {"name": "use", "valueCoding": d["use"]})
        params.append({"name": "designation", "part": part})
    related = [("parent", concept.parent)] if concept.parent else []
    related += [("child", c) for c in concept.children]
    for prop, value in related:
        params.append(
            {
                "name": "property",
                "part": [
                    {"name": "code", "valueCode": prop},
                    {"name": "value", "valueCode": value},
                ],
            }
        )
    return {"resourceType": "Parameters", "parameter": params}


def _result(ok: bool, message: str | None = None, display: str | None = None) -> dict[str, Any]:
    params: list[dict[str, Any]] = [{"name": "result", "valueBoolean": ok}]
    if message:
        params.append({"name": "message", "valueString": message})
    if display:
        params.append({"name": "display", "valueString": display})
    return {"resourceType": "Parameters", "parameter": params}


def validate_code(
    registry: ProfileRegistry,
    url: str | None = None,
    system: str | None = None,
    code: str | None = None,
    display: str | None = None,
    coding: dict[str, Any] | None = None,
    codeable_concept: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """ValueSet/$validate-code (with `url`) or CodeSystem/$validate-code (without)."""
    candidates: list[tuple[str | None, str, str | None]] = []
    if code is not None:
        candidates.append((system, code, display))
    if coding:
        candidates.append((coding.get("system"), coding.get("code", ""), coding.get("display")))
    for c in (codeable_concept or {}).get("coding", []):
        candidates.append((c.get("system"), c.get("code", ""), c.get("display")))
    if not candidates:
        raise _fail("VAL-2005", detail="code, coding or codeableConcept")
    if url is None and not any(s for s, _, _ in candidates):
        raise _fail("VAL-2005", detail="url or system")
    messages = []
    for sys_, c, shown in candidates:
        ok, message, expected = _check_one(registry, url, sys_, c, shown)
        if ok:
            return _result(True, message, expected)
        messages.append(message)
    return _result(False, "; ".join(m for m in messages if m))


def _check_one(
    registry: ProfileRegistry, url: str | None, system: str | None, code: str, shown: str | None
) -> tuple[bool, str | None, str | None]:
    term = registry.terminology
    if url is not None:
        vs = term.value_set(url)
        if vs is None:
            raise _fail("VAL-2001", valueset=url)
        expansion = term.expand(vs["url"])
        if expansion is None:
            raise _fail("VAL-2002", valueset=vs["url"])
        if not expansion.contains(system, code):
            shown_code = f"{system}#{code}" if system else code
            return False, Issue.make("VAL-2006", "", code=shown_code, valueset=url).text_en, None
    concept = term.lookup(system, code) if system else None
    if system and concept is None:
        if term.code_system(system) is None and url is not None:
            return True, None, None  # in the value set; the code system itself is external
        return False, Issue.make("VAL-2004", "", system=system, code=code).text_en, None
    expected = concept.display if concept else None
    if shown and concept is not None and not _display_ok(shown, concept):
        message = Issue.make("VAL-2007", "", code=code, display=shown, expected=expected).text_en
        return False, message, expected
    return True, None, expected


def _display_ok(shown: str, concept: Concept) -> bool:
    allowed = {concept.display or ""} | {str(d.get("value")) for d in concept.designations}
    return shown in allowed


def find_conformance(
    registry: ProfileRegistry, resource_type: str, **params: str
) -> list[dict[str, Any]]:
    """Our StructureDefinition/CodeSystem/ValueSet/ConceptMap resources matching url, id,
    name or version (exact); `url` may carry `|version`."""
    url = params.pop("url", None)
    found = registry.find(resource_type, **params)
    if url is not None:
        version = url.split("|", 1)[1] if "|" in url else None
        found = [
            r
            for r in found
            if r.get("url") == strip_version(url)
            and (version is None or r.get("version") == version)
        ]
    return found
