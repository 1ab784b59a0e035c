"""The terms of one contract against its region's pack, read from the contract alone:
lifecycle step, period, yearly confirmations, signing unit and party, packages and fees.

Each check raises a 422 OperationOutcome naming the element, the rule and the pack; none reads
the store (gateway.policy.contracts does what needs other resources).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from gateway.policy.fhir_values import (
    add_months,
    ext_code,
    extensions,
    parse_date,
    sd,
    sub_value,
    today,
    violation,
)
from gateway.policy.pack import Package, PolicyPack

SIGN_TYPE = sd("cn-sign-type")
SIGNING_UNIT = sd("cn-signing-unit")
MEDICAL_ALLIANCE = sd("cn-medical-alliance")
FUNCTIONAL_COMMUNITY = sd("cn-functional-community")
CONFIRMATION = sd("cn-yearly-confirmation")
FEE = sd("cn-contract-fee")
PAYER_SYSTEM = "https://fhir.jtys.cn/CodeSystem/payer-type"


def _pack(pack: PolicyPack) -> str:
    return f"{pack.name} ({pack.region}.yaml)"


def check_step(pack: PolicyPack, old: str | None, new: str) -> None:
    """A new contract starts in one of the pack's initial statuses; an existing one moves only
    along the pack's transitions (keeping its status is a change, 变更, always allowed)."""
    c = pack.contracts
    if old is None:
        if new not in c.initial:
            raise violation(
                f"A new contract cannot start as '{new}'; it starts as one of "
                f"{', '.join(c.initial)} ({_pack(pack)})",
                "CarePlan.status",
                "POL-2001",
            )
        return
    if old == new:
        return
    allowed = c.transitions.get(old, [])  # type: ignore[call-overload]
    if new not in allowed:
        nexts = ", ".join(allowed) if allowed else "none (the contract is closed)"
        raise violation(
            f"A contract cannot go from '{old}' to '{new}'; from '{old}' it may go to: {nexts} "
            f"({_pack(pack)})",
            "CarePlan.status",
            "POL-2002",
        )


def period_of(contract: dict[str, Any]) -> tuple[date | None, date | None]:
    period = contract.get("period") or {}
    return parse_date(period.get("start")), parse_date(period.get("end"), end=True)


def check_period(pack: PolicyPack, contract: dict[str, Any]) -> None:
    start, end = period_of(contract)
    p = pack.contracts.period
    if start is None or end is None:
        raise violation(
            "A contract names the day it starts and the day it ends", "CarePlan.period", "POL-2003"
        )
    shortest = add_months(start, p.min_months) - timedelta(days=1)
    if end < shortest:
        raise violation(
            f"The contract period {start}–{end} is shorter than {p.min_months} months, the "
            f"minimum in {_pack(pack)} (it would end on {shortest} or later)",
            "CarePlan.period.end",
            "POL-2004",
        )
    if p.max_months is not None:
        longest = add_months(start, p.max_months) - timedelta(days=1)
        if end > longest:
            raise violation(
                f"The contract period {start}–{end} is longer than {p.max_months} months, the "
                f"maximum in {_pack(pack)} (it would end on {longest} at the latest)",
                "CarePlan.period.end",
                "POL-2005",
            )


def contract_years(start: date, end: date) -> int:
    years = 1
    while add_months(start, 12 * years) <= end:
        years += 1
    return years


def check_confirmations(pack: PolicyPack, contract: dict[str, Any], in_force: bool) -> None:
    """Each yearly confirmation names a later contract year, once, dated within reach of that
    year; where the pack asks for them, a contract in force has one for every year begun
    more than `early_days` ago."""
    start, end = period_of(contract)
    if start is None or end is None:
        return
    years = contract_years(start, end)
    conf = pack.contracts.confirmation
    seen: set[int] = set()
    for i, ext in enumerate(extensions(contract, CONFIRMATION)):
        where = f"CarePlan.extension('{CONFIRMATION}')[{i}]"
        year = sub_value(ext, "year", "PositiveInt")
        when = parse_date(sub_value(ext, "date", "Date"))
        if not isinstance(year, int) or not 2 <= year <= years:
            raise violation(
                f"A yearly confirmation names contract year {year}; this contract's years to "
                f"confirm are 2 to {years}"
                if years > 1
                else "A one-year contract has no later year to confirm",
                where,
                "POL-2006",
            )
        if year in seen:
            raise violation(f"Contract year {year} is confirmed twice", where, "POL-2007")
        seen.add(year)
        opens = add_months(start, 12 * (year - 1)) - timedelta(days=conf.early_days)
        closes = min(end, add_months(start, 12 * year) - timedelta(days=1))
        if when is None or not opens <= when <= closes:
            raise violation(
                f"The confirmation of contract year {year} is dated {when}; it belongs between "
                f"{opens} and {closes}",
                where,
                "POL-2008",
            )
    if conf.yearly and in_force and years > 1:
        now = today()
        for year in range(2, years + 1):
            begun = add_months(start, 12 * (year - 1))
            if begun + timedelta(days=conf.early_days) <= now and year not in seen:
                raise violation(
                    f"Contract year {year} began on {begun} and is not confirmed: "
                    f"{_pack(pack)} asks for a yearly confirmation of a multi-year contract "
                    "(record it, or suspend or terminate the contract)",
                    "CarePlan.extension",
                    "POL-2009",
                )


def check_signing(pack: PolicyPack, contract: dict[str, Any]) -> None:
    c = pack.contracts
    unit = ext_code(contract, SIGNING_UNIT) or "individual"
    if unit not in c.signing_units:
        raise violation(
            f"{_pack(pack)} does not provide for '{unit}' signing (it provides for "
            f"{', '.join(c.signing_units)})",
            f"CarePlan.extension('{SIGNING_UNIT}')",
            "POL-2010",
        )
    if extensions(contract, MEDICAL_ALLIANCE):
        provider = "medical-alliance"
    elif contract.get("careTeam"):
        provider = "team"
    else:
        provider = "individual-doctor"
    if provider not in c.providers:
        raise violation(
            f"{_pack(pack)} does not provide for contracts with a {provider.replace('-', ' ')} "
            f"(signing parties: {', '.join(c.providers)})",
            "CarePlan.careTeam",
            "POL-2011",
        )
    sign_type = ext_code(contract, SIGN_TYPE)
    if sign_type == "renewal" and not contract.get("replaces"):
        raise violation(
            "A renewal (续签) names the contract it renews in `replaces`",
            "CarePlan.replaces",
            "POL-2012",
        )


def _canonical(value: str) -> str:
    return value.split("|", 1)[0]


def check_packages(
    pack: PolicyPack, division: str | None, contract: dict[str, Any]
) -> dict[str, Package]:
    """The contracted packages, each one the pack offers where the team is, combined as the
    pack allows. Returns them by canonical (empty when the pack prices no packages)."""
    offered = pack.packages_for(division)
    if not offered:
        return {}
    chosen: dict[str, Package] = {}
    for i, value in enumerate(contract.get("instantiatesCanonical") or []):
        canonical = _canonical(value)
        if canonical not in offered:
            raise violation(
                f"Package {canonical} is not one {_pack(pack)} offers here (offered: "
                f"{', '.join(p.name for p in offered.values())})",
                f"CarePlan.instantiatesCanonical[{i}]",
                "POL-2013",
            )
        chosen[canonical] = offered[canonical]
    kinds = [p.kind for p in chosen.values()]
    comb = pack.combination
    personalised = kinds.count("personalised")
    if comb.max_personalised is not None and personalised > comb.max_personalised:
        raise violation(
            f"The contract holds {personalised} personalised packages; {_pack(pack)} allows "
            f"at most {comb.max_personalised} on top of the basic ones",
            "CarePlan.instantiatesCanonical",
            "POL-2014",
        )
    if comb.requires_basic and personalised and "basic" not in kinds:
        raise violation(
            f"A personalised package comes on top of a basic package in {_pack(pack)}",
            "CarePlan.instantiatesCanonical",
            "POL-2015",
        )
    return chosen


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def fee_extensions(chosen: dict[str, Package]) -> list[dict[str, Any]]:
    """The payer amounts of each contracted package, as the contract stores them."""
    out: list[dict[str, Any]] = []
    for canonical, package in chosen.items():
        for share in package.shares:
            out.append(
                {
                    "url": FEE,
                    "extension": [
                        {"url": "package", "valueCanonical": canonical},
                        {
                            "url": "payer",
                            "valueCoding": {"system": PAYER_SYSTEM, "code": share.payer},
                        },
                        {
                            "url": "amount",
                            "valueMoney": {"value": _number(share.amount), "currency": "CNY"},
                        },
                    ],
                }
            )
    return out


def check_fees(pack: PolicyPack, contract: dict[str, Any], chosen: dict[str, Package]) -> None:
    """Fees the contract states: for contracted packages only, adding up to each price, each
    payer's amount as the pack says (a capped payer's at most its cap, the individual then
    paying the rest)."""
    given: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for i, ext in enumerate(extensions(contract, FEE)):
        where = f"CarePlan.extension('{FEE}')[{i}]"
        canonical = _canonical(str(sub_value(ext, "package", "Canonical") or ""))
        payer = (sub_value(ext, "payer", "Coding") or {}).get("code")
        money = sub_value(ext, "amount", "Money") or {}
        if canonical not in chosen:
            raise violation(
                f"A fee for package {canonical or '(none)'}, which the contract does not hold",
                where,
                "POL-2016",
            )
        if money.get("currency", "CNY") != "CNY" or money.get("value") is None:
            raise violation("A fee is an amount in CNY", where, "POL-2017")
        given[canonical][str(payer)] = Decimal(str(money["value"]))
    for canonical, amounts in given.items():
        package = chosen[canonical]
        unknown = set(amounts) - {s.payer for s in package.shares}
        if unknown:
            raise violation(
                f"{package.name}: {', '.join(sorted(unknown))} pays no share in {_pack(pack)}",
                "CarePlan.extension",
                "POL-2020",
            )
        total = sum(amounts.values(), Decimal(0))
        if total != package.price:
            raise violation(
                f"The fees of {package.name} add up to {total}, not its price {package.price} "
                f"({_pack(pack)})",
                "CarePlan.extension",
                "POL-2018",
            )
        capped = any(s.cap for s in package.shares)
        for share in package.shares:
            amount = amounts.get(share.payer, Decimal(0))
            ok = (
                amount <= share.amount
                if share.cap
                else amount >= share.amount
                if capped and share.payer == "individual"
                else amount == share.amount
            )
            if not ok:
                bound = "at most " if share.cap else "at least " if capped else ""
                raise violation(
                    f"{package.name}: the {share.payer} share is {amount}; {_pack(pack)} sets "
                    f"it at {bound}{share.amount}",
                    "CarePlan.extension",
                    "POL-2019",
                )
