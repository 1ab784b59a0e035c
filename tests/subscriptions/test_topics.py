"""Topic-based subscriptions (the R5 backport IG on R4): our domain events as SubscriptionTopics
(profiles/subscriptions/), the handshake, event notifications with the domain event and the
focus, filters, heartbeats."""

from __future__ import annotations

import asyncio

from tests.subscriptions.helpers import BACKPORT, create, patient, wait_status

TOPIC = "https://fhir.jtys.cn/SubscriptionTopic/result-available"


def topic_subscription(endpoint: str, topic: str = TOPIC, filters: tuple[str, ...] = (), **ext):
    channel: dict = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {
            "extension": [
                {"url": BACKPORT + "backport-payload-content", "valueCode": "full-resource"}
            ]
        },
    }
    if ext:
        channel["extension"] = [
            {"url": BACKPORT + k.replace("_", "-"), **v} for k, v in ext.items()
        ]
    sub: dict = {
        "resourceType": "Subscription",
        "meta": {"profile": [BACKPORT + "backport-subscription"]},
        "status": "requested",
        "reason": "检查检验结果可用时通知",
        "criteria": topic,
        "channel": channel,
    }
    if filters:
        sub["_criteria"] = {
            "extension": [
                {"url": BACKPORT + "backport-filter-criteria", "valueString": f} for f in filters
            ]
        }
    return sub


def observation(subject: str, status: str) -> dict:
    return {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "14749-6"}], "text": "血糖"},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": 6.1,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
    }


async def test_handshake_domain_events_filters_and_heartbeats(sub_client, receiver):
    a = await create(sub_client, patient(given="甲"))
    b = await create(sub_client, patient(given="乙"))
    sub = await create(
        sub_client,
        topic_subscription(
            receiver.url,
            filters=(f"Observation?subject=Patient/{a['id']}",),
            backport_heartbeat_period={"valueUnsignedInt": 1},
        ),
    )
    await wait_status(sub_client, sub["id"], "active")
    hand = receiver.got[0].status()
    assert (hand["type"], hand["status"], hand["topic"]) == ("handshake", "requested", TOPIC)
    assert hand["events-since-subscription-start"] == "0"

    obs = await create(sub_client, observation(f"Patient/{a['id']}", "preliminary"))
    await create(sub_client, observation(f"Patient/{b['id']}", "final"))  # filtered out
    r = await sub_client.put(
        f"/Observation/{obs['id']}",
        json={**observation(f"Patient/{a['id']}", "final"), "id": obs["id"]},
    )
    assert r.status_code == 200, r.text
    events = lambda: [g for g in receiver.got if g.status()["type"] == "event-notification"]  # noqa: E731
    await receiver.wait(lambda: len(events()) >= 1)
    note = events()[0]
    status = note.status()
    [event] = status["notification-event"]
    assert event["event-number"] == "1"
    assert event["focus"]["reference"].endswith(f"/Observation/{obs['id']}/_history/2")
    assert event["additional-context"] == {"display": "result-available"}
    assert note.body["entry"][1]["resource"]["status"] == "final"
    assert note.body["entry"][1]["resource"]["id"] == obs["id"]
    # nothing happened since: heartbeats keep the channel known to be alive
    await receiver.wait(
        lambda: any(g.status()["type"] == "heartbeat" for g in receiver.got), timeout=5
    )
    beat = next(g for g in receiver.got if g.status()["type"] == "heartbeat").status()
    assert beat["events-since-subscription-start"] == "1"
    assert len(events()) == 1  # the preliminary result and the other resident's: no event


async def test_unknown_topic_is_refused(sub_client, receiver):
    sub = await create(
        sub_client,
        topic_subscription(receiver.url, topic="https://example.org/SubscriptionTopic/x"),
    )
    body = await wait_status(sub_client, sub["id"], "error")
    assert "no SubscriptionTopic" in body["error"]
    await asyncio.sleep(0.2)
    assert receiver.got == []
