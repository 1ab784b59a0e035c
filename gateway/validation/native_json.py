"""What every native fast path reads FHIR JSON with: lists that may be absent or malformed,
extensions by URL, an extension's value[x]."""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def extensions(obj: Any, url: str) -> list[dict[str, Any]]:
    items = as_list(obj.get("extension")) if isinstance(obj, dict) else []
    return [e for e in items if isinstance(e, dict) and e.get("url") == url]


def value_of(ext: dict[str, Any]) -> Any:
    return next((v for k, v in ext.items() if k.startswith("value")), None)
