"""$validate: $validate, [type]/$validate and [type]/[id]/$validate (R4
resource-operation-validate; at system level the resource names its own type).

The answer is always an OperationOutcome with every issue (HTTP 200, even for errors), from the
validator a write uses: the R4 definitions, the claimed profiles, our domain profiles.
"""

from __future__ import annotations

from gateway.fhir.operations import Operation
from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.vocab import outcomes


async def validate(call: Call) -> FhirResponse:
    from gateway.validation import run_validate

    req = call.req
    body = None
    if req.method == "POST":
        body = req.json_body if req.json_body is not None else parse_json(req.body)
    if call.res_id and not _has_resource(body):
        stored = await call.repo.read(call.res_type or "", call.res_id)
        if stored is None or stored.deleted:
            raise outcomes.not_found(call.res_type or "", call.res_id)
        import orjson

        resource = orjson.loads(stored.content)
        body = _with_resource(body, resource) if body else resource
    if body is None:
        raise outcomes.bad_request("$validate needs a resource (POST a Parameters or the resource)")
    outcome = run_validate(
        call.core.write_check.validator,
        body,
        call.res_type,
        req.param("profile"),
        req.param("mode"),
    )
    return FhirResponse(200, outcome)


def _has_resource(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    if body.get("resourceType") != "Parameters":
        return True
    params = body.get("parameter")
    return isinstance(params, list) and any(
        isinstance(p, dict) and p.get("name") == "resource" for p in params
    )


def _with_resource(parameters: dict, resource: dict) -> dict:
    given = parameters.get("parameter")
    params = list(given) if isinstance(given, list) else []
    return {**parameters, "parameter": [*params, {"name": "resource", "resource": resource}]}


VALIDATE = Operation(
    "validate",
    validate,
    frozenset({"system", "type", "instance"}),
    definition="http://hl7.org/fhir/OperationDefinition/Resource-validate",
    # R4's definition is for types and instances only (system: false); ours extends it.
    system_definition="https://fhir.jtys.cn/OperationDefinition/validate",
)
