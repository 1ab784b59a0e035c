"""Background parts beside the API: subscription delivery, bulk jobs.

On the embedded default (no Redis) the gateway runs them in-process
(Settings.runs_worker_inline); with Redis, `gateway worker` processes do (gateway.worker), as
many as wanted on one database and one Redis. Each part is started and stopped here; this
module knows nothing of what a part does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.bulk.runner import BulkPart
from gateway.events.relay import OutboxRelay
from gateway.fhir.core import FhirCore
from gateway.settings import Settings
from gateway.subscriptions.part import subscription_part

log = logging.getLogger("gateway.background")


@dataclass
class WorkerContext:
    settings: Settings
    core: FhirCore
    relay: OutboxRelay
    # A Redis client when GATEWAY_REDIS_URL is set (keys under settings.redis_prefix), else None.
    redis: Any | None


class Part(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


PartFactory = Callable[[WorkerContext], "Part | None"]


def factories() -> list[PartFactory]:
    """The parts to run (a factory may return None: nothing to run with these settings)."""
    return [subscription_part, BulkPart.factory]


async def start_parts(ctx: WorkerContext) -> list[Part]:
    started: list[Part] = []
    for factory in factories():
        part = factory(ctx)
        if part is None:
            continue
        await part.start()
        started.append(part)
    return started


async def stop_parts(parts: list[Part]) -> None:
    for part in reversed(parts):
        try:
            await part.stop()
        except Exception:  # noqa: BLE001 - stop the others whatever one of them does
            log.exception("background part %s did not stop cleanly", part.name)
