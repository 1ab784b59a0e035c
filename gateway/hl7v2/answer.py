"""What `POST [base]/$ingest?source=hl7v2` answers, in the style of every $ingest answer
(gateway/fhir/operations/ingest_report.py): a Parameters with the counts and, per message
(`record`), its number, key (the message control ID), status (stored | updated | rejected),
the resources created and updated, the acknowledgement sent over MLLP for it (`ack`, ER7) and
an OperationOutcome locating its problems at the segment and field (`OBX[2]-5`)."""

from __future__ import annotations

from typing import Any

from gateway.hl7v2.receive import Received, Transact, receive, split_messages

STORED, UPDATED, REJECTED = "stored", "updated", "rejected"


async def ingest_messages(
    body: bytes, transport_charset: str | None, transact: Transact
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, Parameters or OperationOutcome): every message its own transaction."""
    messages = list(split_messages(body))
    if not messages or not messages[0].lstrip().startswith(b"MSH"):
        return 400, {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": "structure",
                    "diagnostics": "The body holds no HL7 v2 message (a message starts with MSH)",
                    "location": ["message[1]"],
                }
            ],
        }
    results = [await receive(raw, transport_charset, transact) for raw in messages]
    return 200, parameters(results)


def status_of(r: Received) -> str:
    if not r.ok:
        return REJECTED
    # stored: the message made a new resource (beyond its own audit copy, the
    # DocumentReference); updated: it changed what earlier messages stored
    made = [c for c in r.created if not c.startswith("DocumentReference/")]
    return STORED if made else UPDATED


def parameters(results: list[Received]) -> dict[str, Any]:
    counts = {s: sum(1 for r in results if status_of(r) == s) for s in (STORED, UPDATED, REJECTED)}
    params: list[dict[str, Any]] = [
        {"name": "source", "valueCode": "hl7v2"},
        {"name": "mode", "valueCode": "record"},
        *({"name": s, "valueInteger": n} for s, n in counts.items()),
    ]
    for number, r in enumerate(results, 1):
        parts: list[dict[str, Any]] = [{"name": "number", "valueInteger": number}]
        if r.control_id:
            parts.append({"name": "key", "valueString": r.control_id})
        parts.append({"name": "status", "valueCode": status_of(r)})
        if r.message_type:
            parts.append({"name": "type", "valueCode": r.message_type})
        parts += [{"name": "created", "valueReference": {"reference": x}} for x in r.created]
        parts += [{"name": "updated", "valueReference": {"reference": x}} for x in r.updated]
        parts.append({"name": "ack", "valueString": r.ack.decode(_codec(r), errors="replace")})
        if r.issues:
            for issue in r.issues:
                issue["location"] = [f"message[{number}].{loc}" for loc in issue["location"]]
            outcome = {"resourceType": "OperationOutcome", "issue": r.issues}
            parts.append({"name": "outcome", "resource": outcome})
        params.append({"name": "record", "part": parts})
    return {"resourceType": "Parameters", "parameter": params}


def _codec(r: Received) -> str:
    return r.codec
