"""batch and transaction: POST / with a Bundle.

Transaction: all or nothing, one database transaction. Entries are processed in the spec's order
(DELETE, POST, PUT/PATCH, GET); `urn:uuid:` fullUrls and conditional references
(`Patient?identifier=…`) are resolved and rewritten before anything is written; creates, updates
and deletes are applied in one bulk write. Batch: each entry on its own, failing independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.fhir import outcomes
from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.outcomes import Issue, OperationOutcomeError
from gateway.fhir.parse import is_resource_type, parse_json
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.fhir.responses import REASONS, new_id, parse_etag, prefer_return
from gateway.fhir.router import Call, _is_id
from gateway.store.model import Stored, Write

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
_ENTRY_HEADERS = {
    "ifNoneMatch": "if-none-match",
    "ifModifiedSince": "if-modified-since",
    "ifMatch": "if-match",
    "ifNoneExist": "if-none-exist",
}


@dataclass(slots=True)
class _Item:
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
    skip_write: bool = False  # conditional create that matched
    matched: Stored | None = None
    response: Entry | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _envelope(doc: Any) -> tuple[str, list[dict[str, Any]]]:
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


def _item(i: int, entry: Any) -> _Item:
    where = f"Bundle.entry[{i}]"
    if not isinstance(entry, dict):
        raise outcomes.bad_request("A Bundle entry must be an object", where, "GW-1203")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise outcomes.bad_request("Entry has no request", f"{where}.request", "GW-1204")
    method, url = request.get("method"), request.get("url")
    if method not in _ORDER:
        raise outcomes.bad_request(
            f"Unsupported request.method '{method}'", f"{where}.request.method", "GW-1205"
        )
    if not isinstance(url, str) or not url:
        raise outcomes.bad_request("Entry has no request.url", f"{where}.request.url", "GW-1206")
    headers = {h: request[k] for k, h in _ENTRY_HEADERS.items() if isinstance(request.get(k), str)}
    resource = entry.get("resource")
    if method in ("POST", "PUT") and resource is None:
        raise outcomes.bad_request(
            f"A {method} entry needs a resource", f"{where}.resource", "GW-1207"
        )
    return _Item(i, method, url, entry.get("fullUrl"), resource, headers, f"{where}.resource")


def _sub_request(call: Call, item: _Item, json_body: Any = None) -> FhirRequest:
    req = FhirRequest.from_url(
        item.method,
        item.url,
        headers={**item.headers, "prefer": call.req.header("prefer") or ""},
        json_body=json_body if json_body is not None else item.resource,
        base_url=call.req.base_url,
        context=call.req.context,
        in_bundle=True,
        where=item.where,
    )
    return req


def _response_entry(resp: FhirResponse, include_resource: bool) -> Entry:
    response: dict[str, Any] = {"status": f"{resp.status} {REASONS.get(resp.status, '')}".strip()}
    h = resp.headers
    if "Location" in h:
        response["location"] = h["Location"]
    if "ETag" in h:
        response["etag"] = h["ETag"]
    body = resp.body
    if resp.status >= 400:
        response["outcome"] = body if isinstance(body, dict) else orjson.loads(body or b"{}")
        return Entry({"response": response})
    return Entry({"response": response}, body if include_resource else None)


def _error_entry(err: OperationOutcomeError) -> Entry:
    status = f"{err.status} {REASONS.get(err.status, '')}".strip()
    return Entry({"response": {"status": status, "outcome": err.outcome()}})


async def bundle(call: Call) -> FhirResponse:
    doc = call.req.json_body if call.req.json_body is not None else parse_json(call.req.body)
    btype, entries = _envelope(doc)
    if btype == "batch":
        return await _batch(call, entries)
    items = [_item(i, e) for i, e in enumerate(entries)]
    return await _transaction(call, items)


# --- batch -------------------------------------------------------------------------------
async def _batch(call: Call, entries: list[Any]) -> FhirResponse:
    include = prefer_return(call.req) == "representation"
    out: list[Entry] = []
    for i, raw in enumerate(entries):
        try:
            item = _item(i, raw)
            resp = await call.core.router.dispatch(call.core, _sub_request(call, item), call.repo)
            out.append(_response_entry(resp, include or item.method == "GET"))
        except OperationOutcomeError as err:
            out.append(_error_entry(err))
    return FhirResponse(200, assemble("batch-response", out))


# --- transaction -------------------------------------------------------------------------
async def _transaction(call: Call, items: list[_Item]) -> FhirResponse:
    _parse_urls(items)
    # Validation runs on the worker pool while ids are assigned (it snapshots the resources
    # first, so rewriting references afterwards cannot race with it).
    validated = call.core.validation.start(
        [(it.resource, it.res_type, it.where) for it in items if it.method in ("POST", "PUT")]
    )
    include = prefer_return(call.req) == "representation"
    async with call.repo.transaction() as tx:
        try:
            idmap = await _assign_ids(call, tx, items)
        finally:
            await validated  # every invalid entry is reported, before any other error
        await _rewrite_references(call, tx, items, idmap)
        ordered = sorted(items, key=lambda it: (_ORDER[it.method], it.index))
        await _bulk_write(
            call, tx, [it for it in ordered if it.method in ("DELETE", "POST", "PUT")]
        )
        for it in ordered:
            if it.method in ("PATCH", "GET", "HEAD"):
                try:
                    resp = await call.core.router.dispatch(call.core, _sub_request(call, it), tx)
                except OperationOutcomeError as err:
                    raise _located(err, it) from None  # any failing entry fails the whole
                it.response = _response_entry(resp, include or it.method != "PATCH")
    entries = [it.response or Entry({"response": {"status": "200 OK"}}) for it in items]
    return FhirResponse(200, assemble("transaction-response", entries))


def _located(err: OperationOutcomeError, it: _Item) -> OperationOutcomeError:
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


def _check_shape(it: _Item, parts: list[str]) -> None:
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


def _parse_urls(items: list[_Item]) -> None:
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
            _check_shape(it, parts)
        except OperationOutcomeError as err:
            issues.extend(err.issues)
            status = max(status, err.status)
    if issues:
        raise OperationOutcomeError(issues, status)


async def _assign_ids(call: Call, tx, items: list[_Item]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """fullUrl → 'Type/id' for every entry that creates or names a resource."""
    idmap: dict[str, str] = {}
    seen: dict[tuple[str, str], int] = {}
    for it in items:
        assert it.res_type
        if it.method == "POST":
            cond = it.headers.get("if-none-exist")
            matches = (
                await call.core.conditional_match(tx, it.res_type, cond, lock=True) if cond else []
            )
            if len(matches) > 1:
                raise _located(
                    outcomes.multiple_matches(
                        f"ifNoneExist '{cond}' matches {len(matches)} resources"
                    ),
                    it,
                )
            if matches:
                it.skip_write, it.matched, it.res_id = True, matches[0], matches[0].res_id
            else:
                it.res_id = new_id()
        elif it.method in ("PUT", "DELETE", "PATCH") and it.query:
            matches = await call.core.conditional_match(tx, it.res_type, it.query, lock=True)
            if len(matches) > 1:
                raise _located(
                    outcomes.multiple_matches(
                        f"Conditional {it.method} '{it.url}' matches {len(matches)} resources"
                    ),
                    it,
                )
            if matches:
                it.res_id, it.matched = matches[0].res_id, matches[0]
            elif it.method == "PUT":
                it.res_id = (it.resource or {}).get("id") or new_id()
            else:
                it.skip_write = True
        if it.method in ("POST", "PUT", "DELETE", "PATCH") and it.res_id:
            key = (it.res_type, it.res_id)
            if key in seen and not it.skip_write:
                raise outcomes.bad_request(
                    f"Entries {seen[key]} and {it.index} both change {key[0]}/{key[1]}",
                    f"Bundle.entry[{it.index}]",
                    "GW-1209",
                )
            seen[key] = it.index
        if it.full_url and it.res_id and it.method in ("POST", "PUT"):
            idmap[it.full_url] = f"{it.res_type}/{it.res_id}"
            if it.full_url.startswith(call.req.base_url + "/"):
                idmap[it.full_url[len(call.req.base_url) + 1 :]] = idmap[it.full_url]
    return idmap


async def _rewrite_references(call: Call, tx, items: list[_Item], idmap: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    cache: dict[str, str] = {}

    async def resolve(ref: str, where: str) -> str | None:
        if ref in idmap:
            return idmap[ref]
        if ref.startswith("urn:uuid:") or ref.startswith("urn:oid:"):
            raise outcomes.bad_request(
                f"Reference '{ref}' does not match any fullUrl in this transaction",
                where,
                "GW-1210",
            )
        rtype, q, query = ref.partition("?")
        if q and is_resource_type(rtype):
            if ref not in cache:
                matches = await call.core.conditional_match(tx, rtype, query)
                if len(matches) != 1:
                    raise outcomes.error(
                        412 if matches else 404,
                        "multiple-matches" if matches else "not-found",
                        "GW-1211",
                        f"Conditional reference '{ref}' matches {len(matches)} resources "
                        "(exactly one is required)",
                        where,
                    )
                cache[ref] = matches[0].ref
            return cache[ref]
        return None

    async def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "reference" and isinstance(v, str):
                    new = await resolve(v, f"{path}.reference")
                    if new is not None:
                        node[k] = new
                elif isinstance(v, (dict, list)):
                    await walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                if isinstance(v, (dict, list)):
                    await walk(v, f"{path}[{i}]")

    for it in items:
        if it.resource is not None and it.method in ("POST", "PUT"):
            await walk(it.resource, it.where)


async def _bulk_write(call: Call, tx, items: list[_Item]) -> None:  # type: ignore[no-untyped-def]
    writes: list[Write] = []
    targets: list[_Item] = []
    for it in items:
        assert it.res_type
        if it.skip_write:
            if it.matched is not None:  # conditional create matched an existing resource
                it.response = _stored_entry(call, it.matched, 200, include=False)
            else:
                it.response = Entry({"response": {"status": "204 No Content"}})
            continue
        assert it.res_id
        expected = parse_etag(it.headers.get("if-match"))
        if it.method == "PUT" and (it.resource or {}).get("id") not in (None, it.res_id):
            raise outcomes.id_mismatch(
                f"Resource id '{it.resource.get('id')}' does not match request.url '{it.url}'",  # type: ignore[union-attr]
                f"{it.where}.id",
            )
        writes.append(
            Write(
                it.res_type,
                it.res_id,
                it.resource if it.method != "DELETE" else None,
                it.method,
                expected_version=expected,
                create_only=it.method == "POST",
            )
        )
        targets.append(it)
    results = await tx.apply(writes)
    include = prefer_return(call.req) == "representation"
    for it, stored in zip(targets, results, strict=True):
        if it.method == "DELETE":
            it.response = Entry({"response": {"status": "204 No Content"}})
        else:
            assert stored is not None
            it.response = _stored_entry(call, stored, 201 if stored.created else 200, include)


def _stored_entry(call: Call, st: Stored, status: int, include: bool) -> Entry:
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
