"""A Subscription resource read for delivery: criteria-based (R4) or topic-based (the R5
backport IG on R4), its channel, payload and the backport's channel extensions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
EXT_PAYLOAD = BACKPORT + "backport-payload-content"
EXT_FILTER = BACKPORT + "backport-filter-criteria"
EXT_HEARTBEAT = BACKPORT + "backport-heartbeat-period"
EXT_TIMEOUT = BACKPORT + "backport-timeout"
EXT_MAX_COUNT = BACKPORT + "backport-max-count"
PROFILE_BACKPORT = BACKPORT + "backport-subscription"

CONTENTS = ("empty", "id-only", "full-resource")


class SpecError(ValueError):
    """Why a Subscription cannot be served (it goes to status error with this text)."""


@dataclass(frozen=True, slots=True)
class SubSpec:
    sub_id: str
    version: int
    status: str  # the resource's: requested | active | error | off
    kind: str  # criteria | topic
    # criteria: the type and query of the R4 criteria; topic: the topic's url and filters
    res_type: str | None
    query: tuple[tuple[str, str], ...]
    topic: str | None
    filters: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (type, query) per filter
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    # How a notification is sent: "r4" (R4 rest-hook: POST with no body, or PUT of the resource
    # to [endpoint]/[type]/[id] when a payload mime type is given) or "bundle" (backport
    # notification Bundles, content empty | id-only | full-resource).
    shape: str
    content: str
    heartbeat: int | None  # seconds
    timeout: float | None
    max_count: int | None
    end: str | None

    @property
    def types(self) -> frozenset[str]:
        return frozenset({self.res_type}) if self.res_type else frozenset()


def _ext(element: dict[str, Any] | None, url: str) -> Any:
    for e in (element or {}).get("extension") or []:
        if isinstance(e, dict) and e.get("url") == url:
            return next((v for k, v in e.items() if k.startswith("value")), None)
    return None


def _exts(element: dict[str, Any] | None, url: str) -> list[Any]:
    return [
        next((v for k, v in e.items() if k.startswith("value")), None)
        for e in (element or {}).get("extension") or []
        if isinstance(e, dict) and e.get("url") == url
    ]


def _search(text: str, where: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    res_type, _, query = text.partition("?")
    res_type = res_type.rsplit("/", 1)[-1]
    if not res_type or not res_type[0].isupper():
        raise SpecError(f"{where}: '{text}' is not a search (Type?parameters)")
    return res_type, tuple(parse_qsl(query, keep_blank_values=True))


def read_spec(
    res: dict[str, Any], version: int, known_topics: set[str] | dict[str, Any]
) -> SubSpec:
    """The Subscription as delivery needs it; SpecError says what cannot be served."""
    sub_id = str(res.get("id"))
    status = str(res.get("status") or "requested")
    channel = res.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise SpecError(
            f"Subscription.channel.type: '{channel.get('type')}' is not served (rest-hook only)"
        )
    endpoint = str(channel.get("endpoint") or "")
    if urlsplit(endpoint).scheme not in ("http", "https") or not urlsplit(endpoint).netloc:
        raise SpecError(f"Subscription.channel.endpoint: '{endpoint}' is not an http(s) URL")
    headers = []
    for i, h in enumerate(channel.get("header") or []):
        name, sep, value = str(h).partition(":")
        if not sep or not name.strip():
            raise SpecError(f"Subscription.channel.header[{i}]: not 'Name: value'")
        if not str(h).isascii() or not str(h).isprintable():
            raise SpecError(
                f"Subscription.channel.header[{i}]: HTTP header fields are visible ASCII "
                "(encode other text, e.g. percent-encoding)"
            )
        headers.append((name.strip(), value.strip()))
    criteria = str(res.get("criteria") or "")
    payload = channel.get("payload")
    content = _ext(channel.get("_payload"), EXT_PAYLOAD)
    profiles = (res.get("meta") or {}).get("profile") or []
    topic_based = (
        criteria.startswith(("http://", "https://", "urn:")) or PROFILE_BACKPORT in profiles
    )
    filters: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    res_type: str | None = None
    query: tuple[tuple[str, str], ...] = ()
    topic: str | None = None
    if topic_based:
        if criteria not in known_topics:
            raise SpecError(f"Subscription.criteria: no SubscriptionTopic '{criteria}' is known")
        for i, f in enumerate(_exts(res.get("_criteria"), EXT_FILTER)):
            filters.append(_search(str(f), f"Subscription.criteria.extension[{i}]"))
        topic = criteria
        shape = "bundle"
    else:
        res_type, query = _search(criteria, "Subscription.criteria")
        shape = "bundle" if content else "r4"
    if content is None:
        content = "full-resource" if payload else "empty"
    if content not in CONTENTS:
        raise SpecError(
            f"Subscription.channel.payload: content '{content}' is not one of {CONTENTS}"
        )
    if shape == "bundle" and not payload:
        payload = "application/fhir+json"
    if payload and "json" not in str(payload):
        raise SpecError(f"Subscription.channel.payload: '{payload}' is not served (JSON only)")
    heartbeat = _ext(channel, EXT_HEARTBEAT)
    timeout = _ext(channel, EXT_TIMEOUT)
    max_count = _ext(channel, EXT_MAX_COUNT)
    return SubSpec(
        sub_id,
        version,
        status,
        "topic" if topic_based else "criteria",
        res_type,
        query,
        topic,
        tuple(filters),
        endpoint,
        tuple(headers),
        shape,
        content if shape == "bundle" else ("full-resource" if payload else "empty"),
        int(heartbeat) if isinstance(heartbeat, int) and heartbeat > 0 else None,
        float(timeout) if isinstance(timeout, int) and timeout > 0 else None,
        int(max_count) if isinstance(max_count, int) and max_count > 0 else None,
        res.get("end"),
    )
