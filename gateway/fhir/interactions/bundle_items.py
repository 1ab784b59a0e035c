"""Transaction and batch entries: parsing, sub-requests, response entries, error locations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.fhir.bundles import Entry
from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.responses import REASONS
from gateway.fhir.router import Call, _is_id
from gateway.store.model import Stored
from gateway.vocab import clock, outcomes
from gateway.vocab.outcomes import Issue, OperationOutcomeError

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
ENTRY_HEADERS = {
    "ifNoneMatch": "if-none-match",
    "ifModifiedSince": "if-modified-since",
    "ifMatch": "if-match",
    "ifNoneExist": "if-none-exist",
}


@dataclass(slots=True)
class Item:
    index: int
    method: str
    url: str
    full_url: str | None
    resource: dict[str, Any] | None
    headers: dict[str, str]
    where: str
    res_type: str | None = None
    res_id: str | None = None
    query: str | None = None  # conditional: "identifier=…"
    skip_write: bool = False  # conditional create that matched, conditional delete of nothing
    matched: Stored | None = None
    stored: Stored | None = None  # the version this entry wrote
    response: Entry | None = None
    # Reference objects holding conditional references, resolved after the writes.
    conditional_refs: list[dict[str, Any]] = field(default_factory=list)


def envelope(doc: Any) -> tuple[str, list[dict[str, Any]]]:
    if not isinstance(doc, dict) or doc.get("resourceType") != "Bundle":
        raise outcomes.bad_request(
            "POST to the base must be a Bundle of type batch or transaction", "Bundle", "GW-1200"
        )
    btype = doc.get("type")
    if btype not in ("batch", "transaction"):
        raise outcomes.bad_request(
            f"Bundle.type must be batch or transaction, not '{btype}'", "Bundle.type", "GW-1201"
        )
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise outcomes.bad_request("Bundle.entry must be an array", "Bundle.entry", "GW-1202")
    return btype, entries


def check_unique_full_urls(entries: list[Any]) -> None:
    """bdl-7: "FullUrl must be unique in a bundle, or else entries with the same fullUrl must
    have different meta.versionId" — two entries claiming one identity make references to it
    ambiguous."""
    seen: dict[tuple[str, Any], int] = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("fullUrl"), str):
            continue
        resource = entry.get("resource")
        meta = resource.get("meta") if isinstance(resource, dict) else None
        key = (entry["fullUrl"], meta.get("versionId") if isinstance(meta, dict) else None)
        if key in seen:
            raise outcomes.bad_request(
                f"Entries {seen[key]} and {i} have the same fullUrl '{key[0]}' (bdl-7)",
                f"Bundle.entry[{i}].fullUrl",
                "GW-1211",
            )
        seen[key] = i


def parse_item(i: int, entry: Any, base_url: str = "") -> Item:
    """One entry's request; `base_url`: an absolute request.url on this server is taken as
    the relative URL it names."""
    where = f"Bundle.entry[{i}]"
    if not isinstance(entry, dict):
        raise outcomes.bad_request("A Bundle entry must be an object", where, "GW-1203")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise outcomes.bad_request("Entry has no request", f"{where}.request", "GW-1204")
    method, url = request.get("method"), request.get("url")
    if method not in ORDER:
        raise outcomes.bad_request(
            f"Unsupported request.method '{method}'", f"{where}.request.method", "GW-1205"
        )
    if not isinstance(url, str) or not url:
        raise outcomes.bad_request("Entry has no request.url", f"{where}.request.url", "GW-1206")
    if base_url and url.startswith(base_url + "/"):
        url = url[len(base_url) + 1 :]
    headers: dict[str, str] = {}
    for key, header in ENTRY_HEADERS.items():
        value = request.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise outcomes.bad_request(
                f"request.{key} must be a string", f"{where}.request.{key}", "GW-1215"
            )
        headers[header] = value
    resource = entry.get("resource")
    if method in ("POST", "PUT") and resource is None:
        raise outcomes.bad_request(
            f"A {method} entry needs a resource", f"{where}.resource", "GW-1207"
        )
    full_url = entry.get("fullUrl")
    if full_url is not None and not isinstance(full_url, str):
        raise outcomes.bad_request(
            "fullUrl must be a string (a uri)", f"{where}.fullUrl", "GW-1214"
        )
    return Item(i, method, url, full_url, resource, headers, f"{where}.resource")


def sub_request(call: Call, it: Item, json_body: Any = None) -> FhirRequest:
    req = FhirRequest.from_url(
        it.method,
        it.url,
        headers={**it.headers, "prefer": call.req.header("prefer") or ""},
        json_body=json_body if json_body is not None else it.resource,
        base_url=call.req.base_url,
        context=call.req.context,
        in_bundle=True,
        where=it.where,
    )
    return req


def response_entry(resp: FhirResponse, include_resource: bool) -> Entry:
    response: dict[str, Any] = {"status": f"{resp.status} {REASONS.get(resp.status, '')}".strip()}
    fields: dict[str, Any] = {}
    h = resp.headers
    if "Location" in h:
        response["location"] = h["Location"]
        fields["fullUrl"] = h["Location"].split("/_history/", 1)[0]
    if "ETag" in h:
        response["etag"] = h["ETag"]
    if "Last-Modified" in h and (us := clock.parse_http_date(h["Last-Modified"])) is not None:
        response["lastModified"] = clock.to_instant(us)
    body = resp.body
    if resp.status >= 400:
        response["outcome"] = body if isinstance(body, dict) else orjson.loads(body or b"{}")
        return Entry({"response": response})
    fields["response"] = response
    return Entry(fields, body if include_resource else None)


def with_outcomes(entries: list[Entry], methods: list[str | None], prefer: str) -> list[Entry]:
    """`Prefer: return=OperationOutcome`: each successful write entry's response carries an
    OperationOutcome saying what was done, in place of the resource (R4 http.html#ops; reads
    keep their resources: Prefer return is about what a write sends back)."""
    if prefer != "OperationOutcome":
        return entries
    for e, method in zip(entries, methods, strict=True):
        if method not in ("POST", "PUT", "PATCH", "DELETE"):
            continue
        response = e.fields.get("response")
        if isinstance(response, dict) and "outcome" not in response:
            text = f"{response.get('status', '')} {response.get('location', '')}".strip()
            issue = Issue("informational", text, "GW-0003", severity="information")
            response["outcome"] = {"resourceType": "OperationOutcome", "issue": [issue.to_json()]}
            e.resource = None
    return entries


def error_entry(err: OperationOutcomeError) -> Entry:
    status = f"{err.status} {REASONS.get(err.status, '')}".strip()
    return Entry({"response": {"status": status, "outcome": err.outcome()}})


def located(err: OperationOutcomeError, it: Item) -> OperationOutcomeError:
    if any(i.expression for i in err.issues):
        return err
    issues = [
        Issue(
            i.code,
            f"Bundle.entry[{it.index}]: {i.diagnostics}",
            i.gw_code,
            i.severity,
            (f"Bundle.entry[{it.index}]",),
        )
        for i in err.issues
    ]
    return OperationOutcomeError(issues, err.status)


def check_shape(it: Item, parts: list[str]) -> None:
    """The URL forms the interaction allows (as outside a bundle): POST Type; PUT, PATCH,
    DELETE Type/id or Type?query; GET is routed like any request."""
    if it.method in ("GET", "HEAD"):
        return
    where = f"Bundle.entry[{it.index}].request.url"
    if it.method == "POST":
        ok = len(parts) == 1
    else:
        ok = (len(parts) == 2 and _is_id(parts[1]) and not it.query) or (
            len(parts) == 1 and bool(it.query)
        )
    if not ok:
        raise outcomes.bad_request(
            f"request.url '{it.url}' is not a valid target for {it.method}", where, "GW-1212"
        )


def parse_urls(items: list[Item]) -> None:
    """Type, id and condition of every entry's request.url; all bad entries reported at once."""
    issues: list[Issue] = []
    status = 400
    for it in items:
        try:
            path, _, query = it.url.partition("?")
            parts = [p for p in path.strip("/").split("/") if p]
            if not parts or not is_resource_type(parts[0]):
                raise outcomes.bad_request(
                    f"Unknown resource type in request.url '{it.url}'",
                    f"Bundle.entry[{it.index}].request.url",
                    "GW-1208",
                )
            it.res_type = parts[0]
            it.query = query or None
            if len(parts) > 1:
                it.res_id = parts[1]
            check_shape(it, parts)
        except OperationOutcomeError as err:
            issues.extend(err.issues)
            status = max(status, err.status)
    if issues:
        raise OperationOutcomeError(issues, status)


def stored_entry(call: Call, st: Stored, status: int, include: bool) -> Entry:
    fields: dict[str, Any] = {
        "fullUrl": f"{call.req.base_url}/{st.ref}",
        "response": {
            "status": f"{status} {REASONS[status]}",
            "location": f"{st.ref}/_history/{st.version}",
            "etag": st.etag,
            "lastModified": st.last_updated_instant,
        },
    }
    return Entry(fields, st.content if include else None)
