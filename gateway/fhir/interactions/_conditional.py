"""The shared step of conditional update, patch and delete: at most one match for the query."""

from __future__ import annotations

from gateway.fhir.router import Call
from gateway.store.model import Stored
from gateway.store.repository import Repository
from gateway.vocab import outcomes


def condition(call: Call, interaction: str) -> str:
    query = call.req.query_string()
    if not query:
        raise outcomes.bad_request(
            f"Conditional {interaction} needs search parameters", gw="GW-1019"
        )
    return query


async def single_match(call: Call, tx: Repository, query: str, interaction: str) -> Stored | None:
    """The one resource matching `query` (None for none); 412 when several match. Identical
    conditional writes serialise on the query (see FhirCore.conditional_match)."""
    assert call.res_type
    matches = await call.core.conditional_match(tx, call.res_type, query, lock=True)
    if len(matches) > 1:
        raise outcomes.multiple_matches(
            f"Conditional {interaction} '{query}' matches {len(matches)} resources"
        )
    return matches[0] if matches else None
