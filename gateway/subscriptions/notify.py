"""Notifications as sent: R4 rest-hook requests and the backport's notification Bundles
(type history, a SubscriptionStatus as the R4 backport's Parameters first, then the focus
entries: none, id-only or full resources)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.subscriptions.spec import SubSpec
from gateway.vocab import clock

STATUS_PROFILE = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"
NOTIFICATION_PROFILE = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-notification-r4"
)
# Headers on every notification, so that a receiver of bodiless R4 notifications can tell
# gaps too.
H_SUBSCRIPTION = "X-Subscription-Id"
H_EVENT = "X-Subscription-Event-Number"
H_TOTAL = "X-Subscription-Events-Since-Start"


@dataclass(frozen=True, slots=True)
class Item:
    """One numbered event of a subscription, with its resource version when sent in full."""

    number: int
    res_type: str
    res_id: str
    version: int
    action: str
    topic_events: str | None
    created_at: int
    content: bytes | None = None  # the version's JSON (full-resource payloads)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def status_parameters(
    spec: SubSpec,
    base: str,
    status: str,
    kind: str,
    total: int,
    items: list[Item] = (),  # type: ignore[assignment]
    error: str | None = None,
) -> dict[str, Any]:
    """The R4 backport's SubscriptionStatus: Parameters, backport-subscription-status-r4."""
    params: list[dict[str, Any]] = [
        {
            "name": "subscription",
            "valueReference": {"reference": f"{base}/Subscription/{spec.sub_id}"},
        },
    ]
    if spec.topic:
        params.append({"name": "topic", "valueCanonical": spec.topic})
    params += [
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(total)},
    ]
    for it in items:
        part: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(it.number)},
            {"name": "timestamp", "valueInstant": clock.to_instant(it.created_at)},
        ]
        if spec.content != "empty":
            ref = f"{base}/{it.res_type}/{it.res_id}/_history/{it.version}"
            part.append({"name": "focus", "valueReference": {"reference": ref}})
        for code in (it.topic_events or "").split():
            part.append({"name": "additional-context", "valueReference": {"display": code}})
        params.append({"name": "notification-event", "part": part})
    if error:
        params.append({"name": "error", "valueCodeableConcept": {"text": error}})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": params,
    }


def notification_bundle(
    spec: SubSpec,
    base: str,
    status: str,
    kind: str,
    total: int,
    items: list[Item] = (),  # type: ignore[assignment]
    error: str | None = None,
) -> dict[str, Any]:
    """A notification Bundle (handshake, heartbeat, event-notification, query-event)."""
    params = status_parameters(spec, base, status, kind, total, items, error)
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{params['id']}",
            "resource": params,
            "request": {"method": "GET", "url": f"{base}/Subscription/{spec.sub_id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if spec.content != "empty":
        for it in items:
            method = {"create": "POST", "delete": "DELETE"}.get(it.action, "PUT")
            entry: dict[str, Any] = {
                "fullUrl": f"{base}/{it.res_type}/{it.res_id}",
                "request": {
                    "method": method,
                    "url": it.res_type if method == "POST" else f"{it.res_type}/{it.res_id}",
                },
                "response": {
                    "status": {"POST": "201", "DELETE": "204"}.get(method, "200"),
                    "etag": f'W/"{it.version}"',
                },
            }
            if spec.content == "full-resource" and it.content is not None and it.action != "delete":
                entry["resource"] = orjson.loads(it.content)
            entries.append(entry)
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": clock.to_instant(clock.now_us()),
        "entry": entries,
    }


def requests_for(
    spec: SubSpec, base: str, status: str, kind: str, total: int, items: list[Item]
) -> list[Request]:
    """The HTTP requests that deliver `items` (one Bundle, or one R4 request per event)."""
    headers = dict(spec.headers)
    headers[H_SUBSCRIPTION] = spec.sub_id
    headers[H_TOTAL] = str(total)
    if spec.shape == "bundle":
        if items:
            headers[H_EVENT] = str(items[-1].number)
        body = notification_bundle(spec, base, status, kind, total, items)
        headers["Content-Type"] = "application/fhir+json"
        return [Request("POST", spec.endpoint, headers, orjson.dumps(body))]
    out = []
    for it in items:
        h = {**headers, H_EVENT: str(it.number)}
        if spec.content == "full-resource" and it.content is not None:
            h["Content-Type"] = "application/fhir+json"
            url = f"{spec.endpoint.rstrip('/')}/{it.res_type}/{it.res_id}"
            out.append(Request("PUT", url, h, it.content))
        else:  # R4: a POST with no body says "something matched"
            out.append(Request("POST", spec.endpoint, h, None))
    return out
