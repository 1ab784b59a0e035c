"""transaction: a Bundle's entries applied all or nothing, in one database transaction.

The spec's order (R4 http.html, transaction processing rules), each step seeing the previous
ones because they share the transaction:
1. DELETE entries (conditional deletes matched first);
2. POST entries: ifNoneExist is evaluated now, after the deletes; ids are assigned;
3. PUT and PATCH entries (conditional updates matched after the deletes too);
4. GET entries, on the state the writes left;
5. conditional references (`Patient?identifier=…`) are resolved, so they can name resources
   the same transaction created; the versions holding them are amended in place.
Links to `urn:uuid:` fullUrls are rewritten before the writes (gateway.fhir.bundle_links).
Entries are validated on the worker pool first, before the transaction takes a connection (and
on SQLite the write lock); every invalid entry is reported together, before any other error.
POST and PUT entries are written in one bulk write.
"""

from __future__ import annotations

from gateway.fhir.bundle_links import UnresolvedLink, path_to, placeholders_of, rewrite_links
from gateway.fhir.bundles import Entry, assemble
from gateway.fhir.interactions.bundle_items import (
    ORDER,
    Item,
    located,
    parse_urls,
    response_entry,
    stored_entry,
    sub_request,
    with_outcomes,
)
from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirResponse
from gateway.fhir.responses import new_id, parse_if_match, prefer_return
from gateway.fhir.router import Call
from gateway.store.model import Write
from gateway.store.repository import Repository
from gateway.vocab import outcomes
from gateway.vocab.outcomes import OperationOutcomeError

_NO_CONTENT = {"response": {"status": "204 No Content"}}


async def transaction(call: Call, items: list[Item]) -> FhirResponse:
    parse_urls(items)
    # Every resource is validated (on the worker pool) before the transaction takes a
    # connection, or on SQLite the write lock: under load, waiting for validation must not
    # hold them. Every invalid entry is reported together, before any other error.
    await call.core.validation.validate(
        [
            (it.resource, it.res_type, it.where)
            for it in items
            if it.method in ("POST", "PUT") and it.resource is not None  # checked when read
        ]
    )
    include = prefer_return(call.req) == "representation"
    ordered = sorted(items, key=lambda it: (ORDER[it.method], it.index))
    async with call.repo.transaction() as tx:
        await _deletes(call, tx, [it for it in ordered if it.method == "DELETE"])
        idmap = await _identities(call, tx, ordered)
        _rewrite_links(call, items, idmap)
        writes = [it for it in ordered if it.method in ("POST", "PUT")]
        await _writes(call, tx, writes, include)
        for it in ordered:
            if it.method == "PATCH":
                await _dispatch(call, tx, it, include)
        if any(it.conditional_refs for it in items):
            await _resolve_conditional_references(call, tx, items, include)
        for it in ordered:
            if it.method in ("GET", "HEAD"):
                await _dispatch(call, tx, it, True)
    entries = [it.response or Entry({"response": {"status": "200 OK"}}) for it in items]
    entries = with_outcomes(entries, [it.method for it in items], prefer_return(call.req))
    return FhirResponse(200, assemble("transaction-response", entries))


async def _dispatch(call: Call, tx: Repository, it: Item, include: bool) -> None:
    try:
        resp = await call.core.router.dispatch(call.core, sub_request(call, it), tx)
    except OperationOutcomeError as err:
        raise located(err, it) from None  # any failing entry fails the whole
    it.response = response_entry(resp, include)


async def _single_match(call: Call, tx: Repository, it: Item, query: str, what: str) -> None:
    """Resolve a conditional entry to at most one resource (it.matched, it.res_id)."""
    assert it.res_type
    matches = await call.core.conditional_match(tx, it.res_type, query, lock=True)
    if len(matches) > 1:
        raise located(
            outcomes.multiple_matches(f"{what} '{query}' matches {len(matches)} resources"), it
        )
    if matches:
        it.matched, it.res_id = matches[0], matches[0].res_id


async def _deletes(call: Call, tx: Repository, items: list[Item]) -> None:
    writes: list[Write] = []
    for it in items:
        assert it.res_type
        if it.query:
            await _single_match(call, tx, it, it.query, "Conditional DELETE")
        it.response = Entry(dict(_NO_CONTENT))
        if it.res_id is None:
            it.skip_write = True  # a conditional delete that matched nothing
            continue
        expected = parse_if_match(it.headers.get("if-match"))
        writes.append(Write(it.res_type, it.res_id, None, "DELETE", expected_version=expected))
    if writes:
        await tx.apply(writes)


async def _identities(call: Call, tx: Repository, ordered: list[Item]) -> dict[str, str]:
    """Resolve ifNoneExist and conditional PUT/PATCH (after the deletes), assign ids, reject
    two entries changing one resource; returns fullUrl → 'Type/id'."""
    idmap: dict[str, str] = {}
    seen: dict[tuple[str, str], int] = {}
    for it in ordered:
        assert it.res_type
        if it.method == "POST":
            cond = it.headers.get("if-none-exist")
            if cond:
                await _single_match(call, tx, it, cond, "ifNoneExist")
            if it.matched is not None:
                it.skip_write = True
            else:
                it.res_id = new_id()
        elif it.method in ("PUT", "PATCH") and it.query:
            await _single_match(call, tx, it, it.query, f"Conditional {it.method}")
            if it.res_id is None and it.method == "PUT":
                it.res_id = (it.resource or {}).get("id") or new_id()
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


def _is_conditional(ref: str) -> bool:
    rtype, q, _ = ref.partition("?")
    return bool(q) and is_resource_type(rtype)


def _rewrite_links(call: Call, items: list[Item], idmap: dict[str, str]) -> None:
    placeholders = placeholders_of(idmap)
    for it in items:
        if it.resource is None or it.method not in ("POST", "PUT") or it.skip_write:
            continue
        try:
            it.conditional_refs = rewrite_links(it.resource, idmap, placeholders, _is_conditional)
        except UnresolvedLink as exc:
            raise outcomes.bad_request(
                f"Reference '{exc.ref}' does not match any fullUrl in this transaction",
                path_to(it.resource, exc.node, it.where) + ".reference",
                "GW-1210",
            ) from None


async def _writes(call: Call, tx: Repository, items: list[Item], include: bool) -> None:
    writes: list[Write] = []
    targets: list[Item] = []
    for it in items:
        assert it.res_type
        if it.skip_write:  # conditional create that matched an existing resource
            assert it.matched is not None
            it.response = stored_entry(call, it.matched, 200, include=False)
            continue
        assert it.res_id and it.resource is not None
        if it.method == "PUT" and it.resource.get("id") not in (None, it.res_id):
            raise outcomes.id_mismatch(
                f"Resource id '{it.resource.get('id')}' does not match request.url '{it.url}'",
                f"{it.where}.id",
            )
        expected = parse_if_match(it.headers.get("if-match"))
        writes.append(
            Write(
                it.res_type,
                it.res_id,
                it.resource,
                it.method,
                expected_version=expected,
                create_only=it.method == "POST",
            )
        )
        targets.append(it)
    results = await tx.apply(writes)
    for it, stored in zip(targets, results, strict=True):
        assert stored is not None
        it.stored = stored
        it.response = stored_entry(call, stored, 201 if stored.created else 200, include)


async def _resolve_conditional_references(
    call: Call, tx: Repository, items: list[Item], include: bool
) -> None:
    """The spec's last step: each conditional reference must match exactly one resource, as
    the transaction's writes left the store; the versions holding them are amended."""
    cache: dict[str, str] = {}
    amended: list[Item] = []
    for it in items:
        if not it.conditional_refs:
            continue
        assert it.resource is not None and it.stored is not None
        for node in it.conditional_refs:
            ref = node["reference"]
            if ref not in cache:
                rtype, _, query = ref.partition("?")
                matches = await call.core.conditional_match(tx, rtype, query)
                if len(matches) != 1:
                    raise outcomes.error(
                        412 if matches else 404,
                        "multiple-matches" if matches else "not-found",
                        "GW-1211",
                        f"Conditional reference '{ref}' matches {len(matches)} resources "
                        "(exactly one is required)",
                        path_to(it.resource, node, it.where) + ".reference",
                    )
                cache[ref] = matches[0].ref
            node["reference"] = cache[ref]
        amended.append(it)
    versions = await tx.amend([(it.stored, it.resource) for it in amended])  # type: ignore[misc]
    for it, stored in zip(amended, versions, strict=True):
        it.stored = stored
        it.response = stored_entry(call, stored, 201 if stored.created else 200, include)
