"""mappings/hl7v2/: `hl7v2.yaml` (the message types taken and how each is cut into records, the
charsets, the code tables) and one spec per record kind (patient, lab, message, report,
observation), read by the regional mappings' engine (gateway.mapping) and checked when loaded:
a broken file stops start-up naming its place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from gateway.hl7v2.fields import FieldName, parse_name
from gateway.mapping.registry import DEFAULT_DIR
from gateway.mapping.spec import Spec, SpecError
from gateway.mapping.spec_load import load_spec
from gateway.mapping.tables import CodeTable, TableError, load_tables

HL7V2_DIR = DEFAULT_DIR / "hl7v2"
PER = ("message", "OBR", "OBX")


class SoftTable(CodeTable):
    """A table whose unknown spellings are left out instead of being an error (a unit or a
    flag the table does not know keeps its text, and the message is still taken)."""

    def code(self, value: str) -> str | None:
        try:
            return super().code(value)
        except ValueError:
            return None


@dataclass(frozen=True)
class RecordRule:
    spec: Spec
    per: str = "message"  # message | OBR | OBX
    create_only: frozenset[str] = frozenset()  # resources created only, never changed


@dataclass(frozen=True)
class MessageRule:
    name: str  # ORU^R01
    title: str
    records: tuple[RecordRule, ...]


@dataclass(frozen=True)
class Hl7Config:
    charsets: dict[str, str]
    varies: dict[str, str]  # "OBX-5" → "OBX-2"
    patterns: dict[str, tuple[re.Pattern[str], ...]]
    messages: dict[str, MessageRule]
    specs: dict[str, Spec]
    names: dict[str, FieldName] = field(default_factory=dict)  # every declared field, parsed


def load_config(directory: Path = HL7V2_DIR) -> Hl7Config:
    main = directory / "hl7v2.yaml"
    raw = _yaml(main)
    if not isinstance(raw, Mapping):
        raise SpecError(f"{main}: a mapping (charsets, varies, patterns, messages, tables)")
    tables = _tables(raw.get("tables") or {}, str(main))
    specs: dict[str, Spec] = {}
    for path in sorted(directory.glob("*.yaml")):
        if path == main:
            continue
        spec = load_spec(_yaml(path), str(path), tables)
        if spec.name != path.stem:
            raise SpecError(f"{path}: name '{spec.name}' must be the file's, {path.stem}")
        specs[spec.name] = spec
    names: dict[str, FieldName] = {}
    for spec in specs.values():
        for f in spec.fields.values():
            try:
                names[f.name] = parse_name(f.name)
            except ValueError as exc:
                raise SpecError(f"{directory / spec.name}.yaml: field {f.name}: {exc}") from None
    messages = _messages(raw.get("messages"), str(main), specs)
    charsets = {str(k): str(v) for k, v in (raw.get("charsets") or {}).items()}
    varies = {str(k): str(v) for k, v in (raw.get("varies") or {}).items()}
    patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
    for name, body in (raw.get("patterns") or {}).items():
        items = body if isinstance(body, list) else [body]
        try:
            patterns[str(name)] = tuple(re.compile(str(p)) for p in items)
        except re.error as exc:
            raise SpecError(f"{main}: patterns.{name}: {exc}") from None
    return Hl7Config(charsets, varies, patterns, messages, specs, names)


@lru_cache(maxsize=2)
def config(directory: Path = HL7V2_DIR) -> Hl7Config:
    """Read once per process."""
    return load_config(directory)


def _tables(raw: Any, where: str) -> dict[str, CodeTable]:
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: tables must be a mapping of name → table")
    try:
        loaded = load_tables(raw, where)
    except TableError as exc:
        raise SpecError(str(exc)) from None
    out: dict[str, CodeTable] = {}
    for name, table in loaded.items():
        body = raw[name]
        if body.get("soft"):
            table = SoftTable(table.name, table.system, table.codes, table.passthrough, table.omit)
        out[name] = table
    return out


def _messages(raw: Any, where: str, specs: Mapping[str, Spec]) -> dict[str, MessageRule]:
    if not isinstance(raw, Mapping) or not raw:
        raise SpecError(f"{where}: `messages` maps a message type (ORU^R01) to its records")
    out: dict[str, MessageRule] = {}
    for name, body in raw.items():
        here = f"{where}: messages.{name}"
        if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
            raise SpecError(f"{here}: needs `records` (a list of {{spec, per, create_only}})")
        rules = []
        for item in body["records"]:
            spec = specs.get(str(item.get("spec")))
            if spec is None:
                raise SpecError(f"{here}: no spec '{item.get('spec')}' beside hl7v2.yaml")
            per = str(item.get("per") or "message")
            if per not in PER:
                raise SpecError(f"{here}: per must be one of {', '.join(PER)}")
            create_only = frozenset(str(r) for r in item.get("create_only") or [])
            unknown = create_only - {r.name for r in spec.resources}
            if unknown:
                raise SpecError(f"{here}: create_only names no resource of {spec.name}: {unknown}")
            rules.append(RecordRule(spec, per, create_only))
        out[str(name)] = MessageRule(str(name), str(body.get("title") or name), tuple(rules))
    return out


def _yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
