"""What one client may see, as SQL over the stored resources, built from its role's policy.

Every read path asks `condition(res_type, type_col, id_col)` and adds it to its statement:
the search page and its total, chains and `_has` (their subqueries), includes, read, vread,
history, `$everything`, conditional matches. The rules (see access.yaml):

- residents: the union of the role's selectors, each the resident references of the basis
  resources a FHIR search finds (`CarePlan?…&care-team.managing-organization={organization}`
  → their `subject`s), minus residents whose active Consent denies the organisation or the
  role's purpose of use;
- compartment: those residents, and every resource whose Patient-compartment parameters refer
  to one of them (R4 CompartmentDefinition patient);
- directory / {types, where}: every resource of a listed type (matching `where`);
- own: the resources the client's organisation wrote (targets of Provenance with it as agent);
- all: everything.

Searches in the policy run through the same parser and SQL builder as client searches, so a
policy means exactly what the same query means at `GET [base]/Type?…`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    false,
    literal,
    or_,
    select,
    tuple_,
    union,
)
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

from gateway.access.policy import PLACEHOLDER, Policy, Role, Selector
from gateway.search.compartment import member_pairs, patient_compartment
from gateway.search.sql import SearchSql
from gateway.store.tables import idx_reference, resources
from gateway.vocab.definitions import r4_resource_types
from gateway.vocab.search_model import SearchRequest

REF = idx_reference.c
R = resources.c
# Consent.provision.type is a code: indexed without a system.
CONSENT_DENIES = "Consent?status=active&provision-type=deny"
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
NOTHING = "\ue000none"  # a search value no resource holds (an unknown placeholder's value)

Parse = Callable[[str, list[tuple[str, str]]], SearchRequest]


@dataclass(frozen=True, slots=True)
class Principal:
    organization: str | None  # Organization/<id>
    role: str
    division: str | None = None  # the organisation's GB/T 2260 code, when it has one


def division_prefix(code: str | None) -> str:
    """410100 → 4101: the codes under a division start with its significant digits."""
    if not code:
        return NOTHING
    trimmed = code
    while len(trimmed) > 2 and trimmed.endswith("00"):
        trimmed = trimmed[:-2]
    return trimmed


def _now_minus(spec: str, now: datetime) -> str:
    amount, unit = int(spec[4:-1]), spec[-1]
    delta = {
        "d": timedelta(days=amount),
        "h": timedelta(hours=amount),
        "m": timedelta(minutes=amount),
    }
    return (now - delta[unit]).strftime("%Y-%m-%dT%H:%M:%SZ")


def _flat(query: Select[Any], name: str) -> Any:
    """A CTE: written once however often the statement refers to it, and flat (SQLite's parser
    refuses subqueries nested as deep as the policies' would be). Not materialised on
    PostgreSQL: the planner keeps pushing a read's one id into it instead of computing every
    visible id first. Its values (the principal's organisation, division, time window) are
    written into the SQL text instead of being bound: the statement is then the same for every
    request of that principal but its own parameters (a read's id), so PostgreSQL settles on a
    generic plan for it after a few executions and stops planning it (~2 ms a request)."""
    inlined: Select[Any] = visitors.replacement_traverse(query, {}, _inline)  # type: ignore[call-overload]
    return inlined.cte(name).prefix_with("NOT MATERIALIZED", dialect="postgresql")


def _inline(element: Any) -> Any:
    if isinstance(element, BindParameter) and not element.literal_execute:
        return bindparam(
            None,
            element.value,
            type_=element.type,
            unique=True,
            literal_execute=True,
            expanding=element.expanding,  # an IN list stays a list, rendered in place
        )
    return None


# A resident's records, for access: R4's Patient compartment, and the referral Task, which names
# its patient in `for` (search parameter `patient`) but is in no compartment of R4's: who may
# see the resident sees the workflow about them (and a Consent denial hides it too).
ACCESS_EXTRA = (("Task", ("patient",)),)


def resident_records() -> dict[str, tuple[str, ...]]:
    """resource type → the parameters that make a resource one of a resident's records."""
    return {**patient_compartment(), **dict(ACCESS_EXTRA)}


def _personal(res_type: str) -> bool:
    """A resident's record: the Patient or a resource of its compartment."""
    return res_type == "Patient" or bool(resident_records().get(res_type))


class Visibility:
    """The resources one principal may see; `None` conditions mean everything."""

    def __init__(
        self,
        policy: Policy,
        role: Role,
        principal: Principal,
        parse: Parse,
        sql: SearchSql,
        readable: Callable[[str], bool] = lambda t: True,
        writing: bool = False,
    ):
        self.readable = readable  # the token's scopes: a type it may not read is not seen
        # What a write may produce: as seen, but a resident's records (the Patient and its
        # compartment) count as the organisation's by the residents rule alone, never because
        # it wrote them ("own"): else anyone could write about anyone.
        self.writing = writing
        self.policy = policy
        self.role = role
        self.principal = principal
        self._parse = parse
        self._sql = sql
        self._now = datetime.now(UTC)
        self._everything = "all" in role.read
        self._cache: dict[str, Select[Any] | None | bool] = {}
        self._residents: Select[Any] | None = None

    # --- placeholders and searches -----------------------------------------------------------
    def _fill(self, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "organization":
                return self.principal.organization or NOTHING
            if name == "organization.division":
                return division_prefix(self.principal.division)
            return _now_minus(name, self._now)

        return PLACEHOLDER.sub(value, text)

    def _search_ids(self, res_type: str, query: str) -> Select[Any]:
        """The ids of `res_type` resources a FHIR search finds."""
        from urllib.parse import parse_qsl

        sr = self._parse(res_type, parse_qsl(self._fill(query), keep_blank_values=True))
        driven = self._sql.page_ids(sr)
        if driven is not None:  # from the index tables alone (their rows are live resources)
            col, conds = driven
            return select(col).where(*conds)
        return select(R.res_id).where(*self._sql.where(sr))

    def _selector(self, sel: Selector) -> Select[Any]:
        basis = self._search_ids(sel.basis, sel.query)
        if sel.patient == "_id":
            return basis
        return select(REF.target_id).where(
            REF.res_type == sel.basis,
            REF.param == sel.patient,
            REF.target_type == "Patient",
            REF.res_id.in_(basis),
        )

    def residents(self) -> Select[Any] | None:
        """Ids of the Patients the role's selectors pick, Consent denials removed."""
        if not self.role.residents:
            return None
        if self._residents is None:
            picked = union(
                *(
                    self._selector(s)
                    for name in self.role.residents
                    for s in self.policy.selectors[name]
                )
            ).subquery("picked")
            denied = union(
                self._denied(f"actor={self.principal.organization or NOTHING}"),
                self._denied(f"purpose={PURPOSE_SYSTEM}|{self.role.purpose}"),
            )
            col = picked.c[0]
            residents = _flat(select(col.label("res_id")).where(col.not_in(denied)), "residents")
            self._residents = select(residents.c.res_id)
        return self._residents

    def _denied(self, criterion: str) -> Select[Any]:
        basis, _, query = CONSENT_DENIES.partition("?")
        consents = self._search_ids(basis, f"{query}&{criterion}")
        return select(REF.target_id).where(
            REF.res_type == "Consent",
            REF.param == "patient",
            REF.target_type == "Patient",
            REF.res_id.in_(consents),
        )

    # --- per type ----------------------------------------------------------------------------
    def visible_ids(self, res_type: str) -> Select[Any] | None | bool:
        """The ids of `res_type` this principal sees: None = all of them, False = none."""
        if res_type not in self._cache:
            built = self._build(res_type)
            if isinstance(built, Select):  # one flat CTE per type (see _flat)
                seen = _flat(built, f"seen_{res_type.lower()}")
                built = select(seen.c[0])
            self._cache[res_type] = built
        return self._cache[res_type]

    def _build(self, res_type: str) -> Select[Any] | None | bool:
        if not self.readable(res_type):
            return False
        if self._everything:
            return None
        if res_type in self.policy.administrators_only:
            return False
        parts: list[Select[Any]] = []
        for rule in self.role.read:
            if rule == "directory":
                if res_type in self.policy.directory:
                    return None
            elif rule == "compartment":
                part = self._compartment(res_type)
                if part is not None:
                    parts.append(part)
            elif rule == "own":
                if not (self.writing and _personal(res_type)):
                    parts.append(self._own(res_type))
            elif not isinstance(rule, str) and res_type in rule.types:
                if rule.where is None:
                    return None
                parts.append(self._search_ids(res_type, rule.where))
        if not parts:
            return False
        return parts[0] if len(parts) == 1 else select(union(*parts).subquery("seen").c[0])

    def _compartment(self, res_type: str) -> Select[Any] | None:
        residents = self.residents()
        if residents is None:
            return None
        if res_type == "Patient":
            return residents
        params = resident_records().get(res_type)
        if not params:
            return None
        return select(REF.res_id).where(
            REF.res_type == res_type,
            REF.param.in_(params),
            REF.target_type == "Patient",
            REF.target_id.in_(residents),
        )

    def _own(self, res_type: str) -> Select[Any]:
        org_id = (self.principal.organization or NOTHING).removeprefix("Organization/")
        authored = select(REF.res_id).where(
            REF.res_type == "Provenance",
            REF.param == "agent",
            REF.target_type == "Organization",
            REF.target_id == org_id,
        )
        if res_type == "Provenance":  # the record of its own writes
            return authored
        return select(REF.target_id).where(
            REF.res_type == "Provenance",
            REF.param == "target",
            REF.target_type == res_type,
            REF.res_id.in_(authored),
        )

    # --- the conditions read paths add -------------------------------------------------------
    def condition(
        self, res_type: str | None, type_col: Any, id_col: Any, types: list[str] | None = None
    ) -> ColumnElement[bool] | None:
        """A condition on (type_col, id_col) true for the rows this principal may see; None
        when it sees them all. `res_type` None: rows of any type (or of `types`)."""
        if res_type is not None:
            return self._for_type(res_type, id_col)
        wanted = list(types or r4_resource_types())
        kinds = {t: self._kind(t) for t in wanted}
        whole = [t for t, k in kinds.items() if k == "all"]
        if len(whole) == len(wanted):
            return None
        conds = [type_col.in_(whole)] if whole else []
        pairs = self._pairs([t for t, k in kinds.items() if k == "some"])
        if pairs is not None:
            somes = [t for t, k in kinds.items() if k == "some"]
            conds.append(and_(type_col.in_(somes), tuple_(type_col, id_col).in_(pairs)))
        return or_(*conds) if conds else false()

    def _kind(self, res_type: str) -> str:
        """all | some | none of res_type is seen."""
        ids = self.visible_ids(res_type)
        return "all" if ids is None else "none" if ids is False else "some"

    def _pairs(self, types: list[str]) -> Select[Any] | None:
        """(type, id) of what is seen of several types at once, for statements over any type
        (system history and search, $everything, bundles): the compartment rule over every
        compartment type in one lookup, the own rule likewise, per type only a `where` rule
        (one condition per type would make a statement too large to plan quickly)."""
        if not types:
            return None
        parts: list[Select[Any]] = []
        residents = self.residents() if "compartment" in self.role.read else None
        if residents is not None:
            parts.append(select(literal("Patient", String), residents.subquery().c[0]))
            parts.append(member_pairs(residents, ACCESS_EXTRA))
        if "own" in self.role.read:
            parts.append(self._own_pairs())
        for rule in self.role.read:
            if not isinstance(rule, str) and rule.where is not None:
                for t in rule.types:
                    if t in types:
                        ids = self._search_ids(t, rule.where)
                        parts.append(select(literal(t, String), ids.subquery().c[0]))
        if not parts:
            return None
        return select(*union(*parts).subquery("seen_pairs").c)

    def _own_pairs(self) -> Select[Any]:
        authored = self._own("Provenance")
        pairs = select(REF.target_type, REF.target_id).where(
            REF.res_type == "Provenance", REF.param == "target", REF.res_id.in_(authored)
        )
        if self.writing:  # a resident's records are not its own by being written
            pairs = pairs.where(
                REF.target_type.not_in(
                    ["Patient", *(t for t, p in resident_records().items() if p)]
                )
            )
        mine = select(literal("Provenance", String), authored.subquery().c[0])
        return select(*union(pairs, mine).subquery("own_pairs").c)

    def _for_type(self, res_type: str, id_col: Any) -> ColumnElement[bool] | None:
        ids = self.visible_ids(res_type)
        if ids is None:
            return None
        if ids is False:
            return false()
        assert not isinstance(ids, bool)
        return id_col.in_(ids)
