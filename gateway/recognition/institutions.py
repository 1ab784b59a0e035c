"""What the recognition rules need to know of an institution, read through a resolver (a
reference → the resource, or None): its level, its division, the medical alliances it belongs
to (Organization.partOf, up the chain, of kind medical-alliance) and its lab qualifications
(extension cn-lab-qualification)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

BASE = "https://fhir.jtys.cn"
LEVEL = f"{BASE}/StructureDefinition/cn-institution-level"
DIVISION = f"{BASE}/StructureDefinition/cn-admin-division"
QUALIFICATION = f"{BASE}/StructureDefinition/cn-lab-qualification"
KIND = f"{BASE}/CodeSystem/institution-kind"

Resolver = Callable[[str], Awaitable[dict[str, Any] | None]]


def day(value: Any) -> date | None:
    """A FHIR date or dateTime as its calendar day (a partial date: None)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


@dataclass(frozen=True)
class Qualified:
    program: str | None
    start: date | None
    end: date | None
    passed: bool

    def covers(self, program: str, on: date) -> bool:
        return (
            self.passed
            and self.program == program
            and (self.start is None or self.start <= on)
            and (self.end is None or on <= self.end)
        )


@dataclass(frozen=True)
class Institution:
    ref: str
    level: int  # 1, 2, 3 (一级, 二级, 三级); 0 unranked (未定级) or unknown
    division: str | None
    alliances: frozenset[str]
    qualifications: tuple[Qualified, ...] = ()

    def qualified(self, program: str, on: date) -> bool:
        return any(q.covers(program, on) for q in self.qualifications)


def _level(org: dict[str, Any]) -> int:
    for e in org.get("extension") or []:
        if e.get("url") == LEVEL:
            code = str((e.get("valueCoding") or {}).get("code") or "")
            if code[:1] in ("1", "2", "3"):
                return int(code[0])
    return 0


def _division(org: dict[str, Any]) -> str | None:
    for address in org.get("address") or []:
        for e in address.get("extension") or []:
            if e.get("url") == DIVISION and isinstance(e.get("valueCode"), str):
                return str(e["valueCode"])
    return None


def _sub(ext: dict[str, Any], name: str) -> dict[str, Any]:
    return next((e for e in ext.get("extension") or [] if e.get("url") == name), {})


def qualifications(org: dict[str, Any]) -> tuple[Qualified, ...]:
    out = []
    for e in org.get("extension") or []:
        if e.get("url") != QUALIFICATION:
            continue
        period = _sub(e, "period").get("valuePeriod") or {}
        out.append(
            Qualified(
                (_sub(e, "program").get("valueCoding") or {}).get("code"),
                day(period.get("start")),
                day(period.get("end")),
                _sub(e, "passed").get("valueBoolean") is True,
            )
        )
    return tuple(out)


def is_alliance(org: dict[str, Any]) -> bool:
    return any(
        c.get("system") == KIND and c.get("code") == "medical-alliance"
        for t in org.get("type") or []
        for c in t.get("coding") or []
    )


async def _alliances(org: dict[str, Any], resolve: Resolver) -> frozenset[str]:
    found: set[str] = set()
    node, seen = org, set()
    for _ in range(5):  # an alliance's member may itself be part of a hospital
        ref = (node.get("partOf") or {}).get("reference")
        if not isinstance(ref, str) or ref in seen:
            break
        seen.add(ref)
        parent = await resolve(ref)
        if parent is None:
            break
        if is_alliance(parent):
            found.add(f"Organization/{parent.get('id')}")
        node = parent
    return frozenset(found)


async def institution(ref: str, resolve: Resolver) -> Institution | None:
    org = await resolve(ref)
    if org is None or org.get("resourceType") != "Organization":
        return None
    return Institution(
        f"Organization/{org.get('id')}",
        _level(org),
        _division(org),
        await _alliances(org, resolve),
        qualifications(org),
    )


def _type(ref: str) -> str:
    """The resource type a reference names (literal, absolute or conditional)."""
    path = ref.split("?")[0].split("/")
    return path[-1] if "?" in ref else (path[-2] if len(path) >= 2 else "")


async def performing_lab(result: dict[str, Any], resolve: Resolver) -> Institution | None:
    """The organisation that performed a result: an Organization performer, else the
    organisation of a PractitionerRole performer."""
    named = [p.get("reference") for p in result.get("performer") or [] if isinstance(p, dict)]
    refs: list[str] = [r for r in named if isinstance(r, str)]
    for ref in refs:
        if _type(ref) == "Organization":
            return await institution(ref, resolve)
    for ref in refs:
        if _type(ref) == "PractitionerRole":
            role = await resolve(ref)
            org = ((role or {}).get("organization") or {}).get("reference")
            if isinstance(org, str):
                return await institution(org, resolve)
    return None
