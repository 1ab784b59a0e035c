"""Native fast paths for the contract profile's invariants (cn-family-doctor-contract, cnc-*).

Part of `native_cn.NATIVE_CN`, kept apart so the contract's rules read as one place. Each
function returns what fhirpathpy returns for the expression it is keyed by (an empty result
holds; `all()` over an empty criterion is false), and tests check both agree on every example
and invalid case.
"""

from __future__ import annotations

from typing import Any

from gateway.validation.locations import CANONICAL_BASE
from gateway.validation.native import Native, compare_moments
from gateway.validation.native_json import as_list as _list
from gateway.validation.native_json import extensions as _exts
from gateway.validation.native_json import value_of as _value

_SD = CANONICAL_BASE + "/StructureDefinition/"
_REASON = _SD + "cn-termination-reason"
_DATE = _SD + "cn-termination-date"
_UNIT = _SD + "cn-signing-unit"
_COMMUNITY = _SD + "cn-functional-community"
_CONFIRMATION = _SD + "cn-yearly-confirmation"
_HOUSEHOLD_CONTRACT = CANONICAL_BASE + "/sid/household-contract"


def _unit_codes(res: dict[str, Any]) -> list[Any]:
    """`extension.where(url = cn-signing-unit).value.code`."""
    values = (_value(e) for e in _exts(res, _UNIT))
    return [v["code"] for v in values if isinstance(v, dict) and "code" in v]


def _confirmed_years(res: dict[str, Any]) -> list[Any]:
    """`extension.where(url = cn-yearly-confirmation).extension.where(url = 'year').value`."""
    return [
        _value(sub)
        for ext in _exts(res, _CONFIRMATION)
        for sub in _exts(ext, "year")
        if _value(sub) is not None
    ]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _revoked_states(res: dict[str, Any], url: str) -> bool:
    """`status = 'revoked' implies extension.where(url = …).exists()`."""
    return res.get("status") != "revoked" or bool(_exts(res, url))


def _only_when_revoked(res: dict[str, Any], url: str) -> bool:
    """`extension.where(url = …).exists() implies status = 'revoked'`."""
    status = res.get("status")
    return not _exts(res, url) or status is None or status == "revoked"


def cnc_1(res: dict, env: dict) -> bool:
    return _revoked_states(res, _REASON)


def cnc_2(res: dict, env: dict) -> bool:
    return _only_when_revoked(res, _REASON)


def cnc_3(res: dict, env: dict) -> bool:
    period = res.get("period")
    if not isinstance(period, dict):
        period = {}
    start, end = period.get("start"), period.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    order = compare_moments(start, end)
    return order is None or order < 0


def cnc_4(res: dict, env: dict) -> bool:
    return _revoked_states(res, _DATE)


def cnc_5(res: dict, env: dict) -> bool:
    return _only_when_revoked(res, _DATE)


def cnc_6(res: dict, env: dict) -> bool:
    return ("functional-community" in _unit_codes(res)) == bool(_exts(res, _COMMUNITY))


def cnc_7(res: dict, env: dict) -> bool:
    household = any(
        isinstance(i, dict) and i.get("system") == _HOUSEHOLD_CONTRACT
        for i in _list(res.get("identifier"))
    )
    return ("household" in _unit_codes(res)) == household


def cnc_8(res: dict, env: dict) -> bool:
    years = _confirmed_years(res)
    if not all(_whole(y) for y in years):
        return False
    return all(y >= 2 for y in years) and len(set(years)) == len(years)


def _contract_years(start: str, end: str) -> int | None:
    """Year n starts on the (n-1)th anniversary of the start: the years that start on or before
    the end, compared on the written text as the FHIRPath does (`substring(5, 5)` is month-day,
    empty for a year-only value)."""
    if not (start[:4].isdigit() and end[:4].isdigit()):
        return None
    start_md = start[5:10] if len(start) > 5 else None
    end_md = end[5:10] if len(end) > 5 else None
    before = start_md is not None and end_md is not None and end_md < start_md
    return int(end[:4]) - int(start[:4]) + (0 if before else 1)


def cnc_9(res: dict, env: dict) -> bool:
    period = res.get("period")
    if not isinstance(period, dict):
        period = {}
    if period.get("start") is None or period.get("end") is None:
        return True
    years = _confirmed_years(res)
    if not years:
        return True
    root = env["resource"].get("period")
    root = root if isinstance(root, dict) else {}
    start, end = root.get("start"), root.get("end")
    span = _contract_years(start, end) if isinstance(start, str) and isinstance(end, str) else None
    return span is not None and all(_whole(y) and y <= span for y in years)


_YEARS = f"extension.where(url = '{_CONFIRMATION}').extension.where(url = 'year').value"
_UNIT_CODE = f"extension.where(url = '{_UNIT}').value.code"


def _period(which: str, part: str) -> str:
    return f"%resource.period.{which}.toString().substring({part})"


NATIVE_CONTRACT: dict[tuple[str, str], Native] = {
    (
        "cnc-1",
        f"status = 'revoked' implies extension.where(url = '{_REASON}').exists()",
    ): cnc_1,
    (
        "cnc-2",
        f"extension.where(url = '{_REASON}').exists() implies status = 'revoked'",
    ): cnc_2,
    ("cnc-3", "period.start < period.end"): cnc_3,
    ("cnc-4", f"status = 'revoked' implies extension.where(url = '{_DATE}').exists()"): cnc_4,
    ("cnc-5", f"extension.where(url = '{_DATE}').exists() implies status = 'revoked'"): cnc_5,
    (
        "cnc-6",
        f"({_UNIT_CODE} contains 'functional-community') = "
        f"extension.where(url = '{_COMMUNITY}').exists()",
    ): cnc_6,
    (
        "cnc-7",
        f"({_UNIT_CODE} contains 'household') = "
        f"identifier.where(system = '{_HOUSEHOLD_CONTRACT}').exists()",
    ): cnc_7,
    ("cnc-8", f"{_YEARS}.all($this >= 2) and {_YEARS}.isDistinct()"): cnc_8,
    (
        "cnc-9",
        f"period.start.empty() or period.end.empty() or {_YEARS}.all($this <= "
        f"{_period('end', '0, 4')}.toInteger() - {_period('start', '0, 4')}.toInteger() + "
        f"iif({_period('end', '5, 5')} < {_period('start', '5, 5')}, 0, 1))",
    ): cnc_9,
}
