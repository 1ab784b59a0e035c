"""The only place that knows HTTP: content negotiation, body limit, headers, one error handler."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.fhir import outcomes
from gateway.fhir.context import RequestContext
from gateway.fhir.outcomes import OperationOutcomeError
from gateway.fhir.request import FhirRequest, FhirResponse

log = logging.getLogger("gateway.http")

FHIR_JSON = "application/fhir+json"
_JSON_TYPES = {"application/fhir+json", "application/json", "text/json", "json"}
_BODY_TYPES = _JSON_TYPES | {"application/json-patch+json", "application/x-www-form-urlencoded"}
_FORMAT_PARAMS = ("_format", "_pretty")


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _check_format(fmt: str | None, accept: str | None) -> None:
    if fmt is not None and _media_type(fmt) not in _JSON_TYPES:
        raise outcomes.not_acceptable(fmt)
    if accept:
        types = {_media_type(a) for a in accept.split(",")}
        ok = types & (_JSON_TYPES | {"*/*", "application/*", ""})
        if not ok:
            raise outcomes.not_acceptable(accept)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise outcomes.body_too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise outcomes.body_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _render(resp: FhirResponse, pretty: bool) -> Response:
    body: bytes | None
    if resp.body is None:
        body = b""
    elif isinstance(resp.body, bytes):
        body = resp.body
    else:
        body = orjson.dumps(resp.body)
    if pretty and body:
        body = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2)
    headers = dict(resp.headers)
    media = f"{FHIR_JSON}; charset=utf-8" if body else None
    return Response(body, status_code=resp.status, headers=headers, media_type=media)


def error_response(err: OperationOutcomeError, pretty: bool = False) -> Response:
    return _render(FhirResponse(err.status, err.outcome(), dict(err.headers)), pretty)


def base_url(request: Request, settings: Any) -> str:
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{settings.base_path}"


async def fhir_endpoint(request: Request) -> Response:
    state = request.app.state
    settings = state.settings
    query = list(request.query_params.multi_items())
    pretty = any(k == "_pretty" and v == "true" for k, v in query)
    try:
        _check_format(request.query_params.get("_format"), request.headers.get("accept"))
        body = None
        if request.method in ("POST", "PUT", "PATCH"):
            body = await _read_body(request, settings.max_body_bytes)
            ctype = _media_type(request.headers.get("content-type"))
            if body and ctype not in _BODY_TYPES:
                raise outcomes.unsupported_media_type(ctype)
        path = request.path_params.get("path", "")
        req = FhirRequest(
            method=request.method,
            path=path.strip("/"),
            query=[(k, v) for k, v in query if k not in _FORMAT_PARAMS],
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            base_url=base_url(request, settings),
            context=RequestContext(
                request_id=request.headers.get("x-request-id") or str(uuid.uuid4())
            ),
        )
        resp = await state.core.handle(req)
        return _render(resp, pretty)
    except OperationOutcomeError as err:
        return error_response(err, pretty)
    except Exception:  # the one catch-all: a bug must still answer with an OperationOutcome
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(outcomes.internal_error(), pretty)
