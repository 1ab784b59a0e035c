"""Shared black-box helpers: only HTTP requests and responses, nothing of the gateway's code."""

from __future__ import annotations

import re
from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"
SYS = "http://example.org/fhir/sid/mrn"  # a plain local identifier system


def patient(value: str | None = None, **extra: Any) -> dict[str, Any]:
    """A plain standard Patient (it would also meet the CN Patient profile, which requires name,
    gender and birthDate), so these tests exercise the REST core whatever the profile mode."""
    res: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"text": "测试患者"}],
        "gender": "unknown",
        "birthDate": "1990-01-01",
    }
    if value is not None:
        res["identifier"] = [{"system": SYS, "value": value}]
    res.update(extra)
    return res


def observation(subject_ref: str, text: str = "血压") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": text},
        "subject": {"reference": subject_ref},
    }


def tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(
    method: str, url: str, resource: Any = None, full_url: str | None = None, **request_extra: str
) -> dict[str, Any]:
    e: dict[str, Any] = {"request": {"method": method, "url": url, **request_extra}}
    if resource is not None:
        e["resource"] = resource
    if full_url is not None:
        e["fullUrl"] = full_url
    return e


def assert_outcome(
    r: httpx.Response, status: int | tuple[int, ...] | None = None
) -> dict[str, Any]:
    """An error response per http.html: a 4xx status, an OperationOutcome in FHIR JSON."""
    if status is None:
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:500])
    elif isinstance(status, tuple):
        assert r.status_code in status, (r.status_code, r.text[:500])
    else:
        assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers.get("content-type", "").startswith(FHIR_JSON), r.headers.get("content-type")
    body = r.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    for issue in body["issue"]:
        assert issue["severity"] in ("fatal", "error", "warning", "information")
        assert isinstance(issue["code"], str) and issue["code"]
    return body


def expressions(outcome: dict[str, Any]) -> list[str]:
    return [e for i in outcome["issue"] for e in i.get("expression", [])]


STATUS = re.compile(r"^(\d{3})( .*)?$")


def status_code(entry_response: dict[str, Any]) -> int:
    """Bundle.entry.response.status SHALL start with a 3 digit HTTP code."""
    m = STATUS.match(entry_response["status"])
    assert m, entry_response["status"]
    return int(m.group(1))


def ref_of_location(location: str) -> tuple[str, str, str | None]:
    """'[base/]Type/id[/_history/vid]' → (Type, id, vid)."""
    parts = location.split("?")[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        return parts[-4], parts[-3], parts[-1]
    return parts[-2], parts[-1], None


async def all_versions(client: httpx.AsyncClient) -> list[tuple[str, str, str | None]]:
    """Every version the server holds, as (fullUrl, versionId or etag, method): system history,
    paged to the end. Used to prove that a failed request changed nothing."""
    out: list[tuple[str, str, str | None]] = []
    url: str | None = "/_history?_count=100"
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        b = r.json()
        for e in b.get("entry", []):
            out.append(
                (
                    e.get("fullUrl", ""),
                    e.get("response", {}).get("etag", ""),
                    e.get("request", {}).get("method"),
                )
            )
        nxt = [lk["url"] for lk in b.get("link", []) if lk["relation"] == "next"]
        url = nxt[0] if nxt else None
    return out


async def current(client: httpx.AsyncClient, rtype: str) -> dict[str, Any]:
    """id → current resource, for every live resource of a type (search, paged)."""
    out: dict[str, Any] = {}
    url: str | None = f"/{rtype}?_count=200"
    while url:
        r = await client.get(url)
        assert r.status_code == 200, r.text
        b = r.json()
        for e in b.get("entry", []):
            if e.get("search", {}).get("mode", "match") == "match":
                out[e["resource"]["id"]] = e["resource"]
        nxt = [lk["url"] for lk in b.get("link", []) if lk["relation"] == "next"]
        url = nxt[0] if nxt else None
    return out


async def create(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()
