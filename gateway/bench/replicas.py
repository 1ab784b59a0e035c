"""Several gateway processes and a worker on one PostgreSQL and one Redis (issue 15).

`run_region()` starts two `gateway serve` processes and one `gateway worker` on a throwaway
PostgreSQL database and a Redis key prefix of their own, drives a bounded, concurrent, mixed
load across both replicas from loopback, and holds what was stored to a ledger of what the
gateways answered:

- **conditional creates**: for each key, `racers` identical `POST Patient` with
  `If-None-Exist: identifier=…|key`, half sent to each replica at the same instant (a barrier):
  exactly one `201`, every other answer `200` naming the same resource, and exactly one
  Patient with that identifier afterwards;
- **If-Match updates**: writers on both replicas read a counter Patient and update it with
  `If-Match` on the version read. Every `200` is version read + 1 and no two writers are ever
  acknowledged the same version (no lost update); every `412`/`409` is right (the version it
  named had been superseded: a later version exists); history is 1..n without a gap and holds
  every acknowledged version's text; what one replica acknowledged, the other reads at once;
- **transactions**: a Patient (conditional on a shared household key, so bundles race) and
  three Observations referring to it by `urn:uuid`: all or nothing, every acknowledged bundle
  stored, one Patient per household key, every Observation pointing at it;
- **plain creates and reads**: each created resource is read back on the other replica;
- **events**: every acknowledged write's version reaches the Redis Stream (relayed by the
  replicas and the worker sharing the outbox), each resource's versions in order, and the
  outbox drains (lag 0 in `/metrics`);
- **metrics**: each replica's `gateway_requests_total` equals the FHIR requests sent to it.

`python -m gateway.bench --replicas` prints the figures (bench/__main__ flag; or run this
module directly); `tests/integration/test_replicas.py` runs a smaller round and asserts.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import psutil

from gateway.bench.server import GatewayProcess, bench_env, migrate_in_thread, throwaway_postgres

FHIR = {"content-type": "application/fhir+json"}
KEY_SYSTEM = "urn:gateway:replica-key"
TAG_SYSTEM = "urn:gateway:replica-tag"
HOUSEHOLD_SYSTEM = "urn:gateway:replica-household"


# --- processes --------------------------------------------------------------------------------


class WorkerProcess:
    """`gateway worker` in a process group of its own; ready once it logs that it runs."""

    def __init__(self, env: dict[str, str]):
        self.env = {**env, "GATEWAY_LOG_LEVEL": "info"}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="gateway-worker-", suffix=".log")[1])

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log_path, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "worker"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
            )
        deadline = time.time() + timeout
        while "worker running" not in self.log():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"gateway worker did not start: {self.log()[-2000:]}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        pids = [self.process.pid]
        with contextlib.suppress(psutil.NoSuchProcess):
            pids += [p.pid for p in psutil.Process(self.process.pid).children(recursive=True)]
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        for pid in pids:  # nothing left behind (validation pool processes)
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        self.process = None
        self.log_path.unlink(missing_ok=True)


@dataclass
class Region:
    bases: list[str]  # the replicas' FHIR bases
    roots: list[str]  # their roots (/metrics, /readyz)
    database_url: str
    redis_url: str
    stream: str
    gateways: list[GatewayProcess] = field(default_factory=list)
    worker_metrics: str = ""  # the worker's /metrics URL


@contextlib.contextmanager
def region(
    admin_postgres_url: str, redis_url: str, replicas: int = 2, workers_each: int = 1
) -> Iterator[Region]:
    """`replicas` gateway processes and one worker on a fresh database and Redis prefix."""
    prefix = f"replicas-{uuid.uuid4().hex[:8]}"
    with throwaway_postgres(admin_postgres_url) as url:
        migrate_in_thread(url)
        env = bench_env(
            {
                "GATEWAY_REDIS_URL": redis_url,
                "GATEWAY_REDIS_PREFIX": prefix,
                "GATEWAY_DB_POOL_SIZE": "5",
            }
        )
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        gateways = [GatewayProcess(url, workers_each, env) for _ in range(replicas)]
        with socket.socket() as s:  # the worker's metrics port
            s.bind(("127.0.0.1", 0))
            metrics_port = s.getsockname()[1]
        worker = WorkerProcess(
            {**env, "GATEWAY_DATABASE_URL": url, "GATEWAY_WORKER_METRICS_PORT": str(metrics_port)}
        )
        try:
            for g in gateways:
                g.start()
            worker.start()
            yield Region(
                [g.base for g in gateways],
                [g.root for g in gateways],
                url,
                redis_url,
                f"{prefix}:events",
                gateways,
                f"http://127.0.0.1:{metrics_port}/metrics",
            )
        finally:
            for g in gateways:
                pids = [p.pid for p in g.processes()]
                g.stop()
                for pid in pids:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        psutil.Process(pid).kill()
                g.stderr_path.unlink(missing_ok=True)
            worker.stop()
            _delete_stream(redis_url, f"{prefix}:events")


def _delete_stream(redis_url: str, stream: str) -> None:
    import redis

    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        client.delete(stream)  # our own key only: never a FLUSHDB on a shared Redis
        client.close()


# --- the ledger -------------------------------------------------------------------------------


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: Counter[str] = field(default_factory=Counter)  # FHIR requests per base
    statuses: Counter[int] = field(default_factory=Counter)
    # conditional creates: key → [(status, id)]
    creates: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    # If-Match counters: id → version → [texts acknowledged for it]
    acked: dict[str, dict[int, list[str]]] = field(default_factory=dict)
    refused: list[tuple[str, int, int]] = field(default_factory=list)  # (id, If-Match, status)
    # transactions: tag → (household key, locations)
    bundles: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    bundles_tried: set[str] = field(default_factory=set)
    plain: list[str] = field(default_factory=list)  # "Type/id" created by plain POSTs
    written: set[tuple[str, str, int]] = field(default_factory=set)  # (type, id, version)
    stale_reads: list[str] = field(default_factory=list)
    surprises: list[str] = field(default_factory=list)  # answers no rule allows

    def saw(self, base: str, status: int) -> None:
        with self.lock:
            self.sent[base] += 1
            self.statuses[status] += 1


class Client:
    """An httpx client on one replica that books every request in the ledger."""

    def __init__(self, base: str, ledger: Ledger):
        self.base = base
        self.ledger = ledger
        self.http = httpx.Client(base_url=base, headers=FHIR, timeout=120)

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        r = self.http.request(method, url, **kw)
        self.ledger.saw(self.base, r.status_code)
        return r

    def close(self) -> None:
        self.http.close()


def _location(resp: dict[str, Any]) -> tuple[str, str, int]:
    parts = resp["location"].split("/")
    i = parts.index("_history")
    return parts[i - 2], parts[i - 1], int(parts[i + 1])


# --- the load ---------------------------------------------------------------------------------


@dataclass
class Load:
    keys: int = 8  # conditional-create keys
    racers: int = 6  # identical conditional creates per key, split over the replicas
    counters: int = 3  # Patients updated with If-Match
    writers_per_counter: int = 4  # split over the replicas
    updates: int = 10  # attempts per writer
    bundle_writers: int = 4
    bundles: int = 8  # per bundle writer
    households: int = 4  # shared conditional keys among the bundles
    plain_writers: int = 2
    plain: int = 10  # creates per plain writer, each read back on the other replica


def drive(bases: list[str], load: Load, ledger: Ledger, seed: int = 15) -> float:
    """Run every part of the load at once across the replicas; returns the seconds taken."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    jobs: list[Any] = []
    # counters first (created on one replica, raced on all)
    first = Client(bases[0], ledger)
    counter_ids = []
    for k in range(load.counters):
        r = first.request("POST", "/Patient", json=_patient(f"v1-{run}-{k}"))
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        counter_ids.append(pid)
        ledger.acked[pid] = {1: [f"v1-{run}-{k}"]}
        ledger.written.add(("Patient", pid, 1))
    first.close()
    for pid in counter_ids:
        for w in range(load.writers_per_counter):
            jobs.append(lambda pid=pid, w=w: counter_writer(bases, w, pid, load.updates, ledger))
    for b in range(load.bundle_writers):
        jobs.append(lambda b=b: bundle_writer(bases, b, load, ledger, run, rng.random()))
    for p in range(load.plain_writers):
        jobs.append(lambda p=p: plain_writer(bases, p, load.plain, ledger, run))
    keys = [f"{run}-{k}" for k in range(load.keys)]
    started = time.perf_counter()
    with ThreadPoolExecutor(len(jobs) + load.racers) as pool:
        futures = [pool.submit(job) for job in jobs]
        for key in keys:  # the races, one key after another, while the rest runs
            barrier = threading.Barrier(load.racers)
            race = [
                pool.submit(conditional_create, bases[i % len(bases)], key, barrier, ledger)
                for i in range(load.racers)
            ]
            for f in race:
                f.result()
        for f in futures:
            f.result()
    return time.perf_counter() - started


def _patient(text: str, *identifiers: dict[str, str]) -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "name": [{"text": text}]}
    if identifiers:
        res["identifier"] = list(identifiers)
    return res


def conditional_create(base: str, key: str, barrier: threading.Barrier, ledger: Ledger) -> None:
    c = Client(base, ledger)
    try:
        body = _patient(f"签约居民 {key}", {"system": KEY_SYSTEM, "value": key})
        barrier.wait(30)
        r = c.request(
            "POST",
            "/Patient",
            json=body,
            headers={"If-None-Exist": f"identifier={KEY_SYSTEM}|{key}"},
        )
        rid = r.json().get("id", "") if r.status_code in (200, 201) else ""
        with ledger.lock:
            ledger.creates.setdefault(key, []).append((r.status_code, rid))
            if r.status_code == 201:
                ledger.written.add(("Patient", rid, 1))
            elif r.status_code != 200:
                ledger.surprises.append(f"conditional create {key}: {r.status_code} {r.text[:200]}")
    finally:
        c.close()


def counter_writer(bases: list[str], w: int, pid: str, attempts: int, ledger: Ledger) -> None:
    mine = Client(bases[w % len(bases)], ledger)
    other = Client(bases[(w + 1) % len(bases)], ledger)
    try:
        for n in range(attempts):
            current = mine.request("GET", f"/Patient/{pid}")
            if current.status_code != 200:
                ledger.surprises.append(f"read {pid}: {current.status_code}")
                continue
            version = int(current.json()["meta"]["versionId"])
            text = f"v{version + 1}-w{w}-{n}"
            r = mine.request(
                "PUT",
                f"/Patient/{pid}",
                json={"resourceType": "Patient", "id": pid, "name": [{"text": text}]},
                headers={"If-Match": f'W/"{version}"'},
            )
            if r.status_code == 200:
                acked = int(r.json()["meta"]["versionId"])
                with ledger.lock:
                    ledger.acked.setdefault(pid, {}).setdefault(acked, []).append(text)
                    ledger.written.add(("Patient", pid, acked))
                    if acked != version + 1:
                        ledger.surprises.append(f"{pid}: If-Match {version} stored as {acked}")
                seen = other.request("GET", f"/Patient/{pid}")  # the other replica, at once
                if seen.status_code != 200 or int(seen.json()["meta"]["versionId"]) < acked:
                    with ledger.lock:
                        ledger.stale_reads.append(f"Patient/{pid} v{acked}: {seen.status_code}")
            elif r.status_code in (409, 412):
                with ledger.lock:
                    ledger.refused.append((pid, version, r.status_code))
            else:
                ledger.surprises.append(f"update {pid}: {r.status_code} {r.text[:200]}")
    finally:
        mine.close()
        other.close()


def _bundle(tag: str, household: str) -> dict[str, Any]:
    patient = f"urn:uuid:{uuid.uuid4()}"
    tag_id = {"system": TAG_SYSTEM, "value": tag}
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": patient,
            "resource": _patient("户主", {"system": HOUSEHOLD_SYSTEM, "value": household}),
            "request": {
                "method": "POST",
                "url": "Patient",
                "ifNoneExist": f"identifier={HOUSEHOLD_SYSTEM}|{household}",
            },
        }
    ]
    for k in range(3):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "identifier": [tag_id],
                    "status": "final",
                    "code": {"text": f"血压 {k}"},
                    "subject": {"reference": patient},
                    "valueQuantity": {"value": 120 + k, "unit": "mmHg"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def bundle_writer(
    bases: list[str], b: int, load: Load, ledger: Ledger, run: str, salt: float
) -> None:
    c = Client(bases[b % len(bases)], ledger)
    rng = random.Random(salt)
    try:
        for n in range(load.bundles):
            tag = f"{run}-b{b}-{n}"
            household = f"{run}-h{rng.randrange(load.households)}"
            with ledger.lock:
                ledger.bundles_tried.add(tag)
            r = c.request("POST", "", json=_bundle(tag, household))
            if r.status_code == 200:
                locations = [e["response"]["location"] for e in r.json()["entry"]]
                with ledger.lock:
                    ledger.bundles[tag] = (household, locations)
                    for e in r.json()["entry"]:
                        if e["response"]["status"].startswith("201"):
                            ledger.written.add(_location(e["response"]))
            else:
                ledger.surprises.append(f"transaction {tag}: {r.status_code} {r.text[:300]}")
    finally:
        c.close()


def plain_writer(bases: list[str], p: int, n: int, ledger: Ledger, run: str) -> None:
    mine = Client(bases[p % len(bases)], ledger)
    other = Client(bases[(p + 1) % len(bases)], ledger)
    try:
        for k in range(n):
            body = {
                "resourceType": "Observation",
                "status": "final",
                "code": {"text": f"体温 {run}-{p}-{k}"},
                "valueQuantity": {"value": 36.5, "unit": "Cel"},
            }
            r = mine.request("POST", "/Observation", json=body)
            if r.status_code != 201:
                ledger.surprises.append(f"create: {r.status_code} {r.text[:200]}")
                continue
            oid = r.json()["id"]
            with ledger.lock:
                ledger.plain.append(f"Observation/{oid}")
                ledger.written.add(("Observation", oid, 1))
            if other.request("GET", f"/Observation/{oid}").status_code != 200:
                with ledger.lock:
                    ledger.stale_reads.append(f"Observation/{oid}")
            # a search on the other replica finds it too
            found = other.request("GET", "/Observation", params={"_id": oid})
            if found.status_code != 200 or found.json().get("total") != 1:
                with ledger.lock:
                    ledger.stale_reads.append(f"search Observation/{oid}")
    finally:
        mine.close()
        other.close()


# --- the checks -------------------------------------------------------------------------------


def search_all(c: Client, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    r = c.request("GET", url, params={**params, "_count": 1000})
    while True:
        assert r.status_code == 200, r.text
        page = r.json()
        found += [e["resource"] for e in page.get("entry", []) if "resource" in e]
        following = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        if not following:
            return found
        r = c.request("GET", following[0])


def check(rg: Region, ledger: Ledger) -> dict[str, Any]:
    """Every invariant of the module docstring (AssertionError naming the first broken one);
    returns the figures."""
    assert not ledger.surprises, ledger.surprises[:10]
    assert not ledger.stale_reads, ledger.stale_reads[:10]
    c = Client(rg.bases[-1], Ledger())  # checks are not booked against the load's counts
    figures: dict[str, Any] = {}
    try:
        # conditional creates: one 201 per key, every other answer 200 on the same resource
        for key, answers in ledger.creates.items():
            statuses = sorted(s for s, _ in answers)
            assert statuses.count(201) == 1 and set(statuses) <= {200, 201}, (key, statuses)
            assert len({rid for _, rid in answers}) == 1, (key, answers)
            stored = search_all(c, "/Patient", {"identifier": f"{KEY_SYSTEM}|{key}"})
            assert [p["id"] for p in stored] == [answers[0][1]], (key, stored)
        figures["conditional creates"] = sum(len(a) for a in ledger.creates.values())
        figures["conditional keys"] = len(ledger.creates)
        # If-Match counters
        versions = 0
        for pid, acked in ledger.acked.items():
            doubled = {v: t for v, t in acked.items() if len(t) > 1}
            assert not doubled, f"lost update on Patient/{pid}: {doubled}"
            history = search_all(c, f"/Patient/{pid}/_history", {})
            numbers = sorted(int(h["meta"]["versionId"]) for h in history)
            assert numbers == list(range(1, len(numbers) + 1)), (pid, numbers)
            texts = {int(h["meta"]["versionId"]): h["name"][0]["text"] for h in history}
            for version, (text,) in acked.items():
                assert texts.get(version) == text, (pid, version, text, texts.get(version))
            # nothing stored that nobody was told about (no request timed out here)
            assert set(numbers) == set(acked), (pid, sorted(set(numbers) - set(acked)))
            latest = numbers[-1]
            for rid, version, status in ledger.refused:
                if rid == pid:  # a refusal is right only if its version had been superseded
                    assert version < latest, f"{status} on Patient/{pid} at current v{version}"
            versions += len(numbers)
        figures["If-Match updates acknowledged"] = versions - len(ledger.acked)
        figures["If-Match refused (412/409), all superseded"] = len(ledger.refused)
        # transactions
        observations = search_all(c, "/Observation", {"identifier": f"{TAG_SYSTEM}|"})
        by_tag: dict[str, list[dict[str, Any]]] = {}
        for o in observations:
            tag = next(i["value"] for i in o["identifier"] if i["system"] == TAG_SYSTEM)
            by_tag.setdefault(tag, []).append(o)
        assert set(by_tag) <= ledger.bundles_tried, "observations of a bundle nobody sent"
        households: dict[str, str] = {}
        for p in search_all(c, "/Patient", {"identifier": f"{HOUSEHOLD_SYSTEM}|"}):
            key = next(i["value"] for i in p["identifier"] if i["system"] == HOUSEHOLD_SYSTEM)
            assert key not in households, f"two Patients for household {key}"
            households[key] = p["id"]
        for tag, obs in by_tag.items():
            assert len(obs) == 3, (tag, len(obs))  # all or nothing
        for tag, (household, locations) in ledger.bundles.items():
            assert tag in by_tag, f"acknowledged bundle {tag} missing"
            subjects = {o["subject"]["reference"] for o in by_tag[tag]}
            assert subjects == {f"Patient/{households[household]}"}, (tag, subjects)
            assert locations[0].split("/")[1] == households[household], (tag, locations[0])
        figures["transactions acknowledged"] = len(ledger.bundles)
        figures["households (one Patient each)"] = len(households)
        # plain creates, each present
        for ref in ledger.plain:
            assert c.request("GET", f"/{ref}").status_code == 200, ref
        figures["plain creates"] = len(ledger.plain)
    finally:
        c.close()
    figures.update(check_events(rg, ledger))
    figures.update(check_metrics(rg, ledger))
    figures["requests"] = dict(sorted(ledger.statuses.items()))
    return figures


def check_events(rg: Region, ledger: Ledger, timeout: float = 60.0) -> dict[str, Any]:
    """Every acknowledged write in the stream, each resource's versions in order."""
    import redis

    client = redis.Redis.from_url(rg.redis_url, socket_timeout=10)
    try:
        deadline = time.time() + timeout
        while True:
            events = [
                (f[b"type"].decode(), f[b"id"].decode(), int(f[b"version"]))
                for _, f in cast(list[Any], client.xrange(rg.stream))
            ]
            missing = ledger.written - set(events)
            if not missing or time.time() > deadline:
                break
            time.sleep(0.5)
    finally:
        client.close()
    assert not missing, f"{len(missing)} acknowledged writes never reached the stream"
    last: dict[tuple[str, str], int] = {}
    out_of_order = 0
    for rtype, rid, version in events:
        if version < last.get((rtype, rid), 0):
            out_of_order += 1
        last[(rtype, rid)] = max(version, last.get((rtype, rid), 0))
    assert out_of_order == 0, f"{out_of_order} events after a later version of their resource"
    return {"events in stream": len(events), "events duplicated": len(events) - len(set(events))}


def check_metrics(rg: Region, ledger: Ledger) -> dict[str, Any]:
    """Each replica counted exactly the FHIR requests sent to it; the outbox drained."""
    from prometheus_client.parser import text_string_to_metric_families

    counted: dict[str, float] = {}
    lag = None
    for base, root in zip(rg.bases, rg.roots, strict=True):
        body = httpx.get(f"{root}/metrics", timeout=10).text
        total = 0.0
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                if s.name == "gateway_requests_total":
                    total += s.value
                if s.name == "gateway_outbox_lag_seconds":
                    lag = s.value
        counted[base] = total
    # the checks' own requests went to the last replica, after the load
    first = rg.bases[0]
    assert counted[first] == ledger.sent[first], (counted[first], ledger.sent[first])
    assert counted[rg.bases[-1]] >= ledger.sent[rg.bases[-1]]
    assert lag == 0.0, f"outbox lag {lag}"
    return {"requests per replica": [ledger.sent[b] for b in rg.bases]}


def run_region(admin_postgres_url: str, redis_url: str, load: Load | None = None) -> dict[str, Any]:
    load = load or Load()
    ledger = Ledger()
    with region(admin_postgres_url, redis_url) as rg:
        seconds = drive(rg.bases, load, ledger)
        figures = check(rg, ledger)
    figures["load seconds"] = round(seconds, 2)
    figures["requests/s"] = round(sum(ledger.sent.values()) / seconds, 1)
    return figures


def main(admin: str | None = None) -> None:
    admin = (
        admin
        or os.environ.get("GATEWAY_BENCH_POSTGRES_URL")
        or os.environ["GATEWAY_TEST_POSTGRES_URL"]
    )
    redis_url = os.environ.get("GATEWAY_BENCH_REDIS_URL") or os.environ.get(
        "GATEWAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"
    )
    load = Load(keys=20, counters=6, updates=20, bundles=20, plain=30)
    for name, value in run_region(admin, redis_url, load).items():
        print(f"{name:45} {value}")


if __name__ == "__main__":
    main()
