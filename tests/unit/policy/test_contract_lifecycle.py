"""Every step of the contract lifecycle, allowed and forbidden, as the national pack declares
it (gateway.policy.contract_terms.check_step over every pair of statuses)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from gateway.policy.contract_terms import check_step
from gateway.policy.pack import STATUSES, Packs
from gateway.settings import Settings
from gateway.vocab.outcomes import OperationOutcomeError

PACK = Packs.load(Path(Settings(_env_file=None).profiles_dir) / "policy").national


@pytest.mark.parametrize(("before", "after"), list(itertools.product(STATUSES, STATUSES)))
def test_every_step(before, after):
    allowed = before == after or after in PACK.contracts.transitions.get(before, [])
    try:
        check_step(PACK, before, after)
    except OperationOutcomeError as err:
        assert not allowed and err.issues[0].gw_code == "POL-2002", (before, after)
    else:
        assert allowed, f"{before} → {after} should be refused"


@pytest.mark.parametrize("status", STATUSES)
def test_a_new_contract_starts_in_any_status_but_entered_in_error(status):
    if status == "entered-in-error":
        with pytest.raises(OperationOutcomeError):
            check_step(PACK, None, status)
    else:
        check_step(PACK, None, status)


def test_the_lifecycle_of_the_documents():
    t = PACK.contracts.transitions
    assert t["active"] == ["on-hold", "revoked", "completed", "entered-in-error"]  # 中止 解约 到期
    assert t["on-hold"] == ["active", "revoked", "completed", "entered-in-error"]
    assert t["revoked"] == t["completed"] == ["entered-in-error"]
