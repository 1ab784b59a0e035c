"""FHIRPath invariants: compiled once, evaluated with fhirpathpy or a native fast path.

fhirpathpy costs ~60 µs per evaluation even for `value.empty() or system.exists()`, and the
core invariants ele-1/ext-1 apply to every element of every resource. Those that fire on
nearly every resource have native implementations in `native.py`, selected by key AND exact
expression text, so a changed definition falls back to fhirpathpy; a test checks that both give
the same answer over the official examples. fhirpathpy gets the functions it lacks
(hasValue, htmlChecks, resolve) and ours (checksums) through its user invocation table.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from gateway.validation.checksums import FHIRPATH_FUNCTIONS
from gateway.validation.native import NATIVE, html_checks, name_consistent
from gateway.validation.native_cn import NATIVE_CN

_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"
_R4 = models["r4"]
_LOCK = threading.Lock()


def _has_value(inputs: list[Any]) -> list[bool]:
    return [len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], dict)]


FUNCTIONS: dict[str, dict[str, Any]] = {
    **FHIRPATH_FUNCTIONS,
    "hasValue": {"fn": _has_value, "arity": {0: []}},
    "htmlChecks": {"fn": lambda inputs: [all(html_checks(x) for x in inputs)], "arity": {0: []}},
    # No repository here: resolve() yields nothing, so `resolve().iif(empty(), true, …)` holds.
    "resolve": {"fn": lambda inputs: [], "arity": {0: []}},
    "cnNameConsistent": {
        "fn": lambda inputs: [all(name_consistent(x) for x in inputs)],
        "arity": {0: []},
    },
}
_OPTIONS = {"userInvocationTable": FUNCTIONS, "traceFn": lambda label, value: None}


@lru_cache(maxsize=4096)
def compile_expression(expression: str) -> Callable[..., list[Any]]:
    return fhirpathpy.compile(expression, model=_R4, options=_OPTIONS)


@dataclass(frozen=True, slots=True)
class Invariant:
    key: str
    severity: str
    human: str
    human_zh: str
    expression: str
    source: str
    native: Callable[[Any, dict[str, Any]], bool] | None

    def check(self, value: Any, type_path: str, env: dict[str, Any]) -> bool:
        """True when the invariant holds (an empty result counts as holding)."""
        if self.native is not None:
            return self.native(value, env)
        return self.check_fhirpath(value, type_path, env)

    def check_fhirpath(self, value: Any, type_path: str, env: dict[str, Any]) -> bool:
        fn = compile_expression(self.expression)
        node = ResourceNode.create_node(value, type_path)
        context = {"resource": env["resource"], "rootResource": env["rootResource"]}
        with _LOCK:  # fhirpathpy resets module-level constants (now/today) on every call
            result = fn(node, context)
        return not (len(result) == 1 and result[0] is False)


def _translated_human(constraint: dict[str, Any]) -> str | None:
    for ext in constraint.get("_human", {}).get("extension", []):
        if ext.get("url") == _TRANSLATION:
            parts = {e.get("url"): e for e in ext.get("extension", [])}
            if parts.get("lang", {}).get("valueCode", "").startswith("zh"):
                return parts.get("content", {}).get("valueString")
    return None


def compile_invariant(constraint: dict[str, Any], source: str) -> Invariant:
    key, expression = constraint["key"], constraint.get("expression", "true")
    human = constraint.get("human", key)
    native = NATIVE.get((key, expression)) or NATIVE_CN.get((key, expression))
    if native is None:
        try:
            compile_expression(expression)  # parse once, at load
        except Exception:  # noqa: BLE001 - reported per evaluation as VAL-1051
            pass
    return Invariant(
        key,
        constraint.get("severity", "error"),
        human,
        _translated_human(constraint) or human,
        expression,
        constraint.get("source") or source,
        native,
    )
