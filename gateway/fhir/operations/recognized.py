"""$recognized-results: which of a patient's results a requesting institution must accept
(检查检验结果互认), `GET [base]/Patient/{id}/$recognized-results?requester=Organization/X
&code=system|code[,…]&date=YYYY-MM-DD` (date: the day of the decision, default today in China).

A Bundle of type collection: for each requested test, the most recent result the requester must
accept (search.mode match), or an OperationOutcome (information, not-found) saying why the most
recent candidate does not qualify. The rules: gateway.recognition. Results are read as the
client may see them; the institutions' levels, alliances and qualifications as the rules do
(whatever the client may see).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.operations import Operation
from gateway.fhir.operations.params import operation_params
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.recognition import rules as recognition_rules
from gateway.recognition.decide import (
    NOT_RECOGNISABLE,
    REASONS,
    china_today,
    decide,
    result_day,
)
from gateway.recognition.institutions import Institution, institution, performing_lab
from gateway.recognition.rules import Item
from gateway.store.model import Stored
from gateway.store.repository import Repository
from gateway.vocab import outcomes
from gateway.vocab.context import RequestContext

_CANDIDATES = 20  # the newest results of each type looked at per test
_REASON_SYSTEM = "urn:fhir-gateway:recognition-reason"
_MESSAGE = {
    "not-recognisable": "POL-2401",
    "expired": "POL-2402",
    "lab-not-qualified": "POL-2403",
    "outside-scope": "POL-2404",
    "hierarchy": "POL-2405",
}


class _Resolver:
    """References → resources as the rules read them (all, whatever the client may see)."""

    def __init__(self, repo: Repository):
        self.repo = Repository(repo.store, RequestContext.system(), repo.conn)
        self.cache: dict[str, dict[str, Any] | None] = {}

    async def __call__(self, ref: str) -> dict[str, Any] | None:
        parts = ref.split("?")[0].split("/")
        if "?" in ref or len(parts) < 2:
            return None
        key = f"{parts[-2]}/{parts[-1]}"
        if key not in self.cache:
            st = await self.repo.read(parts[-2], parts[-1])
            self.cache[key] = orjson.loads(st.content) if st and not st.deleted else None
        return self.cache[key]


def _day(params: dict[str, Any]) -> date:
    raw = params.get("date")
    if raw is None:
        return china_today()
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        raise outcomes.bad_request(f"date {raw!r} is not YYYY-MM-DD", "date", "POL-2408") from None


def _outcome(reason: str, code: str, about: str | None) -> dict[str, Any]:
    zh, en = REASONS[reason]
    text = f"{code}: {zh} ({en})" + (f": {about}" if about else "")
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "not-found",
                "details": {
                    "coding": [
                        {"system": "urn:fhir-gateway:message-codes", "code": _MESSAGE[reason]},
                        {"system": _REASON_SYSTEM, "code": reason},
                    ],
                    "text": text,
                },
                "diagnostics": text,
            }
        ],
    }


async def _candidates(call: Call, patient: str, item: Item, on: date) -> list[Stored]:
    query = [
        ("patient", patient),
        ("code", ",".join(item.codes)),
        ("date", f"le{on.isoformat()}"),
        ("_sort", "-date"),
        ("_count", str(_CANDIDATES)),
    ]
    found: list[tuple[date, Stored]] = []
    for res_type in ("Observation", "DiagnosticReport"):
        sr = call.core.parse_search(res_type, query)
        for st in (await call.core.search(call.repo, sr)).matches:
            taken = result_day(orjson.loads(st.content))
            found.append((taken or date.min, st))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [st for _, st in found]


async def _answer(
    call: Call, patient: str, token: str, requester: Institution, on: date, resolve: _Resolver
) -> Entry:
    recognition = recognition_rules.cached(call.core.settings.profiles_dir / "policy")
    system, sep, code = token.rpartition("|") if "|" in token else ("", "", token)
    rules = recognition.rules
    item = rules.item_for(system, code) if sep else rules.item_by_code(code)
    if item is None:
        return Entry({}, _outcome(NOT_RECOGNISABLE, token, None))
    first: tuple[str, str] | None = None
    for st in await _candidates(call, patient, item, on):
        result = orjson.loads(st.content)
        lab = await performing_lab(result, resolve)
        decision = decide(result, lab, requester, on, recognition)
        if decision.recognised:
            url = f"{call.req.base_url}/{st.ref}"
            return Entry({"fullUrl": url, "search": {"mode": "match"}}, st.content)
        first = first or (str(decision.reason), st.ref)
    if first is None:
        return Entry({}, _no_result(token))
    return Entry({}, _outcome(first[0], token, first[1]))


def _no_result(token: str) -> dict[str, Any]:
    text = f"{token}: 未找到该患者的结果 (the patient has no result of this test)"
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "information",
                "code": "not-found",
                "details": {
                    "coding": [{"system": "urn:fhir-gateway:message-codes", "code": "POL-2406"}],
                    "text": text,
                },
                "diagnostics": text,
            }
        ],
    }


async def recognized_results(call: Call) -> FhirResponse:
    assert call.res_id
    patient = await call.repo.read("Patient", call.res_id)
    if patient is None:
        raise outcomes.not_found("Patient", call.res_id)
    if patient.deleted:
        raise outcomes.gone("Patient", call.res_id, patient.version)
    params = operation_params(call.req)
    requester_ref, codes = params.get("requester"), params.get("code")
    if not isinstance(requester_ref, str) or not requester_ref.startswith("Organization/"):
        raise outcomes.bad_request(
            "requester=Organization/{id} is required", "requester", "POL-2407"
        )
    if not isinstance(codes, str) or not codes.strip():
        raise outcomes.bad_request("code=system|code[,…] is required", "code", "POL-2407")
    on = _day(params)
    resolve = _Resolver(call.repo)
    requester = await institution(requester_ref, resolve)
    if requester is None:
        raise outcomes.bad_request(f"{requester_ref} is not known", "requester", "POL-2407")
    entries = [
        await _answer(call, patient.ref, token.strip(), requester, on, resolve)
        for token in codes.split(",")
        if token.strip()
    ]
    return FhirResponse(200, assemble("collection", entries, total=None))


RECOGNIZED_RESULTS = Operation(
    "recognized-results",
    recognized_results,
    frozenset({"instance"}),
    types=frozenset({"Patient"}),
    methods=frozenset({"GET"}),
    definition="https://fhir.jtys.cn/OperationDefinition/recognized-results",
)
