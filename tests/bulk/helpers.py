"""Bulk Data test helpers: loading residents, kicking off, polling, reading NDJSON files."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}
FEMALE_EVERY = 3  # every third resident is female


def patient(i: int, tag: str = "") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{tag}{i}",
        "gender": "female" if i % FEMALE_EVERY == 0 else "male",
        "name": [{"family": "张", "given": [f"三{i}"]}],
        "birthDate": "1960-01-01",
    }


def observation(i: int, patient_id: str, tag: str = "") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{tag}{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}], "text": "心率"},
        "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def put_bundle(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }


async def load(
    client: httpx.AsyncClient, patients: int, obs_per: int = 2, tag: str = "", headers=None
) -> tuple[list[str], list[str]]:
    """`patients` residents with `obs_per` observations each; (patient ids, observation ids)."""
    pids, oids, batch = [], [], []
    for i in range(patients):
        p = patient(i, tag)
        pids.append(p["id"])
        batch.append(p)
        for j in range(obs_per):
            o = observation(i * obs_per + j, p["id"], tag)
            oids.append(o["id"])
            batch.append(o)
        if len(batch) >= 400:
            await _send(client, batch, headers)
            batch = []
    if batch:
        await _send(client, batch, headers)
    return pids, oids


async def _send(client: httpx.AsyncClient, batch: list[dict[str, Any]], headers) -> None:
    r = await client.post("/", json=put_bundle(batch), headers=headers)
    assert r.status_code == 200, r.text


async def kickoff(
    client: httpx.AsyncClient, path: str = "/$export", params=None, headers=None
) -> str:
    r = await client.get(path, params=params, headers={**ASYNC, **(headers or {})})
    assert r.status_code == 202, r.text
    assert r.json()["resourceType"] == "OperationOutcome"
    return r.headers["content-location"]


async def wait(
    client: httpx.AsyncClient, status_url: str, headers=None, timeout: float = 120
) -> dict[str, Any]:
    """Poll until complete: the manifest (asserting the in-progress answers on the way)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(status_url, headers=headers)
        if r.status_code == 200:
            assert r.headers["content-type"].startswith("application/json")
            assert "expires" in r.headers
            return r.json()
        assert r.status_code == 202, r.text
        assert r.headers["x-progress"]
        assert int(r.headers["retry-after"]) >= 1
        assert time.monotonic() < deadline, f"export still running: {r.headers['x-progress']}"
        await asyncio.sleep(0.05)


async def lines(client: httpx.AsyncClient, url: str, headers=None) -> list[dict[str, Any]]:
    r = await client.get(url, headers={"Accept": "application/fhir+ndjson", **(headers or {})})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/fhir+ndjson")
    assert r.content.endswith(b"\n")
    return [json.loads(x) for x in r.content.decode("utf-8").splitlines()]


async def outputs(
    client: httpx.AsyncClient, manifest: dict[str, Any], headers=None
) -> dict[str, list[dict[str, Any]]]:
    """type → every resource of the manifest's output files of that type."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        got = await lines(client, item["url"], headers)
        assert len(got) == item["count"]
        assert all(r["resourceType"] == item["type"] for r in got)
        out.setdefault(item["type"], []).extend(got)
    return out


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in resources]


def unique_tag() -> str:
    return uuid.uuid4().hex[:6]
