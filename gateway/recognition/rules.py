"""The recognition rules as checked data: profiles/policy/recognition.yaml (the recognisable
items with their validity windows, the level hierarchy, the lab qualification) and each region
pack's optional `recognition:` section (the scope its results are mutual within, and its own
windows). Loaded once; a broken file stops start-up naming the file and the place.

The region sections are read here, not through the policy packs, so that both the write rules
(gateway.policy) and the `$recognized-results` operation (gateway.fhir) can use them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

FILE = "recognition.yaml"
_NOT_PACKS = frozenset({"access.yaml", "national.yaml", FILE})


class RecognitionError(RuntimeError):
    """The recognition rules cannot be used; the message says which file, where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _prefix(value: str) -> str:
    if not value.isdigit() or len(value) not in (2, 4, 6):
        raise ValueError(f"{value!r} is not a GB/T 2260 prefix")
    return value


class RegionRecognition(_Strict):
    """A pack's `recognition:`: the GB/T 2260 prefixes its results are mutual within (default:
    the pack's own divisions) and its own validity windows (item code → days)."""

    scope: list[str] = []
    days: dict[str, int] = {}

    @field_validator("scope", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("scope")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        return [_prefix(v) for v in value]

    @field_validator("days")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for code, days in value.items():
            if days < 1:
                raise ValueError(f"{code}: a window is at least one day")
        return value


class Item(_Strict):
    name: str
    kind: Literal["lab", "imaging", "exam"]
    codes: list[str] = Field(min_length=1)  # "system|code"
    days: int = Field(ge=1)

    @property
    def local_codes(self) -> list[str]:
        """The codes without their systems (how a pack's `days` names an item)."""
        return [c.split("|", 1)[1] for c in self.codes]

    @field_validator("codes")
    @classmethod
    def _qualified(cls, value: list[str]) -> list[str]:
        for c in value:
            system, sep, code = c.partition("|")
            if not sep or not system or not code:
                raise ValueError(f"{c!r} is not system|code")
        return value


class Hierarchy(_Strict):
    same_level: bool = True  # 同级互认
    lower_accepts_higher: bool = True  # 下级认可上级
    alliance_mutual: bool = True  # 医联体内全部互认


class Qualification(_Strict):
    program: str  # a code of CodeSystem lab-qualification-program
    kinds: list[Literal["lab", "imaging", "exam"]]  # the items that need it


class RecognitionRules(_Strict):
    source: str
    qualification: Qualification
    hierarchy: Hierarchy = Hierarchy()
    items: list[Item]

    def item_for(self, system: str | None, code: str | None) -> Item | None:
        key = f"{system}|{code}"
        return next((i for i in self.items if key in i.codes), None)

    def item_by_code(self, code: str) -> Item | None:
        return next((i for i in self.items if code in i.local_codes), None)


class Region:
    """One region pack's recognition: its divisions and its section."""

    def __init__(self, name: str, divisions: list[str], section: RegionRecognition | None):
        self.name = name
        self.divisions = divisions
        self.scope = (section.scope if section else []) or divisions
        self.days = section.days if section else {}


class Recognition:
    """The rules and every region's section; which region governs a division code."""

    def __init__(self, rules: RecognitionRules, regions: list[Region]):
        self.rules = rules
        self.regions = regions
        self._prefixes = sorted(
            ((d, r) for r in regions for d in r.divisions), key=lambda dr: -len(dr[0])
        )
        self._none = Region("national", [], None)

    def region_for(self, division: str | None) -> Region:
        if division:
            for prefix, region in self._prefixes:
                if division.startswith(prefix):
                    return region
        return self._none

    def days(self, item: Item, region: Region) -> int:
        for code in item.local_codes:
            if code in region.days:
                return region.days[code]
        return item.days


def _where(error: Any) -> str:
    return ".".join(str(p) for p in error["loc"])


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RecognitionError(f"{path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise RecognitionError(f"{path.name}: not a mapping")
    return data


def _checked(model: type[BaseModel], data: Any, name: str, at: str = "") -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(p for p in (at, _where(first)) if p)
        message = str(first["msg"]).removeprefix("Value error, ")
        raise RecognitionError(f"{name}: {where + ': ' if where else ''}{message}") from None


def load(folder: Path) -> Recognition:
    """recognition.yaml and the `recognition:` section of every region pack in `folder`."""
    path = folder / FILE
    rules: RecognitionRules = _checked(RecognitionRules, _read(path), path.name)
    seen: dict[str, str] = {}
    for item in rules.items:
        for c in item.codes:
            if c in seen:
                raise RecognitionError(f"{FILE}: items: {c} is both {seen[c]} and {item.name}")
            seen[c] = item.name
    regions: list[Region] = []
    for pack in sorted(folder.glob("*.yaml")):
        if pack.name in _NOT_PACKS:
            continue
        data = _read(pack)
        raw = data.get("recognition")
        section = None
        if raw is not None:
            section = _checked(RegionRecognition, raw, pack.name, "recognition")
            for code in section.days:
                if rules.item_by_code(code) is None:
                    raise RecognitionError(
                        f"{pack.name}: recognition.days.{code}: not a recognisable item"
                    )
        divisions = [str(d) for d in data.get("divisions") or []]
        regions.append(Region(pack.stem, divisions, section))
    return Recognition(rules, regions)


@lru_cache(maxsize=4)
def cached(folder: Path) -> Recognition:
    return load(folder)
