"""The HL7 v2 corpus (tests/hl7v2/messages/): each `<case>.hl7` (made by make_corpus.py) and
`<case>.expected.json`: the acknowledgement code, the problems (segment and field) of a
refused message, and the transaction Bundle an accepted one becomes (fullUrls named by type
and order, so that the expected file stays the same). After changing a spec:
`GATEWAY_UPDATE_FIXTURES=1 pytest tests/hl7v2/test_corpus.py`, then review the diff."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.hl7v2.config import config
from gateway.hl7v2.er7 import MessageError
from gateway.hl7v2.plan import plan_message

MESSAGES = Path(__file__).parent / "messages"
RECEIVED = "2026-12-03 10:00:00+08:00"
UPDATE = os.environ.get("GATEWAY_UPDATE_FIXTURES") == "1"


def cases() -> list[str]:
    return sorted(p.stem for p in MESSAGES.glob("*.hl7"))


def raw(case: str) -> bytes:
    return (MESSAGES / f"{case}.hl7").read_bytes()


def expected(case: str) -> dict[str, Any]:
    return dict(json.loads((MESSAGES / f"{case}.expected.json").read_text(encoding="utf-8")))


def mapped(case: str) -> dict[str, Any]:
    """What the message becomes, in the expected file's form."""
    try:
        plan = plan_message(raw(case), None, config(), RECEIVED)
    except MessageError as exc:
        where = f"{exc.segment}-{exc.field_no}" if exc.segment else "message"
        return {"problems": [{"where": where, "code": exc.code, "text": str(exc)}]}
    if plan.problems:
        return {
            "problems": [
                {"where": p.where.label(), "code": p.code, "text": p.message} for p in plan.problems
            ]
        }
    names: dict[str, str] = {}
    for entry in plan.entries:
        kind = entry["resource"]["resourceType"]
        names[entry["fullUrl"]] = (
            f"urn:uuid:{kind}-{sum(1 for n in names.values() if kind in n) + 1}"
        )
    entries = [_renamed(e, names) for e in plan.entries]
    return {"type": plan.rule.name, "control_id": plan.control_id, "entry": entries}


def _renamed(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _renamed(v, names) for k, v in node.items()}
    if isinstance(node, list):
        return [_renamed(v, names) for v in node]
    if isinstance(node, str):
        return names.get(node, node)
    if isinstance(node, Decimal):
        return {"decimal": str(node)}  # the text as written, kept apart from floats
    return node


def write_expected(case: str, value: dict[str, Any]) -> None:
    (MESSAGES / f"{case}.expected.json").write_text(
        json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
