"""Writers that keep a ledger of what the gateway acknowledged, and the checks that hold the
stored data to it after a fault.

- Bundles: transactions of one Patient and three Observations pointing at it by urn:uuid, all
  carrying the bundle's tag as an identifier: after any fault a tag has 0 or 4 resources
  (all or nothing), an acknowledged tag has exactly 4 (nothing lost, nothing doubled).
- Counters: one Patient per writer, updated with If-Match on the version it read: its history
  must be versions 1..n without a gap, holding every acknowledged version as sent.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

TAG = "urn:gateway:fault-tag"
FHIR = {"content-type": "application/fhir+json"}


def bundle(tag: str) -> dict[str, Any]:
    patient = f"urn:uuid:{uuid.uuid4()}"
    ident = [{"system": TAG, "value": tag}]
    entries = [
        {
            "fullUrl": patient,
            "resource": {
                "resourceType": "Patient",
                "identifier": ident,
                "name": [{"text": "故障"}],
            },
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for k in range(3):
        entries.append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                "resource": {
                    "resourceType": "Observation",
                    "identifier": ident,
                    "status": "final",
                    "code": {"text": f"测量 {k}"},
                    "subject": {"reference": patient},
                    "valueQuantity": {"value": k, "unit": "mmol/L"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


@dataclass
class Ledger:
    attempted: set[str] = field(default_factory=set)
    acknowledged: dict[str, list[str]] = field(default_factory=dict)  # tag → locations
    counters: dict[str, dict[int, str]] = field(default_factory=dict)  # id → version → text
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, status: int) -> None:
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1


def bundle_writer(base: str, ledger: Ledger, stop: threading.Event, name: str) -> None:
    with httpx.Client(base_url=base, headers=FHIR, timeout=60) as http:
        n = 0
        while not stop.is_set():
            n += 1
            tag = f"{name}-{n}-{uuid.uuid4().hex[:6]}"
            with ledger.lock:
                ledger.attempted.add(tag)
            try:
                r = http.post("", json=bundle(tag))
            except httpx.HTTPError:
                continue  # killed mid-request: the ledger decides nothing about this tag
            ledger.saw(r.status_code)
            if r.status_code == 200:
                locations = [e["response"]["location"] for e in r.json()["entry"]]
                with ledger.lock:
                    ledger.acknowledged[tag] = locations


def counter_writer(base: str, ledger: Ledger, stop: threading.Event, pid: str) -> None:
    with httpx.Client(base_url=base, headers=FHIR, timeout=60) as http:
        while not stop.is_set():
            try:
                current = http.get(f"/Patient/{pid}")
                if current.status_code != 200:
                    ledger.saw(current.status_code)
                    continue
                version = int(current.json()["meta"]["versionId"])
                text = f"v{version + 1}-{uuid.uuid4().hex[:6]}"
                body = {"resourceType": "Patient", "id": pid, "name": [{"text": text}]}
                r = http.put(f"/Patient/{pid}", json=body, headers={"If-Match": f'W/"{version}"'})
            except httpx.HTTPError:
                continue
            ledger.saw(r.status_code)
            if r.status_code == 200:
                acked = int(r.json()["meta"]["versionId"])
                assert acked == version + 1, r.text
                with ledger.lock:
                    ledger.counters.setdefault(pid, {})[acked] = text


def new_counter(http: httpx.Client, ledger: Ledger) -> str:
    r = http.post("/Patient", json={"resourceType": "Patient", "name": [{"text": "v1"}]})
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    ledger.counters[pid] = {1: "v1"}
    return pid


def search_all(http: httpx.Client, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    r = http.get(url, params={**params, "_count": 1000})
    while True:
        assert r.status_code == 200, r.text
        page = r.json()
        found += [e["resource"] for e in page.get("entry", []) if "resource" in e]
        following = [link["url"] for link in page.get("link", []) if link["relation"] == "next"]
        if not following:
            return found
        r = http.get(following[0])


def check_ledger(base: str, ledger: Ledger) -> dict[str, int]:
    """Every check of the module docstring; returns what was checked, for the report."""
    with httpx.Client(base_url=base, headers=FHIR, timeout=120) as http:
        patients = search_all(http, "/Patient", {"identifier": f"{TAG}|"})
        observations = search_all(http, "/Observation", {"identifier": f"{TAG}|"})
        by_tag: dict[str, list[dict[str, Any]]] = {}
        for res in patients + observations:
            tags = [i["value"] for i in res["identifier"] if i["system"] == TAG]
            assert len(tags) == 1, res
            by_tag.setdefault(tags[0], []).append(res)
        assert set(by_tag) <= ledger.attempted, "resources of a bundle nobody sent"
        for tag, resources in by_tag.items():  # all or nothing, never doubled
            kinds = sorted(r["resourceType"] for r in resources)
            assert kinds == ["Observation"] * 3 + ["Patient"], (tag, kinds)
        for tag, locations in ledger.acknowledged.items():  # nothing acknowledged lost
            assert tag in by_tag, f"acknowledged bundle {tag} is missing"
            stored = {f"{r['resourceType']}/{r['id']}" for r in by_tag[tag]}
            assert {"/".join(loc.split("/")[:2]) for loc in locations} == stored
        patient_ids = {p["id"] for p in patients}
        for obs in observations:  # every reference resolves, to the bundle's own patient
            ref = obs["subject"]["reference"]
            assert ref.startswith("Patient/") and ref.split("/")[1] in patient_ids, ref
        for res in patients[:50] + observations[:50]:  # search agrees with read
            read = http.get(f"/{res['resourceType']}/{res['id']}")
            assert read.status_code == 200 and read.json() == res
        versions = 0
        for pid, acked in ledger.counters.items():
            history = search_all(http, f"/Patient/{pid}/_history", {})
            numbers = sorted(int(h["meta"]["versionId"]) for h in history)
            assert numbers == list(range(1, len(numbers) + 1)), (pid, numbers)  # no gap
            texts = {int(h["meta"]["versionId"]): h["name"][0]["text"] for h in history}
            for version, text in acked.items():
                assert texts.get(version) == text, (pid, version, text, texts.get(version))
            current = http.get(f"/Patient/{pid}").json()
            assert int(current["meta"]["versionId"]) == numbers[-1]
            versions += len(numbers)
    return {
        "bundles stored": len(by_tag),
        "bundles acknowledged": len(ledger.acknowledged),
        "counter versions": versions,
    }
