"""Every step of the referral Task's workflow, allowed and forbidden, as the national pack
declares it (gateway.policy.referrals.check_task over every pair of statuses)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gateway.policy.pack import Packs
from gateway.policy.referrals import STATUS_SYSTEM, check_task
from gateway.settings import Settings
from gateway.vocab.outcomes import OperationOutcomeError

FLOW = Packs.load(Path(Settings(_env_file=None).profiles_dir) / "policy").national.referrals.task
STATUSES = sorted({*FLOW.transitions, *(s for n in FLOW.transitions.values() for s in n)})


def task(status: str) -> dict:
    fits = FLOW.business_status.get(status) or []
    business = {"coding": [{"system": STATUS_SYSTEM, "code": fits[0]}]} if fits else None
    out = {"resourceType": "Task", "status": status}
    if business:
        out["businessStatus"] = business
    return out


@pytest.mark.parametrize(("before", "after"), list(itertools.product(STATUSES, STATUSES)))
async def test_every_step(before, after):
    allowed = before == after or after in FLOW.transitions.get(before, [])
    try:
        await check_task(None, FLOW, task(after), task(before), None)  # type: ignore[arg-type]
    except OperationOutcomeError as err:
        assert not allowed, (before, after, err)
        text = err.issues[0].diagnostics
        assert f"from '{before}' it may go to" in text
        for name in FLOW.transitions.get(before, []):
            assert name in text
    else:
        assert allowed, f"{before} → {after} should be refused"


def test_the_workflow_is_the_issue_s():
    t = FLOW.transitions
    assert t["requested"] == ["received", "accepted", "rejected", "cancelled"]
    assert t["received"] == ["accepted", "rejected", "cancelled"]
    assert t["accepted"] == ["in-progress", "cancelled", "failed"]
    assert t["in-progress"] == ["completed", "failed"]
    assert all(
        t[s] == ["entered-in-error"] for s in ("rejected", "cancelled", "completed", "failed")
    )
    assert FLOW.actors["accepted"] == FLOW.actors["rejected"] == "owner"
    assert FLOW.actors["cancelled"] == "requester"
