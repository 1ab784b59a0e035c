"""Resource dict → index rows. Pure (no I/O, no DB); expressions compiled once per type.

Each (resource type, parameter) expression — already split down to that type's union parts by
the registry — is compiled when the type is first seen (or eagerly with ``compile_all``):
every part the fast compiler (gateway.search.paths) understands becomes direct dict walks
with a statically chosen row emitter; the remaining parts are joined and compiled once with
fhirpathpy (R4 model, ``resolve()`` answered from the reference string). ``mode="fhirpath"``
forces fhirpathpy for everything — the parity tests compare both modes on the corpora.

Composite parameters index their components' rows per element (gateway.search.composite),
Location ``near`` its coordinates alike (gateway.search.position). Not indexed: ``_id`` (the
store has it) and parameters without expression (``_text``, ``_content``, ``_query``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode

from gateway.search.composite import CompositePlan, compile_composite
from gateway.search.convert import Emit, emitter
from gateway.search.paths import (
    BOOLEAN_TYPE,
    MODEL,
    LinearPath,
    compile_boolean_exists,
    compile_linear,
    walk,
    walk_from,
)
from gateway.search.position import PositionPlan, compile_position
from gateway.search.registry import (
    UNINDEXED_BASE,
    SearchParameter,
    SearchParamRegistry,
    split_for_type,
)
from gateway.search.values import reference_type
from gateway.store.rows import IndexRows

log = logging.getLogger(__name__)

Mode = Literal["fast", "fhirpath"]
INDEXED_TYPES = frozenset({"token", "string", "date", "number", "quantity", "reference", "uri"})


def _resolve(inputs: list[Any]) -> list[Any]:
    """fhirpathpy `resolve()`: a stub resource of the type the reference names (no lookup)."""
    out = []
    for d in inputs:
        rtype = reference_type(d)
        if rtype:
            out.append(ResourceNode.create_node({"resourceType": rtype}))
    return out


FHIRPATH_OPTIONS = {"returnRawData": True, "userInvocationTable": {"resolve": {"fn": _resolve}}}


def compile_fhirpath(expression: str) -> Callable[..., list[Any]]:
    return fhirpathpy.compile(expression, model=MODEL, options=FHIRPATH_OPTIONS)


def node_type(node: Any) -> tuple[Any, str | None]:
    """(data, FHIR type) of one fhirpathpy raw result."""
    if isinstance(node, ResourceNode):
        data = node.data
        path = node.path
        if isinstance(data, dict) and "resourceType" in data:
            return data, data["resourceType"]
        return data, path
    if isinstance(node, bool):
        return node, BOOLEAN_TYPE
    if isinstance(node, int):
        return node, "System.Integer"
    if isinstance(node, float | Decimal):
        return node, "System.Decimal"
    if isinstance(node, str):
        return node, "System.String"
    return node, None


@dataclass(slots=True)
class ParamPlan:
    param: SearchParameter
    expression: str
    # Fast parts: (ops, emit) pairs; computed parts: (fn, emit) pairs.
    fast: list[tuple[tuple[Any, ...], Emit]] = field(default_factory=list)
    computed: list[tuple[Callable[[dict], list[Any]], Emit]] = field(default_factory=list)
    # Parts that need fhirpathpy, each compiled on its own (fhirpathpy's union operator drops
    # the type information the emitters need).
    fallback: list[tuple[str, Callable[..., list[Any]]]] = field(default_factory=list)
    emitters: dict[str | None, Emit | None] = field(default_factory=dict)

    @property
    def fallback_expression(self) -> str | None:
        return " | ".join(part for part, _ in self.fallback) or None


@dataclass(slots=True)
class _TypeRun:
    by_key: list[tuple[str, list[tuple[tuple[Any, ...], Emit]]]]
    other: list[tuple[tuple[Any, ...], Emit]]
    computed: list[tuple[Callable[[dict], list[Any]], Emit]]
    fallback: list[tuple[ParamPlan, Callable[..., list[Any]]]]
    grouped: list[CompositePlan | PositionPlan]  # rows grouped per element

    @classmethod
    def build(cls, plans: list[ParamPlan], grouped: list[CompositePlan | PositionPlan]) -> _TypeRun:
        by_key: dict[str, list[tuple[tuple[Any, ...], Emit]]] = {}
        other: list[tuple[tuple[Any, ...], Emit]] = []
        for plan in plans:
            for ops, emit in plan.fast:
                if ops and type(ops[0]) is str:
                    by_key.setdefault(ops[0], []).append((ops[1:], emit))
                else:
                    other.append((ops, emit))
        return cls(
            by_key=list(by_key.items()),
            other=other,
            computed=[c for plan in plans for c in plan.computed],
            fallback=[(plan, fn) for plan in plans for _, fn in plan.fallback],
            grouped=grouped,
        )


class IndexExtractor:
    """``extract(resource) -> IndexRows`` for every indexed search parameter of its type."""

    def __init__(self, registry: SearchParamRegistry, mode: Mode = "fast"):
        if mode not in ("fast", "fhirpath"):
            raise ValueError(f"unknown mode {mode!r}")
        self.registry = registry
        self.mode: Mode = mode
        self._plans: dict[str, list[ParamPlan]] = {}
        # Per type, for extract(): fast paths grouped by their first JSON key (a resource
        # lacking that key skips the whole group), then computed and fhirpathpy parts.
        self._runs: dict[str, _TypeRun] = {}
        # (resource type, code) → error for expressions fhirpathpy could not compile.
        self.errors: dict[tuple[str, str], str] = {}

    # -- compiling -----------------------------------------------------------------------

    def compile_all(self, resource_types: Iterable[str] | None = None) -> None:
        for rt in resource_types if resource_types is not None else self.registry.resource_types():
            self.plans(rt)

    def plans(self, resource_type: str) -> list[ParamPlan]:
        plans = self._plans.get(resource_type)
        if plans is None:
            plans = []
            grouped: list[CompositePlan | PositionPlan] = []
            for code, p in sorted(self.registry.for_type(resource_type).items()):
                if p.type in ("composite", "special"):
                    g = (
                        compile_composite(self.registry, resource_type, p)
                        if p.type == "composite"
                        else compile_position(resource_type, p)
                    )
                    if g is not None:
                        grouped.append(g)
                    continue
                if p.type not in INDEXED_TYPES or not p.expression or code in UNINDEXED_BASE:
                    continue
                plan = self._compile(resource_type, p)
                if plan is not None:
                    plans.append(plan)
            self._plans[resource_type] = plans
            self._runs[resource_type] = _TypeRun.build(plans, grouped)
        return plans

    def plan(self, resource_type: str, code: str) -> ParamPlan | None:
        return next((p for p in self.plans(resource_type) if p.param.code == code), None)

    def _compile(self, resource_type: str, p: SearchParameter) -> ParamPlan | None:
        assert p.expression is not None
        plan = ParamPlan(p, p.expression)
        slow: list[str] = []
        for part in split_for_type(p.expression, resource_type):
            if self.mode == "fast":
                linear = compile_linear(resource_type, part)
                if linear is not None:
                    self._add_linear(plan, linear)
                    continue
                fn = compile_boolean_exists(resource_type, part)
                if fn is not None:
                    emit = emitter(p, BOOLEAN_TYPE)
                    if emit is not None:
                        plan.computed.append((fn, emit))
                    continue
            slow.append(part)
        for part in slow:
            try:
                plan.fallback.append((part, compile_fhirpath(part)))
            except Exception as exc:  # antlr/fhirpathpy raise bare Exceptions
                self.errors[(resource_type, p.code)] = f"{part}: {type(exc).__name__}: {exc}"
                log.warning(
                    "search parameter %s on %s: %r does not compile: %s",
                    p.url,
                    resource_type,
                    part,
                    exc,
                )
        return plan

    @staticmethod
    def _add_linear(plan: ParamPlan, linear: list[LinearPath]) -> None:
        for lp in linear:
            emit = emitter(plan.param, lp.type)
            if emit is not None:  # a type that never yields rows: skip the walk entirely
                plan.fast.append((lp.ops, emit))

    # -- extracting ----------------------------------------------------------------------

    def extract(self, resource: dict) -> IndexRows:
        rows = IndexRows()
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str):
            return rows
        run = self._runs.get(rtype)
        if run is None:
            self.plans(rtype)
            run = self._runs[rtype]
        get = resource.get
        for key, group in run.by_key:
            v = get(key)
            if v is None:
                continue
            start = v if type(v) is list else [v]
            for ops, emit in group:
                for x in walk_from(start, ops) if ops else start:
                    if x is not None:
                        emit(x, rows)
        for ops, emit in run.other:
            for x in walk(resource, ops):
                emit(x, rows)
        for fn, emit in run.computed:
            for x in fn(resource):
                emit(x, rows)
        for plan, fn in run.fallback:
            self._eval_fallback(plan, fn, resource, rows)
        for g in run.grouped:
            g.extract(resource, rows)
        return rows

    @staticmethod
    def _eval_fallback(
        plan: ParamPlan, fn: Callable[..., list[Any]], resource: dict, rows: IndexRows
    ) -> None:
        try:
            nodes = fn(resource, None)
        except Exception as exc:  # never fail a write because one expression misbehaves
            log.warning(
                "search parameter %s failed on %s/%s: %s",
                plan.param.url,
                resource.get("resourceType"),
                resource.get("id"),
                exc,
            )
            return
        for node in nodes:
            data, ty = node_type(node)
            if data is None:
                continue
            try:
                emit = plan.emitters[ty]
            except KeyError:
                emit = plan.emitters[ty] = emitter(plan.param, ty)
            if emit is not None:
                emit(data, rows)
