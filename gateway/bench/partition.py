"""Beyond one PostgreSQL: a partitioning simulation on this machine (docs/scale.md).

A synthetic province slice (households of three residents, each with Observations,
Encounters and a Condition; Practitioners as shared directory data) is loaded through the
gateway into one database. That database is then cloned into N "shards" (CREATE DATABASE …
TEMPLATE), and each shard keeps only the Patient compartments whose distribution key hashes to
it, plus every resource outside any Patient compartment (the directory: Practitioners,
Organizations, conformance resources; Citus's "reference tables"). Each of the gateway's query
shapes is then run (through the real gateway, in-process) on the single database and on every
shard, and the partitioned answers are checked against the single database's:

- a shape the distribution key routes (the request names the Patient) goes to one shard, and
  its answer there must equal the single database's;
- any other shape fans out: every shard answers, the union (totals summed) must equal the
  single database's answer. Its latency with the shards on separate servers is about the
  slowest shard's (they answer in parallel) plus the merge; its work is their sum.

Two distribution keys are compared for what crosses partitions: the Patient id (hash), and the
household (the family signed together, the unit of a contract), which keeps a family's Group
and every member's compartment together.

`python -m gateway.bench --partition [--partition-households 1000 --partition-shards 4]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import make_url

from gateway.search.reindex import migrate_async
from gateway.settings import Settings
from gateway.store.engine import create_engine

ID_SYSTEM = "urn:gateway:bench-resident"
HOUSEHOLD_SYSTEM = "urn:gateway:bench-household"
LOINC = "http://loinc.org"
CODES = ["8480-6", "8462-4", "2339-0", "4548-4", "2093-3", "718-7", "2160-0", "29463-7"]
FHIR = {"content-type": "application/fhir+json"}


def shard_of(key: str, shards: int) -> int:
    return int(hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()[:8], 16) % shards


# --- data -------------------------------------------------------------------------------------


def household_bundle(h: int, rng: random.Random, practitioners: list[str]) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    members = []
    for m in range(3):
        pid = f"urn:uuid:{uuid.uuid4()}"
        members.append(pid)
        entries.append(
            {
                "fullUrl": pid,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": ID_SYSTEM, "value": f"R{h:06d}{m}"}],
                    "name": [{"text": f"居民{h}-{m}"}],
                    "gender": rng.choice(["male", "female"]),
                    "birthDate": f"{rng.randint(1940, 2020)}-0{rng.randint(1, 9)}-1{m}",
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        for k in range(6):
            entries.append(
                _entry(
                    {
                        "resourceType": "Observation",
                        "status": "final",
                        "code": {"coding": [{"system": LOINC, "code": rng.choice(CODES)}]},
                        "subject": {"reference": pid},
                        "performer": [{"reference": rng.choice(practitioners)}],
                        "effectiveDateTime": f"202{rng.randint(4, 6)}-0{rng.randint(1, 9)}-1{k}",
                        "valueQuantity": {"value": rng.randint(40, 180), "unit": "mmHg"},
                    }
                )
            )
        for k in range(2):
            entries.append(
                _entry(
                    {
                        "resourceType": "Encounter",
                        "status": "finished",
                        "class": {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                            "code": "AMB",
                        },
                        "subject": {"reference": pid},
                        "period": {
                            "start": f"202{rng.randint(4, 6)}-0{rng.randint(1, 9)}-0{k + 1}"
                        },
                    }
                )
            )
        entries.append(
            _entry(
                {
                    "resourceType": "Condition",
                    "subject": {"reference": pid},
                    "code": {"text": rng.choice(["高血压", "糖尿病", "冠心病"])},
                }
            )
        )
    entries.append(
        _entry(
            {
                "resourceType": "Group",
                "identifier": [{"system": HOUSEHOLD_SYSTEM, "value": f"H{h:06d}"}],
                "type": "person",
                "actual": True,
                "name": f"家庭 {h}",
                "member": [{"entity": {"reference": p}} for p in members],
            }
        )
    )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{uuid.uuid4()}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


# --- gateways and databases -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def gateway_on(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real gateway (in-process, lifespan running) on `url`, with an HTTP client on it."""
    from gateway.app import create_app

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings' own argument
        database_url=url,
        redis_url=None,
        validation_workers=0,
        log_level="warning",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench/fhir", headers=FHIR, timeout=300
        ) as client:
            yield client


async def _admin(admin_url: str, sql: str) -> None:
    engine = create_engine(admin_url)
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _url(admin_url: str, name: str) -> str:
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def carve(url: str, shard: int, keys: dict[str, int]) -> dict[str, int]:
    """Keep in this clone only the compartments whose key hashes to `shard`: `keys` maps each
    Patient id to its shard. Resources outside every Patient compartment stay (replicated).
    Returns the rows kept per kind."""
    engine = create_engine(url, statement_timeout=None)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TEMP TABLE other (pid text PRIMARY KEY)"))
            others = [{"p": p} for p, s in keys.items() if s != shard]
            if others:
                await conn.execute(text("INSERT INTO other VALUES (:p)"), others)
            # What lies in another shard's compartments: its Patients and every resource that
            # refers to one of them by a compartment parameter (R4 CompartmentDefinition
            # Patient: subject/patient for these types, member for Group).
            await conn.execute(
                text(
                    "CREATE TEMP TABLE gone AS "
                    "SELECT 'Patient'::text AS res_type, pid AS res_id FROM other UNION "
                    "SELECT r.res_type, r.res_id FROM idx_reference r JOIN other o "
                    "ON r.target_id = o.pid AND r.target_type = 'Patient' "
                    "WHERE r.param IN ('subject', 'patient', 'member')"
                )
            )
            await conn.execute(text("CREATE INDEX ON gone (res_type, res_id)"))
            tables = (
                await conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.columns "
                        "WHERE table_schema = 'public' AND column_name = 'res_id' "
                        "AND table_name IN (SELECT table_name FROM information_schema.columns "
                        "WHERE table_schema = 'public' AND column_name = 'res_type')"
                    )
                )
            ).scalars()
            for table in list(tables):
                await conn.execute(
                    text(
                        f'DELETE FROM "{table}" t USING gone g '
                        "WHERE t.res_type = g.res_type AND t.res_id = g.res_id"
                    )
                )
            kept = (
                await conn.execute(text("SELECT res_type, count(*) FROM resources GROUP BY 1"))
            ).all()
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
        return {t: n for t, n in kept}
    finally:
        await engine.dispose()


# --- query shapes -----------------------------------------------------------------------------


@dataclass
class Shape:
    name: str
    request: Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]  # facts → (path, params)
    routed: Callable[[dict[str, Any], int], int | None]  # facts, shards → shard or None
    compare: str  # "ids" (same entries) or "total" (totals add up)


def _patient_shard(facts: dict[str, Any], n: int) -> int:
    return facts["shard_by_patient"][facts["pid"]]


SHAPES = [
    Shape(
        "read Patient/{id}",
        lambda f: (f"/Patient/{f['pid']}", {}),
        _patient_shard,
        "ids",
    ),
    Shape(
        "Observation?subject=Patient/{id} (compartment search)",
        lambda f: ("/Observation", {"subject": f"Patient/{f['pid']}", "_count": 100}),
        _patient_shard,
        "ids",
    ),
    Shape(
        "Patient/{id}/$everything",
        lambda f: (f"/Patient/{f['pid']}/$everything", {"_count": 1000}),
        _patient_shard,
        "ids",
    ),
    Shape(
        "Observation?subject=…&_include=Observation:performer",
        lambda f: (
            "/Observation",
            {"subject": f"Patient/{f['pid']}", "_include": "Observation:performer"},
        ),
        _patient_shard,
        "ids",
    ),
    Shape(
        "Observation?code=… (one code, every resident)",
        lambda f: ("/Observation", {"code": f"{LOINC}|{f['code']}", "_total": "accurate"}),
        lambda f, n: None,
        "total",
    ),
    Shape(
        "Encounter?date=ge… (a period, every resident)",
        lambda f: ("/Encounter", {"date": "ge2026-06-01", "_total": "accurate"}),
        lambda f, n: None,
        "total",
    ),
    Shape(
        "Observation?code=…&subject:Patient.gender=female (chain)",
        lambda f: (
            "/Observation",
            {
                "code": f"{LOINC}|{f['code']}",
                "subject:Patient.gender": "female",
                "_total": "accurate",
            },
        ),
        lambda f, n: None,
        "total",
    ),
    Shape(
        "Patient?_has:Observation:subject:code=… (reverse chain)",
        lambda f: (
            "/Patient",
            {"_has:Observation:subject:code": f"{LOINC}|{f['code']}", "_total": "accurate"},
        ),
        lambda f, n: None,
        "total",
    ),
    Shape(
        "Patient?identifier=… (conditional-create lookup)",
        lambda f: ("/Patient", {"identifier": f"{ID_SYSTEM}|{f['ident']}", "_total": "accurate"}),
        lambda f, n: None,
        "total",
    ),
    Shape(
        "Group?identifier=… (the household: the distribution key)",
        lambda f: (
            "/Group",
            {"identifier": f"{HOUSEHOLD_SYSTEM}|{f['household']}", "_total": "accurate"},
        ),
        lambda f, n: f["shard_by_household"][f["household"]],
        "ids",
    ),
]


@dataclass
class Timed:
    ms: float
    ids: set[str]
    total: int | None


async def timed(
    clients: list[httpx.AsyncClient], path: str, params: dict[str, Any], repeat: int
) -> list[Timed]:
    """The request on every client, interleaved (round after round, so that the machine's
    other load falls on all alike), after one warm-up round; the median per client."""
    times: list[list[float]] = [[] for _ in clients]
    bodies: list[dict[str, Any]] = [{} for _ in clients]
    for round_ in range(repeat + 1):
        for i, client in enumerate(clients):
            start = time.perf_counter()
            r = await client.get(path, params=params)
            elapsed = (time.perf_counter() - start) * 1000
            assert r.status_code in (200, 404), r.text[:300]
            bodies[i] = r.json() if r.status_code == 200 else {}
            if round_:
                times[i].append(elapsed)
    return [_timed(body, statistics.median(t)) for body, t in zip(bodies, times, strict=True)]


def _timed(body: dict[str, Any], ms: float) -> Timed:
    if body.get("resourceType") == "Bundle":
        ids = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in body.get("entry", [])
            if "resource" in e and e.get("search", {}).get("mode") != "outcome"
        }
        return Timed(ms, ids, body.get("total"))
    if body:
        return Timed(ms, {f"{body['resourceType']}/{body['id']}"}, 1)
    return Timed(ms, set(), 0)


@dataclass
class Row:
    shape: str
    shards_touched: int
    single_ms: float
    slowest_shard_ms: float
    shards_work_ms: float
    agrees: bool


@dataclass
class Result:
    households: int
    shards: int
    resources: int
    load_seconds: float
    database_bytes: int = 0
    kept: list[dict[str, int]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    split_by_patient: float = 0.0
    split_by_household: float = 0.0
    pairs_cross: float = 0.0


async def simulate(
    admin_url: str, households: int = 1000, shards: int = 4, repeat: int = 7
) -> Result:
    rng = random.Random(15)
    base = f"gw_part_{uuid.uuid4().hex[:8]}"
    single = _url(admin_url, base)
    shard_names = [f"{base}_s{i}" for i in range(shards)]
    await _admin(admin_url, f'CREATE DATABASE "{base}"')
    try:
        await migrate_async(single)
        async with gateway_on(single) as c:
            pract = []
            for k in range(30):
                r = await c.post(
                    "/Practitioner",
                    json={"resourceType": "Practitioner", "name": [{"text": f"医生{k}"}]},
                )
                assert r.status_code == 201, r.text
                pract.append(f"Practitioner/{r.json()['id']}")
            bundles = [household_bundle(h, rng, pract) for h in range(households)]
            sem = asyncio.Semaphore(4)

            async def post(b: dict[str, Any]) -> dict[str, Any]:
                async with sem:
                    r = await c.post("", json=b)
                    assert r.status_code == 200, r.text[:500]
                    return r.json()

            start = time.perf_counter()
            answers = await asyncio.gather(*(post(b) for b in bundles))
            load_seconds = time.perf_counter() - start
        # who is who: patients per household, from the answers (entry order = bundle order)
        family: list[list[str]] = []
        for answer in answers:
            ids = [e["response"]["location"].split("/")[1] for e in answer["entry"]]
            types = [e["response"]["location"].split("/")[0] for e in answer["entry"]]
            family.append([i for i, t in zip(ids, types, strict=True) if t == "Patient"])
        engine = create_engine(single)
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE"))
            resources = (await conn.execute(text("SELECT count(*) FROM resources"))).scalar()
            size = (
                await conn.execute(text("SELECT pg_database_size(current_database())"))
            ).scalar()
        await engine.dispose()
        by_patient = {p: shard_of(p, shards) for fam in family for p in fam}
        by_household = {p: shard_of(f"H{h}", shards) for h, fam in enumerate(family) for p in fam}
        result = Result(households, shards, int(resources or 0), load_seconds, int(size or 0))
        result.split_by_patient = sum(
            len({by_patient[p] for p in fam}) > 1 for fam in family
        ) / len(family)
        result.split_by_household = sum(
            len({by_household[p] for p in fam}) > 1 for fam in family
        ) / len(family)
        everyone = list(by_patient)
        pairs = [(rng.choice(everyone), rng.choice(everyone)) for _ in range(2000)]
        result.pairs_cross = sum(by_household[a] != by_household[b] for a, b in pairs) / len(pairs)
        # the shards: clones of the single database, carved by household (the better key)
        for name in shard_names:
            await _admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE "{base}"')
        for i, name in enumerate(shard_names):
            result.kept.append(await carve(_url(admin_url, name), i, by_household))
        facts_list = []
        for _ in range(3):
            fam = rng.choice(family)
            h = family.index(fam)
            pid = rng.choice(fam)
            facts_list.append(
                {
                    "pid": pid,
                    "shard_by_patient": by_household,
                    "code": rng.choice(CODES),
                    "ident": f"R{h:06d}{fam.index(pid)}",
                    "household": f"H{h:06d}",
                    "shard_by_household": {f"H{h:06d}": shard_of(f"H{h}", shards)},
                }
            )
        measured: dict[str, list[Timed]] = {}
        async with contextlib.AsyncExitStack() as stack:
            clients = [await stack.enter_async_context(gateway_on(single))]
            for name in shard_names:
                clients.append(await stack.enter_async_context(gateway_on(_url(admin_url, name))))
            for s in SHAPES:
                for k, facts in enumerate(facts_list):
                    path, params = s.request(facts)
                    found = await timed(clients, path, params, repeat)
                    measured[f"{s.name}#{k}#single"] = found[:1]
                    measured[f"{s.name}#{k}#shards"] = found[1:]
        for s in SHAPES:
            singles, slowest, work, touched, agrees = [], [], [], [], True
            for k, facts in enumerate(facts_list):
                one = measured[f"{s.name}#{k}#single"][0]
                per_shard = measured[f"{s.name}#{k}#shards"]
                target = s.routed(facts, shards)
                if target is not None:
                    hit = [per_shard[target]]
                    agrees &= hit[0].ids == one.ids
                else:
                    hit = per_shard
                    agrees &= sum(t.total or 0 for t in hit) == (one.total or 0)
                singles.append(one.ms)
                slowest.append(max(t.ms for t in hit))
                work.append(sum(t.ms for t in hit))
                touched.append(len(hit))
            result.rows.append(
                Row(
                    s.name,
                    max(touched),
                    statistics.median(singles),
                    statistics.median(slowest),
                    statistics.median(work),
                    agrees,
                )
            )
        return result
    finally:
        for name in [*shard_names, base]:
            with contextlib.suppress(Exception):
                await _admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def report(result: Result) -> str:
    lines = [
        f"{result.households} households ({result.households * 3} residents), "
        f"{result.resources} resources ({result.database_bytes / 2**20:.0f} MiB on disk, "
        f"{result.database_bytes / max(result.resources, 1) / 1024:.1f} KiB each with history and "
        f"indexes), loaded in {result.load_seconds:.1f} s; "
        f"{result.shards} shards by household key",
        "",
        "| query shape | shards touched | one database (ms) | slowest shard (ms) "
        "| work over shards (ms) | same answer |",
        "|---|---|---|---|---|---|",
    ]
    for row in result.rows:
        lines.append(
            f"| {row.shape} | {row.shards_touched} | {row.single_ms:.1f} | "
            f"{row.slowest_shard_ms:.1f} | {row.shards_work_ms:.1f} | "
            f"{'yes' if row.agrees else 'NO'} |"
        )
    lines += [
        "",
        f"households split over shards, distributed by Patient id: {result.split_by_patient:.1%}",
        f"households split over shards, distributed by household: {result.split_by_household:.1%}",
        f"two random residents on different shards (a transaction naming both): "
        f"{result.pairs_cross:.1%}",
        "resources kept per shard: "
        + "; ".join(
            f"s{i}: {k.get('Patient', 0)} Patient, {k.get('Observation', 0)} Observation, "
            f"{k.get('Practitioner', 0)} Practitioner"
            for i, k in enumerate(result.kept)
        ),
    ]
    return "\n".join(lines)


def main(admin_url: str, households: int = 1000, shards: int = 4) -> str:
    return report(asyncio.run(simulate(admin_url, households, shards)))
