"""The only place that knows HTTP: content negotiation, body limit, headers, one error handler."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.http.admission import Admission, Budget
from gateway.http.auth_routes import record_access, request_context
from gateway.store.errors import database_unavailable, unavailable
from gateway.vocab import json_io, outcomes
from gateway.vocab.context import RequestContext
from gateway.vocab.outcomes import OperationOutcomeError

log = logging.getLogger("gateway.http")

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {"application/fhir+json", "application/json", "text/json", "json"}
_FORM = "application/x-www-form-urlencoded"
_BODY_TYPES = _JSON_TYPES | {"application/json-patch+json", _FORM}
# Operations that also read a regional system's CSV export as it is, in its own charset
# (GB18030 as often as UTF-8): $ingest.
_CSV_TYPES = {"text/csv", "application/csv"}
# … and HL7 v2 messages in ER7 as a lab or HIS sends them ($ingest?source=hl7v2).
_CSV_TYPES |= {"x-application/hl7-v2+er7", "application/hl7-v2", "text/plain"}
_CSV_OPERATIONS = ("$ingest",)
_FORMAT_PARAMS = ("_format", "_pretty")


# R4 http.html#version-parameter: the fhirVersion values this server serves (R4; 4.0.0 and 4.0.1
# are its releases, "4.0" the major.minor form the spec uses in media types).
FHIR_VERSIONS = frozenset({"4.0", "4.0.0", "4.0.1"})


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _media_params(value: str) -> dict[str, str]:
    """The parameters of one media type / media range: lower-cased names, unquoted values."""
    params: dict[str, str] = {}
    for item in value.split(";")[1:]:
        name, _, val = item.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    return params


def _fhir_version_ok(value: str) -> bool:
    version = _media_params(value).get("fhirversion")
    return version is None or version in FHIR_VERSIONS


def _format_value(fmt: str) -> str:
    """_format as the client meant it: an unencoded '+' in a query string decodes to a space,
    and no media type has a space, so 'application/fhir json' is application/fhir+json."""
    media, sep, params = fmt.partition(";")
    return "+".join(media.split()) + sep + params


def _accepts_json(media_range: str) -> bool:
    """One Accept media range admits a JSON response (by type and q; fhirVersion aside)."""
    if _media_type(media_range) not in _JSON_TYPES | {"*/*", "application/*", ""}:
        return False
    try:
        return float(_media_params(media_range).get("q", "1")) > 0  # q=0: "not acceptable"
    except ValueError:
        return True


def _check_format(fmt: str | None, accept: str | None) -> None:
    """406 unless the response can be FHIR R4 JSON. _format overrides Accept (http.html)."""
    if fmt is not None:
        fmt = _format_value(fmt)
        if _media_type(fmt) not in _JSON_TYPES:
            raise outcomes.not_acceptable(fmt)
        if not _fhir_version_ok(fmt):
            raise _other_fhir_version(406, fmt)
        return
    ranges = [a for a in (accept or "").split(",") if a.strip()]
    if not ranges:
        return
    json_ranges = [a for a in ranges if _accepts_json(a)]
    if not json_ranges:
        raise outcomes.not_acceptable(accept or "")
    if not any(_fhir_version_ok(a) for a in json_ranges):
        raise _other_fhir_version(406, ",".join(json_ranges))


def _check_content_type(ctype: str | None, body: bytes, path: str) -> None:
    """415 for a body that is not JSON (or a JSON Patch, or a form to `_search`), not UTF-8
    (the only charset FHIR JSON has), or not FHIR R4."""
    media = _media_type(ctype)
    if media in _CSV_TYPES and path.rstrip("/").rsplit("/", 1)[-1] in _CSV_OPERATIONS:
        return
    if body and media not in _BODY_TYPES:
        raise outcomes.unsupported_media_type(media)
    if body and media == _FORM and not path.rstrip("/").endswith("_search"):
        raise outcomes.unsupported_media_type(media)  # a form is a search's body only
    charset = _media_params(ctype).get("charset", "utf-8").lower() if ctype else "utf-8"
    if body and charset not in ("utf-8", "utf8"):
        raise outcomes.unsupported_media_type(f"{media}; charset={charset}")
    if ctype and not _fhir_version_ok(ctype):
        raise _other_fhir_version(415, ctype)


def _other_fhir_version(status: int, value: str) -> OperationOutcomeError:
    # value: a media type or a list of media ranges; name the first version asked for.
    version = next((v for a in value.split(",") if (v := _media_params(a).get("fhirversion"))), "?")
    what = "respond in" if status == 406 else "read a body in"
    return outcomes.error(
        status,
        "not-supported",
        "GW-1031" if status == 406 else "GW-1032",
        f"This server cannot {what} FHIR version {version}: it serves FHIR R4 "
        "(fhirVersion=4.0, 4.0.1)",
    )


async def _read_body(request: Request, limit: int, budget: Budget | None) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise outcomes.body_too_large(limit)
    if budget is not None and declared and declared.isdigit():
        await budget.grow_to(int(declared))
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise outcomes.body_too_large(limit)
        if budget is not None and size > budget.size:  # chunked, or more than declared
            await budget.grow_to(max(size, 2 * budget.size))
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_slow(seconds: float) -> OperationOutcomeError:
    return outcomes.error(
        408, "timeout", "GW-1048", f"The request body did not arrive within {seconds:g} seconds"
    )


def _render(resp: FhirResponse, pretty: bool, head: bool = False) -> Response:
    body: bytes | None
    if resp.body is None:
        body = b""
    elif isinstance(resp.body, bytes):
        body = resp.body
    else:
        body = json_io.dumps(resp.body)
    if pretty and body:
        body = _pretty(body)
    headers = dict(resp.headers)
    media = f"{FHIR_JSON}; charset=utf-8" if body else None
    if head and body:
        # RFC 9110 §9.3.2: the GET response's header fields, no content.
        headers["Content-Length"] = str(len(body))
        body = b""
    return Response(body, status_code=resp.status, headers=headers, media_type=media)


def error_response(
    err: OperationOutcomeError, pretty: bool = False, head: bool = False
) -> Response:
    return _render(FhirResponse(err.status, err.outcome(), dict(err.headers)), pretty, head)


def base_url(request: Request, settings: Any) -> str:
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{settings.base_path}"


def _pretty(body: bytes) -> bytes:
    """Indented JSON; a document nested too deeply to re-parse or indent is sent as it is
    (formatting is a courtesy, never a reason to fail)."""
    try:
        return json_io.dumps(json_io.loads_exact(body), option=orjson.OPT_INDENT_2)
    except (RecursionError, ValueError, outcomes.OperationOutcomeError):
        return body


async def fhir_endpoint(request: Request) -> Response:
    state = request.app.state
    settings = state.settings
    query = list(request.query_params.multi_items())
    pretty = any(k == "_pretty" and v == "true" for k, v in query)
    head = request.method == "HEAD"
    context: RequestContext | None = None
    status = 500
    try:
        _check_format(request.query_params.get("_format"), request.headers.get("accept"))
        body = None
        path = request.path_params.get("path", "")
        base = base_url(request, settings)
        # Who is asking, before a byte of the body is read: no token, no work.
        context = await request_context(request, path, base)
        writes = request.method in ("POST", "PUT", "PATCH")
        admission: Admission | None = getattr(state, "admission", None) if writes else None
        # Bounded work in flight (503 Retry-After beyond it): body bytes while reading and
        # handling, a work slot while handling.
        async with contextlib.AsyncExitStack() as held:
            if writes:
                budget = await held.enter_async_context(admission.budget()) if admission else None
                try:
                    async with asyncio.timeout(settings.body_read_timeout):
                        body = await _read_body(request, settings.max_body_bytes, budget)
                except TimeoutError:
                    raise _body_too_slow(settings.body_read_timeout) from None
                _check_content_type(request.headers.get("content-type"), body, path)
                if admission:
                    await held.enter_async_context(admission.slot())
            req = FhirRequest(
                method=request.method,
                path=path.strip("/"),
                query=[(k, v) for k, v in query if k not in _FORMAT_PARAMS],
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                base_url=base,
                context=context,
            )
            resp = await state.core.handle(req)
        status = resp.status
        return _render(resp, pretty, head)
    except OperationOutcomeError as err:
        status = err.status
        return error_response(err, pretty, head)
    except ClientDisconnect:  # gone mid-body (or its chunking broke): nobody to answer
        status = 499  # nginx's code for it, in the audit trail
        log.info("client gone during %s %s", request.method, request.url.path)
        return Response(status_code=400)
    except Exception as exc:  # the one catch-all: always an OperationOutcome
        if unavailable(exc):  # the database, not the request: come back later
            status = 503
            reason = str(exc).split("\n", 1)[0][:300]  # the error, not the statement
            log.warning(
                "database unavailable on %s %s: %s", request.method, request.url.path, reason
            )
            return error_response(database_unavailable(), pretty, head)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(outcomes.internal_error(), pretty, head)
    finally:
        record_access(request, context, status)
