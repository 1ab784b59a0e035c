"""`gateway import`, end to end: a district's export (residents in households, "1+1+1" teams,
contracts with spoilt rows) imported as CSV through the command, interrupted by SIGKILL and
resumed, then imported again: the counts, every rejection with its field and the rule's
message, no duplicate anywhere. PostgreSQL takes the full district of the issue (1,000
residents, 20 teams, 1,000 contracts); SQLite, whose writers queue, a 300-resident one.

Each test imports into a database of its own (the command runs the gateway in its process,
or in a child process it kills), then reads it back through a gateway app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.bench.ingest_data import SPOILERS, World, bad_contracts, csv_bytes, world
from gateway.cli import app as cli
from gateway.search.reindex import migrate_async
from tests.conftest import _drop_postgres, _fresh_postgres, running_app

ROOT = Path(__file__).resolve().parents[2]
PREREQUISITES = ("institution", "practitioner", "team")


@pytest.fixture
async def fresh_url(database_url, tmp_path):
    if database_url.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'import.db'}"
        await migrate_async(url)
        yield url
        return
    base = os.environ["GATEWAY_TEST_POSTGRES_URL"]
    url, name = await _fresh_postgres(base)
    await migrate_async(url)
    yield url
    await _drop_postgres(base, name)


@contextlib.contextmanager
def gateway_env(monkeypatch, url: str):
    with monkeypatch.context() as env:
        for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
            env.delenv(name)
        env.setenv("GATEWAY_DATABASE_URL", url)
        env.setenv("GATEWAY_LOG_LEVEL", "warning")
        yield dict(os.environ)


async def run(path: Path, source: str, *extra: str) -> str:
    """The command, in this process (in a thread: it runs its own event loop)."""
    args = ["import", "--source", source, str(path), *extra]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


def report(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".import-report.json").read_text("utf-8"))


def interrupted(path: Path, source: str, env: dict[str, str], after: int) -> int:
    """The command in a child process, SIGKILLed once its checkpoint is past `after`
    records; returns how far the checkpoint got."""
    checkpoint = path.with_name(path.name + ".import.json")
    command = [sys.executable, "-m", "gateway.cli", "import", "--source", source, str(path)]
    proc = subprocess.Popen(
        [*command, "--chunk", "25"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                if json.loads(checkpoint.read_text("utf-8"))["next"] >= after:
                    break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    return int(json.loads(checkpoint.read_text("utf-8"))["next"])


async def totals(url: str, queries: list[str]) -> dict[str, int]:
    async with running_app(url) as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/fhir") as client:
            out = {}
            for q in queries:
                r = await client.get(f"/{q}", params={"_summary": "count"})
                out[q] = r.json()["total"]
            r = await client.get("/Group", params={"_count": 1000, "_elements": "quantity"})
            out["household sizes"] = sorted({e["resource"]["quantity"] for e in r.json()["entry"]})
            return out


def files_of(w: World, folder: Path) -> dict[str, Path]:
    out = {}
    for source in (*PREREQUISITES, "resident", "contract"):
        path = folder / f"{source}.csv"
        charset = "gb18030" if source == "resident" else "utf-8"
        path.write_bytes(csv_bytes(source, getattr(w, source + "s"), charset))
        out[source] = path
    return out


async def test_district_import_resume_and_reimport(fresh_url, monkeypatch, tmp_path):
    full = fresh_url.startswith("postgresql")
    residents, teams = (1000, 20) if full else (300, 6)
    w = world(residents=residents, teams=teams)
    spoilt = bad_contracts(w, every=50)
    files = files_of(w, tmp_path)
    with gateway_env(monkeypatch, fresh_url) as env:
        for source in (*PREREQUISITES, "resident"):
            out = await run(files[source], source)
            assert "import summary" in out and "━" in out  # the table, the progress bar
            assert report(files[source])["rejected"] == [], source
        contracts = files["contract"]
        reached = interrupted(contracts, "contract", env, after=100)
        assert 100 <= reached < residents
        out = await run(contracts, "contract")
        assert f"resuming contract.csv at record {reached + 1} of {residents}" in out
        assert not contracts.with_name("contract.csv.import.json").exists()

        first = report(contracts)
        rejected = {r["record"]: r for r in first["rejected"]}
        assert set(rejected) == set(spoilt)
        for number, kind in spoilt.items():
            field, fragment = SPOILERS[kind]
            reasons = " | ".join(rejected[number]["reasons"])
            assert fragment in reasons, (number, kind, reasons)
            if field is not None:
                assert f"record[{number}].{field}" in reasons, (number, kind, reasons)
        valid = residents - len(spoilt)
        # The chunk in flight at the kill may have been stored before the checkpoint said so:
        # sent again on resuming, it is updated, not duplicated.
        assert first["stored"] + first["updated"] == valid
        assert first["updated"] <= 25

        for source in ("resident", "contract"):
            await run(files[source], source)
        again = report(contracts)
        assert (again["stored"], again["updated"], len(again["rejected"])) == (
            0,
            valid,
            len(spoilt),
        )
        assert report(files["resident"])["updated"] == residents

    households = -(-residents // 3)
    found = await totals(
        fresh_url,
        ["Patient", "Group", "CareTeam", "PractitionerRole", "Organization", "CarePlan", "Consent"],
    )
    assert found == {
        "Patient": residents,
        "Group": households,
        "CareTeam": teams,
        "PractitionerRole": 5 * teams,
        "Organization": -(-teams // 5),
        "CarePlan": valid,
        "Consent": valid,
        "household sizes": sorted({3, residents - 3 * (households - 1)}),
    }
