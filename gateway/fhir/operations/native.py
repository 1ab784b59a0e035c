"""$native: a stored resource as the native record of a mapping, for platforms that still
consume the regional systems' JSON. `GET [base]/CarePlan/{id}/$native?source=contract`
answers the contract record (签约编号, 签约类型, 团队编号, … 费用, 年度确认) read back from the
CarePlan and its Consent (found by the mapping's business key), as `application/json`: the
answer is the record itself, not a FHIR resource, since that is what such a platform reads.
"""

from __future__ import annotations

import orjson

from gateway.fhir.operations import Operation
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.mapping.registry import mappings
from gateway.mapping.reverse import native_record, related_queries
from gateway.vocab import outcomes

DEFAULT_SOURCE = "contract"


async def native(call: Call) -> FhirResponse:
    name = call.req.param("source") or DEFAULT_SOURCE
    spec = mappings().get(name)
    if spec is None:
        raise outcomes.error(404, "not-found", "GW-1711", f"No mapping '{name}'", "source")
    primary = next((r for r in spec.resources if r.type == call.res_type), None)
    if primary is None:
        raise outcomes.bad_request(
            f"Mapping {name} reads no {call.res_type} back "
            f"(it maps to {', '.join(r.type for r in spec.resources)})",
            "source",
            "GW-1715",
        )
    assert call.res_type and call.res_id
    stored = await call.repo.read(call.res_type, call.res_id)
    if stored is None or stored.deleted:
        raise outcomes.not_found(call.res_type, call.res_id)
    resources = {primary.name: orjson.loads(stored.content)}
    partial = native_record(spec, resources)
    for res_name, search in related_queries(spec, partial, primary.name).items():
        res_type, _, query = search.partition("?")
        found = await call.core.conditional_match(call.repo, res_type, query)
        if len(found) == 1:
            resources[res_name] = orjson.loads(found[0].content)
    record = native_record(spec, resources)
    return FhirResponse(
        200, orjson.dumps(record), {"Content-Type": "application/json; charset=utf-8"}
    )


NATIVE = Operation(
    "native",
    native,
    frozenset({"instance"}),
    types=frozenset({"CarePlan"}),  # the contract mapping's reverse
    methods=frozenset({"GET"}),
    definition="https://fhir.jtys.cn/OperationDefinition/native",
)
