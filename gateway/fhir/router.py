"""(method, path) → interaction. Batch and transaction entries re-enter this same router.

One catch turns anything a handler raises into an OperationOutcome (done by the callers:
the HTTP edge and bundle processing, which keep per-entry outcomes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.fhir import outcomes
from gateway.fhir.parse import is_resource_type
from gateway.fhir.request import FhirRequest, FhirResponse

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


def _is_id(s: str) -> bool:
    return 0 < len(s) <= 64 and all(c.isalnum() or c in "-." for c in s)


class Router:
    """Maps a FhirRequest onto one handler; the table is data the CapabilityStatement reads."""

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
            elif _is_id(rest[0]) and len(rest) <= 3:
                args["res_id"] = rest[0]
                if len(rest) == 1:
                    shape = "T/id"
                elif rest[1] == "_history" and len(rest) == 2:
                    shape = "T/id/_history"
                elif rest[1] == "_history":
                    args["version"] = rest[2]
                    shape = "T/id/_history/v"
                else:
                    raise outcomes.unknown_path(req.path)
            else:
                raise outcomes.unknown_path(req.path)
        route = self.table.get((req.method, shape))
        if route is None:
            if any(k[1] == shape for k in self.table):
                raise outcomes.method_not_allowed(req.method, req.path)
            raise outcomes.unknown_path(req.path)
        return route, args

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
            args["res_id"] = parts[1]
        op = self.operations.get(name)
        if op is None or not op.accepts(level, args["res_type"]):
            raise outcomes.error(
                404,
                "not-supported",
                "GW-1017",
                f"Operation ${name} is not supported at {level} level"
                + (f" on {args['res_type']}" if args["res_type"] else ""),
            )
        if req.method not in op.methods:
            raise outcomes.method_not_allowed(req.method, req.path)
        args["operation"] = name
        return Route(f"${name}", op.handler), args

    async def dispatch(self, core: FhirCore, req: FhirRequest, repo: Repository) -> FhirResponse:
        route, args = self.match(req)
        call = Call(
            core,
            req,
            repo,
            args.get("res_type"),
            args.get("res_id"),
            args.get("version"),
            args.get("operation"),
        )
        return await route.handler(call)
