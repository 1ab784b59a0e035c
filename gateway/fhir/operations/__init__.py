"""One module per $operation; each declares where it applies and its handler."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.fhir.router import Handler


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    handler: Handler
    levels: frozenset[str]  # system | type | instance
    types: frozenset[str] = frozenset()  # empty: every type
    methods: frozenset[str] = field(default_factory=lambda: frozenset({"GET", "POST"}))
    definition: str | None = None  # canonical URL of the OperationDefinition
    # Where the core definition does not cover the system level (Resource-validate), ours.
    system_definition: str | None = None

    def accepts(self, level: str, res_type: str | None) -> bool:
        if level not in self.levels:
            return False
        return not self.types or level == "system" or res_type in self.types
