"""$episode: a referral's whole episode in one call, `GET [base]/ServiceRequest/{id}/$episode`.

A Bundle of type collection: the referral; its Tasks with every version (newest first, each
with its versioned fullUrl, so the workflow's course can be read); the Appointments based on
it; the results and documents it names (reasonReference, supportingInfo, the Tasks' outputs)
or that name it (basedOn); and the referral that follows it (a down-referral basedOn or
replacing it) with its Tasks. Only what the client may see is included.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.operations import Operation
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.store.model import Stored
from gateway.vocab import outcomes

_MAX = 1000


async def _search(call: Call, res_type: str, query: list[tuple[str, str]]) -> list[Stored]:
    sr = call.core.parse_search(res_type, [*query, ("_count", str(_MAX))])
    return (await call.core.search(call.repo, sr)).matches


def _refs(node: Any) -> list[str]:
    """Every literal reference in a JSON value."""
    out: list[str] = []
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and "/" in ref and "?" not in ref:
            out.append("/".join(ref.split("/")[-2:]))
        for value in node.values():
            out += _refs(value)
    elif isinstance(node, list):
        for value in node:
            out += _refs(value)
    return out


async def _tasks(call: Call, ref: str, entries: list[Entry], seen: set[str]) -> list[Stored]:
    tasks = await _search(call, "Task", [("focus", ref)])
    for task in tasks:
        page = await call.repo.history("Task", task.res_id, count=_MAX)
        for _, version in page.entries:
            url = f"{call.req.base_url}/Task/{task.res_id}/_history/{version.version}"
            if url not in seen and not version.deleted:
                seen.add(url)
                entries.append(Entry({"fullUrl": url}, version.content))
    return tasks


async def episode(call: Call) -> FhirResponse:
    assert call.res_id
    referral = await call.repo.read("ServiceRequest", call.res_id)
    if referral is None:
        raise outcomes.not_found("ServiceRequest", call.res_id)
    if referral.deleted:
        raise outcomes.gone("ServiceRequest", call.res_id, referral.version)
    ref = referral.ref
    base = call.req.base_url
    seen: set[str] = set()
    entries: list[Entry] = []

    def add(st: Stored) -> None:
        url = f"{base}/{st.ref}"
        if url not in seen and not st.deleted:
            seen.add(url)
            entries.append(Entry({"fullUrl": url}, st.content))

    add(referral)
    tasks = await _tasks(call, ref, entries, seen)
    for appointment in await _search(call, "Appointment", [("based-on", ref)]):
        add(appointment)
    # what the referral and its tasks name, and the results based on it
    content = orjson.loads(referral.content)
    named = _refs([content.get("reasonReference"), content.get("supportingInfo")])
    for task in tasks:
        named += _refs(orjson.loads(task.content).get("output"))
    keys = [tuple(r.split("/", 1)) for r in dict.fromkeys(named)]
    for st in (await call.repo.read_many(keys)).values():  # type: ignore[arg-type]
        add(st)
    for res_type in ("Observation", "DiagnosticReport"):
        for st in await _search(call, res_type, [("based-on", ref)]):
            add(st)
    # the referral that follows: a down-referral based on this one or replacing it
    for param in ("based-on", "replaces"):
        for follow in await _search(call, "ServiceRequest", [(param, ref)]):
            add(follow)
            await _tasks(call, follow.ref, entries, seen)
    return FhirResponse(200, assemble("collection", entries, total=None))


EPISODE = Operation(
    "episode",
    episode,
    frozenset({"instance"}),
    types=frozenset({"ServiceRequest"}),
    methods=frozenset({"GET"}),
    definition="https://fhir.jtys.cn/OperationDefinition/episode",
)
