"""Validation of many resources at once, spread over worker processes.

Validation against the R4 definitions and the profiles that apply (~3,500 Synthea resources/s
per core) is the largest cost of ingesting a transaction Bundle. Large batches are split across
a process pool so one client's bundle uses every core; the caller overlaps its own work (ids,
references) with the wait. Small batches validate inline: a round trip to a worker would cost
more than it saves. Each worker builds its own WriteCheck once, from the parent's settings.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
from collections.abc import Coroutine, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson

from gateway.fhir.write_check import WriteCheck
from gateway.vocab import json_io
from gateway.vocab.lifeline import on_parent_exit
from gateway.vocab.outcomes import Issue, OperationOutcomeError

Item = tuple[dict[str, Any], str | None, str]  # (resource, expected type, FHIRPath prefix)
_Found = list[tuple[Issue, int]]  # (issue, HTTP status of the error that carried it)

_worker_check: WriteCheck | None = None  # one per worker process, built by _init_worker


def _init_worker(config: dict[str, Any]) -> None:
    global _worker_check
    # Ends with the gateway process that started it, however that ends (a killed gateway
    # must not leave validation processes behind).
    on_parent_exit(lambda: os._exit(0))
    _worker_check = WriteCheck(**config)
    gc.freeze()  # long-lived start-up objects: out of the collector's way (see app.py)


def _check_items(check: WriteCheck, items: Sequence[tuple[Any, str | None, str]]) -> _Found:
    out: _Found = []
    for doc, expected, where in items:
        resource = orjson.loads(doc) if isinstance(doc, bytes) else doc
        try:
            check.check(resource, expected, where)
        except OperationOutcomeError as err:
            out.extend((issue, err.status) for issue in err.issues)
    return out


def _check_in_worker(items: Sequence[tuple[bytes, str | None, str]]) -> _Found:
    assert _worker_check is not None, "worker not initialised"
    return _check_items(_worker_check, items)


def _ready() -> bool:
    return _worker_check is not None


def _raise(found: _Found) -> None:
    if found:
        raise OperationOutcomeError([i for i, _ in found], max(s for _, s in found))


class ValidationPool:
    def __init__(self, check: WriteCheck, workers: int | None = None, min_batch: int = 64):
        self.check = check
        self.workers = (os.cpu_count() or 1) if workers is None else workers
        self.min_batch = min_batch
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: never fork a process that holds an event loop and DB connections.
            ctx = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(self.check.config,),
            )
        return self._pool

    def warm(self) -> None:
        """Start the workers now (they build every model class, seconds): the first large
        bundle should not wait for them."""
        if self.workers >= 2:
            pool = self._executor()
            for _ in range(self.workers):
                pool.submit(_ready)

    def start(self, items: Sequence[Item]) -> Coroutine[Any, Any, None]:
        """Snapshot and submit the items now; await the result to get one OperationOutcomeError
        carrying every issue of every item. The items may be changed once this returns."""
        if self.workers < 2 or len(items) < self.min_batch:
            found = _check_items(self.check, items)

            async def inline() -> None:
                _raise(found)

            return inline()
        payload = [(json_io.dumps(doc), expected, where) for doc, expected, where in items]
        size = -(-len(payload) // self.workers)
        loop = asyncio.get_running_loop()
        futures = [
            loop.run_in_executor(self._executor(), _check_in_worker, payload[i : i + size])
            for i in range(0, len(payload), size)
        ]

        async def pooled() -> None:
            try:
                parts = await asyncio.gather(*futures)
            except BrokenProcessPool:
                # A worker died (OOM killer, …): start a fresh pool next time, check inline now.
                self.close()
                parts = [_check_items(self.check, payload)]
            _raise([f for part in parts for f in part])

        return pooled()

    async def validate(self, items: Sequence[Item]) -> None:
        await self.start(items)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
