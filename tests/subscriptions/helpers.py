"""Shared steps of the subscription tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


def subscription(
    endpoint: str,
    criteria: str = "Patient?family=王",
    payload: str | None = "application/fhir+json",
    content: str | None = None,
    headers: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint}
    if payload:
        channel["payload"] = payload
    if content:
        channel["_payload"] = {
            "extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": content}]
        }
    if headers:
        channel["header"] = headers
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "测试：通知签约和转诊",
        "criteria": criteria,
        "channel": channel,
        **extra,
    }


async def create(client: httpx.AsyncClient, resource: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(f"/{resource['resourceType']}", json=resource)
    assert r.status_code == 201, r.text
    return r.json()


async def wait_status(
    client: httpx.AsyncClient, sub_id: str, status: str, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        r = await client.get(f"/Subscription/{sub_id}")
        body = r.json()
        if body.get("status") == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"Subscription/{sub_id} stayed {body.get('status')}: {body}")
        await asyncio.sleep(0.05)


def patient(family: str = "王", given: str = "小明", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": family, "given": [given]}], **extra}
