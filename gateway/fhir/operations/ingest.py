"""$ingest: records exported by regional systems, mapped (gateway.mapping), validated and
stored. `POST [base]/$ingest?source={mapping}` with the records as JSON (one object or an
array) or CSV (UTF-8 or GB18030; `charset` in the content type or as a parameter).

`offset=n` numbers the records from n + 1 (a file sent in chunks keeps its numbering).
`mode=record` (the default): one transaction per record, so one bad record rejects only
itself; `mode=atomic`: one transaction for all, nothing stored unless every record is.
The answer is a Parameters resource (OperationDefinition/ingest): counts, and per record its
number, key, status (stored | updated | rejected), the resources created or updated, and an
OperationOutcome with its problems located at `record[n].字段`. A request that cannot be read,
or an atomic request that fails, answers with an OperationOutcome and its error status.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.fhir.operations import Operation
from gateway.fhir.operations.ingest_report import parameters
from gateway.fhir.operations.ingest_write import Writer
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.router import Call
from gateway.hl7v2.answer import ingest_messages
from gateway.mapping.plan import map_record
from gateway.mapping.record import UNKNOWN_FIELD, unknown_fields
from gateway.mapping.registry import mappings
from gateway.mapping.sources import SourceError, charset_of, media_kind, read_records
from gateway.mapping.spec import Spec
from gateway.vocab import outcomes
from gateway.vocab.outcomes import Issue

MODES = ("record", "atomic")


async def ingest(call: Call) -> FhirResponse:
    req = call.req
    if req.param("source") == "hl7v2":
        return await _hl7v2(call)
    spec = _spec(req.param("source"))
    mode = req.param("mode") or "record"
    if mode not in MODES:
        raise outcomes.bad_request(f"mode must be one of {', '.join(MODES)}", "mode", "GW-1712")
    body = req.body or b""
    content_type = req.header("content-type")
    try:
        records = read_records(
            body, media_kind(content_type, body), req.param("charset") or charset_of(content_type)
        )
    except SourceError as exc:
        raise outcomes.bad_request(f"The records cannot be read: {exc}", None, "GW-1713") from None
    first = _offset(req.param("offset")) + 1
    mapped = [map_record(spec, record, n) for n, record in enumerate(records, first)]
    writer = Writer(call)
    if mode == "atomic":
        results = await writer.atomic(mapped)
    else:
        results = await writer.records(mapped)
    return FhirResponse(200, parameters(spec.name, mode, results, _notes(spec, records)))


async def _hl7v2(call: Call) -> FhirResponse:
    """HL7 v2 messages (gateway.hl7v2): each one transaction through the core, acknowledged
    (the ACK/NAK sent over MLLP is in the answer too); the charset is MSH-18's, else the
    content type's or the `charset` parameter's."""
    req = call.req

    async def transact(bundle: dict[str, Any]) -> dict[str, Any]:
        sub = FhirRequest(
            method="POST",
            path="",
            headers={"prefer": "return=minimal"},
            json_body=bundle,
            base_url=req.base_url,
            context=req.context,
        )
        slot = req.context.audit
        saved = (slot.interaction, slot.res_type, slot.res_id) if slot is not None else None
        try:
            resp = await call.core.router.dispatch(call.core, sub, call.repo)
        finally:
            if slot is not None and saved is not None:  # the request's AuditEvent: $ingest
                slot.interaction, slot.res_type, slot.res_id = saved
        answer = resp.body if isinstance(resp.body, bytes) else orjson.dumps(resp.body)
        return dict(orjson.loads(answer))

    charset = req.param("charset") or charset_of(req.header("content-type"))
    status, body = await ingest_messages(req.body or b"", charset, transact)
    return FhirResponse(status, body)


def _offset(value: str | None) -> int:
    """Records are numbered from offset + 1: a client sending a file in chunks keeps the
    file's numbering in every answer."""
    if value is None:
        return 0
    if not value.isdigit():
        raise outcomes.bad_request("offset is a whole number", "offset", "GW-1712")
    return int(value)


def _spec(name: str | None) -> Spec:
    specs = mappings()
    if not name:
        raise outcomes.bad_request(
            f"$ingest needs source (one of {', '.join(specs)})", "source", "GW-1711"
        )
    spec = specs.get(name)
    if spec is None:
        raise outcomes.error(
            404,
            "not-found",
            "GW-1711",
            f"No mapping '{name}' (mappings: {', '.join(specs)})",
            "source",
        )
    return spec


def _notes(spec: Spec, records: list[object]) -> list[Issue]:
    """Columns the mapping does not know, once per request: a misspelt header is a warning,
    not silence."""
    seen: list[str] = []
    for record in records:
        seen += [f for f in unknown_fields(spec, record) if f not in seen]
    return [
        Issue(
            "informational",
            f"'{name}' is not a field of mapping {spec.name}: ignored",
            UNKNOWN_FIELD,
            "warning",
        )
        for name in seen
    ]


INGEST = Operation(
    "ingest",
    ingest,
    frozenset({"system"}),
    methods=frozenset({"POST"}),
    definition="https://fhir.jtys.cn/OperationDefinition/ingest",
)
