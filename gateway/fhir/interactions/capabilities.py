"""capabilities: GET /metadata, a CapabilityStatement generated from what is actually served."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.fhir.parse import model_class
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.search.composite import served_components
from gateway.search.position import is_position
from gateway.store import clock

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


def capability_statement(core: Any, base_url: str) -> dict[str, Any]:
    served = {route.interaction for route in core.router.table.values()}
    if "transaction" in served:
        served.add("batch")  # one route: Bundle.type picks batch or transaction
    type_interactions = [{"code": i} for i in _TYPE_INTERACTIONS if i in served]
    resources = []
    for rtype in core.resource_types:
        params = core.registry.for_type(rtype)
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": type_interactions,
            "versioning": "versioned-update",
            "readHistory": True,
            "updateCreate": True,
            "conditionalCreate": True,
            "conditionalRead": "not-supported",
            "conditionalUpdate": True,
            "conditionalDelete": "single",
            "searchParam": [
                {"name": "_id", "type": "token"},
                {"name": "_lastUpdated", "type": "date"},
            ]
            + [
                {"name": p.code, "definition": p.url, "type": p.type}
                for p in sorted(params.values(), key=lambda p: p.code)
                if (p.type in core.searchable_types and p.expression)
                or (p.type == "composite" and served_components(core.registry, rtype, p))
                or is_position(p)
            ],
        }
        ops = [
            {
                "name": op.name,
                "definition": op.definition or f"{base_url}/OperationDefinition/{op.name}",
            }
            for op in core.operations.values()
            if op.levels & {"type", "instance"} and (not op.types or rtype in op.types)
        ]
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    system_ops = [
        {
            "name": op.name,
            "definition": op.definition or f"{base_url}/OperationDefinition/{op.name}",
        }
        for op in core.operations.values()
        if "system" in op.levels
    ]
    rest: dict[str, Any] = {
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": i} for i in _SYSTEM_INTERACTIONS if i in served],
    }
    if system_ops:
        rest["operation"] = system_ops
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


async def capabilities(call: Call) -> FhirResponse:
    return FhirResponse(200, capability_statement(call.core, call.req.base_url))


__all__ = ["capabilities", "model_class"]
