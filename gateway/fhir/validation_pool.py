"""Structural validation of many resources at once, spread over worker processes.

pydantic validation of the R4B models (~1,700 resources/s per core) is the largest cost of
ingesting a transaction Bundle. Large batches are split across a process pool so one client's
bundle uses every core; the caller overlaps its own work (ids, references) with the wait.
Small batches validate inline: a round trip to a worker would cost more than it saves.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson

from gateway.fhir.outcomes import Issue, OperationOutcomeError
from gateway.fhir.parse import validate_resource

Item = tuple[dict[str, Any], str | None, str]  # (resource, expected type, FHIRPath prefix)
_IssueTuple = tuple[str, str, str, str, tuple[str, ...], int]


def _validate_items(
    items: Sequence[tuple[bytes | dict[str, Any], str | None, str]],
) -> list[_IssueTuple]:
    out: list[_IssueTuple] = []
    for doc, expected, where in items:
        resource = orjson.loads(doc) if isinstance(doc, bytes) else doc
        try:
            validate_resource(resource, expected, where)
        except OperationOutcomeError as err:
            out.extend(
                (i.code, i.diagnostics, i.gw_code, i.severity, i.expression, err.status)
                for i in err.issues
            )
    return out


def _warm_up() -> None:
    # Build the pydantic validators of the common types once per worker.
    from gateway.fhir.parse import model_class, served_types

    for rtype in served_types():
        model_class(rtype)


def _raise(issues: list[_IssueTuple]) -> None:
    if issues:
        status = max(t[5] for t in issues)
        raise OperationOutcomeError(
            [Issue(code, text, gw, sev, expr) for code, text, gw, sev, expr, _ in issues], status
        )


class ValidationPool:
    def __init__(self, workers: int | None = None, min_batch: int = 64):
        cpus = os.cpu_count() or 1
        self.workers = cpus if workers is None else workers
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: never fork a process that holds an event loop and DB connections.
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_warm_up)
        return self._pool

    def start(self, items: Sequence[Item]) -> Coroutine[Any, Any, None]:
        """Snapshot and submit the items now; await the result to get one OperationOutcomeError
        carrying every issue of every item. The items may be changed once this returns."""
        if self.workers < 2 or len(items) < self.min_batch:
            issues = _validate_items(items)

            async def inline() -> None:
                _raise(issues)

            return inline()
        payload = [(orjson.dumps(doc), expected, where) for doc, expected, where in items]
        size = -(-len(payload) // self.workers)
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(self._executor(), _validate_items, payload[i : i + size])
            for i in range(0, len(payload), size)
        ]

        async def pooled() -> None:
            parts = await asyncio.gather(*futures)
            _raise([issue for part in parts for issue in part])

        return pooled()

    async def validate(self, items: Sequence[Item]) -> None:
        await self.start(items)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
