"""The access policies (profiles/policy/access.yaml) as checked, typed data.

Loaded once at start-up; a file that does not parse, names an unknown rule, selector or
resource type, or holds a search the gateway cannot run stops start-up with one message naming
the place (`roles.hospital.read[2].where: …`). See the file's header for what each rule means.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.vocab.definitions import r4_resource_types

ROLE_NAMES = ("primary-care", "hospital", "platform", "insurer", "sandbox", "admin")
NAMED_RULES = ("compartment", "directory", "own", "all")
PLACEHOLDER = re.compile(r"\{([a-z.]+|now-\d+[dhm])\}")
_PLACEHOLDERS = {"organization", "organization.division"}


class PolicyError(RuntimeError):
    """The policy file cannot be used; the message says where and why."""


def _types(value: list[str]) -> list[str]:
    known = set(r4_resource_types())
    unknown = [t for t in value if t not in known]
    if unknown:
        raise ValueError(f"not R4 resource types: {', '.join(unknown)}")
    return value


def _placeholders(text: str) -> str:
    for name in PLACEHOLDER.findall(text):
        if not (name in _PLACEHOLDERS or name.startswith("now-")):
            raise ValueError(f"unknown placeholder {{{name}}}")
    if "{" in PLACEHOLDER.sub("", text):
        raise ValueError("a '{' that opens no known placeholder")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Selector(_Strict):
    search: str  # "Type?params"
    patient: str  # the reference parameter naming the resident, or _id

    @field_validator("search")
    @classmethod
    def _search(cls, v: str) -> str:
        rtype, sep, _ = v.partition("?")
        if not sep:
            raise ValueError("a search is Type?parameters")
        _types([rtype])
        return _placeholders(v)

    @property
    def basis(self) -> str:
        return self.search.partition("?")[0]

    @property
    def query(self) -> str:
        return self.search.partition("?")[2]


class TypesRule(_Strict):
    types: list[str]
    where: str | None = None  # search parameters (without Type?) the resources must match

    _check_types = field_validator("types")(_types)

    @field_validator("where")
    @classmethod
    def _where(cls, v: str | None) -> str | None:
        return None if v is None else _placeholders(v)


ReadRule = Annotated[Literal["compartment", "directory", "own", "all"] | TypesRule, Field()]


class Role(_Strict):
    purpose: str  # v3 PurposeOfUse code: a Consent denying it applies to this role
    scopes: str  # what a client of this role may be granted, unless registered otherwise
    residents: list[str] = []  # selector names
    read: list[ReadRule]
    write: Literal["all"] | list[str] = []

    @field_validator("write")
    @classmethod
    def _write(cls, v: Any) -> Any:
        return v if v == "all" else _types(v)


class Policy(_Strict):
    version: Literal[1]
    directory: list[str]
    administrators_only: list[str] = []
    selectors: dict[str, list[Selector]]
    roles: dict[str, Role]

    _check_directory = field_validator("directory", "administrators_only")(_types)

    def role(self, name: str) -> Role:
        return self.roles[name]


def load_policy(path: Path) -> Policy:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: the access policy file is missing") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PolicyError(f"{path}: {where}: {first['msg']}") from None
    missing = [r for r in ROLE_NAMES if r not in policy.roles]
    if missing:
        raise PolicyError(f"{path}: roles: no policy for {', '.join(missing)}")
    for name, role in policy.roles.items():
        for sel in role.residents:
            if sel not in policy.selectors:
                raise PolicyError(f"{path}: roles.{name}.residents: unknown selector {sel!r}")
        if "compartment" in role.read and not role.residents:
            raise PolicyError(f"{path}: roles.{name}: 'compartment' needs residents")
    return policy
