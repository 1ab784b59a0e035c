"""The model of a mapping spec (`mappings/<name>/mapping.yaml`; read by spec_load, checked by
spec_check before any record).

A spec declares the source fields (Chinese names, WS 363 data-element codes, conversions,
what is required) and, per FHIR resource a record becomes, a template: FHIR JSON in which
objects with `$` keys are filled from the record (see `mappings/README.md` for the format).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateway.mapping.tables import CodeTable

# The directives a template object may carry; a value source is exactly one of SOURCES.
SOURCES = ("$from", "$format", "$query", "$ref")
MODIFIERS = ("$code", "$coding")
# Object flags: `$when: 字段` keeps the object only when the field has a value; `$weak` marks
# an item of a merged list that never replaces a stored one (gateway.mapping.merge).
FLAGS = ("$when", "$weak")
DIRECTIVES = frozenset({*SOURCES, *MODIFIERS, *FLAGS, "$each", "$item"})
_PLACEHOLDER = re.compile(r"\{([^{}:]+)(?::([^{}]+))?\}")
ITEM = "."  # `$from: .` inside `$each` over a list of values: the value itself


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file and the place."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str = "string"
    de: str | None = None  # WS 363 data-element identifier, where the standard has one
    title: str = ""
    required: bool = False
    # Required when another field holds one of these values (spellings or table codes).
    required_when: tuple[str, frozenset[str]] | None = None
    default: str | None = None
    aliases: tuple[str, ...] = ()
    many: bool = False  # several values in one field (a list, or text split on ; , 、)
    items: tuple[FieldSpec, ...] = ()  # a list of sub-records (a JSON array, or a:b;c:d)
    codes: str | None = None  # the table its values must come from

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class MergeSpec:
    """The resource accumulates a list across records (a household's members): the stored
    version's items are kept, the record's added or replacing the one with the same key."""

    list: str  # the element holding the list: member
    key: str  # the path within an item that identifies it: entity.identifier
    count: str | None = None  # an element set to the list's length: quantity


@dataclass(frozen=True)
class ResourceSpec:
    name: str
    type: str
    key: str | None  # the conditional-update search, a format string: identifier=sys|{字段}
    when: str | None  # only when this field has a value
    template: dict[str, Any]
    merge: MergeSpec | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    fields: dict[str, FieldSpec]
    resources: tuple[ResourceSpec, ...]
    tables: dict[str, CodeTable]
    zone: str = "+08:00"
    key_field: str | None = None  # the field naming a record in reports (签约编号)
    # What each template node is (gateway.mapping.render), found once and kept with the spec
    # whose templates they are: id(node) → (node, kind).
    node_kinds: dict[int, tuple[Any, int]] = field(default_factory=dict, compare=False, repr=False)

    def resource(self, name: str) -> ResourceSpec:
        return next(r for r in self.resources if r.name == name)

    def field(self, name: str) -> FieldSpec | None:
        return self.fields.get(name)


def placeholders(text: str) -> Iterator[tuple[str, str | None]]:
    """(field, table or None) of each {field} / {field:table} in a format string."""
    for m in _PLACEHOLDER.finditer(text):
        yield m.group(1).strip(), (m.group(2).strip() if m.group(2) else None)
