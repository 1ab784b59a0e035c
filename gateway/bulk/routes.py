"""HTTP routes of bulk jobs beside the FHIR router: status polling, cancel, file download.

- `GET [base]/$export-status/{job}` (and `$import-status`): 202 with `X-Progress` and
  `Retry-After` while it runs; 200 with the manifest (and `Expires`) when complete; the job's
  OperationOutcome with a 4xx/5xx when it failed; 404 for a job that does not exist, was
  cancelled, has expired, or belongs to another client.
- `DELETE` the same URL: 202; the job stops at its next commit and its files are deleted.
- `GET [base]/$export-file/{job}/{name}`: the NDJSON file, streamed one stored chunk at a time,
  to the client that started the job (with authentication on: its access token, manifest
  `requiresAccessToken: true`).

The edge's authentication and audit are passed in (`authenticate`, `record`): this module sits
below the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.bulk.jobs import Job, Jobs
from gateway.bulk.operations import FILE_PATH, IMPORT_STATUS_PATH, STATUS_PATH
from gateway.store.errors import database_unavailable, unavailable
from gateway.vocab import clock, outcomes
from gateway.vocab.context import RequestContext
from gateway.vocab.metrics import EXPORT_JOBS

Authenticate = Callable[[Request, str, str], Awaitable[RequestContext]]
Record = Callable[[Request, RequestContext | None, int], None]
NDJSON = "application/fhir+ndjson"


def _outcome(err: outcomes.OperationOutcomeError) -> Response:
    return Response(
        orjson.dumps(err.outcome()),
        status_code=err.status,
        headers=dict(err.headers),
        media_type="application/fhir+json; charset=utf-8",
    )


def _no_job(job_id: str) -> outcomes.OperationOutcomeError:
    return outcomes.error(
        404,
        "not-found",
        "GW-1878",
        f"No bulk job {job_id} (never started, cancelled, expired, or another client's)",
    )


def _base(request: Request) -> str:
    settings = request.app.state.settings
    if settings.public_base_url:
        return str(settings.public_base_url).rstrip("/")
    return f"{request.url.scheme}://{request.url.netloc}{settings.base_path.rstrip('/')}"


def _progress(job: Job) -> str:
    state = job.state or {}
    if job.status == "queued":
        return "queued"
    if job.kind == "import":
        return f"file {state.get('index', 0) + 1}: {state.get('written', 0)} resources written"
    written = sum((state.get("written") or {}).values())
    types = len(orjson.loads(job.spec).get("types") or [])
    return f"{written} resources written; {min(state.get('index', 0), types)} of {types} types done"


async def _manifest(job: Job, jobs: Jobs, base: str, settings: Any) -> dict[str, Any]:
    files = await jobs.files(job.job_id)

    def item(f: Any) -> dict[str, Any]:
        url = f"{base}/{FILE_PATH}/{job.job_id}/{f.name}"
        return {"type": f.res_type, "url": url, "count": f.count}

    manifest: dict[str, Any] = {
        "transactionTime": clock.to_instant(job.transaction_time),
        "request": job.request,
        "requiresAccessToken": settings.auth == "on",
        "output": [item(f) for f in files if f.kind == "output"],
        "error": [item(f) for f in files if f.kind == "error"],
    }
    if job.kind == "export":
        manifest["deleted"] = []
    else:
        state = job.state or {}
        manifest["extension"] = {
            "https://fhir.jtys.cn/bulk/written": state.get("written", 0),
            "https://fhir.jtys.cn/bulk/failed": state.get("failed", 0),
        }
    return manifest


def bulk_routes(base_path: str, authenticate: Authenticate, record: Record) -> list[Route]:
    """The routes, for the app to add before its FHIR catch-all."""

    async def guarded(
        request: Request,
        path: str,
        answer: Callable[[RequestContext, Jobs, Job], Awaitable[Response]],
    ) -> Response:
        ctx: RequestContext | None = None
        status = 500
        try:
            ctx = await authenticate(request, path, _base(request))
            if ctx.audit is not None:
                ctx.audit.interaction = f"${path.split('/')[0].lstrip('$')}"
            jobs = Jobs(request.app.state.core.store.engine)
            job_id = request.path_params["job"]
            job = await jobs.get(job_id)
            if job is None or job.owner != ctx.principal:
                raise _no_job(job_id)
            response = await answer(ctx, jobs, job)
            status = response.status_code
            return response
        except outcomes.OperationOutcomeError as err:
            status = err.status
            return _outcome(err)
        except Exception as exc:
            if not unavailable(exc):
                raise
            status = 503
            return _outcome(database_unavailable())
        finally:
            record(request, ctx, status)

    async def status(request: Request) -> Response:
        kind = STATUS_PATH if STATUS_PATH in request.url.path else IMPORT_STATUS_PATH

        async def answer(ctx: RequestContext, jobs: Jobs, job: Job) -> Response:
            settings = request.app.state.settings
            if request.method == "DELETE":
                await jobs.delete(job.job_id)
                if job.kind == "export" and job.status in ("queued", "running"):
                    EXPORT_JOBS.labels("cancelled").inc()
                return Response(status_code=202)
            if job.status in ("queued", "running"):
                headers = {
                    "X-Progress": _progress(job),
                    "Retry-After": str(settings.bulk_retry_after),
                }
                return Response(status_code=202, headers=headers)
            if job.status == "failed":
                body = orjson.loads(job.error or "{}") or outcomes.internal_error().outcome()
                return Response(
                    orjson.dumps(body),
                    status_code=500,
                    media_type="application/fhir+json; charset=utf-8",
                )
            manifest = await _manifest(job, jobs, _base(request), settings)
            headers = {"Expires": clock.to_http_date(job.expires_at or clock.now_us())}
            return Response(orjson.dumps(manifest), headers=headers, media_type="application/json")

        return await guarded(request, f"{kind}/{request.path_params['job']}", answer)

    async def download(request: Request) -> Response:
        name = request.path_params["name"]

        async def answer(ctx: RequestContext, jobs: Jobs, job: Job) -> Response:
            f = await jobs.file(job.job_id, name) if job.status == "completed" else None
            if f is None:
                raise outcomes.error(
                    404, "not-found", "GW-1879", f"No file {name} in bulk job {job.job_id}"
                )
            if request.method == "HEAD":
                return Response(headers={"Content-Length": str(f.size)}, media_type=NDJSON)
            return StreamingResponse(
                jobs.chunks(job.job_id, name, f.chunks),
                media_type=NDJSON,
                headers={"Content-Length": str(f.size)},
            )

        return await guarded(request, f"{FILE_PATH}/{request.path_params['job']}", answer)

    methods = ["GET", "HEAD", "DELETE"]
    return [
        Route(f"{base_path}/{STATUS_PATH}/{{job}}", status, methods=methods),
        Route(f"{base_path}/{IMPORT_STATUS_PATH}/{{job}}", status, methods=methods),
        Route(f"{base_path}/{FILE_PATH}/{{job}}/{{name}}", download, methods=["GET", "HEAD"]),
    ]
