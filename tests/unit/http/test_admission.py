"""Admission: bounded work slots and body bytes; beyond them a short wait, then 503."""

from __future__ import annotations

import asyncio

import pytest

from gateway.http.admission import Admission
from gateway.vocab.outcomes import OperationOutcomeError

WAIT = 0.2


async def test_work_slots_beyond_the_limit_are_refused_with_503_after_a_wait():
    admission = Admission(max_requests=2, max_bytes=1000, wait_seconds=WAIT)
    release = asyncio.Event()

    async def hold() -> None:
        async with admission.slot():
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(OperationOutcomeError) as refused:
        async with admission.slot():
            pass
    assert loop.time() - started >= WAIT * 0.9
    assert refused.value.status == 503
    assert refused.value.headers["Retry-After"] == "2"
    assert "GW-1046" in str(refused.value.outcome())
    release.set()
    await asyncio.gather(*holders)
    async with admission.slot():  # freed: admitted again
        pass


async def test_a_waiting_request_gets_the_slot_that_frees_up():
    admission = Admission(max_requests=1, max_bytes=1000, wait_seconds=1.0)
    order = []

    async def first() -> None:
        async with admission.slot():
            await asyncio.sleep(0.1)
            order.append("first")

    async def second() -> None:
        await asyncio.sleep(0.01)
        async with admission.slot():
            order.append("second")

    await asyncio.gather(first(), second())
    assert order == ["first", "second"]


async def test_body_bytes_are_budgeted_and_given_back():
    admission = Admission(max_requests=10, max_bytes=100, wait_seconds=WAIT)
    async with admission.budget() as a:
        await a.grow_to(60)
        assert admission.bytes_in_flight == 60
        async with admission.budget() as b:
            with pytest.raises(OperationOutcomeError) as refused:
                await b.grow_to(50)  # 60 + 50 > 100
            assert refused.value.status == 503
            await b.grow_to(40)
            assert admission.bytes_in_flight == 100
        assert admission.bytes_in_flight == 60
    assert admission.bytes_in_flight == 0


async def test_one_body_larger_than_the_budget_may_use_all_of_it():
    admission = Admission(max_requests=10, max_bytes=100, wait_seconds=WAIT)
    async with admission.budget() as a:
        await a.grow_to(10_000)
        assert a.size == 100 and admission.bytes_in_flight == 100
    assert admission.bytes_in_flight == 0


async def test_a_budget_grows_in_steps_and_never_shrinks():
    admission = Admission(max_requests=10, max_bytes=100, wait_seconds=WAIT)
    async with admission.budget() as a:
        await a.grow_to(10)
        await a.grow_to(5)
        await a.grow_to(30)
        assert a.size == 30 and admission.bytes_in_flight == 30
    assert admission.bytes_in_flight == 0
