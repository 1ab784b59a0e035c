"""Subscriptions at work: committed events matched to subscriptions, numbered per subscription
and delivered by one worker at a time per subscription.

- Lifecycle: a Subscription's own events (create, update, delete) are read here: a
  criteria-based one the gateway can serve goes from `requested` to `active`; a topic-based one
  is `requested` until its handshake succeeds; one it cannot serve goes to `error` with the
  reason in `Subscription.error`.
- Matching: each batch of events from the bus is matched against the active subscriptions:
  criteria by the same search SQL as `GET [base]/Type?criteria`, restricted to the events'
  resources and to what the subscription's owner (the client that wrote it) may see; topics by
  their domain-event triggers (gateway.events.domain) and filters. A version already superseded
  when matched is not notified on its own (the newer one is); a version older than one already
  queued for a subscription is dropped: a receiver never sees an older version after a newer.
  Matches are numbered under the subscription's row lock (events-since-subscription-start).
- Delivery: a worker takes a subscription's lease (sub_state.lease_owner/until) and keeps it
  (renewed by its sweep, given back when it stops; a killed worker's passes to another after
  `subscription_lease` seconds): one deliverer per subscription, so order and no duplicates.
  It sends the pending events in number order (one Bundle of up to `subscription_batch`, or one
  R4 request each) and marks them delivered; failures back off exponentially with jitter, and
  after `subscription_max_failures` in a row the subscription goes to `error` and its pending
  events to the dead-letter list (`$replay`). A worker that stores events for a subscription
  another worker holds tells it (Redis pub/sub; the sweep catches a lost wake-up). Each
  subscription is pumped by its own task: a slow receiver holds up nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, bindparam, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from gateway.access.control import AccessControl
from gateway.access.policy import load_policy
from gateway.auth.clients import ClientStore
from gateway.events.domain import Topic, topics
from gateway.fhir.core import FhirCore
from gateway.store.engine import write_transaction
from gateway.store.model import Event, Write
from gateway.store.tables import history, resources
from gateway.subscriptions.notify import Item, Request, notification_bundle, requests_for
from gateway.subscriptions.spec import SpecError, SubSpec, read_spec
from gateway.subscriptions.tables import sub_events, sub_state
from gateway.vocab import clock, metrics, outcomes
from gateway.vocab.context import RequestContext
from gateway.vocab.tasks import finish_or_cancel

log = logging.getLogger("gateway.subscriptions")

S = sub_state.c
E = sub_events.c
LIVE = ("active", "requested")
_CHUNK = 500
_STOP_GRACE = 5.0  # seconds a pump has to finish the notification in hand at stop


@dataclass
class Known:
    """A subscription as this worker knows it (refreshed from sub_state and the resource)."""

    spec: SubSpec | None
    status: str
    owner: str | None
    version: int


class Owners:
    """The access of a subscription's owner (the client that wrote it): notifications carry
    only what that client may see. Authentication off: everything."""

    def __init__(self, core: FhirCore):
        self.core = core
        s = core.settings
        self.on = s.auth == "on"
        self.access: AccessControl | None = None
        if self.on:
            self.policy = load_policy(s.access_policy or s.profiles_dir / "policy" / "access.yaml")
            self.access = AccessControl(
                self.policy, lambda t, q: core.parse_search(t, q), core.search_sql, core.store
            )
            self.clients = ClientStore(core.store.engine)

    async def context(self, owner: str | None) -> RequestContext | None:
        """The owner's request context; None when it may see nothing (unknown, disabled)."""
        if not self.on or owner in (None, "system"):
            return RequestContext.system()
        assert self.access is not None
        client = await self.clients.get(owner)
        if client is None or not client.enabled or client.role not in self.policy.roles:
            return None
        granted = tuple((client.scopes or self.policy.role(client.role).scopes).split())
        return await self.access.context(
            client.client_id, client.organization, client.role, granted, None
        )


class SubscriptionService:
    def __init__(self, core: FhirCore, http: httpx.AsyncClient | None = None):
        self.core = core
        self.settings = core.settings
        self.store = core.store
        self.engine = core.store.engine
        self.topics: dict[str, Topic] = topics(self.settings.profiles_dir / "subscriptions")
        self.owners = Owners(core)
        self.known: dict[str, Known] = {}
        self.me = uuid.uuid4().hex[:16]
        self.http = http or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
        self._own_http = http is None
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self.held: set[str] = set()  # subscriptions whose lease this worker holds
        # Delivery's database work at once, at most half the pool: the API (inline) and the
        # matching keep connections however many subscriptions deliver.
        self._slots = asyncio.Semaphore(max(1, self.settings.db_pool_size // 2))
        # Told which subscriptions got events (the Redis part wakes the other workers).
        self.on_enqueued: Callable[[list[str]], Awaitable[None]] | None = None
        self._stopping = False
        s = self.settings
        self.base = (s.public_base_url or f"http://{s.host}:{s.port}{s.base_path}").rstrip("/")

    # --- the subscriptions known -----------------------------------------------------------
    async def refresh(self) -> None:
        """sub_state's rows, and each changed Subscription read again."""
        async with self.store.read_engine.connect() as conn:
            rows = (await conn.execute(select(S.sub_id, S.status, S.owner, S.version))).all()
        seen = set()
        for r in rows:
            seen.add(r.sub_id)
            k = self.known.get(r.sub_id)
            if k is None or k.version != r.version or k.status != r.status:
                spec = await self._spec(r.sub_id) if r.status in LIVE else None
                self.known[r.sub_id] = Known(spec, r.status, r.owner, r.version)
            else:
                k.owner = r.owner
        for gone in set(self.known) - seen:
            del self.known[gone]

    async def _spec(self, sub_id: str) -> SubSpec | None:
        st = await self.store.repository(RequestContext.system()).read("Subscription", sub_id)
        if st is None or st.deleted:
            return None
        try:
            return read_spec(orjson.loads(st.content), st.version, self.topics)
        except SpecError:
            return None

    async def adopt(self) -> None:
        """Subscriptions stored while no worker took them in (a first start, an event lost
        with the process on the embedded default): taken in now."""
        R = resources.c
        async with self.store.read_engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(R.res_id, R.version).where(
                        R.res_type == "Subscription",
                        R.deleted.is_(False),
                        R.res_id.not_in(select(S.sub_id)),
                    )
                )
            ).all()
        for r in rows:
            await self.lifecycle(Event("Subscription", r.res_id, r.version, "update", None))

    # --- lifecycle --------------------------------------------------------------------------
    async def lifecycle(self, event: Event) -> None:
        """A Subscription was written: take it in (activate, refuse, switch off)."""
        repo = self.store.repository(RequestContext.system())
        st = await repo.read("Subscription", event.res_id)
        if st is not None and st.version > event.version:
            return  # a newer version's event will come
        if st is None or st.deleted:
            await self._set_state(event.res_id, "off", event.version, None)
            return
        res = orjson.loads(st.content)
        owner = event.principal if event.principal not in (None, "system") else None
        try:
            spec = read_spec(res, st.version, self.topics)
            if spec.kind == "criteria" and spec.res_type:
                self.core.parse_search(spec.res_type, list(spec.query))
            for f_type, f_query in spec.filters:
                self.core.parse_search(f_type, list(f_query))
        except SpecError as exc:
            await self._refuse(res, st.version, str(exc), owner)
            return
        except outcomes.OperationOutcomeError as exc:
            await self._refuse(res, st.version, f"Subscription.criteria: {exc}", owner)
            return
        status = spec.status
        if status in ("off", "error"):
            await self._set_state(spec.sub_id, status, st.version, owner)
            return
        prior = await self._state(spec.sub_id)
        if spec.kind == "topic" and (
            prior is None or prior["status"] != "active" or status == "requested"
        ):
            # the handshake decides (the pump sends it)
            await self._set_state(spec.sub_id, "requested", st.version, owner, reset=True)
            self.known[spec.sub_id] = Known(spec, "requested", owner, st.version)
            self.kick(spec.sub_id)
            return
        await self._set_state(spec.sub_id, "active", st.version, owner, reset=status == "requested")
        self.known[spec.sub_id] = Known(spec, "active", owner, st.version)
        if status == "requested":
            await self._write_status(spec.sub_id, st.version, "active", None)

    async def _refuse(self, res: dict[str, Any], version: int, why: str, owner: str | None) -> None:
        log.info("Subscription/%s refused: %s", res.get("id"), why)
        await self._set_state(str(res.get("id")), "error", version, owner, error=why)
        if res.get("status") != "error" or res.get("error") != why:
            await self._write_status(str(res.get("id")), version, "error", why)

    async def _state(self, sub_id: str) -> dict[str, Any] | None:
        async with self.store.read_engine.connect() as conn:
            row = (await conn.execute(select(sub_state).where(S.sub_id == sub_id))).first()
        return dict(row._mapping) if row else None

    async def _set_state(
        self,
        sub_id: str,
        status: str,
        version: int,
        owner: str | None,
        *,
        reset: bool = False,
        error: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status, "version": version, "error": error}
        if owner is not None:
            values["owner"] = owner
        if reset:
            values.update(failures=0, next_attempt=0)
        for _ in range(3):
            try:
                async with write_transaction(self.engine) as conn:
                    done = await conn.execute(
                        update(sub_state)
                        .where(S.sub_id == sub_id, S.version <= version)
                        .values(**values)
                    )
                    if done.rowcount == 0:
                        exists = await conn.execute(select(S.sub_id).where(S.sub_id == sub_id))
                        if exists.first() is None:
                            fresh = {
                                "sub_id": sub_id,
                                "owner": owner,
                                "events_total": 0,
                                "delivered": 0,
                                "failures": 0,
                                "next_attempt": 0,
                                "lease_until": 0,
                                "last_sent": 0,
                            }
                            await conn.execute(insert(sub_state).values({**fresh, **values}))
                return
            except IntegrityError:
                continue  # another worker inserted it at the same moment: update it

    async def _write_status(
        self, sub_id: str, version: int, status: str, error: str | None
    ) -> None:
        """The Subscription resource's status (and error) as the gateway sets them."""
        repo = self.store.repository(RequestContext.system())
        st = await repo.read("Subscription", sub_id)
        if st is None or st.deleted or st.version != version:
            return
        res = orjson.loads(st.content)
        res["status"] = status
        if error:
            res["error"] = error[:1000]
        else:
            res.pop("error", None)
        try:
            written = await repo.apply(
                [Write("Subscription", sub_id, res, "PUT", expected_version=version)]
            )
        except outcomes.OperationOutcomeError:
            return  # the client changed it meanwhile: its event comes next
        new = written[0]
        if new is not None:
            async with write_transaction(self.engine) as conn:
                await conn.execute(
                    update(sub_state)
                    .where(S.sub_id == sub_id, S.version == version)
                    .values(version=new.version)
                )
            k = self.known.get(sub_id)
            if k is not None:
                k.version = new.version

    # --- matching --------------------------------------------------------------------------
    async def handle(self, events: Sequence[Event]) -> None:
        """One batch of committed events from the bus: lifecycle first, then matching."""
        for e in events:
            if e.res_type == "Subscription":
                await self.lifecycle(e)
        await self.refresh()
        others = [e for e in events if e.res_type != "Subscription"]
        if not others:
            return
        live = [k for k in self.known.values() if k.status in LIVE and k.spec is not None]
        if not live:
            return
        matches: dict[str, list[tuple[Event, str | None]]] = defaultdict(list)
        by_type: dict[str, list[Event]] = defaultdict(list)
        for e in others:
            by_type[e.res_type].append(e)
        contents: dict[tuple[str, str, int], dict[str, Any] | None] | None = None
        answers: dict[tuple[str, tuple[tuple[str, str], ...], str | None], list[Event]] = {}
        for k in live:
            spec = k.spec
            assert spec is not None
            ctx = await self.owners.context(k.owner)
            if ctx is None:
                continue
            if spec.kind == "criteria":
                evs = [e for e in by_type.get(spec.res_type or "", []) if e.action != "delete"]
                if evs:
                    # subscriptions of one search and one owner share its answer
                    key = (spec.res_type or "", spec.query, k.owner if ctx.access else None)
                    if key not in answers:
                        answers[key] = await self._criteria(key[0], spec.query, evs, ctx, True)
                    matches[spec.sub_id].extend((e, None) for e in answers[key])
                continue
            topic = self.topics.get(spec.topic or "")
            if topic is None:
                continue
            evs = [e for t in topic.types for e in by_type.get(t, [])]
            if not evs:
                continue
            if contents is None:
                contents = await self._contents(others)
            fired = []
            for e in evs:
                previous = contents.get((e.res_type, e.res_id, e.version - 1))
                current = (
                    None
                    if e.action == "delete"
                    else contents.get((e.res_type, e.res_id, e.version))
                )
                if topic.fires(e.res_type, e.action, previous, current):
                    fired.append(e)
            for f_type, f_query in spec.filters:
                typed = [e for e in fired if e.res_type == f_type]
                if typed:
                    ok = {id(e) for e in await self._criteria(f_type, f_query, typed, ctx, False)}
                    fired = [e for e in fired if e.res_type != f_type or id(e) in ok]
            if ctx.access is not None and fired:
                seen = await self.store.repository(ctx).visible(
                    sorted({(e.res_type, e.res_id) for e in fired})
                )
                fired = [e for e in fired if (e.res_type, e.res_id) in seen]
            for e in fired:
                matches[spec.sub_id].append((e, topic.code))
        if matches:
            got = await self._enqueue(matches)
            for sub_id in got:
                self.kick(sub_id)
            if got and self.on_enqueued is not None:
                await self.on_enqueued(got)  # the workers holding them deliver

    async def _criteria(
        self,
        res_type: str,
        query: Sequence[tuple[str, str]],
        evs: list[Event],
        ctx: RequestContext,
        current_only: bool,
    ) -> list[Event]:
        """The events whose resource matches the search (as the owner may see it); with
        current_only, only events of the version that is still current."""
        out: list[Event] = []
        for i in range(0, len(evs), _CHUNK):
            chunk = evs[i : i + _CHUNK]
            ids = sorted({e.res_id for e in chunk})
            try:
                sr = self.core.parse_search(res_type, [*query, ("_id", ",".join(ids))])
            except outcomes.OperationOutcomeError:
                return []
            sr.access = ctx.access
            where = self.core.search_sql.where(sr)
            async with self.store.read_engine.connect() as conn:
                rows = await conn.execute(
                    select(resources.c.res_id, resources.c.version).where(and_(*where))
                )
                current = {r.res_id: r.version for r in rows}
            for e in chunk:
                v = current.get(e.res_id)
                if v is not None and (v == e.version or not current_only):
                    out.append(e)
        return out

    async def _contents(
        self, evs: Sequence[Event]
    ) -> dict[tuple[str, str, int], dict[str, Any] | None]:
        """Each event's version and the one before (domain events compare them)."""
        keys = sorted(
            {(e.res_type, e.res_id, v) for e in evs for v in (e.version, e.version - 1) if v > 0}
        )
        out: dict[tuple[str, str, int], dict[str, Any] | None] = {}
        H = history.c
        async with self.store.read_engine.connect() as conn:
            for i in range(0, len(keys), _CHUNK):
                q = select(H.res_type, H.res_id, H.version, H.deleted, H.content).where(
                    tuple_(H.res_type, H.res_id, H.version).in_(keys[i : i + _CHUNK])
                )
                for r in await conn.execute(q):
                    out[(r.res_type, r.res_id, r.version)] = (
                        None if r.deleted else orjson.loads(r.content)
                    )
        return out

    async def _enqueue(self, matches: dict[str, list[tuple[Event, str | None]]]) -> list[str]:
        """Number and store the matches under the subscriptions' row locks, dropping any
        version not newer than one already queued for that resource and subscription
        (duplicates from a redelivered stream entry, versions overtaken by a newer one).
        Returns the subscriptions that got events. A few statements per batch, whatever the
        number of subscriptions."""
        now = clock.now_us()
        sub_ids = sorted(matches)
        keys = sorted({(e.res_type, e.res_id) for lst in matches.values() for e, _ in lst})
        got: list[str] = []
        async with write_transaction(self.engine) as conn:
            states = {
                r.sub_id: r
                for r in await conn.execute(
                    select(S.sub_id, S.events_total, S.status)
                    .where(S.sub_id.in_(sub_ids))
                    .order_by(S.sub_id)
                    .with_for_update()
                )
            }
            newest: dict[tuple[str, str, str], int] = {}
            for i in range(0, len(keys), _CHUNK):
                q = (
                    select(E.sub_id, E.res_type, E.res_id, func.max(E.version))
                    .where(
                        E.sub_id.in_(sub_ids),
                        tuple_(E.res_type, E.res_id).in_(keys[i : i + _CHUNK]),
                    )
                    .group_by(E.sub_id, E.res_type, E.res_id)
                )
                for r in await conn.execute(q):
                    newest[(r[0], r[1], r[2])] = r[3]
            rows: list[dict[str, Any]] = []
            totals: list[dict[str, Any]] = []
            for sub_id in sub_ids:
                state = states.get(sub_id)
                if state is None or state.status not in LIVE:
                    continue
                number = state.events_total
                # resources in the order they came, each one's versions in version order
                by_res: dict[tuple[str, str], list[tuple[Event, str | None]]] = {}
                for e, code in matches[sub_id]:
                    by_res.setdefault((e.res_type, e.res_id), []).append((e, code))
                for (res_type, res_id), versions in by_res.items():
                    key = (sub_id, res_type, res_id)
                    for e, code in sorted(versions, key=lambda p: p[0].version):
                        if e.version <= newest.get(key, 0):
                            continue
                        newest[key] = e.version
                        number += 1
                        rows.append(
                            {
                                "sub_id": sub_id,
                                "number": number,
                                "res_type": res_type,
                                "res_id": res_id,
                                "version": e.version,
                                "action": e.action,
                                "topic_events": code,
                                "state": "pending",
                                "created_at": now,
                            }
                        )
                if number != state.events_total:
                    totals.append({"sid": sub_id, "total": number})
                    got.append(sub_id)
            if rows:
                await conn.execute(insert(sub_events), rows)
                await conn.execute(
                    update(sub_state)
                    .where(S.sub_id == bindparam("sid"))
                    .values(events_total=bindparam("total")),
                    totals,
                )
        return got

    def _slot(self) -> asyncio.Semaphore:
        return self._slots

    @contextlib.asynccontextmanager
    async def _single(self) -> AsyncIterator[Any]:
        """A connection for single-statement writes: autocommit on PostgreSQL (one round trip
        each, no BEGIN/COMMIT), a write transaction on SQLite (its write lock, BEGIN IMMEDIATE)."""
        if self.engine.dialect.name == "postgresql":
            async with self.store.read_engine.connect() as conn:
                yield conn
            return
        async with write_transaction(self.engine) as conn:
            yield conn

    # --- delivery --------------------------------------------------------------------------
    def kick(self, sub_id: str) -> None:
        """Deliver what a subscription has pending (in a task of its own)."""
        if self._stopping:
            return
        task = self._pumps.get(sub_id)
        if task is not None and not task.done():
            self._again.add(sub_id)
            return
        self._pumps[sub_id] = asyncio.create_task(self._pump(sub_id), name=f"sub-{sub_id}")

    async def _claim(self, sub_id: str) -> dict[str, Any] | None:
        """Take (or renew) the subscription's lease: its row, or None when another worker
        holds it or its retry time has not come."""
        now = clock.now_us()
        until = now + int(self.settings.subscription_lease * 1_000_000)
        async with self._slot(), self._single() as conn:
            done = await conn.execute(
                update(sub_state)
                .where(
                    S.sub_id == sub_id,
                    S.status.in_(LIVE),
                    S.next_attempt <= now,
                    (S.lease_until < now) | (S.lease_owner == self.me),
                )
                .values(lease_owner=self.me, lease_until=until)
                .returning(*sub_state.c)
            )
            row = done.first()
        if row is None:
            self.held.discard(sub_id)
            return None
        self.held.add(sub_id)
        return dict(row._mapping)

    async def renew(self) -> None:
        """Every lease this worker holds, extended (one statement)."""
        if not self.held:
            return
        until = clock.now_us() + int(self.settings.subscription_lease * 1_000_000)
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(sub_state).where(S.lease_owner == self.me).values(lease_until=until)
            )

    async def _release_all(self) -> None:
        async with write_transaction(self.engine) as conn:
            await conn.execute(
                update(sub_state)
                .where(S.lease_owner == self.me)
                .values(lease_owner=None, lease_until=0)
            )
        self.held.clear()

    async def _pump(self, sub_id: str) -> None:
        """Deliver while there is something to send. The lease stays with this worker
        afterwards (renewed by the sweep, given back at stop): the next event needs no new
        claim, and a worker that dies lets it go after `subscription_lease` seconds."""
        lease_us = int(self.settings.subscription_lease * 1_000_000)
        try:
            while not self._stopping:
                self._again.discard(sub_id)
                row = await self._claim(sub_id)
                while row is not None and not self._stopping:
                    if row["lease_until"] - clock.now_us() < lease_us // 2:
                        row = await self._claim(sub_id)  # renew before it runs out
                        if row is None:
                            break
                    row = await self._step(sub_id, row)
                # what arrived while this pump was busy (its kick found it running)
                if sub_id not in self._again:
                    return
        except Exception:  # noqa: BLE001 - a pump never takes the worker down; the sweep retries
            log.exception("delivery of Subscription/%s failed", sub_id)

    def _due(self, row: dict[str, Any]) -> bool:
        now = clock.now_us()
        held_elsewhere = row["lease_until"] >= now and row["lease_owner"] != self.me
        if row["status"] not in LIVE or row["next_attempt"] > now or held_elsewhere:
            return False
        if row["status"] == "requested" or row["delivered"] < row["events_total"]:
            return True
        k = self.known.get(row["sub_id"])
        beat = k.spec.heartbeat if k and k.spec else None
        return bool(beat and now - row["last_sent"] >= beat * 1_000_000)

    async def _step(self, sub_id: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """One notification (handshake, events, heartbeat): the row as it is after it, or
        None when nothing is left to send now."""
        k = self.known.get(sub_id)
        if k is None or k.version != row["version"] or k.spec is None:
            await self.refresh()
            k = self.known.get(sub_id)
        if k is None or k.spec is None:
            return None
        spec = k.spec
        total = row["events_total"]
        if row["status"] == "requested":
            if spec.kind != "topic":
                return None
            body = notification_bundle(spec, self.base, "requested", "handshake", total)
            req = Request("POST", spec.endpoint, self._headers(spec, total), orjson.dumps(body))
            if not await self._send(spec, row, [req], []):
                return None
            await self._set_state(sub_id, "active", row["version"], None)
            k.status = "active"
            await self._write_status(sub_id, row["version"], "active", None)
            return await self._claim(sub_id)
        items, total = await self._pending(spec, row["delivered"], k.owner)
        if items:
            kind = "event-notification"
            reqs = requests_for(spec, self.base, "active", kind, total, items)
            if not await self._send(spec, row, reqs, items):
                return None
            if items[-1].number >= total:
                return None  # nothing more to send now (a new event kicks the pump again)
            now = clock.now_us()
            lease = int(self.settings.subscription_lease * 1_000_000)
            return {
                **row,
                "delivered": items[-1].number,
                "events_total": total,
                "failures": 0,
                "last_sent": now,
                "lease_until": now + lease,
            }
        beat = spec.heartbeat
        if beat and clock.now_us() - row["last_sent"] >= beat * 1_000_000:
            body = notification_bundle(spec, self.base, "active", "heartbeat", total)
            req = Request("POST", spec.endpoint, self._headers(spec, total), orjson.dumps(body))
            await self._send(spec, row, [req], [])
        return None

    def _headers(self, spec: SubSpec, total: int) -> dict[str, str]:
        return {
            **dict(spec.headers),
            "Content-Type": "application/fhir+json",
            "X-Subscription-Id": spec.sub_id,
            "X-Subscription-Events-Since-Start": str(total),
        }

    async def _pending(
        self, spec: SubSpec, after: int, owner: str | None
    ) -> tuple[list[Item], int]:
        """The next events to send, in number order, with their content when sent in full
        (and only what the owner may still see); and the subscription's event count."""
        limit = 1 if spec.shape == "r4" else (spec.max_count or self.settings.subscription_batch)
        H = history.c
        async with self._slot(), self.store.read_engine.connect() as conn:
            total_now = select(S.events_total).where(S.sub_id == spec.sub_id).scalar_subquery()
            rows = (
                await conn.execute(
                    select(sub_events, total_now.label("total_now"))
                    .where(E.sub_id == spec.sub_id, E.state == "pending", E.number > after)
                    .order_by(E.number)
                    .limit(limit)
                )
            ).all()
            total = rows[0].total_now if rows else after
            contents: dict[tuple[str, str, int], bytes] = {}
            if rows and spec.content == "full-resource":
                keys = [(r.res_type, r.res_id, r.version) for r in rows]
                q = select(H.res_type, H.res_id, H.version, H.content).where(
                    tuple_(H.res_type, H.res_id, H.version).in_(keys), H.deleted.is_(False)
                )
                contents = {(r[0], r[1], r[2]): r[3] for r in await conn.execute(q)}
        if contents:
            ctx = await self.owners.context(owner)
            if ctx is None or ctx.access is not None:
                seen = (
                    await self.store.repository(ctx).visible(
                        sorted({(k[0], k[1]) for k in contents})
                    )
                    if ctx is not None
                    else set()
                )
                contents = {k: v for k, v in contents.items() if (k[0], k[1]) in seen}
        items = [
            Item(
                r.number,
                r.res_type,
                r.res_id,
                r.version,
                r.action,
                r.topic_events,
                r.created_at,
                contents.get((r.res_type, r.res_id, r.version)),
            )
            for r in rows
        ]
        return items, int(total)

    async def _send(
        self, spec: SubSpec, row: dict[str, Any], reqs: list[Request], items: list[Item]
    ) -> bool:
        timeout = spec.timeout or self.settings.subscription_timeout
        sent: list[Item] = []
        error = None
        for i, req in enumerate(reqs):
            try:
                resp = await self.http.request(
                    req.method, req.url, headers=req.headers, content=req.body, timeout=timeout
                )
                if 200 <= resp.status_code < 300:
                    if spec.shape == "r4" and items:
                        sent.append(items[i])
                    continue
                error = f"{req.method} {req.url}: HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                error = f"{req.method} {req.url}: {type(exc).__name__} {exc}".strip()
            break
        if spec.shape != "r4" and error is None:
            sent = list(items)
        if sent or error is None:
            await self._delivered(spec.sub_id, sent)
            metrics.SUBSCRIPTION_DELIVERIES.labels("delivered").inc(max(1, len(sent)))
        if error is not None:
            await self._failed(spec.sub_id, row, error)
            return False
        return True

    async def _delivered(self, sub_id: str, items: list[Item]) -> None:
        now = clock.now_us()
        # Two statements, each its own transaction on PostgreSQL: a crash between them leaves
        # events marked delivered that the state still counts pending, which only skips them
        # (the pending ones are read by state); never one resent as new.
        async with self._slot(), self._single() as conn:
            lease = int(self.settings.subscription_lease * 1_000_000)
            values: dict[str, Any] = {
                "failures": 0,
                "last_sent": now,
                "error": None,
                "lease_until": now + lease,
            }
            if items:
                numbers = [it.number for it in items]
                await conn.execute(
                    update(sub_events)
                    .where(E.sub_id == sub_id, E.number.in_(numbers))
                    .values(state="delivered")
                )
                values["delivered"] = max(numbers)
            await conn.execute(
                update(sub_state)
                .where(S.sub_id == sub_id, S.lease_owner == self.me)
                .values(**values)
            )

    async def _failed(self, sub_id: str, row: dict[str, Any], error: str) -> None:
        failures = int(row["failures"]) + 1
        s = self.settings
        metrics.SUBSCRIPTION_DELIVERIES.labels("failed").inc()
        if failures >= s.subscription_max_failures:
            log.warning("Subscription/%s: %s; to error after %d failures", sub_id, error, failures)
            async with self._slot(), write_transaction(self.engine) as conn:
                dead = await conn.execute(
                    update(sub_events)
                    .where(E.sub_id == sub_id, E.state == "pending")
                    .values(state="dead")
                )
                await conn.execute(
                    update(sub_state)
                    .where(S.sub_id == sub_id)
                    .values(status="error", failures=failures, error=error)
                )
            metrics.SUBSCRIPTION_DELIVERIES.labels("dead-lettered").inc(max(dead.rowcount, 0))
            k = self.known.get(sub_id)
            if k is not None:
                k.status = "error"
            await self._write_status(sub_id, row["version"], "error", error)
            return
        delay = min(s.subscription_retry_max, s.subscription_retry_base * 2 ** (failures - 1))
        delay *= random.uniform(0.5, 1.5)  # jitter: receivers coming back are not stampeded
        async with self._slot(), write_transaction(self.engine) as conn:
            await conn.execute(
                update(sub_state)
                .where(S.sub_id == sub_id)
                .values(
                    failures=failures,
                    next_attempt=clock.now_us() + int(delay * 1_000_000),
                    error=error,
                )
            )

    # --- the sweep: retries, handshakes, heartbeats, leases of dead workers -------------------
    async def sweep(self) -> None:
        await self.renew()
        await self.refresh()
        for sub_id, k in list(self.known.items()):
            if k.status in LIVE and k.spec is not None and _ended(k.spec.end):
                # Subscription.end: the time for the server to turn the subscription off
                await self._set_state(sub_id, "off", k.version, None)
                await self._write_status(sub_id, k.version, "off", None)
        async with self.store.read_engine.connect() as conn:
            rows = (await conn.execute(select(sub_state).where(S.status.in_(LIVE)))).all()
        for r in rows:
            if self._due(dict(r._mapping)):
                self.kick(r.sub_id)

    async def stop(self) -> None:
        self._stopping = True
        # A pump ends after the notification in hand (it checks `_stopping` between steps).
        await finish_or_cancel(self._pumps.values(), _STOP_GRACE)
        with contextlib.suppress(Exception):
            await self._release_all()
        if self._own_http:
            await self.http.aclose()


def _ended(end: str | None) -> bool:
    if not end:
        return False
    try:
        when = datetime.fromisoformat(end)
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when <= datetime.now(UTC)


async def replay(store: Any, sub_id: str) -> int:
    """The dead-letter list back to pending, the subscription back to active (`$replay`)."""
    async with write_transaction(store.engine) as conn:
        done = await conn.execute(
            update(sub_events).where(E.sub_id == sub_id, E.state == "dead").values(state="pending")
        )
        await conn.execute(
            update(sub_state)
            .where(S.sub_id == sub_id)
            .values(status="active", failures=0, next_attempt=0, error=None)
        )
    return max(done.rowcount, 0)
