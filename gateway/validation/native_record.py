"""Native fast paths for the health-record profiles' invariants (cn-record-observation cnro-*,
cn-followup-encounter cnfe-*). Part of `native_cn.NATIVE_CN`; each returns what fhirpathpy
returns for its expression (an empty result holds), checked against fhirpathpy by
tests/profiles/test_record_invariants.py.
"""

from __future__ import annotations

from typing import Any

from gateway.validation.locations import CANONICAL_BASE
from gateway.validation.native import Native

_HEALTH_EXAM = CANONICAL_BASE + "/sid/health-exam"
_FOLLOWUP = CANONICAL_BASE + "/sid/followup"
_UCUM = "http://unitsofmeasure.org"
_MODES = ("AMB", "HH", "VR")


def _items(node: Any, name: str) -> list[Any]:
    """An element's object values (a list of them, or one object)."""
    value = node.get(name) if isinstance(node, dict) else None
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, dict)]


def cnro_1(value: Any, env: dict[str, Any]) -> bool:
    numbers = [
        i
        for i in _items(value, "identifier")
        if isinstance(i, dict) and i.get("system") in (_HEALTH_EXAM, _FOLLOWUP)
    ]
    return len(numbers) == 1


def _ucum(quantity: dict[str, Any]) -> bool:
    return quantity.get("system") == _UCUM and ("code" in quantity or "_code" in quantity)


def cnro_2(value: Any, env: dict[str, Any]) -> bool:
    quantities = _items(value, "valueQuantity")
    for component in _items(value, "component"):
        quantities += _items(component, "valueQuantity")
    return all(_ucum(q) for q in quantities)


def cnfe_1(value: Any, env: dict[str, Any]) -> bool:
    if not isinstance(value, dict) or ("code" not in value and "_code" not in value):
        return True  # no code: an empty comparison holds
    return value.get("code") in _MODES  # a code with extensions only compares false


NATIVE_RECORD: dict[tuple[str, str], Native] = {
    (
        "cnro-1",
        f"identifier.where(system = '{_HEALTH_EXAM}' or system = '{_FOLLOWUP}').count() = 1",
    ): cnro_1,
    (
        "cnro-2",
        "(value.ofType(Quantity) | component.value.ofType(Quantity)).all(system = "
        "'http://unitsofmeasure.org' and code.exists())",
    ): cnro_2,
    ("cnfe-1", "code = 'AMB' or code = 'HH' or code = 'VR'"): cnfe_1,
}
