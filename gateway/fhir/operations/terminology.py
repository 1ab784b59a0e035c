"""Terminology over what profiles/ and the core value sets hold: ValueSet/$expand,
CodeSystem/$lookup, ValueSet/$validate-code and CodeSystem/$validate-code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.fhir.operations import Operation
from gateway.fhir.operations.params import operation_params
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.vocab import outcomes
from gateway.vocab.params import parse_int


def _registry(call: Call) -> Any:
    return call.core.write_check.validator.registry


async def _guarded(fn: Callable[[], dict[str, Any]]) -> FhirResponse:
    from gateway.validation import TerminologyError

    try:
        return FhirResponse(200, fn())
    except TerminologyError as err:
        raise outcomes.from_rendered(err.outcome(), err.status) from None


async def _url_of_instance(call: Call, rtype: str) -> str | None:
    if not call.res_id:
        return None
    found = _registry(call).find(rtype, id=call.res_id)
    if found:
        return found[0]["url"]
    raise outcomes.not_found(rtype, call.res_id)


def _required(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if value in (None, ""):
        raise outcomes.bad_request(f"Parameter '{name}' is required", name, "GW-1400")
    return value


async def expand(call: Call) -> FhirResponse:
    from gateway.validation import expand_valueset

    p = operation_params(call.req)
    url = await _url_of_instance(call, "ValueSet") or _required(p, "url")
    return await _guarded(
        lambda: expand_valueset(
            _registry(call),
            url,
            filter=p.get("filter"),
            offset=parse_int(str(p["offset"]) if "offset" in p else None, "offset") or 0,
            count=parse_int(str(p["count"]) if "count" in p else None, "count"),
            display_language=p.get("displayLanguage"),
        )
    )


async def lookup(call: Call) -> FhirResponse:
    from gateway.validation import lookup_code

    p = operation_params(call.req)
    coding = p.get("coding")
    if not isinstance(coding, dict):
        coding = {}
    system = p.get("system") or coding.get("system")
    code = p.get("code") or coding.get("code")
    if not system or not code:
        raise outcomes.bad_request("$lookup needs system and code (or coding)", "code", "GW-1401")
    return await _guarded(
        lambda: lookup_code(_registry(call), system, code, p.get("displayLanguage"))
    )


async def validate_code(call: Call) -> FhirResponse:
    from gateway.validation import validate_code as run

    p = operation_params(call.req)
    url = None
    if call.res_type == "ValueSet":
        url = await _url_of_instance(call, "ValueSet") or _required(p, "url")
    elif call.res_id:
        url = None  # CodeSystem instance: the system is the code system's url
        p.setdefault("system", await _url_of_instance(call, "CodeSystem"))
    return await _guarded(
        lambda: run(
            _registry(call),
            url=url,
            system=p.get("system") or p.get("url"),
            code=p.get("code"),
            display=p.get("display"),
            coding=p.get("coding"),
            codeable_concept=p.get("codeableConcept"),
        )
    )


EXPAND = Operation(
    "expand",
    expand,
    frozenset({"type", "instance"}),
    frozenset({"ValueSet"}),
    definition="http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
)
LOOKUP = Operation(
    "lookup",
    lookup,
    frozenset({"type"}),
    frozenset({"CodeSystem"}),
    definition="http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
)
VALIDATE_CODE = Operation(
    "validate-code",
    validate_code,
    frozenset({"type", "instance"}),
    frozenset({"ValueSet", "CodeSystem"}),
    definition="http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code",
)
