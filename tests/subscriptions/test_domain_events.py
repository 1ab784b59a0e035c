"""The domain events, as declared by the SubscriptionTopics in profiles/subscriptions/: which
change is which event (contract signed, renewed, terminated; referral created, state changed;
result available, recognised), and which is none."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.events.domain import TopicError, domain_events, load_topics, topics
from gateway.settings import PROJECT_ROOT

BASE = "https://fhir.jtys.cn"
CATALOGUE = topics(PROJECT_ROOT / "profiles" / "subscriptions")
CONTRACT_CAT = {
    "coding": [
        {"system": f"{BASE}/CodeSystem/family-doctor-category", "code": "family-doctor-contract"}
    ]
}
REFERRAL_CAT = {
    "coding": [{"system": f"{BASE}/CodeSystem/family-doctor-category", "code": "referral"}]
}
MARK = f"{BASE}/StructureDefinition/cn-result-recognition"


def contract(status: str, **extra) -> dict:
    return {"resourceType": "CarePlan", "status": status, "category": [CONTRACT_CAT], **extra}


def task(status: str, business: str) -> dict:
    coding = {"system": f"{BASE}/CodeSystem/referral-status", "code": business}
    return {"resourceType": "Task", "status": status, "businessStatus": {"coding": [coding]}}


def events(res_type: str, action: str, before: dict | None, after: dict | None) -> list[str]:
    return domain_events(CATALOGUE, res_type, action, before, after)


@pytest.mark.parametrize(
    ("res_type", "action", "before", "after", "expected"),
    [
        ("CarePlan", "create", None, contract("active"), ["contract-signed"]),
        ("CarePlan", "update", contract("draft"), contract("active"), ["contract-signed"]),
        ("CarePlan", "update", contract("active"), contract("active"), []),
        (
            "CarePlan",
            "create",
            None,
            contract("active", replaces=[{"reference": "CarePlan/old"}]),
            ["contract-renewed"],
        ),
        ("CarePlan", "update", contract("active"), contract("revoked"), ["contract-terminated"]),
        ("CarePlan", "update", contract("active"), contract("completed"), ["contract-terminated"]),
        ("CarePlan", "create", None, {"resourceType": "CarePlan", "status": "active"}, []),
        (
            "ServiceRequest",
            "create",
            None,
            {"resourceType": "ServiceRequest", "status": "active", "category": [REFERRAL_CAT]},
            ["referral-created"],
        ),
        (
            "ServiceRequest",
            "create",
            None,
            {"resourceType": "ServiceRequest", "status": "active"},
            [],
        ),
        (
            "Task",
            "update",
            task("requested", "submitted"),
            task("accepted", "accepted"),
            ["referral-state-changed"],
        ),
        ("Task", "update", task("requested", "submitted"), task("requested", "submitted"), []),
        (
            "Observation",
            "update",
            {"resourceType": "Observation", "status": "preliminary"},
            {"resourceType": "Observation", "status": "final"},
            ["result-available"],
        ),
        (
            "DiagnosticReport",
            "update",
            {"resourceType": "DiagnosticReport", "status": "final"},
            {"resourceType": "DiagnosticReport", "status": "final", "extension": [{"url": MARK}]},
            ["result-recognised"],
        ),
        ("Observation", "delete", {"resourceType": "Observation", "status": "final"}, None, []),
    ],
)
def test_domain_events(res_type, action, before, after, expected):
    assert sorted(events(res_type, action, before, after)) == expected


def test_every_topic_is_served_and_a_broken_one_is_named(tmp_path: Path):
    assert {t.code for t in CATALOGUE.values()} == {
        "contract-signed",
        "contract-renewed",
        "contract-terminated",
        "referral-created",
        "referral-state-changed",
        "result-available",
        "result-recognised",
    }
    (tmp_path / "SubscriptionTopic-bad.json").write_text(
        '{"resourceType": "SubscriptionTopic", "id": "bad", "url": "urn:x", "resourceTrigger":'
        ' [{"resource": "Patient", "fhirPathCriteria": "%current.where("}]}'
    )
    with pytest.raises(TopicError, match=r"SubscriptionTopic-bad.json: resourceTrigger\[0\]"):
        load_topics(tmp_path)
