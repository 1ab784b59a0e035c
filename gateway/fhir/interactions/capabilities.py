"""capabilities: GET /metadata, a CapabilityStatement generated from what is actually served.

Everything listed is derived from the same data the request handling uses (the route table,
the operations, the SearchParameter registry), with the rules the search parser applies, so a
listed capability is one a request can use:

- ``searchParam``: each parameter once per type (``_id``/``_lastUpdated`` are registry
  parameters too, answered from the store's own columns);
- ``searchInclude``: ``*`` and ``Type:code`` for the type's reference parameters;
  ``searchRevInclude``: ``*`` and ``Source:code`` for every served type's reference parameter
  that may point at this type;
- ``rest.searchParam``: what a system-level search (``GET [base]?…``) accepts, with or
  without ``_type``: the Resource parameters every type has;
- operation definitions: the R4 OperationDefinition of each type an operation serves.

The statement depends only on the core (routes, operations, registry: fixed at start-up) and
the base URL, so its JSON is built once per base URL and reused.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

import orjson

from gateway import __version__
from gateway.fhir.operations import Operation
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.search.composite import served_components
from gateway.search.position import is_position
from gateway.search.registry import BASE_TYPES
from gateway.search.request import SPECIAL
from gateway.vocab import clock

# Route interactions that are type-level in the CapabilityStatement's vocabulary.
_TYPE_INTERACTIONS = (
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
)
_SYSTEM_INTERACTIONS = ("transaction", "batch", "search-system", "history-system")
# Canonical base of the R4 core OperationDefinitions: <base><Type>-<code>.
HL7_OPERATION = "http://hl7.org/fhir/OperationDefinition/"
# System-level search: `_type` picks the types searched (search.html §3.1.1.3: no R4
# SearchParameter defines it, so no definition is given).
_TYPE_PARAM = {
    "name": "_type",
    "type": "token",
    "documentation": (
        "Resource types to search (comma-separated; without it, all types). With a single"
        " type, that type's search parameters are accepted as well."
    ),
}
# Statement JSON per core (keyed on its router) and base URL; a Host header picks the base URL,
# so the number kept is bounded.
_CACHE: weakref.WeakKeyDictionary[Any, dict[str, bytes]] = weakref.WeakKeyDictionary()
_CACHE_MAX = 16


def _search_param(p: Any) -> dict[str, Any]:
    return {"name": p.code, "definition": p.url, "type": p.type}


def _served_params(core: Any, rtype: str) -> list[dict[str, Any]]:
    """Each parameter a search on rtype accepts, once, by code."""
    out: dict[str, dict[str, Any]] = {}
    for p in core.registry.for_type(rtype).values():
        if (
            (p.type in core.searchable_types and p.expression)
            or (p.type == "composite" and served_components(core.registry, rtype, p))
            or is_position(p)
        ):
            out[p.code] = _search_param(p)
    for code, ptype in SPECIAL.items():  # answered from columns, whatever the registry says
        out.setdefault(code, {"name": code, "type": ptype})
    return [out[code] for code in sorted(out)]


def _system_params(core: Any) -> list[dict[str, Any]]:
    """What GET [base]?… accepts: the Resource/DomainResource parameters the search parser
    takes across all types (and on each of several _type types, since every type has them)."""
    out: dict[str, dict[str, Any]] = {}
    for base in BASE_TYPES:
        for p in core.registry.for_type(base).values():
            if p.type in core.searchable_types and p.expression and p.code not in out:
                out[p.code] = _search_param(p)
    for code, ptype in SPECIAL.items():
        out.setdefault(code, {"name": code, "type": ptype})
    return [_TYPE_PARAM, *(out[code] for code in sorted(out))]


def _reference_params(core: Any, rtype: str) -> list[Any]:
    return sorted(
        (
            p
            for p in core.registry.for_type(rtype).values()
            if p.type == "reference" and p.expression
        ),
        key=lambda p: p.code,
    )


def _includes(core: Any, types: Iterable[str]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per type: the _include values (its own reference parameters) and the _revinclude
    values (reference parameters of served types whose targets include it)."""
    types = list(types)
    served = set(types)
    forward: dict[str, list[str]] = {}
    reverse: dict[str, set[str]] = {t: set() for t in types}
    for src in types:
        refs = _reference_params(core, src)
        forward[src] = ["*", *(f"{src}:{p.code}" for p in refs)]
        for p in refs:
            for target in p.target:
                if target in served:
                    reverse[target].add(f"{src}:{p.code}")
    return forward, {t: ["*", *sorted(v)] for t, v in reverse.items()}


def _definition(op: Operation, rtype: str | None, base_url: str) -> str:
    """The OperationDefinition canonical for op on rtype. One Operation may serve several
    types, each with its own core definition (ValueSet-validate-code, CodeSystem-validate-code):
    a core definition named for one of op's types is renamed for rtype."""
    if rtype is None and op.system_definition:
        return op.system_definition
    if not op.definition:
        return f"{base_url}/OperationDefinition/{op.name}"
    if rtype and rtype in op.types and op.definition.startswith(HL7_OPERATION):
        named = op.definition[len(HL7_OPERATION) :].removesuffix(f"-{op.name}")
        if named != rtype and named in op.types:
            return f"{HL7_OPERATION}{rtype}-{op.name}"
    return op.definition


def capability_statement(core: Any, base_url: str) -> dict[str, Any]:
    served = {route.interaction for route in core.router.table.values()}
    if "transaction" in served:
        served.add("batch")  # one route: Bundle.type picks batch or transaction
    type_interactions = [{"code": i} for i in _TYPE_INTERACTIONS if i in served]
    searching = "search-type" in served
    includes, revincludes = _includes(core, core.resource_types) if searching else ({}, {})
    resources = []
    for rtype in core.resource_types:
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": type_interactions,
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            # read and vread answer If-None-Match and If-Modified-Since with 304
            "conditionalRead": "full-support",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
        }
        if searching:
            entry["searchInclude"] = includes[rtype]
            entry["searchRevInclude"] = revincludes[rtype]
            entry["searchParam"] = _served_params(core, rtype)
        ops = [
            {"name": op.name, "definition": _definition(op, rtype, base_url)}
            for op in core.operations.values()
            if op.levels & {"type", "instance"} and (not op.types or rtype in op.types)
        ]
        if ops:
            entry["operation"] = ops
        if rtype == "Subscription":
            entry.update(_subscription_topics(core))
        resources.append(entry)
    system_ops = [
        {"name": op.name, "definition": _definition(op, None, base_url)}
        for op in core.operations.values()
        if "system" in op.levels
    ]
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": i} for i in _SYSTEM_INTERACTIONS if i in served],
    }
    if "search-system" in served:
        rest["searchParam"] = _system_params(core)
    if system_ops:
        rest["operation"] = system_ops
    rest["security"] = _security(core, base_url)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": clock.to_instant(core.started_at)[:10],
        "publisher": "FHIR family-doctor gateway",
        "kind": "instance",
        "software": {"name": "fhir-family-doctor-gateway", "version": __version__},
        "implementation": {"description": "家庭医生签约服务 FHIR gateway", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }


_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


def _subscription_topics(core: Any) -> dict[str, Any]:
    """Topic discovery on R4 (Subscriptions R5 Backport IG): the topics a client may name in
    Subscription.criteria, as the IG's extension on the Subscription resource entry (R4 has no
    SubscriptionTopic type to search)."""
    urls = []
    for path in sorted((core.settings.profiles_dir / "subscriptions").glob("*.json")):
        topic = orjson.loads(path.read_bytes())
        if topic.get("resourceType") == "SubscriptionTopic" and topic.get("url"):
            urls.append(topic["url"])
    return {
        "supportedProfile": [f"{_BACKPORT}backport-subscription"],
        "extension": [
            {
                "url": f"{_BACKPORT}capabilitystatement-subscriptiontopic-canonical",
                "valueCanonical": u,
            }
            for u in urls
        ],
    }


_SMART_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_SECURITY_SERVICE = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def _security(core: Any, base_url: str) -> dict[str, Any]:
    """How to authenticate (SMART Backend Services), or, in development mode, that nothing
    is checked: said where every client looks first."""
    if core.settings.auth != "on":
        return {
            "cors": True,
            "description": "DEVELOPMENT MODE: authentication is off (GATEWAY_AUTH=off); every "
            "client may read and change everything. Never serve this beyond loopback.",
        }
    return {
        "cors": True,
        "service": [{"coding": [{"system": _SECURITY_SERVICE, "code": "SMART-on-FHIR"}]}],
        "extension": [
            {
                "url": _SMART_URIS,
                "extension": [{"url": "token", "valueUri": f"{base_url}/auth/token"}],
            }
        ],
        "description": "SMART Backend Services: client_credentials with a signed client "
        "assertion (RS384 or ES384) at the token endpoint; system/ scopes (v1 and v2); see "
        f"{base_url}/.well-known/smart-configuration",
    }


def statement_json(core: Any, base_url: str) -> bytes:
    """capability_statement as JSON, built once per core and base URL (the routes and
    operations are fixed when the router is built)."""
    cached = _CACHE.setdefault(core.router, {})
    body = cached.get(base_url)
    if body is None:
        if len(cached) >= _CACHE_MAX:
            cached.clear()
        body = cached[base_url] = orjson.dumps(capability_statement(core, base_url))
    return body


async def capabilities(call: Call) -> FhirResponse:
    return FhirResponse(200, statement_json(call.core, call.req.base_url))


__all__ = ["capabilities", "capability_statement", "statement_json"]
