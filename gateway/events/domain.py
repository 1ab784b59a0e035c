"""Domain events: what a committed write means for the family-doctor service (contract signed,
renewed, terminated; referral created, state changed; result available, recognised).

Declared as data: R4B SubscriptionTopic resources under profiles/subscriptions/, one per domain
event, whose resourceTrigger names the resource type, the interactions and a FHIRPath criterion
over `%previous` (the version before, empty on create) and `%current` (the version written,
empty on delete), evaluated with fhirpathpy. The topic's id is the domain event's code.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fhirpathpy import compile as fhirpath_compile

_SD = "http://hl7.org/fhir/StructureDefinition/"


class TopicError(ValueError):
    """A topic definition that cannot be used (start-up names the file and the element)."""


@dataclass(frozen=True, slots=True)
class Trigger:
    res_type: str
    interactions: frozenset[str]  # create | update | delete
    criteria: Any  # compiled FHIRPath, or None: every such interaction
    text: str | None


@dataclass(frozen=True, slots=True)
class Topic:
    url: str
    code: str  # the domain event's code: the topic's id (contract-signed, …)
    title: str
    triggers: tuple[Trigger, ...]
    filters: frozenset[tuple[str, str]]  # (resource type, search parameter) it can filter by
    resource: dict[str, Any]

    @property
    def types(self) -> frozenset[str]:
        return frozenset(t.res_type for t in self.triggers)

    def fires(
        self,
        res_type: str,
        action: str,
        previous: dict[str, Any] | None,
        current: dict[str, Any] | None,
    ) -> bool:
        for trig in self.triggers:
            if trig.res_type != res_type or action not in trig.interactions:
                continue
            if trig.criteria is None:
                return True
            env: dict[str, Any] = {"previous": previous or [], "current": current or []}
            if _true(trig.criteria({}, env)):
                return True
        return False


def _true(result: Any) -> bool:
    return isinstance(result, list) and len(result) == 1 and result[0] is True


def _topic(res: dict[str, Any], where: str) -> Topic:
    if res.get("resourceType") != "SubscriptionTopic" or not res.get("url") or not res.get("id"):
        raise TopicError(f"{where}: not a SubscriptionTopic with an id and a url")
    triggers = []
    for i, t in enumerate(res.get("resourceTrigger") or []):
        res_type = str(t.get("resource", "")).removeprefix(_SD)
        text = t.get("fhirPathCriteria")
        try:
            criteria = fhirpath_compile(text) if text else None
            if criteria is not None:  # fhirpathpy finds some faults only when evaluating
                criteria({}, {"previous": [], "current": []})
        except Exception as exc:  # noqa: BLE001 - fhirpathpy raises several kinds
            raise TopicError(f"{where}: resourceTrigger[{i}].fhirPathCriteria: {exc}") from None
        inter = frozenset(t.get("supportedInteraction") or ("create", "update", "delete"))
        triggers.append(Trigger(res_type, inter, criteria, text))
    if not triggers:
        raise TopicError(f"{where}: no resourceTrigger")
    filters = frozenset(
        (str(f.get("resource", "")).removeprefix(_SD), str(f.get("filterParameter", "")))
        for f in res.get("canFilterBy") or []
    )
    return Topic(res["url"], res["id"], res.get("title", res["id"]), tuple(triggers), filters, res)


def load_topics(folder: Path) -> dict[str, Topic]:
    """The topics of profiles/subscriptions/SubscriptionTopic-*.json, by canonical url."""
    out: dict[str, Topic] = {}
    for path in sorted(folder.glob("SubscriptionTopic-*.json")) if folder.is_dir() else []:
        topic = _topic(orjson.loads(path.read_bytes()), path.name)
        out[topic.url] = topic
    return out


@functools.cache
def topics(folder: Path) -> dict[str, Topic]:
    return load_topics(folder)


def domain_events(
    catalogue: dict[str, Topic],
    res_type: str,
    action: str,
    previous: dict[str, Any] | None,
    current: dict[str, Any] | None,
) -> list[str]:
    """The codes of the domain events this change is (none for most writes)."""
    return [
        t.code
        for t in catalogue.values()
        if res_type in t.types and t.fires(res_type, action, previous, current)
    ]
