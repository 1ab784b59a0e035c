"""The subscription delivery part (gateway.background): events in, notifications out.

Events come from the bus: on the embedded default the in-process bus hands each committed
event to a queue here (the relay publishes inside its transaction, so nothing is written
there); with Redis, a consumer group on the events stream shares them among every `gateway
worker` (each entry to one worker; acknowledged once its matches are stored; entries of a
worker that died are taken over after `subscription_claim_idle` seconds). A sweep every
`subscription_poll` seconds retries, handshakes, beats, and picks up what dead workers held.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from gateway.events.bus import InProcessBus, RedisStreamBus
from gateway.store.model import Event
from gateway.subscriptions.service import SubscriptionService
from gateway.vocab.tasks import finish_or_cancel

log = logging.getLogger("gateway.subscriptions")

GROUP = "subscriptions"
_BATCH = 500
_GRACE = 5.0  # seconds a stopping task has to end by itself


def _event(fields: dict[Any, Any]) -> Event:
    def get(name: str) -> str:
        v = fields.get(name.encode(), fields.get(name, b""))
        return v.decode() if isinstance(v, bytes) else str(v)

    return Event(
        get("type"), get("id"), int(get("version") or 0), get("action"), get("principal") or None
    )


class SubscriptionPart:
    name = "subscriptions"

    def __init__(self, service: SubscriptionService, bus: Any, redis: Any | None):
        self.service = service
        self.settings = service.settings
        self.bus = bus
        self.redis = redis
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()  # None: stop
        self.tasks: list[asyncio.Task[None]] = []
        self.stopping = asyncio.Event()
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{service.me[:6]}"
        self.stream = getattr(bus, "stream", f"{self.settings.redis_prefix}:events")

    async def start(self) -> None:
        try:
            await self.service.adopt()
            await self.service.refresh()
        except Exception as exc:  # noqa: BLE001 - the database away: the sweep catches up
            log.warning("subscriptions: start-up scan failed: %s (%s)", type(exc).__name__, exc)
        if isinstance(self.bus, InProcessBus):
            self.bus.subscribe(self._enqueue)
            self.tasks.append(asyncio.create_task(self._local(), name="subscriptions-events"))
        elif isinstance(self.bus, RedisStreamBus) or self.redis is not None:
            self.tasks.append(asyncio.create_task(self._redis(), name="subscriptions-stream"))
            self.tasks.append(asyncio.create_task(self._wakes(), name="subscriptions-wakes"))
            self.service.on_enqueued = self._wake_others
        self.tasks.append(asyncio.create_task(self._sweep(), name="subscriptions-sweep"))

    async def _enqueue(self, event: Event) -> None:
        self.queue.put_nowait(event)

    async def _local(self) -> None:
        while not self.stopping.is_set():
            first = await self.queue.get()
            if first is None:  # stop() said so
                break
            batch = [first]
            while len(batch) < _BATCH and not self.queue.empty():
                more = self.queue.get_nowait()
                if more is not None:
                    batch.append(more)
            # Retried (matching is idempotent: a version queued already is not queued again)
            # while the database is away, for a while; then logged as lost.
            for attempt in range(6):
                try:
                    await self.service.handle(batch)
                    break
                except Exception:  # noqa: BLE001 - keep consuming
                    if attempt == 5 or self.stopping.is_set():
                        log.exception("subscription matching failed for %d events", len(batch))
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stopping.wait(), 2.0**attempt)

    async def _redis(self) -> None:
        redis = self._redis_client
        failing = False
        created = False
        idle_ms = int(self.settings.subscription_claim_idle * 1000)
        claim_every = max(1.0, self.settings.subscription_claim_idle / 2)
        last_claim = 0.0
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            try:
                if not created:
                    # A new stream: from its start; one that exists (a first deployment on a
                    # stream with history): from now on, not every past event.
                    start = "$" if await redis.exists(self.stream) else "0"
                    with contextlib.suppress(Exception):  # BUSYGROUP: it exists
                        await redis.xgroup_create(self.stream, GROUP, id=start, mkstream=True)
                    created = True
                entries: list[tuple[Any, dict[Any, Any]]] = []
                if loop.time() - last_claim >= claim_every:
                    last_claim = loop.time()
                    claimed = await redis.xautoclaim(
                        self.stream, GROUP, self.consumer, idle_ms, "0-0", count=_BATCH
                    )
                    entries = [(i, f) for i, f in claimed[1] if f]
                if not entries:
                    got = await redis.xreadgroup(
                        GROUP, self.consumer, {self.stream: ">"}, count=_BATCH, block=1000
                    )
                    entries = [e for _, items in got or [] for e in items]
                if entries:
                    await self.service.handle([_event(f) for _, f in entries])
                    await redis.xack(self.stream, GROUP, *[i for i, _ in entries])
                if failing:
                    log.warning("subscription events resumed")
                    failing = False
            except Exception as exc:  # noqa: BLE001 - Redis or the database away: wait, retry
                if not failing:
                    log.warning(
                        "subscription events paused: %s (%s); retrying", type(exc).__name__, exc
                    )
                    failing = True
                created = False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)

    @property
    def _redis_client(self) -> Any:
        return self.redis if self.redis is not None else self.bus.redis

    @property
    def wake_channel(self) -> str:
        return f"{self.settings.redis_prefix}:subscriptions:wake"

    async def _wake_others(self, sub_ids: list[str]) -> None:
        """A subscription's lease may be another worker's: tell them all (pub/sub); the
        holder delivers. Lost wake-ups are caught by the sweep."""
        with contextlib.suppress(Exception):
            await self._redis_client.publish(self.wake_channel, " ".join(sub_ids))

    async def _wakes(self) -> None:
        while not self.stopping.is_set():
            pubsub = self._redis_client.pubsub()
            try:
                await pubsub.subscribe(self.wake_channel)
                while not self.stopping.is_set():
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if msg and msg.get("type") == "message":
                        data = msg["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        for sub_id in text.split():
                            if sub_id in self.service.held:
                                self.service.kick(sub_id)
            except Exception:  # noqa: BLE001 - Redis away: the sweep delivers meanwhile
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), 1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _sweep(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.service.sweep()
            except Exception as exc:  # noqa: BLE001 - the database away: next sweep
                log.warning("subscription sweep failed: %s (%s)", type(exc).__name__, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.subscription_poll)

    async def stop(self) -> None:
        self.stopping.set()
        if isinstance(self.bus, InProcessBus):
            with contextlib.suppress(ValueError):
                self.bus.subscribers.remove(self._enqueue)
        self.queue.put_nowait(None)  # wakes the in-process consumer to see `stopping`
        # The sweep and the consumers end within a second of `stopping` (their Redis reads
        # block at most that long); a sweep in the middle of its statements finishes them.
        await finish_or_cancel(self.tasks, _GRACE)
        await self.service.stop()


def subscription_part(ctx: Any) -> SubscriptionPart:
    """The factory gateway.background lists (ctx: WorkerContext)."""
    return SubscriptionPart(SubscriptionService(ctx.core), ctx.relay.bus, ctx.redis)
