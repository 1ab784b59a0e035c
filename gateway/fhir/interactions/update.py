"""update: PUT /Type/id (update-as-create with a client id) and conditional PUT /Type?query."""

from __future__ import annotations

from typing import Any

from gateway.fhir.interactions._conditional import condition, single_match
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import new_id, parse_if_match, resource_body, write_response
from gateway.fhir.router import Call
from gateway.store.model import Write
from gateway.vocab import outcomes


def _check_body_id(resource: dict[str, Any], res_id: str, where: str) -> None:
    body_id = resource.get("id")
    path = f"{where}.id" if where else f"{resource['resourceType']}.id"
    if body_id is None:
        raise outcomes.id_mismatch(f"The resource has no id; the URL says '{res_id}'", path)
    if body_id != res_id:
        raise outcomes.id_mismatch(
            f"The resource id '{body_id}' does not match the URL id '{res_id}'", path
        )


async def update(call: Call) -> FhirResponse:
    assert call.res_type and call.res_id
    resource = resource_body(call.req, call.res_type, call.core.write_check)
    _check_body_id(resource, call.res_id, call.req.where)
    expected = parse_if_match(call.req.header("if-match"))
    [stored] = await call.repo.apply(
        [Write(call.res_type, call.res_id, resource, "PUT", expected_version=expected)]
    )
    assert stored is not None
    return write_response(call.req, stored, 201 if stored.created else 200)


async def conditional_update(call: Call) -> FhirResponse:
    assert call.res_type
    query = condition(call, "update")
    resource = resource_body(call.req, call.res_type, call.core.write_check)
    async with call.repo.transaction() as tx:
        match = await single_match(call, tx, query, "update")
        if match is not None:
            res_id = match.res_id
            if resource.get("id") not in (None, res_id):
                raise outcomes.id_mismatch(
                    f"The resource id '{resource['id']}' differs from the matched resource "
                    f"'{res_id}'",
                    f"{call.res_type}.id",
                )
        else:
            res_id = resource.get("id") or new_id()
        expected = parse_if_match(call.req.header("if-match"))
        [stored] = await tx.apply(
            [Write(call.res_type, res_id, resource, "PUT", expected_version=expected)]
        )
    assert stored is not None
    return write_response(call.req, stored, 201 if stored.created else 200)
