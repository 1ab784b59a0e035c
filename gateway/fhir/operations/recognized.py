"""$recognized-results: which of a patient's results a requesting institution must accept
(检查检验结果互认), `GET [base]/Patient/{id}/$recognized-results?requester=Organization/X
&code=system|code[,…]&date=YYYY-MM-DD` (date: the day of the decision, default today in China).

A Bundle of type collection: for each requested test, the most recent result the requester must
accept (search.mode match), or an OperationOutcome (information, not-found) saying why the most
recent candidate does not qualify. The rules: gateway.recognition. Results are read as the
client may see them; the institutions' levels, alliances and qualifications as the rules do
(whatever the client may see).

The candidates: one search (both result types, all asked tests, no count) for the results
within the widest window of the asked tests, grouped per test and sorted here; a test with none
in its window is answered `expired` when an older result exists (one `_count=1` search). Only
when that page is full (more than `max_page_size` results in the window) is each test searched
alone for its newest `_CANDIDATES`.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import orjson

from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.operations import Operation
from gateway.fhir.operations.params import operation_params
from gateway.fhir.request import FhirResponse
from gateway.fhir.router import Call
from gateway.recognition import rules as recognition_rules
from gateway.recognition.decide import (
    EXPIRED,
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

_CANDIDATES = 20  # the newest results of each type looked at per test, beyond a full page
_RESULT_TYPES = ("Observation", "DiagnosticReport")
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

    async def preload(self, refs: list[str]) -> None:
        """Read these literal references (`Type/id`) in one statement."""
        keys = []
        for ref in refs:
            parts = ref.split("/")
            if "?" not in ref and len(parts) >= 2 and f"{parts[-2]}/{parts[-1]}" not in self.cache:
                keys.append((parts[-2], parts[-1]))
        if not keys:
            return
        found = await self.repo.read_many(sorted(set(keys)))
        for key in keys:
            st = found.get(key)
            doc = orjson.loads(st.content) if st and not st.deleted else None
            self.cache[f"{key[0]}/{key[1]}"] = doc

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


def _query(
    patient: str, codes: list[str], on: date, since: date | None, count: int
) -> list[tuple[str, str]]:
    query = [
        ("patient", patient),
        ("code", ",".join(codes)),
        ("date", f"le{on.isoformat()}"),
        ("_count", str(count)),
        ("_total", "none"),  # the number of matches is not needed, and counting costs a scan
    ]
    if since is None:
        query.append(("_sort", "-date"))  # the newest `count`
    else:  # every match within the window, sorted here
        query.append(("date", f"ge{since.isoformat()}"))
    return query


Found = tuple[Stored, dict[str, Any]]  # a result as stored, and read


async def _search(call: Call, query: list[tuple[str, str]]) -> tuple[list[Found], bool]:
    """Observations and DiagnosticReports matching `query` (as the client may see them),
    newest first; and whether a page was full (older matches left out)."""
    found: list[tuple[date, Found]] = []
    if any(k == "_sort" for k, _ in query):  # a sort is per type
        searches = [call.core.parse_search(t, query) for t in _RESULT_TYPES]
    else:  # both types in one statement
        searches = [call.core.parse_search(None, query, types=list(_RESULT_TYPES))]
    full = False
    for sr in searches:
        page = await call.core.search(call.repo, sr)
        full = full or len(page.matches) >= sr.count
        for st in page.matches:
            result = orjson.loads(st.content)
            found.append((result_day(result) or date.min, (st, result)))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return [f for _, f in found], full


async def _in_windows(
    call: Call, patient: str, items: list[Item], on: date, windows: dict[str, int]
) -> tuple[dict[str, list[Found]], bool]:
    """Every result of the asked items within the widest of their windows, newest first, per
    item: one search per result type for all of them (older results are expired anyway)."""
    codes = [c for item in items for c in item.codes]
    since = on - timedelta(days=max(windows[i.name] for i in items))
    limit = call.core.settings.max_page_size
    found, full = await _search(call, _query(patient, codes, on, since, limit))
    by_code = {c: item.name for item in items for c in item.codes}
    per_item: dict[str, list[Found]] = {item.name: [] for item in items}
    for st, result in found:
        for c in (result.get("code") or {}).get("coding") or []:
            name = by_code.get(f"{c.get('system')}|{c.get('code')}")
            if name is not None:
                per_item[name].append((st, result))
                break
    return per_item, full


async def _answer(
    call: Call,
    patient: str,
    token: str,
    item: Item,
    candidates: list[Found] | None,
    requester: Institution,
    on: date,
    resolve: _Resolver,
) -> Entry:
    """The newest candidate the requester must accept, or why the newest does not qualify.
    `candidates`: every result of the item within the window, newest first (None: unknown,
    the newest `_CANDIDATES` of this item are searched for)."""
    recognition = recognition_rules.cached(call.core.settings.profiles_dir / "policy")
    windowed = candidates is not None
    if candidates is None:
        candidates, _ = await _search(call, _query(patient, item.codes, on, None, _CANDIDATES))
    first: tuple[str, str] | None = None
    for st, result in candidates:
        lab = await performing_lab(result, resolve)
        decision = decide(result, lab, requester, on, recognition)
        if decision.recognised:
            url = f"{call.req.base_url}/{st.ref}"
            return Entry({"fullUrl": url, "search": {"mode": "match"}}, st.content)
        first = first or (str(decision.reason), st.ref)
    if first is None and windowed:  # none within the window: the newest before it, if any
        older, _ = await _search(call, _query(patient, item.codes, on, None, 1))
        if older:
            return Entry({}, _outcome(EXPIRED, token, older[0][0].ref))
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
    recognition = recognition_rules.cached(call.core.settings.profiles_dir / "policy")
    region = recognition.region_for(requester.division)
    asked: list[tuple[str, Item | None]] = []
    for token in (t.strip() for t in codes.split(",")):
        if token:
            system, sep, code = token.rpartition("|")
            rules = recognition.rules
            asked.append((token, rules.item_for(system, code) if sep else rules.item_by_code(code)))
    items = list({item.name: item for _, item in asked if item is not None}.values())
    windows = {item.name: recognition.days(item, region) for item in items}
    per_item: dict[str, list[Found]] = {}
    full = False
    if items:
        per_item, full = await _in_windows(call, patient.ref, items, on, windows)
        await resolve.preload(  # the performers of every candidate, in one read
            [
                p["reference"]
                for found in per_item.values()
                for _, result in found
                for p in result.get("performer") or []
                if isinstance(p, dict) and isinstance(p.get("reference"), str)
            ]
        )
    entries = []
    for token, item in asked:
        if item is None:
            entries.append(Entry({}, _outcome(NOT_RECOGNISABLE, token, None)))
            continue
        candidates = None if full else per_item[item.name]
        entries.append(
            await _answer(call, patient.ref, token, item, candidates, requester, on, resolve)
        )
    return FhirResponse(200, assemble("collection", entries, total=None))


RECOGNIZED_RESULTS = Operation(
    "recognized-results",
    recognized_results,
    frozenset({"instance"}),
    types=frozenset({"Patient"}),
    methods=frozenset({"GET"}),
    definition="https://fhir.jtys.cn/OperationDefinition/recognized-results",
)
