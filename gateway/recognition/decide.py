"""Whether a requester must accept a result, and whether a result carries the mark: pure
functions of the result, the institutions and the rules.

The checks, in order, each with its reason code: the item is on the list (`not-recognisable`);
the result is within its window on the day of the decision (`expired`; an undated result is
too); the lab held a passed qualification covering the result's day (`lab-not-qualified`);
requester and lab share a medical alliance (all mutual there), else both sit under the scope
of the requester's region (`outside-scope`) and the lab's level is not below the requester's
(`hierarchy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from gateway.recognition.institutions import Institution, day
from gateway.recognition.rules import Item, Recognition, RecognitionRules

NOT_RECOGNISABLE = "not-recognisable"
EXPIRED = "expired"
LAB_NOT_QUALIFIED = "lab-not-qualified"
OUTSIDE_SCOPE = "outside-scope"
HIERARCHY = "hierarchy"

# reason → (Chinese, English), for the OperationOutcome saying why none qualifies
REASONS = {
    NOT_RECOGNISABLE: ("该项目不在互认项目目录内", "the test is not a recognisable item"),
    EXPIRED: ("结果已超过互认有效期", "the result is older than its validity window"),
    LAB_NOT_QUALIFIED: (
        "检验机构在结果日期未持有有效的室间质评合格证明",
        "the lab held no passed external quality assessment on the result's date",
    ),
    OUTSIDE_SCOPE: (
        "申请机构与检验机构不在同一医联体或互认区域内",
        "requester and lab share neither a medical alliance nor the recognition region",
    ),
    HIERARCHY: (
        "检验机构级别低于申请机构",
        "the lab's level is below the requester's",
    ),
}


def china_today() -> date:
    """The calendar day in China, where the results are used."""
    return datetime.now(UTC).astimezone(timezone(timedelta(hours=8))).date()


@dataclass(frozen=True)
class Decision:
    reason: str | None  # None: recognised
    item: Item | None = None

    @property
    def recognised(self) -> bool:
        return self.reason is None


def result_day(result: dict[str, Any]) -> date | None:
    """The day a result was obtained: effective[x] (a period's start), else issued."""
    period = result.get("effectivePeriod") or {}
    for value in (
        result.get("effectiveDateTime"),
        result.get("effectiveInstant"),
        period.get("start"),
        result.get("issued"),
    ):
        found = day(value)
        if found is not None:
            return found
    return None


def item_of(result: dict[str, Any], rules: RecognitionRules) -> Item | None:
    for c in (result.get("code") or {}).get("coding") or []:
        item = rules.item_for(c.get("system"), c.get("code"))
        if item is not None:
            return item
    return None


def _lab_qualified(
    rules: RecognitionRules, item: Item, lab: Institution | None, on: date | None
) -> bool:
    if item.kind not in rules.qualification.kinds:
        return lab is not None
    return lab is not None and on is not None and lab.qualified(rules.qualification.program, on)


def mark(result: dict[str, Any], lab: Institution | None, rules: RecognitionRules) -> str | None:
    """The scope code of the mark a result carries (`alliance` when its lab is in one, else
    `region`), or None when it carries none: not a recognisable item, or its lab held no
    qualification covering the result's day."""
    item = item_of(result, rules)
    if item is None or lab is None or not _lab_qualified(rules, item, lab, result_day(result)):
        return None
    return "alliance" if lab.alliances else "region"


def _under(division: str | None, scope: list[str]) -> bool:
    return division is not None and any(division.startswith(p) for p in scope)


def decide(
    result: dict[str, Any],
    lab: Institution | None,
    requester: Institution,
    on: date,
    recognition: Recognition,
) -> Decision:
    rules = recognition.rules
    item = item_of(result, rules)
    if item is None:
        return Decision(NOT_RECOGNISABLE)
    region = recognition.region_for(requester.division)
    taken = result_day(result)
    if taken is None or (on - taken).days > recognition.days(item, region):
        return Decision(EXPIRED, item)
    if not _lab_qualified(rules, item, lab, taken):
        return Decision(LAB_NOT_QUALIFIED, item)
    assert lab is not None
    if rules.hierarchy.alliance_mutual and lab.alliances & requester.alliances:
        return Decision(None, item)
    if not (_under(lab.division, region.scope) and _under(requester.division, region.scope)):
        return Decision(OUTSIDE_SCOPE, item)
    return Decision(None if _level_fits(rules, lab, requester) else HIERARCHY, item)


def _level_fits(rules: RecognitionRules, lab: Institution, requester: Institution) -> bool:
    if lab.level == requester.level:
        return rules.hierarchy.same_level
    return lab.level > requester.level and rules.hierarchy.lower_accepts_higher
