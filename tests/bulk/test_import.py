"""$import (NDJSON files under the import directory, as a job) and `gateway import FILE…` for
NDJSON and transaction bundles (Synthea), on SQLite and PostgreSQL: every write validated,
rejected lines reported with file and line, idempotent on re-run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.search.reindex import migrate_async
from tests.bulk.helpers import ASYNC, lines, observation, patient, wait
from tests.conftest import _drop_postgres, _fresh_postgres, need_corpus, running_app


def ndjson(path: Path, rows: list[object]) -> None:
    text = "\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows)
    path.write_text(text + "\n", encoding="utf-8")


def import_body(*inputs: tuple[str, str]) -> dict:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "inputFormat", "valueCode": "application/fhir+ndjson"},
            *(
                {
                    "name": "input",
                    "part": [
                        {"name": "type", "valueCode": t},
                        {"name": "url", "valueUrl": url},
                    ],
                }
                for t, url in inputs
            ),
        ],
    }


async def count(client, query: str) -> int:
    r = await client.get(f"/{query}", params={"_summary": "count"})
    assert r.status_code == 200, r.text
    return r.json()["total"]


async def test_import_job_writes_valid_lines_reports_the_others_and_repeats_safely(bulk, bulk_app):
    root: Path = bulk_app.state.settings.bulk_import_dir
    bad_gender = {**patient(90), "gender": "unknown-value"}
    ndjson(
        root / "Patient.ndjson",
        [patient(1), patient(2), "{not json", bad_gender, {"resourceType": "Observation"}],
    )
    ndjson(root / "Observation.ndjson", [observation(1, "p1"), observation(2, "p2")])
    body = import_body(
        ("Patient", "Patient.ndjson"), ("Observation", f"file://{root}/Observation.ndjson")
    )
    for run in range(2):
        r = await bulk.post("/$import", json=body, headers=ASYNC)
        assert r.status_code == 202, r.text
        status = r.headers["content-location"]
        assert "/$import-status/" in status
        manifest = await wait(bulk, status)
        assert manifest["extension"]["https://fhir.jtys.cn/bulk/written"] == 4
        assert manifest["extension"]["https://fhir.jtys.cn/bulk/failed"] == 3
        [error] = manifest["error"]
        problems = await lines(bulk, error["url"])
        texts = [p["issue"][0]["diagnostics"] for p in problems]
        assert texts[0].startswith("Patient.ndjson line 3: malformed JSON")
        assert texts[1].startswith("Patient.ndjson line 4")
        assert any("gender" in json.dumps(p) for p in problems[1:2])
        assert "line 5" in texts[2] and "Observation" in texts[2]
        assert await count(bulk, "Patient") == 2, f"run {run}"
        assert await count(bulk, "Observation") == 2, f"run {run}"
    r = await bulk.get("/Patient/p1")
    assert r.json()["name"][0]["family"] == "张"


async def test_import_refuses_files_outside_its_directory(bulk, bulk_app, tmp_path):
    outside = tmp_path / "secret.ndjson"
    ndjson(outside, [patient(1)])
    cases = [
        (f"file://{outside}", "Parameters.parameter[1]"),
        ("../secret.ndjson", "Parameters.parameter[1]"),
        ("https://example.org/Patient.ndjson", "Parameters.parameter[1]"),
        ("missing.ndjson", "Parameters.parameter[1]"),
    ]
    for url, where in cases:
        r = await bulk.post("/$import", json=import_body(("Patient", url)), headers=ASYNC)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["issue"][0]["expression"] == [where]
    r = await bulk.post("/$import", json=import_body(("Patient", "x")))
    assert r.status_code == 400  # no Prefer: respond-async
    assert (await bulk.get("/$import", headers=ASYNC)).status_code == 405


async def test_import_is_off_without_an_import_directory(client):
    r = await client.post("/$import", json=import_body(("Patient", "a.ndjson")), headers=ASYNC)
    assert r.status_code == 403
    assert r.json()["resourceType"] == "OperationOutcome"


# --- gateway import FILE… ----------------------------------------------------------------------
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
        env.setenv("GATEWAY_VALIDATION_WORKERS", "0")
        yield


async def run_cli(*args: str) -> str:
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["import", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


async def test_gateway_import_ndjson_and_synthea_bundles_twice(fresh_url, monkeypatch, tmp_path):
    corpus = need_corpus("synthea-r4")
    files = []
    for name in ("hospitalInformation", "practitionerInformation", "Chet_Hoeger"):
        [found] = [p for p in corpus.iterdir() if p.name.startswith(name)]
        files.append(shutil.copy(found, tmp_path / found.name))
    people = tmp_path / "residents.ndjson"
    ndjson(people, [patient(1), patient(2), observation(1, "p1"), "{oops"])
    bundle = json.loads(Path(files[2]).read_text("utf-8"))
    expected = {}
    for e in bundle["entry"]:
        t = e["resource"]["resourceType"]
        expected[t] = expected.get(t, 0) + 1
    with gateway_env(monkeypatch, fresh_url):
        first = await run_cli(str(people), *map(str, files))
        assert "import summary" in first
        again = await run_cli(str(people), *map(str, files))
    # the second run updated everything and created nothing
    created_first = _row(first)
    created_again = _row(again)
    assert created_first["rejected"] == created_again["rejected"] == 1
    assert created_again["created"] == 0
    assert created_again["updated"] == created_first["created"] + created_first["updated"]
    async with running_app(fresh_url, validation_workers=0) as application:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t/fhir") as c:
            assert await count(c, "Patient") == 2 + expected["Patient"]
            assert await count(c, "Observation") == 1 + expected.get("Observation", 0)
            assert await count(c, "Organization") >= 1
            # the references of the Synthea bundle point at the imported ids
            enc = (await c.get("/Encounter", params={"_count": 1})).json()["entry"][0]
            subject = enc["resource"]["subject"]["reference"]
            assert (await c.get(f"/{subject}")).status_code == 200


def _row(output: str) -> dict[str, int]:
    """The summary table's numbers (files, created, updated, rejected)."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("│", "|").split("|") if c.strip()]
        if len(cells) == 4 and all(c.isdigit() for c in cells):
            files, created, updated, rejected = map(int, cells)
            return {"files": files, "created": created, "updated": updated, "rejected": rejected}
    raise AssertionError(f"no summary in {output}")
