"""`gateway mllp`: HL7 v2 over MLLP (framing 0x0B … 0x1C 0x0D, python-hl7's asyncio streams).

Many messages per connection, connections served concurrently; each message is planned,
written through the core's transaction interaction (gateway.hl7v2.receive) and answered with
its ACK (AA) or NAK (AE / AR with ERR segments) before the next is read, so a sender keeps
its order. Messages of concurrent connections waiting at the same time are written as one
transaction (gateway.hl7v2.group; a group that fails is written again message by message, so
each is still stored whole or not at all, and answered for itself); a group's business
identifiers are found in one search per resource type before its transaction, and what is
stored already is written by its id (gateway.hl7v2.group.Group.resolve). The listener has no
authentication of its own: bind it to the interface the hospital network reaches (default
loopback), as for any MLLP interface engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.queues
import os
import queue
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from hl7.mllp import InvalidBlockError, start_hl7_server
from hl7.mllp.streams import HL7StreamReader, HL7StreamWriter
from sqlalchemy import Select, and_, or_, select

from gateway.app import build_core
from gateway.fhir.core import FhirCore
from gateway.fhir.request import FhirRequest
from gateway.hl7v2.group import Group, Wanted
from gateway.hl7v2.receive import Prepared, Received, accepted, prepare, refusal, write_failed
from gateway.settings import Settings
from gateway.store.tables import idx_token, resources
from gateway.vocab.outcomes import OperationOutcomeError
from gateway.vocab.tasks import finish_or_cancel

log = logging.getLogger("gateway.mllp")
Waiting = tuple[Prepared, "asyncio.Future[Received]"]


class MllpServer:
    def __init__(
        self,
        core: FhirCore,
        host: str = "127.0.0.1",
        port: int = 2575,
        max_message_bytes: int = 16 * 1024 * 1024,
        base_url: str | None = None,
        max_group: int = 32,
        reuse_port: bool = False,
    ):
        self.core = core
        self.host = host
        self.port = port
        self.limit = max_message_bytes
        self.base_url = base_url or "http://localhost/fhir"
        self.max_group = max_group
        self.reuse_port = reuse_port  # several processes listening on one port
        self.server: asyncio.base_events.Server | None = None
        self.connections: set[asyncio.Task[Any]] = set()
        self.handled = 0
        self.groups = 0  # transactions written for groups (their messages: `grouped`)
        self.grouped = 0
        self._queue: asyncio.Queue[Waiting | None] = asyncio.Queue()  # None: stop
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> int:
        """Listen; returns the port (a free one when asked for port 0)."""
        self._writer = asyncio.create_task(self._groups())
        extra = {"reuse_port": True} if self.reuse_port else {}
        self.server = await start_hl7_server(
            self._client, self.host, self.port, limit=self.limit, **extra
        )
        self.port = self.server.sockets[0].getsockname()[1]
        log.info("MLLP listening on %s:%s", self.host, self.port)
        return self.port

    async def stop(self, grace: float = 10.0) -> None:
        """No new connections; the messages received so far are written and answered (the
        writer is not cancelled inside a transaction), later ones refused; then the
        connections end."""
        self._stopping = True
        if self.server is not None:
            self.server.close()
        if self._writer is not None:
            self._queue.put_nowait(None)
            await finish_or_cancel([self._writer], grace)
            self._writer = None
        if self.server is not None:
            for task in list(self.connections):
                task.cancel()
            await asyncio.gather(*self.connections, return_exceptions=True)
            await self.server.wait_closed()
            self.server = None

    async def _client(self, reader: HL7StreamReader, writer: HL7StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self.connections.add(task)
        try:
            while True:
                try:
                    block = await reader.readblock()
                except asyncio.IncompleteReadError:
                    break  # the sender closed the connection
                except InvalidBlockError:
                    writer.writeblock(refusal(b"", "a block starts with 0x0B (MLLP)").ack)
                    await writer.drain()
                    continue
                except ValueError:  # larger than the limit: that block is dropped
                    writer.writeblock(refusal(b"", f"a message is at most {self.limit} bytes").ack)
                    await writer.drain()
                    continue
                result = await self.handle(block)
                writer.writeblock(result.ack)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if task is not None:
                self.connections.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(self, block: bytes) -> Received:
        """One message: planned here, written with the others waiting (see the docstring)."""
        try:
            ready = prepare(block, None)
        except Exception:  # a bug: refused, never a dropped connection
            log.exception("MLLP message not planned")
            return refusal(block, "the message could not be read")
        if isinstance(ready, Received):
            return ready
        if self._stopping:  # after the last group: the sender sends it again
            return refusal(block, "the interface is stopping; send the message again")
        if self._writer is None:  # not serving: written alone
            result = await self._single(ready)
        else:
            done: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
            self._queue.put_nowait((ready, done))
            result = await done
        self.handled += 1
        return result

    async def _groups(self) -> None:
        last = False
        while not last:
            first = await self._queue.get()
            if first is None:  # stop(): everything before it is written
                return
            pending = [first]
            while not self._queue.empty() and len(pending) < self.max_group:
                item = self._queue.get_nowait()
                if item is None:
                    last = True
                    break
                pending.append(item)
            try:
                await self._write(pending)
            except Exception:  # never leave a sender waiting
                log.exception("MLLP group not written")
                for ready, done in pending:
                    if not done.done():
                        done.set_result(refusal(ready.plan.message.raw, "not stored now"))

    async def _write(self, pending: list[Waiting]) -> None:
        while pending:
            group, members, rest = Group(), [], []
            for item in pending:
                if group.accepts(item[0]):
                    group.add(item[0])
                    members.append(item)
                else:
                    rest.append(item)  # writes what a member writes: in the next group
            pending = rest
            try:
                await group.resolve(self._lookup)
                response = await self._transact(group.bundle())
            except Exception as exc:  # one of them, or the database: each alone, as planned
                if not isinstance(exc, OperationOutcomeError):
                    log.warning("MLLP group of %d failed (%s): one by one", len(members), exc)
                for ready, done in members:
                    done.set_result(await self._single(ready))
                continue
            self.groups += 1
            self.grouped += len(members)
            for (ready, done), answers in zip(members, group.answers(response), strict=True):
                done.set_result(accepted(ready, answers))

    async def _single(self, ready: Prepared) -> Received:
        try:
            response = await self._transact(ready.plan.bundle())
        except OperationOutcomeError as err:
            return write_failed(ready, err)
        except Exception:  # the database away, a bug: refused, the sender may send it again
            log.exception("MLLP message not stored")
            return refusal(
                ready.plan.message.raw, "the message could not be stored now; send it again"
            )
        return accepted(ready, list(response.get("entry") or []))

    async def _lookup(self, wanted: Wanted) -> dict[tuple[str, str], dict[str, list[str]]]:
        """Per (type, system), value → the ids of the stored resources of this type having the
        identifier (system, value): one indexed query for all of them (the `identifier` token
        rows, exact as a conditional match compares them), whatever a client could see (as the
        core's conditional matches do; MLLP has no client identity)."""
        out: dict[tuple[str, str], dict[str, list[str]]] = {
            key: {v: [] for v in values} for key, values in wanted.items()
        }
        async with self.core.store.read_engine.connect() as conn:
            for chunk in _chunks(wanted, 500):
                for res_type, system, code, res_id in await conn.execute(_by_identifier(chunk)):
                    ids = out.get((res_type, system), {}).get(code)
                    if ids is not None and res_id not in ids:
                        ids.append(res_id)
        return out

    async def _transact(self, bundle: dict[str, Any]) -> dict[str, Any]:
        req = FhirRequest(
            method="POST",
            path="",
            headers={"prefer": "return=minimal"},
            json_body=bundle,
            base_url=self.base_url,
        )
        resp = await self.core.handle(req)
        body = resp.body if isinstance(resp.body, bytes) else orjson.dumps(resp.body)
        return dict(orjson.loads(body))


def _by_identifier(wanted: Wanted) -> Select[Any]:
    """An OR of (type, system, values) conditions, each an index search (PostgreSQL: a
    BitmapOr; SQLite: a MULTI-INDEX OR); a row-value IN list had SQLite scan the whole index."""
    T = idx_token.c
    return (
        select(T.res_type, T.system, T.code, T.res_id)
        .select_from(
            idx_token.join(
                resources,
                and_(resources.c.res_type == T.res_type, resources.c.res_id == T.res_id),
            )
        )
        .where(
            T.param == "identifier",
            or_(
                *(
                    and_(T.res_type == res_type, T.system == system, T.code.in_(values))
                    for (res_type, system), values in wanted.items()
                )
            ),
            resources.c.deleted.is_(False),
        )
    )


def _chunks(wanted: Wanted, size: int) -> Iterator[Wanted]:
    """The values at most `size` at a time."""
    chunk: Wanted = {}
    count = 0
    for key, values in wanted.items():
        for i in range(0, len(values), size):
            part = values[i : i + size]
            if count + len(part) > size and chunk:
                yield chunk
                chunk, count = {}, 0
            chunk.setdefault(key, []).extend(part)
            count += len(part)
    if chunk:
        yield chunk


def serve(
    settings: Settings,
    host: str,
    port: int,
    workers: int = 1,
    ready: Callable[[int], None] | None = None,
) -> None:
    """`gateway mllp`: one process serving, or `workers` processes listening on one port
    (SO_REUSEPORT: the kernel spreads the connections among them), each with its own event
    loop, group commit and share of the cores for validation. SIGTERM or SIGINT ends them."""
    if workers <= 1:
        asyncio.run(run(settings, host, port, ready))
        return
    if port == 0:
        port = _free_port(host)
    if settings.validation_workers is None:  # the cores shared by the processes
        share = max(1, (os.cpu_count() or 1) // workers)
        settings = settings.model_copy(update={"validation_workers": share})
    ctx = multiprocessing.get_context("spawn")
    bound: multiprocessing.queues.Queue[int] = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(settings, host, port, bound), name=f"mllp-{n}")
        for n in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs:
            if proc.pid is not None and proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for proc in procs:
            proc.start()
        listening = 0
        while listening < workers and not stopping:
            with contextlib.suppress(queue.Empty):
                bound.get(timeout=0.2)
                listening += 1
                continue
            if any(p.exitcode is not None for p in procs):
                break  # one could not start: the others are stopped below
        if listening == workers and ready:
            ready(port)
        while not stopping and all(p.exitcode is None for p in procs):
            time.sleep(0.2)
        stop(signal.SIGTERM, None)  # one ended (or asked to): all end
        for proc in procs:
            proc.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        raise SystemExit(f"gateway mllp: a worker process ended with {failed[0]}")


def _worker(settings: Settings, host: str, port: int, bound: Any) -> None:
    from gateway.vocab.logs import configure

    configure(settings.log_format, settings.log_level)
    asyncio.run(run(settings, host, port, bound.put, reuse_port=True))


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def run(
    settings: Settings,
    host: str,
    port: int,
    ready: Callable[[int], None] | None = None,
    reuse_port: bool = False,
) -> None:
    """One `gateway mllp` process: serve until SIGTERM or SIGINT, on the configured database."""
    core, relay = await build_core(settings)
    relay.start()
    server = MllpServer(
        core,
        host,
        port,
        settings.mllp_max_message_bytes,
        settings.public_base_url,
        reuse_port=reuse_port,
    )
    bound = await server.start()
    gc.freeze()  # the start-up objects (profiles, mappings): out of the collector's way
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    if ready:
        ready(bound)
    try:
        await stop.wait()
    finally:
        await server.stop()
        await relay.stop()
        await relay.bus.close()
        core.validation.close()
        await core.store.dispose()
