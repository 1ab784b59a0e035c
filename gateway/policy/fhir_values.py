"""Small readers of FHIR JSON the rules share: extensions, codes, dates, violations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from gateway.vocab import outcomes
from gateway.vocab.outcomes import OperationOutcomeError

BASE = "https://fhir.jtys.cn"
CATEGORY_SYSTEM = f"{BASE}/CodeSystem/family-doctor-category"
CHINA = timezone(timedelta(hours=8))


def sd(name: str) -> str:
    return f"{BASE}/StructureDefinition/{name}"


def extensions(node: dict[str, Any], url: str) -> list[dict[str, Any]]:
    return [e for e in node.get("extension") or [] if e.get("url") == url]


def ext_code(node: dict[str, Any], url: str) -> str | None:
    for e in extensions(node, url):
        coding = e.get("valueCoding") or {}
        if isinstance(coding.get("code"), str):
            return str(coding["code"])
    return None


def sub_value(ext: dict[str, Any], name: str, kind: str) -> Any:
    for e in ext.get("extension") or []:
        if e.get("url") == name:
            return e.get(f"value{kind}")
    return None


def has_category(resource: dict[str, Any], code: str) -> bool:
    return any(
        c.get("system") == CATEGORY_SYSTEM and c.get("code") == code
        for cc in resource.get("category") or []
        for c in (cc.get("coding") or [])
    )


def codes(concepts: list[dict[str, Any]] | None) -> set[str]:
    return {
        str(c["code"]) for cc in concepts or [] for c in cc.get("coding") or [] if c.get("code")
    }


def parse_date(value: Any, end: bool = False) -> date | None:
    """A FHIR date or dateTime as a calendar day (a partial date: its first day, or with `end`
    its last)."""
    if not isinstance(value, str) or len(value) < 4:
        return None
    try:
        if len(value) >= 10:
            return date.fromisoformat(value[:10])
        if len(value) == 7:
            first = date.fromisoformat(value + "-01")
            return add_months(first, 1) - timedelta(days=1) if end else first
        year = int(value[:4])
        return date(year, 12, 31) if end else date(year, 1, 1)
    except ValueError:
        return None


def add_months(day: date, months: int) -> date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(year, month, d)
        except ValueError:
            continue
    raise ValueError(day)


def today() -> date:
    """The calendar day in China, where contracts are signed."""
    return datetime.now(UTC).astimezone(CHINA).date()


def violation(
    text: str, expression: str | None, gw: str, status: int = 422, code: str = "business-rule"
) -> OperationOutcomeError:
    return outcomes.error(status, code, gw, text, expression)
