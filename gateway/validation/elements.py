"""Compiled element trees: a StructureDefinition snapshot as nodes the walker can follow fast.

Each node knows its JSON keys (choice types expanded to `valueString`, `valueCoding`, …),
its cardinality, types with their profiles and reference targets, fixed/pattern value,
binding, invariants (compiled once) and slices. Trees are built once per StructureDefinition
and are immutable afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.validation.invariants import Invariant, compile_invariant
from gateway.validation.primitives import is_primitive

_FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
_SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}
MISSING = object()


@dataclass(frozen=True, slots=True)
class TypeRef:
    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()
    primitive: bool = False

    @classmethod
    def of(
        cls, code: str, profiles: tuple[str, ...] = (), target_profiles: tuple[str, ...] = ()
    ) -> TypeRef:
        return cls(code, profiles, target_profiles, is_primitive(code))


@dataclass(frozen=True, slots=True)
class Discriminator:
    kind: str  # value | pattern | exists | type | profile
    path: tuple[str, ...]  # () for $this


@dataclass(slots=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    rules: str
    ordered: bool


@dataclass(slots=True, eq=False)
class ElementNode:
    id: str
    path: str
    name: str
    min: int
    max: int | None  # None: unbounded
    array: bool
    types: tuple[TypeRef, ...]
    choice: bool
    fixed: Any = MISSING
    pattern: Any = MISSING
    binding: tuple[str, str] | None = None  # (strength, value set url)
    invariants: tuple[Invariant, ...] = ()
    slicing: Slicing | None = None
    slice_name: str | None = None
    slices: list[ElementNode] = field(default_factory=list)
    children: dict[str, ElementNode] = field(default_factory=dict)
    content_ref: str | None = None
    max_length: int | None = None
    # The base definition's cardinality (ElementDefinition.base): breaking it is a structural
    # error of R4 itself; breaking only a profile's narrower cardinality is a profile error.
    base_min: int = 0
    base_max: int | None = None
    # json key -> (child, TypeRef); filled by finish()
    keys: dict[str, tuple[ElementNode, TypeRef]] = field(default_factory=dict)
    # invariants worth evaluating on a primitive value (all but ele-1); filled by finish()
    value_invariants: tuple[Invariant, ...] = ()
    invariant_keys: frozenset[str] = frozenset()  # filled by finish()
    # A contentReference element's FHIRPath type is the element it refers to
    # (Parameters.parameter.part is a Parameters.parameter).
    type_path: str | None = None

    def type_for(self, code: str) -> TypeRef | None:
        return next((t for t in self.types if t.code == code), None)

    def finish(self) -> None:
        """Index the JSON keys of the children."""
        self.value_invariants = tuple(i for i in self.invariants if i.key != "ele-1")
        self.invariant_keys = frozenset(i.key for i in self.invariants)
        self.keys = {}
        for child in self.children.values():
            for t in child.types:
                key = child.name + (t.code[0].upper() + t.code[1:] if child.choice else "")
                self.keys[key] = (child, t)
            if not child.types and child.content_ref:
                self.keys[child.name] = (child, TypeRef.of("BackboneElement"))


def _type_code(raw: dict[str, Any]) -> str:
    code = raw["code"]
    for ext in raw.get("extension", []):
        if ext.get("url") == _FHIR_TYPE_EXT:
            return ext.get("valueUrl") or ext.get("valueUri") or code
    return _SYSTEM_TYPES.get(code, code)


def _types(element: dict[str, Any]) -> tuple[TypeRef, ...]:
    return tuple(
        TypeRef.of(_type_code(t), tuple(t.get("profile", ())), tuple(t.get("targetProfile", ())))
        for t in element.get("type", [])
    )


def _prefixed(element: dict[str, Any], prefix: str) -> Any:
    for key, value in element.items():
        if key.startswith(prefix) and not key.startswith("_"):
            return value
    return MISSING


def _slicing(element: dict[str, Any]) -> Slicing | None:
    raw = element.get("slicing")
    if not raw:
        return None
    discs = tuple(
        Discriminator(d["type"], () if d["path"] == "$this" else tuple(d["path"].split(".")))
        for d in raw.get("discriminator", [])
    )
    return Slicing(discs, raw.get("rules", "open"), bool(raw.get("ordered", False)))


def _invariants(element: dict[str, Any], source: str) -> tuple[Invariant, ...]:
    return tuple(compile_invariant(c, source) for c in element.get("constraint", []))


def _max(value: str) -> int | None:
    return None if value == "*" else int(value)


def make_node(element: dict[str, Any], source: str) -> ElementNode:
    path = element["path"]
    last = path.rsplit(".", 1)[-1]
    choice = last.endswith("[x]")
    base = element.get("base", {})
    base_max = base.get("max", element.get("max", "1"))
    binding = element.get("binding")
    types = _types(element)
    if base.get("path") == "Resource.id":
        # A resource's logical id is an `id` (resource.html), though the R4 snapshots type it
        # as a plain string: 1 to 64 of [A-Za-z0-9-.], as the reference validator checks.
        types = (TypeRef.of("id"),)
    return ElementNode(
        id=element.get("id", path),
        path=path,
        name=last[:-3] if choice else last,
        min=int(element.get("min", 0)),
        max=_max(element.get("max", "*")),
        array=base_max != "1" and "." in path,
        types=types,
        choice=choice,
        fixed=_prefixed(element, "fixed"),
        pattern=_prefixed(element, "pattern"),
        binding=(binding["strength"], binding["valueSet"])
        if binding and binding.get("valueSet")
        else None,
        invariants=_invariants(element, source),
        slicing=_slicing(element),
        slice_name=element.get("sliceName"),
        content_ref=element.get("contentReference"),
        max_length=element.get("maxLength"),
        base_min=int(base.get("min", element.get("min", 0))),
        base_max=_max(base_max),
    )


def compile_tree(sd: dict[str, Any]) -> ElementNode:
    """The root node of a StructureDefinition's snapshot."""
    elements = sd["snapshot"]["element"]
    by_id: dict[str, ElementNode] = {}
    root: ElementNode | None = None
    for element in elements:
        node = make_node(element, sd["url"])
        eid = node.id
        segments = eid.split(".")
        by_id[eid] = node
        if len(segments) == 1:
            root = node
            continue
        parent_id, last = ".".join(segments[:-1]), segments[-1]
        if ":" in last:
            sliced = by_id.get(parent_id + "." + last.split(":", 1)[0])
            if sliced is not None and "/" not in last:
                sliced.slices.append(node)
            continue
        parent = by_id.get(parent_id)
        if parent is not None:
            parent.children[node.name] = node
    if root is None:
        raise ValueError(f"{sd['url']}: snapshot has no root element")
    _resolve_content_refs(root, by_id)
    for node in by_id.values():
        node.finish()
    return root


def _resolve_content_refs(root: ElementNode, by_id: dict[str, ElementNode]) -> None:
    for node in by_id.values():
        if node.content_ref and not node.children:
            target = by_id.get(node.content_ref.split("#", 1)[-1])
            if target is not None:
                node.children = target.children
                node.type_path = target.type_path or target.path
                if not node.types:
                    node.types = (TypeRef.of("BackboneElement"),)
                node.invariants = node.invariants + tuple(
                    i for i in target.invariants if i.key not in {x.key for x in node.invariants}
                )
