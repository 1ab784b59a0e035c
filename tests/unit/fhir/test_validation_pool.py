"""Large batches are validated on worker processes with the same result as inline."""

from __future__ import annotations

import os
import signal

import pytest

from gateway.fhir.validation_pool import ValidationPool
from gateway.fhir.write_check import WriteCheck
from gateway.vocab.outcomes import OperationOutcomeError

CHECK = WriteCheck("off")


def _items(n: int, bad: set[int]):
    out = []
    for i in range(n):
        res = {"resourceType": "Patient", "active": "yes" if i in bad else True}
        out.append((res, "Patient", f"Bundle.entry[{i}].resource"))
    return out


@pytest.mark.parametrize("workers", [0, 2])
async def test_every_issue_of_every_item_is_reported(workers):
    pool = ValidationPool(CHECK, workers=workers, min_batch=4)
    try:
        await pool.validate(_items(40, set()))
        with pytest.raises(OperationOutcomeError) as err:
            await pool.validate(_items(40, {3, 17, 39}))
        assert err.value.status == 400
        exprs = [e for i in err.value.issues if i.severity == "error" for e in i.expression]
        assert exprs == [f"Bundle.entry[{i}].resource.active" for i in (3, 17, 39)]
    finally:
        pool.close()


async def test_a_dead_worker_does_not_break_validation():
    pool = ValidationPool(CHECK, workers=2, min_batch=4)
    try:
        await pool.validate(_items(8, set()))
        for pid in list(pool._executor()._processes):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(OperationOutcomeError):
            await pool.validate(_items(8, {5}))
        await pool.validate(_items(8, set()))  # a fresh pool
    finally:
        pool.close()
