"""(method, path) → interaction. Batch and transaction entries re-enter this same router.

One catch turns anything a handler raises into an OperationOutcome (done by the callers:
the HTTP edge and bundle processing, which keep per-entry outcomes).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirRequest, FhirResponse
from gateway.vocab import outcomes
from gateway.vocab.outcomes import OperationOutcomeError

if TYPE_CHECKING:
    from gateway.fhir.core import FhirCore
    from gateway.store.repository import Repository


@dataclass(slots=True)
class Call:
    """Everything a handler needs: the core services, the request, a repository bound to the
    request's context (and to the open transaction inside a transaction Bundle)."""

    core: FhirCore
    req: FhirRequest
    repo: Repository
    res_type: str | None = None
    res_id: str | None = None
    version: str | None = None
    operation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[FhirResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    interaction: str  # capability name: read, vread, update, …
    handler: Handler


# R4 datatypes.html: id is [A-Za-z0-9\-\.]{1,64} (ASCII only: str.isalnum() would take 张).
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

# The order methods are listed in an Allow header.
_METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _is_id(s: str) -> bool:
    return _ID.fullmatch(s) is not None


def invalid_id(res_type: str, res_id: str) -> OperationOutcomeError:
    shown = res_id if len(res_id) <= 80 else res_id[:77] + "..."
    return outcomes.error(
        400,
        "invalid",
        "GW-1030",
        f"Invalid id '{shown}' in the URL of {res_type}: an id is 1 to 64 characters "
        "A-Z, a-z, 0-9, '-' and '.'",
    )


def allow_header(methods: Iterable[str]) -> str:
    """RFC 9110 Allow: the methods served, HEAD wherever GET is, OPTIONS everywhere."""
    served = set(methods) | {"OPTIONS"}
    if "GET" in served:
        served.add("HEAD")
    return ", ".join(m for m in _METHOD_ORDER if m in served)


def _not_allowed(req: FhirRequest, methods: Iterable[str]) -> OperationOutcomeError:
    err = outcomes.method_not_allowed(req.method, req.path)
    err.headers["Allow"] = allow_header(methods)
    return err


def _options(allow: str) -> Handler:
    async def options(call: Call) -> FhirResponse:
        return FhirResponse(200, None, {"Allow": allow})

    return options


class Router:
    """Maps a FhirRequest onto one handler; the table is data the CapabilityStatement reads.

    HEAD is served wherever GET is (the GET handler runs; callers drop the body), OPTIONS
    everywhere a path exists (200, no body, an Allow header), and a 405 carries Allow too.
    """

    def __init__(self, table: dict[tuple[str, str], Route], operations: dict[str, Any]):
        # table keys: (method, shape) with shape in
        # "" | "T" | "T/_search" | "T/_history" | "T/id" | "T/id/_history" | "T/id/_history/v"
        # | "_history" | "metadata" | "_search"
        self.table = table
        self.operations = operations

    def match(self, req: FhirRequest) -> tuple[Route, dict[str, str | None]]:
        parts = [p for p in req.path.split("/") if p] if req.path else []
        args: dict[str, str | None] = {"res_type": None, "res_id": None, "version": None}
        shape: str
        if parts and parts[-1].startswith("$"):
            return self._match_operation(req, parts, args)
        if not parts:
            shape = ""
        elif parts[0] in ("metadata", "_history", "_search") and len(parts) == 1:
            shape = parts[0]
        else:
            rtype = parts[0]
            if not is_resource_type(rtype):
                raise outcomes.unknown_type(rtype)
            args["res_type"] = rtype
            rest = parts[1:]
            if not rest:
                shape = "T"
            elif rest == ["_search"]:
                shape = "T/_search"
            elif rest == ["_history"]:
                shape = "T/_history"
            elif len(rest) == 1 or (rest[1] == "_history" and len(rest) <= 3):
                args["res_id"] = self._id(req, rtype, rest[0])
                if len(rest) == 1:
                    shape = "T/id"
                elif len(rest) == 2:
                    shape = "T/id/_history"
                else:
                    args["version"] = rest[2]
                    shape = "T/id/_history/v"
            else:
                raise outcomes.unknown_path(req.path)
        methods = {m for m, s in self.table if s == shape}
        if not methods:
            raise outcomes.unknown_path(req.path)
        if req.method == "OPTIONS":
            return Route("options", _options(allow_header(methods))), args
        route = self.table.get(("GET" if req.method == "HEAD" else req.method, shape))
        if route is None:
            raise _not_allowed(req, methods)
        return route, args

    @staticmethod
    def _id(req: FhirRequest, res_type: str, res_id: str) -> str:
        """The id segment of an instance URL: 400 when it is not an R4 id, 404 when it is a
        keyword in the wrong place (Patient/_history/x/y is no FHIR path)."""
        if res_id in ("_history", "_search"):
            raise outcomes.unknown_path(req.path)
        if not _is_id(res_id):
            raise invalid_id(res_type, res_id)
        return res_id

    def _match_operation(
        self, req: FhirRequest, parts: list[str], args: dict[str, str | None]
    ) -> tuple[Route, dict[str, str | None]]:
        name = parts[-1][1:]
        level = {1: "system", 2: "type", 3: "instance"}.get(len(parts))
        if level is None:
            raise outcomes.unknown_path(req.path)
        if level != "system":
            if not is_resource_type(parts[0]):
                raise outcomes.unknown_type(parts[0])
            args["res_type"] = parts[0]
        if level == "instance":
            args["res_id"] = self._id(req, parts[0], parts[1])
        op = self.operations.get(name)
        if op is None or not op.accepts(level, args["res_type"]):
            raise outcomes.error(
                404,
                "not-supported",
                "GW-1017",
                f"Operation ${name} is not supported at {level} level"
                + (f" on {args['res_type']}" if args["res_type"] else ""),
            )
        if req.method == "OPTIONS":
            return Route(f"${name}", _options(allow_header(op.methods))), args
        if ("GET" if req.method == "HEAD" else req.method) not in op.methods:
            raise _not_allowed(req, op.methods)
        args["operation"] = name
        return Route(f"${name}", op.handler), args

    async def dispatch(self, core: FhirCore, req: FhirRequest, repo: Repository) -> FhirResponse:
        route, args = self.match(req)
        ctx = req.context
        if ctx.audit is not None and not req.in_bundle:  # what the request's AuditEvent says
            ctx.audit.interaction = route.interaction
            ctx.audit.res_type, ctx.audit.res_id = args.get("res_type"), args.get("res_id")
        if ctx.access is not None:  # the token's scopes and the role's policy (403 otherwise)
            ctx.access.allow(route.interaction, args.get("res_type"))
        head = req.method == "HEAD"
        if head:  # the GET handler runs, seeing a GET
            req = dataclasses.replace(req, method="GET")
        call = Call(
            core,
            req,
            repo,
            args.get("res_type"),
            args.get("res_id"),
            args.get("version"),
            args.get("operation"),
        )
        resp = await route.handler(call)
        if head and req.in_bundle:
            # A HEAD entry answers with status and headers only. (The HTTP edge drops the body
            # itself, after measuring it for Content-Length.)
            resp.body = None
        return resp
