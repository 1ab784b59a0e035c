"""_summary and _elements: trim stored JSON, marked SUBSETTED in meta.tag (R4 §3.1.1.5.9).

Stored bytes are served untouched unless a subset is asked for; then the resource is parsed with
orjson, trimmed at the top level (the spec's granularity) and re-serialised with orjson.
Element names are the JSON keys; a choice element ``value[x]`` is listed as ``value`` and keeps
every ``valueXxx`` key.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.vocab import json_io

ELEMENTS_FILE = Path(__file__).resolve().parent / "data" / "elements.json"
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
ALWAYS = ("resourceType", "id", "meta")


@lru_cache(maxsize=1)
def _elements() -> dict[str, dict[str, list[str]]]:
    return json.loads(ELEMENTS_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _base_name(key: str, names: set[str]) -> str | None:
    if key in names:
        return key
    for i in range(len(key) - 1, 0, -1):  # valueQuantity → value
        if key[i].isupper() and key[:i] in names:
            return key[:i]
    return None


def keep_keys(res_type: str, summary: str | None, elements: list[str] | None) -> set[str] | None:
    """The element names to keep, or None for the whole resource."""
    info = _elements().get(res_type, {"summary": [], "mandatory": []})
    mandatory = set(info["mandatory"])
    if elements is not None:
        return {*ALWAYS, *mandatory, *(e.split(".")[-1] for e in elements)}
    if summary == "true":
        return {*ALWAYS, *info["summary"], *mandatory}
    if summary == "text":
        return {*ALWAYS, "text", *mandatory}
    return None


def subset(content: bytes, summary: str | None, elements: list[str] | None) -> bytes:
    """The resource trimmed for _summary=true|text|data or _elements (content if no subset)."""
    if summary not in ("true", "text", "data") and elements is None:
        return content
    doc: dict[str, Any] = json_io.loads_exact(content)
    if summary == "data" and elements is None:
        doc.pop("text", None)
    else:
        keep = keep_keys(doc.get("resourceType", ""), summary, elements)
        if keep is not None:
            names = set(keep)
            doc = {k: v for k, v in doc.items() if _base_name(k, names) is not None}
    meta = dict(doc.get("meta") or {})
    meta["tag"] = [*(meta.get("tag") or []), SUBSETTED]
    doc["meta"] = meta
    return json_io.dumps(doc)
