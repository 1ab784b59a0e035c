"""Outbox relay: publishes committed outbox rows to the bus, at least once, in order.

Writes put outbox rows in their own transaction; the relay runs beside the request path (woken
after each commit, and on a timer for rows left by a crashed process) and deletes what it
published.
Order per resource: a resource's version n+1 is written after version n committed, so its
outbox row comes later in `seq`; but two relays draining at once (SKIP LOCKED hands them
different batches) could publish the later batch first. So relays on PostgreSQL take turns: each
batch is taken under one transaction-level advisory lock (a relay waits for the one publishing,
then finds what is left), and the bus receives every resource's versions in order. SQLite's
write transactions are serial already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.events.bus import EventBus
from gateway.store.engine import write_transaction
from gateway.store.model import Event
from gateway.store.tables import outbox
from gateway.vocab.tasks import finish_or_cancel

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key of the relays' turn (any fixed 64-bit value; "outbox-relay").
RELAY_LOCK = 0x6F7574626F78


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        bus: EventBus,
        batch: int = 500,
        interval: float = 5.0,
        linger: float = 0.02,
        max_backoff: float = 30.0,
    ):
        self.engine = engine
        self.bus = bus
        self.batch = batch
        self.interval = interval
        # Wait this long after a wake-up so one relay transaction carries many commits' events.
        self.linger = linger
        self.max_backoff = max_backoff
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def notify(self, events: Sequence[Event]) -> None:
        self._wake.set()

    async def drain_once(self) -> int:
        """Publish one batch of unpublished rows; returns how many were published."""
        async with write_transaction(self.engine) as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": RELAY_LOCK})
            q = (
                select(outbox)
                .where(outbox.c.published.is_(False))
                .order_by(outbox.c.seq)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            )
            rows = (await conn.execute(q)).all()
            if not rows:
                return 0
            await self.bus.publish(
                [Event(r.res_type, r.res_id, r.version, r.action, r.principal) for r in rows]
            )
            # Published rows are deleted, not flagged: the bus keeps the event log, and a
            # delete leaves no new row version or index entry behind (an update would).
            await conn.execute(delete(outbox).where(outbox.c.seq.in_([r.seq for r in rows])))
        return len(rows)

    async def drain(self) -> int:
        """Publish every row committed before the call. A batch short of `batch` took all of
        them (one relay at a time: the advisory lock, SQLite's writer), so no empty batch is
        read to prove it: under a steady stream of writes, one relay transaction per wake-up
        instead of two (a later commit wakes the relay again)."""
        total = 0
        while n := await self.drain_once():
            total += n
            if n < self.batch:
                break
        return total

    async def _run(self) -> None:
        failing = False
        delay = self.interval
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            await asyncio.sleep(self.linger)
            self._wake.clear()
            try:
                # A bus that does not answer is found out before a batch is locked: the rows
                # stay claimable (and SQLite's write lock free) while it is away.
                await self.bus.check()
                published = await self.drain()
            except Exception as exc:  # noqa: BLE001 - keep relaying: an outage must not kill the gateway
                if not failing:  # one line per change of state, not a traceback per retry
                    log.warning(
                        "event relay paused: %s (%s); events stay in the outbox, retrying",
                        type(exc).__name__,
                        exc,
                    )
                    failing = True
                # back off, and ignore the wake-ups of each commit until the next try
                delay = min(self.max_backoff, max(delay * 2, 1.0))
                await self._sleep_unless_stopping(delay)
                continue
            if failing:
                log.warning("event relay resumed: %d events published", published)
                failing = False
            delay = self.interval

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._halt.wait(), seconds)

    def start(self) -> None:
        self._stopping = False
        self._halt.clear()
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the relay finish the batch in hand, then end it: cancelled in the middle of its
        transaction, it could leave SQLite's write lock held by a connection nobody closes."""
        if not self._task:
            return
        self._stopping = True
        self._wake.set()
        self._halt.set()
        await finish_or_cancel([self._task], timeout)
