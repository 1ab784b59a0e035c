"""The background part that runs bulk jobs (gateway.background): in `gateway worker` processes,
or in the gateway itself on the embedded default.

Without Redis each runner claims the job waiting longest, works on it for one slice
(`bulk_slice_seconds`), gives it back and claims again: concurrent jobs take turns. With Redis
the slices are arq jobs on the queue `{redis_prefix}:bulk`: a runner's sweep puts every job
waiting for a worker on the queue (new ones, and those whose worker died: its lease expired),
each slice puts its job's next slice at the back of the queue (fair rotation across jobs and
workers), and any worker's arq loop picks them up. The database lease stays the authority:
a slice runs only after claiming its job, so a slice queued twice runs once.

The sweep also deletes jobs whose files have expired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any, cast

from gateway.access.control import AccessControl
from gateway.access.policy import load_policy
from gateway.bulk.export import Exporter
from gateway.bulk.importer import Importer
from gateway.bulk.jobs import Job, Jobs
from gateway.bulk.queue import SLICE, queue_name, redis_settings, slice_id
from gateway.store.errors import unavailable
from gateway.vocab import outcomes
from gateway.vocab.context import RequestContext
from gateway.vocab.metrics import EXPORT_JOBS
from gateway.vocab.tasks import finish_or_cancel

log = logging.getLogger("gateway.bulk")
EXPIRY_EVERY = 60.0  # seconds between sweeps for expired files


class Contexts:
    """The RequestContext a job runs under: its owner's, with the owner's access policy."""

    def __init__(self, settings: Any, core: Any):
        self.settings = settings
        self.access: AccessControl | None = None
        if settings.auth == "on":
            policy = load_policy(
                settings.access_policy or settings.profiles_dir / "policy" / "access.yaml"
            )
            self.access = AccessControl(
                policy, lambda t, q: core.parse_search(t, q), core.search_sql, core.store
            )

    @property
    def restricts(self) -> bool:
        """Whether this process can apply access policies (authentication on)."""
        return self.access is not None

    async def of(self, job: Job) -> RequestContext:
        if job.role is None:  # started with authentication off: nothing to restrict
            return RequestContext(principal=job.owner, request_id=job.job_id)
        if self.access is None:  # never unfiltered (`Jobs.claim` leaves such jobs alone)
            raise RuntimeError(f"bulk job {job.job_id} needs access control, which is off here")
        ctx = await self.access.context(
            job.owner,
            job.organization,
            job.role,
            tuple((job.scopes or "").split()),
            job.job_id,
        )
        return RequestContext(
            principal=ctx.principal,
            organization=ctx.organization,
            scopes=ctx.scopes,
            request_id=job.job_id,
            role=ctx.role,
            access=ctx.access,
        )


class BulkPart:
    name = "bulk"

    def __init__(self, settings: Any, core: Any, redis: Any | None):
        self.settings = settings
        self.core = core
        self.use_arq = bool(settings.redis_url)
        self.jobs = Jobs(core.store.engine)
        self.exporter = Exporter(core, self.jobs, settings)
        self.importer = Importer(core, self.jobs, settings)
        self.contexts = Contexts(settings, core)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.arq_worker: Any = None
        self.pool: Any = None
        self.queue = queue_name(settings)
        self._expired_at = 0.0

    @classmethod
    def factory(cls, ctx: Any) -> BulkPart:
        """gateway.background: a WorkerContext (settings, core, relay, redis)."""
        return cls(ctx.settings, ctx.core, ctx.redis)

    async def start(self) -> None:
        self.stopping.clear()
        self.tasks = []
        if self.use_arq:
            from arq import Worker
            from arq.connections import create_pool
            from arq.worker import func

            self.pool = await create_pool(
                redis_settings(self.settings.redis_url), default_queue_name=self.queue
            )
            slice_timeout = self.settings.bulk_slice_seconds + self.settings.bulk_lease_seconds
            self.arq_worker = Worker(
                [func(cast(Any, self._arq_slice), name=SLICE, max_tries=1000)],
                queue_name=self.queue,
                redis_pool=self.pool,
                handle_signals=False,
                keep_result=0,
                poll_delay=0.2,
                max_jobs=2,
                job_timeout=int(slice_timeout * 4),
                health_check_key=f"{self.queue}:health:{self.worker_id}",
                log_results=False,
            )
            self.tasks.append(asyncio.create_task(self.arq_worker.async_run()))
        self.tasks.append(asyncio.create_task(self._loop()))
        log.info("bulk jobs: %s", "arq queue " + self.queue if self.use_arq else "in-process")

    async def stop(self) -> None:
        self.stopping.set()
        loop_task = self.tasks.pop() if self.tasks else None
        if loop_task is not None:  # the slice in hand ends and commits its cursor
            await finish_or_cancel([loop_task], self.settings.bulk_slice_seconds + 5)
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.arq_worker is not None:
            with contextlib.suppress(Exception):
                await self.arq_worker.close()
        if self.pool is not None:
            with contextlib.suppress(Exception):
                await self.pool.aclose()

    async def _loop(self) -> None:
        poll = self.settings.bulk_poll_interval
        while not self.stopping.is_set():
            try:
                await self._sweep_expired()
                if self.use_arq:
                    for job_id, turn in await self.jobs.runnable():
                        await self._enqueue(job_id, turn)
                else:
                    job = await self.jobs.claim(
                        self.worker_id,
                        self.settings.bulk_lease_seconds,
                        restricts=self.contexts.restricts,
                    )
                    if job is not None:
                        await self.run(job)
                        continue
            except Exception as exc:  # noqa: BLE001 - the loop outlives any one failure
                if unavailable(exc):
                    log.warning("bulk jobs: database or Redis unavailable: %s", type(exc).__name__)
                else:
                    log.exception("bulk jobs: sweep failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), poll)

    async def _sweep_expired(self) -> None:
        now = time.monotonic()
        if now - self._expired_at < EXPIRY_EVERY:
            return
        self._expired_at = now
        removed = await self.jobs.expire()
        EXPORT_JOBS.labels("expired").inc(removed)  # (bulk jobs of either kind)
        if removed:
            log.info("bulk jobs: %d expired jobs and their files deleted", removed)

    async def _arq_slice(self, _ctx: dict[str, Any], job_id: str) -> None:
        if self.stopping.is_set():
            return
        job = await self.jobs.claim(
            self.worker_id,
            self.settings.bulk_lease_seconds,
            job_id,
            restricts=self.contexts.restricts,
        )
        if job is not None:
            await self.run(job)

    async def run(self, job: Job) -> None:
        """One slice of a claimed job; then back into the rotation, or finished."""
        try:
            repo = self.core.store.repository(await self.contexts.of(job))
            runner = self.exporter if job.kind == "export" else self.importer
            more = await runner.run_slice(job, self.worker_id, repo, self.stopping)
        except Exception as exc:  # noqa: BLE001 - a job's failure is its own, never the loop's
            if unavailable(exc):  # the database, not the job: try again later
                await self._release(job)
                return
            if isinstance(exc, outcomes.OperationOutcomeError):
                error = exc.outcome()
            else:
                log.exception("bulk job %s failed", job.job_id)
                error = outcomes.internal_error(f"The {job.kind} failed").outcome()
            import orjson

            failed = await self.jobs.finish(
                job.job_id,
                self.worker_id,
                "failed",
                self.settings.bulk_retention,
                orjson.dumps(error).decode(),
            )
            if failed and job.kind == "export":
                EXPORT_JOBS.labels("failed").inc()
            return
        if more:
            await self._release(job)

    async def _release(self, job: Job) -> None:
        turn = await self.jobs.release(job.job_id, self.worker_id)
        if self.use_arq and turn is not None and not self.stopping.is_set():
            await self._enqueue(job.job_id, turn)

    async def _enqueue(self, job_id: str, turn: int) -> None:
        """The job's next slice on the arq queue (once: the id names the job and its turn)."""
        await self.pool.enqueue_job(SLICE, job_id, _job_id=slice_id(job_id, turn))
