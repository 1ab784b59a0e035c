"""The arq queue of bulk slices (with Redis): its name, a slice's job id, and the wake-up a
kick-off sends so that a worker starts the new job at once (without it, a worker's sweep finds
the job within GATEWAY_BULK_POLL_INTERVAL)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

log = logging.getLogger("gateway.bulk")
SLICE = "bulk_slice"


def queue_name(settings: Any) -> str:
    return f"{settings.redis_prefix}:bulk"


def slice_id(job_id: str, turn: int) -> str:
    """One arq job per (bulk job, turn): the same slice queued twice is queued once."""
    return f"bulk:{job_id}:{turn}"


def redis_settings(url: str) -> Any:
    from arq.connections import RedisSettings

    return dataclasses.replace(RedisSettings.from_dsn(url), conn_timeout=2, conn_retries=0)


async def wake(settings: Any, job_id: str) -> None:
    """Queue a new job's first slice (turn 0); a Redis that does not answer only delays it."""
    from arq.connections import create_pool

    try:
        pool = await create_pool(
            redis_settings(settings.redis_url), default_queue_name=queue_name(settings)
        )
        try:
            await pool.enqueue_job(SLICE, job_id, _job_id=slice_id(job_id, 0))
        finally:
            await pool.aclose()
    except Exception as exc:  # noqa: BLE001 - the sweep queues it later
        log.warning("bulk job %s: Redis did not take its first slice (%s)", job_id, exc)
