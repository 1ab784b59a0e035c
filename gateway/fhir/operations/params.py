"""Operation input parameters, from the query string (GET) or a Parameters body (POST)."""

from __future__ import annotations

from typing import Any

from gateway.fhir.parse import parse_json
from gateway.fhir.request import FhirRequest
from gateway.vocab import outcomes


def operation_params(req: FhirRequest) -> dict[str, Any]:
    """name → value: query strings as str; Parameters' value[x] as given, `resource` as dict.
    A POST body that is not a Parameters resource is returned under the key '$body'."""
    params: dict[str, Any] = dict(req.query)
    if req.method != "POST" or not (req.body or req.json_body is not None):
        return params
    body = req.json_body if req.json_body is not None else parse_json(req.body)
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        params["$body"] = body
        return params
    raw = body.get("parameter")
    if raw is not None and not isinstance(raw, list):
        raise outcomes.bad_request("Parameters.parameter must be an array", "Parameters.parameter")
    for i, p in enumerate(raw or []):
        name = p.get("name") if isinstance(p, dict) else None
        if not isinstance(name, str):
            raise outcomes.bad_request("Parameter without a name", f"Parameters.parameter[{i}]")
        value = p.get("resource")
        if value is None:
            value = next((v for k, v in p.items() if k.startswith("value")), None)
        params[name] = value
    params["$parameters"] = body
    return params
