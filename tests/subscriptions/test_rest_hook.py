"""R4 criteria-based rest-hook subscriptions, delivered inline to real receivers on loopback:
activation, payloads (none, id-only, full resource), custom headers, event numbers, retries
with backoff, error and the dead-letter list with its replay, $status and $events."""

from __future__ import annotations

import asyncio

from tests.subscriptions.helpers import create, patient, subscription, wait_status
from tests.subscriptions.receiver import Receiver


async def test_requested_becomes_active_and_full_resource_is_put(sub_client, receiver):
    sub = await create(
        sub_client, subscription(receiver.url, headers=["Authorization: Bearer secret-123"])
    )
    await wait_status(sub_client, sub["id"], "active")
    other = await create(sub_client, patient(family="李"))
    wang = await create(sub_client, patient())
    await receiver.wait(lambda: len(receiver.got) >= 1)
    await asyncio.sleep(0.3)  # nothing else comes
    assert len(receiver.got) == 1
    got = receiver.got[0]
    # R4 rest-hook with a payload: an update (PUT) of the resource at [endpoint]/[type]/[id]
    assert (got.method, got.path) == ("PUT", f"/hook/Patient/{wang['id']}")
    assert got.body["name"][0]["family"] == "王"
    assert got.body["meta"]["versionId"] == "1"
    assert got.headers["authorization"] == "Bearer secret-123"
    assert got.headers["x-subscription-id"] == sub["id"]
    assert got.event_number == 1
    assert other["id"] not in got.path


async def test_no_payload_posts_without_body_numbered(sub_client, receiver):
    sub = await create(sub_client, subscription(receiver.url, payload=None))
    await wait_status(sub_client, sub["id"], "active")
    p = await create(sub_client, patient())
    await receiver.wait(lambda: len(receiver.got) >= 1)
    for i in range(3):
        r = await sub_client.put(
            f"/Patient/{p['id']}", json={**patient(given=f"第{i}"), "id": p["id"]}
        )
        assert r.status_code == 200
        await receiver.wait(lambda n=i: len(receiver.got) >= n + 2)
    assert all(g.method == "POST" and g.path == "/hook" and g.body is None for g in receiver.got)
    assert receiver.numbers() == [1, 2, 3, 4]


async def test_rapid_updates_end_with_the_newest_version_never_an_older_one(sub_client, receiver):
    sub = await create(sub_client, subscription(receiver.url))
    await wait_status(sub_client, sub["id"], "active")
    p = await create(sub_client, patient())
    for i in range(10):
        r = await sub_client.put(
            f"/Patient/{p['id']}", json={**patient(given=f"第{i}"), "id": p["id"]}
        )
        assert r.status_code == 200
    await receiver.wait(
        lambda: bool(receiver.got) and receiver.got[-1].body["meta"]["versionId"] == "11"
    )
    versions = [int(g.body["meta"]["versionId"]) for g in receiver.got]
    assert versions == sorted(
        set(versions)
    )  # superseded versions may be coalesced, never reordered
    assert receiver.numbers() == list(range(1, len(versions) + 1))  # and no gap in the numbers


async def test_id_only_bundle_and_events_catch_up(sub_client, receiver):
    sub = await create(sub_client, subscription(receiver.url, content="id-only"))
    await wait_status(sub_client, sub["id"], "active")
    ids = [(await create(sub_client, patient(given=f"甲{i}")))["id"] for i in range(5)]
    await receiver.wait(lambda: len(receiver.numbers()) >= 5)
    assert receiver.numbers() == [1, 2, 3, 4, 5]
    first = receiver.got[0].body
    assert first["type"] == "history"
    status = receiver.got[0].status()
    assert status["type"] == "event-notification"
    assert status["subscription"]["reference"].endswith(f"/Subscription/{sub['id']}")
    entries = [e for g in receiver.got for e in g.body["entry"][1:]]
    assert [e["fullUrl"].rsplit("/", 1)[1] for e in entries] == ids
    assert all("resource" not in e for e in entries)

    # $status and $events: a receiver that missed 2..4 asks for them
    r = await sub_client.get(f"/Subscription/{sub['id']}/$status")
    assert r.status_code == 200, r.text
    params = {p["name"]: p for p in r.json()["entry"][0]["resource"]["parameter"]}
    assert params["events-since-subscription-start"]["valueString"] == "5"
    assert params["type"]["valueCode"] == "query-status"
    assert params["status"]["valueCode"] == "active"
    r = await sub_client.get(
        f"/Subscription/{sub['id']}/$events",
        params={"eventsSinceNumber": 2, "eventsUntilNumber": 4, "content": "full-resource"},
    )
    assert r.status_code == 200, r.text
    bundle = r.json()
    events = [
        p for p in bundle["entry"][0]["resource"]["parameter"] if p["name"] == "notification-event"
    ]
    assert [p["part"][0]["valueString"] for p in events] == ["2", "3", "4"]
    assert [e["resource"]["id"] for e in bundle["entry"][1:]] == ids[1:4]
    r = await sub_client.get(
        f"/Subscription/{sub['id']}/$events", params={"eventsSinceNumber": "x"}
    )
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["eventsSinceNumber"]


async def test_unservable_subscription_goes_to_error(sub_client, receiver):
    bad = await create(sub_client, subscription(receiver.url, criteria="Patient?no-such-param=1"))
    body = await wait_status(sub_client, bad["id"], "error")
    assert "no-such-param" in body["error"]
    email = subscription(receiver.url)
    email["channel"]["type"] = "email"
    bad = await create(sub_client, email)
    body = await wait_status(sub_client, bad["id"], "error")
    assert "rest-hook" in body["error"]
    chinese = await create(sub_client, subscription(receiver.url, headers=["X-机构: 中心"]))
    body = await wait_status(sub_client, chinese["id"], "error")
    assert body["error"].startswith("Subscription.channel.header[0]: ")


async def test_failures_back_off_then_error_dead_letter_and_replay(sub_client, receiver):
    receiver.status = 503
    sub = await create(sub_client, subscription(receiver.url, content="id-only"))
    await wait_status(sub_client, sub["id"], "active")
    ids = [(await create(sub_client, patient(given=f"乙{i}")))["id"] for i in range(3)]
    body = await wait_status(sub_client, sub["id"], "error")
    assert "503" in body["error"]
    assert receiver.refused == 4  # subscription_max_failures attempts, then no more
    await asyncio.sleep(0.3)
    assert receiver.refused == 4
    r = await sub_client.get(f"/Subscription/{sub['id']}/$status")
    params = {p["name"]: p for p in r.json()["entry"][0]["resource"]["parameter"]}
    assert params["status"]["valueCode"] == "error"
    assert "503" in params["error"]["valueCodeableConcept"]["text"]

    receiver.status = 200
    r = await sub_client.post(f"/Subscription/{sub['id']}/$replay")
    assert r.status_code == 200, r.text
    assert r.json()["parameter"][0]["valueInteger"] >= 1
    await receiver.wait(lambda: len(receiver.numbers()) >= 3)
    assert receiver.numbers() == [1, 2, 3]
    got_ids = [e["fullUrl"].rsplit("/", 1)[1] for g in receiver.got for e in g.body["entry"][1:]]
    assert got_ids == ids
    # a new event after the replay continues the numbering
    await create(sub_client, patient(given="丙"))
    await receiver.wait(lambda: len(receiver.numbers()) >= 4)
    assert receiver.numbers() == [1, 2, 3, 4]


async def test_slow_receiver_does_not_hold_up_others(sub_client):
    slow = await Receiver(delay=1.5).start()
    fast = await Receiver().start()
    try:
        s1 = await create(sub_client, subscription(slow.url, payload=None))
        s2 = await create(sub_client, subscription(fast.url, payload=None))
        await wait_status(sub_client, s1["id"], "active")
        await wait_status(sub_client, s2["id"], "active")
        for i in range(5):
            await create(sub_client, patient(given=f"丁{i}"))
        await fast.wait(lambda: len(fast.got) >= 5, timeout=5)
        assert len(slow.got) <= 2  # still working through its first notifications
        await slow.wait(lambda: len(slow.got) >= 5, timeout=20)
        assert slow.numbers() == [1, 2, 3, 4, 5]
    finally:
        await slow.stop()
        await fast.stop()


async def test_a_subscription_past_its_end_is_turned_off(sub_client, receiver):
    sub = await create(sub_client, subscription(receiver.url, end="2020-01-01T00:00:00Z"))
    await wait_status(sub_client, sub["id"], "off")
    await create(sub_client, patient())
    await asyncio.sleep(0.3)
    assert receiver.got == []


async def test_a_subscription_never_taken_in_is_adopted(sub_app, sub_client, receiver):
    from gateway.subscriptions.tables import sub_state

    sub = await create(sub_client, subscription(receiver.url, payload=None))
    await wait_status(sub_client, sub["id"], "active")
    await asyncio.sleep(0.5)  # the event of the version the worker wrote (active) taken in
    async with sub_app.state.core.store.engine.begin() as conn:  # as if its event were lost
        await conn.execute(sub_state.delete())
    part = next(p for p in sub_app.state.background if p.name == "subscriptions")
    await part.service.refresh()
    await create(sub_client, patient())
    await asyncio.sleep(0.3)
    assert receiver.got == []  # unknown to delivery
    await part.service.adopt()
    await create(sub_client, patient())
    await receiver.wait(lambda: len(receiver.got) >= 1)
    assert receiver.numbers() == [1]
