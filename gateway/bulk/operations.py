"""$export (system, Patient, Group/[id]) and $import kick-off: check the request, record the job,
answer 202 with the status URL in Content-Location (Bulk Data Access IG v2).

The job keeps who started it (client, organisation, role, scopes): the export runs under that
client's access policy, and only that client may poll it and fetch its files.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from gateway.bulk.jobs import Jobs
from gateway.bulk.queue import wake
from gateway.bulk.spec import NOT_EXPORTED, ExportSpec, filter_params, parse_export
from gateway.fhir.operations import Operation
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.router import Call
from gateway.vocab import clock, outcomes
from gateway.vocab.metrics import EXPORT_JOBS

# Ours (profiles/OperationDefinition): the IG's export, patient-export and group-export in one,
# with the gateway's parameters; the IG's definitions are not among the R4 core ones.
EXPORT_DEFINITION = "https://fhir.jtys.cn/OperationDefinition/export"
GB_2260 = "https://fhir.jtys.cn/CodeSystem/gb-t-2260"
STATUS_PATH = "$export-status"
IMPORT_STATUS_PATH = "$import-status"
FILE_PATH = "$export-file"


def request_url(req: FhirRequest) -> str:
    url = f"{req.base_url}/{req.path}"
    return f"{url}?{req.query_string()}" if req.query else url


def _respond_async(req: FhirRequest) -> None:
    prefer = (req.header("prefer") or "").replace(" ", "").lower().split(",")
    if "respond-async" not in prefer:
        raise outcomes.bad_request(
            "$export is asynchronous: send the header Prefer: respond-async",
            "Prefer",
            "GW-1868",
        )


def _readable(call: Call, res_type: str) -> bool:
    access = call.req.context.access
    if access is None:
        return True
    try:
        access.allow("search-type", res_type)
    except outcomes.OperationOutcomeError:
        return False
    return True


async def _group(call: Call, spec: ExportSpec) -> None:
    """The Group to export (404 when the client may not see it): its members marked inactive
    are left out; the others come from its indexed `member` references."""
    group = await call.repo.read("Group", call.res_id or "")
    if group is None:
        raise outcomes.not_found("Group", call.res_id or "")
    if group.deleted:
        raise outcomes.gone("Group", call.res_id or "", group.version)
    content = orjson.loads(group.content)
    members = content.get("member") or []
    for m in members if isinstance(members, list) else []:
        ref = ((m.get("entity") or {}).get("reference") or "") if isinstance(m, dict) else ""
        if m.get("inactive") is True and ref.startswith("Patient/"):
            spec.inactive.append(ref.removeprefix("Patient/"))
    if not members:
        spec.criteria = criteria(content.get("characteristic") or [])


def criteria(characteristics: list[Any]) -> list[dict[str, Any]]:
    """A definitional Group's residents, from what its characteristics' values name: a GB/T
    2260 division (the residents whose address is in it: `Patient?division=`, its significant
    digits, so a city covers its districts) or a CareTeam (the residents it has an active
    family-doctor contract with). All must hold; `exclude: true` takes those out."""
    out = []
    for i, c in enumerate(characteristics):
        where = f"Group.characteristic[{i}]"
        c = c if isinstance(c, dict) else {}
        exclude = c.get("exclude") is True
        codings = (c.get("valueCodeableConcept") or {}).get("coding") or []
        division = next(
            (x.get("code") for x in codings if isinstance(x, dict) and x.get("system") == GB_2260),
            None,
        )
        team = (c.get("valueReference") or {}).get("reference") or ""
        if division:
            out.append({"kind": "division", "value": str(division), "exclude": exclude})
        elif team.startswith("CareTeam/"):
            out.append({"kind": "team", "value": team, "exclude": exclude})
        else:
            raise outcomes.bad_request(
                "A Group exported by its characteristics names a division (a valueCodeableConcept "
                f"in {GB_2260}) or a CareTeam (valueReference) in each of them",
                where,
                "GW-1880",
            )
    return out


async def _admit(call: Call, jobs: Jobs) -> None:
    owner = call.req.context.principal
    limit = call.core.settings.bulk_max_jobs_per_client
    if await jobs.active_count(owner) >= limit:
        err = outcomes.error(
            429,
            "throttled",
            "GW-1869",
            f"This client already has {limit} bulk jobs in progress: wait for one to finish "
            "or cancel one (DELETE its status URL)",
        )
        err.headers["Retry-After"] = "30"
        raise err


async def _start(call: Call, kind: str, spec_json: str, status_path: str) -> FhirResponse:
    jobs = Jobs(call.core.store.engine)
    await _admit(call, jobs)
    ctx = call.req.context
    job_id = uuid.uuid4().hex
    await jobs.create(
        job_id=job_id,
        kind=kind,
        owner=ctx.principal,
        organization=ctx.organization,
        role=ctx.role,
        scopes=" ".join(sorted(ctx.scopes)),
        request=request_url(call.req),
        spec=spec_json,
        transaction_time=clock.now_us(),
    )
    if kind == "export":
        EXPORT_JOBS.labels("accepted").inc()
    if call.core.settings.redis_url:  # a worker starts it now, not at its next sweep
        await wake(call.core.settings, job_id)
    location = f"{call.req.base_url}/{status_path}/{job_id}"
    text = f"${kind} job {job_id} accepted: poll {location}"
    body = outcomes.outcome_json([outcomes.Issue("informational", text, "GW-1870", "information")])
    return FhirResponse(202, body, {"Content-Location": location})


async def export(call: Call) -> FhirResponse:
    req = call.req
    if call.res_type is not None and (call.res_type == "Group") != (call.res_id is not None):
        # the IG's levels: [base]/$export, [base]/Patient/$export, [base]/Group/[id]/$export
        where = f"{call.res_type}/{call.res_id}" if call.res_id else call.res_type
        raise outcomes.error(
            404, "not-supported", "GW-1017", f"$export is not an operation of {where}"
        )
    _respond_async(req)
    level = "group" if call.res_type == "Group" else "patient" if call.res_type else "system"
    spec = parse_export(req, level, call.res_id)
    if level == "group":
        await _group(call, spec)
    if level == "system" and not spec.types:
        everything = sorted(set(call.core.resource_types) - NOT_EXPORTED)
        spec.types = [t for t in everything if _readable(call, t)]
    elif req.context.access is not None:
        for t in spec.types:  # a type asked for that the token may not read: 403
            req.context.access.allow("search-type", t)
    for t, queries in spec.type_filters.items():
        for q in queries:  # checked now: a filter the search cannot run is a 400 here
            call.core.parse_search(t, filter_params(q))
    return await _start(call, "export", spec.to_json(), STATUS_PATH)


async def import_(call: Call) -> FhirResponse:
    from gateway.bulk.importer import parse_import

    _respond_async(call.req)
    spec = parse_import(call.req, call.core.settings)
    return await _start(call, "import", spec.to_json(), IMPORT_STATUS_PATH)


EXPORT = Operation(
    "export",
    export,
    frozenset({"system", "type", "instance"}),
    frozenset({"Patient", "Group"}),
    definition=EXPORT_DEFINITION,
)
IMPORT = Operation(
    "import",
    import_,
    frozenset({"system"}),
    methods=frozenset({"POST"}),
    definition="https://fhir.jtys.cn/OperationDefinition/import",
)
