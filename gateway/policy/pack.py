"""Regional policy packs (profiles/policy/<region>.yaml) as checked, typed data.

`national.yaml` holds what every region shares (the lifecycle, one contract at a time); each
regional pack is merged over it and governs the organisations whose GB/T 2260 division code
starts with one of its `divisions` (the longest prefix wins). Loaded once at start-up: a pack
that does not parse or breaks the schema stops start-up with one message naming the file and
the place (`xinjiang.yaml: packages[2].shares: …`).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.recognition import rules as recognition_rules
from gateway.recognition.rules import Recognition, RegionRecognition

STATUSES = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error")
Status = Literal["draft", "active", "on-hold", "revoked", "completed", "entered-in-error"]
Payer = Literal["insurer", "individual", "public-health", "finance"]
SigningUnit = Literal["individual", "household", "functional-community"]
Provider = Literal["team", "individual-doctor", "medical-alliance"]
NATIONAL = "national"


class PackError(RuntimeError):
    """A policy pack cannot be used; the message says which file, where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Strict):
    min_months: int = Field(ge=1)
    max_months: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.max_months is not None and self.max_months < self.min_months:
            raise ValueError("max_months is below min_months")
        return self


class Confirmation(_Strict):
    yearly: bool = False  # a multi-year contract is confirmed once each further year
    # A confirmation for contract year n may be recorded from this many days before the
    # (n-1)th anniversary of the start until the end of that year.
    early_days: int = Field(default=90, ge=0)


class Contracts(_Strict):
    one_in_force: bool = True  # one contract (and so one responsible doctor) at a time
    in_force: list[Status] = ["active", "on-hold"]
    period: Period
    confirmation: Confirmation = Confirmation()
    signing_units: list[SigningUnit]
    providers: list[Provider]
    # status → the statuses a contract may move to next; a new contract starts in `initial`
    initial: list[Status]
    transitions: dict[Status, list[Status]]


class Requirement(_Strict):
    """At least `min` members with one of these team roles and/or specialties (a specialty
    code covers its sub-specialties: 05 covers 05.01)."""

    label: str
    roles: list[str] = []
    specialties: list[str] = []
    min: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _something(self) -> Requirement:
        if not self.roles and not self.specialties:
            raise ValueError("a requirement names roles or specialties")
        return self


class TeamModel(_Strict):
    required: list[Requirement] = []


class Capacity(_Strict):
    unit: Literal["households", "persons"]
    max: int = Field(ge=1)


class Teams(_Strict):
    models: dict[str, TeamModel] = {}  # the models the region uses; empty: any model
    capacity: Capacity | None = None
    min_per_institution: int | None = None  # assessed, not a write rule


class Share(_Strict):
    payer: Payer
    amount: Decimal = Field(ge=0)
    cap: bool = False  # "不高于": at most this amount; the rest falls to the individual


class Item(_Strict):
    name: str
    price: Decimal = Field(ge=0)
    times: int = Field(default=1, ge=1)


class Package(_Strict):
    canonical: str
    name: str
    kind: Literal["free", "basic", "personalised"]
    price: Decimal = Field(ge=0)  # a year
    shares: list[Share]
    items: list[Item] = []
    divisions: list[str] = []  # only for organisations under these (a city's own fee)

    @model_validator(mode="after")
    def _adds_up(self) -> Package:
        total = sum((s.amount for s in self.shares), Decimal(0))
        if total != self.price:
            raise ValueError(f"the shares add up to {total}, not the price {self.price}")
        payers = [s.payer for s in self.shares]
        if len(set(payers)) != len(payers):
            raise ValueError("a payer appears twice")
        return self


class Combination(_Strict):
    max_personalised: int | None = None
    requires_basic: bool = False  # a personalised package only on top of a basic one


class Fees(_Strict):
    team_percent: int | None = Field(default=None, ge=0, le=100)
    institution_percent: int | None = Field(default=None, ge=0, le=100)
    staff_min_percent: int | None = Field(default=None, ge=0, le=100)


class ServiceFrequency(_Strict):
    key_population_per_year: int = Field(ge=0)
    others_per_year: int = Field(ge=0)


class Prescriptions(_Strict):
    long_max_days: int = Field(ge=1)


class TaskFlow(_Strict):
    """The referral Task's workflow: where it may start, the steps it may take, which business
    statuses fit each status, and whose step each is (`owner`: the receiving organisation;
    `requester`: the referring one)."""

    initial: list[str]
    transitions: dict[str, list[str]]
    business_status: dict[str, list[str]]
    actors: dict[str, Literal["owner", "requester"]] = {}
    any_step_roles: list[str] = []  # access roles that may take any side's step (admin)


class Referrals(_Strict):
    task: TaskFlow
    # resource kind (reserved-resource code: expert, outpatient, examination, bed) → the least
    # share of a hospital's slots of that kind reserved for family-doctor teams, in percent
    reserved: dict[str, int] = {}
    green_channel_down: bool = False  # the green channel may be used referring down too

    @model_validator(mode="after")
    def _percent(self) -> Referrals:
        for kind, pct in self.reserved.items():
            if not 0 < pct <= 100:
                raise ValueError(f"reserved.{kind}: a share is a percentage above 0")
        return self


class PolicyPack(_Strict):
    region: str
    name: str
    source: str  # the document (../shared/policy/…) the numbers come from
    divisions: list[str] = []
    contracts: Contracts
    teams: Teams = Teams()
    packages: list[Package] = []
    combination: Combination = Combination()
    fees: Fees = Fees()
    service_frequency: ServiceFrequency | None = None
    prescriptions: Prescriptions | None = None
    referrals: Referrals
    # 结果互认: the scope this region's results are mutual within, its own windows
    # (gateway.recognition.rules reads and checks it with recognition.yaml)
    recognition: RegionRecognition | None = None

    @model_validator(mode="after")
    def _consistent(self) -> PolicyPack:
        c = self.contracts
        for status, nexts in c.transitions.items():
            if status in nexts:
                raise ValueError(f"contracts.transitions.{status}: a status cannot follow itself")
        canonicals = [p.canonical for p in self.packages]
        for canonical in set(canonicals):
            scopes = [p.divisions or ["*"] for p in self.packages if p.canonical == canonical]
            flat = [d for s in scopes for d in s]
            if len(flat) != len(set(flat)):
                raise ValueError(f"packages: {canonical} is defined twice for one place")
        return self

    def packages_for(self, division: str | None) -> dict[str, Package]:
        """The packages offered where `division` is: a city's own definition wins over the
        region's."""
        out: dict[str, Package] = {}
        for p in self.packages:
            if not p.divisions:
                out.setdefault(p.canonical, p)
        for p in self.packages:
            if p.divisions and division and any(division.startswith(d) for d in p.divisions):
                out[p.canonical] = p
        return out


def _merge(base: Any, over: Any) -> Any:
    """`over` merged into `base`: mappings key by key, everything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


def _where(error: Any) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in error["loc"]).replace(
        ".[", "["
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PackError(f"{path.name}: {exc}") from None
    if not isinstance(data, dict):
        raise PackError(f"{path.name}: a policy pack is a mapping")
    return data


class Packs:
    """Every pack, and which one governs a division code."""

    def __init__(
        self,
        national: PolicyPack,
        regional: list[PolicyPack],
        results: Recognition | None = None,
    ):
        self.national = national
        self.regional = regional
        self.recognition = results  # the result-recognition rules (recognition.yaml)
        self._prefixes = sorted(
            ((d, p) for p in regional for d in p.divisions), key=lambda dp: -len(dp[0])
        )

    @classmethod
    def load(cls, folder: Path) -> Packs:
        """The packs in `folder` (every *.yaml but access.yaml, the access policy, and
        recognition.yaml, the result-recognition rules, loaded and checked with them)."""
        national_path = folder / f"{NATIONAL}.yaml"
        if not national_path.exists():
            raise PackError(f"{national_path}: the national pack is missing")
        base = _read(national_path)
        packs: dict[str, PolicyPack] = {}
        for path in sorted(folder.glob("*.yaml")):
            if path.name in ("access.yaml", recognition_rules.FILE):
                continue
            data = base if path == national_path else _merge(base, _read(path))
            try:
                pack = PolicyPack.model_validate(data)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = _where(first)
                message = str(first["msg"]).removeprefix("Value error, ")
                raise PackError(f"{path.name}: {where + ': ' if where else ''}{message}") from None
            if pack.region != path.stem:
                raise PackError(f"{path.name}: region is {pack.region!r}, not {path.stem!r}")
            packs[pack.region] = pack
        national = packs.pop(NATIONAL)
        seen: dict[str, str] = {}
        for pack in packs.values():
            for d in pack.divisions:
                if not d.isdigit() or len(d) not in (2, 4, 6):
                    raise PackError(
                        f"{pack.region}.yaml: divisions: {d!r} is not a GB/T 2260 prefix"
                    )
                if d in seen:
                    raise PackError(f"{pack.region}.yaml: division {d} is also {seen[d]}'s")
                seen[d] = pack.region
        results = None
        if (folder / recognition_rules.FILE).exists():
            try:
                results = recognition_rules.load(folder)
            except recognition_rules.RecognitionError as exc:
                raise PackError(str(exc)) from None
        return cls(national, list(packs.values()), results)

    def for_division(self, division: str | None) -> PolicyPack:
        if division:
            for prefix, pack in self._prefixes:
                if division.startswith(prefix):
                    return pack
        return self.national

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield self.national
        yield from self.regional
