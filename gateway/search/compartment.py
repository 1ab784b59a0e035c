"""Patient compartment (R4 CompartmentDefinition `patient`, shipped as data) → SQL sets.

A resource is in Patient/x's compartment when one of its compartment parameters (e.g.
Observation.subject/performer, Encounter.patient) refers to Patient/x; the reference rows are
already indexed, so membership is one subquery on idx_reference.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    TextClause,
    and_,
    exists,
    not_,
    or_,
    select,
    text,
    tuple_,
    union,
)

from gateway.store.tables import idx_date, idx_reference, resources

COMPARTMENT_FILE = Path(__file__).resolve().parent / "data" / "patient-compartment.json"
CARE_DATES_FILE = Path(__file__).resolve().parent / "data" / "care-dates.json"
# Resources outside the compartment that $everything adds when a member refers to them.
REFERENCED_TYPES = ("Practitioner", "Organization", "Location", "Medication")
REF = idx_reference.c
R = resources.c
# Which patients: ids, a query of ids (those a client may see), or None for all of them.
PatientIds = list[str] | Select[Any] | None


@lru_cache(maxsize=1)
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """resource type → the parameters that link it to a Patient."""
    raw = json.loads(COMPARTMENT_FILE.read_text(encoding="utf-8"))
    return {t: tuple(p for p in params if not p.startswith("{")) for t, params in raw.items()}


def _pointing_at(patient_ids: PatientIds) -> list[ColumnElement[bool]]:
    conds = [REF.target_type == "Patient"]
    if patient_ids is not None:
        conds.append(REF.target_id.in_(patient_ids))
    return conds


_NO_LIMIT = 2**62
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


Extra = tuple[tuple[str, tuple[str, ...]], ...]


@lru_cache(maxsize=4)
def _compartment_params(extra: Extra = ()) -> TextClause:
    """The reference rows that put their resource in a Patient compartment, as SQL text built
    once from the shipped definition: ~70 types and their parameters as bound IN lists were
    re-rendered on every execution and cost more than running the query."""

    def quoted(name: str) -> str:
        assert _NAME.fullmatch(name), name  # names from our own data file, never a client's
        return f"'{name}'"

    terms = [
        f"(idx_reference.res_type = {quoted(t)} AND idx_reference.param IN "
        f"({', '.join(quoted(p) for p in params)}))"
        for t, params in sorted({**patient_compartment(), **dict(extra)}.items())
        if params
    ]
    return text(f"({' OR '.join(terms)})")


def member_pairs(patient_ids: PatientIds, extra: Extra = ()) -> Any:
    """(type, id) of every resource in the compartments of the given Patients (None: any);
    `extra`: further (type, parameters) counted in (access control's wider view)."""
    return select(REF.res_type, REF.res_id).where(
        *_pointing_at(patient_ids), _compartment_params(extra)
    )


def everything_keys(patient_ids: PatientIds) -> Any:
    """(res_type, res_id) of what $everything returns: the patients, their compartments, and
    the Practitioners/Organizations/Locations/Medications those refer to, as one UNION of
    index lookups (the target index finds a patient's compartment directly; an OR over
    `resources` made the planner scan the whole table)."""
    patients = select(R.res_type, R.res_id).where(R.res_type == "Patient")
    if patient_ids is not None:
        patients = patients.where(R.res_id.in_(patient_ids))
    compartment = union(patients, member_pairs(patient_ids)).cte("compartment")
    comp = compartment.c
    # The members' references first, their target types filtered afterwards: with the filter
    # inside the join, SQLite builds a Bloom filter by scanning every reference row with those
    # target types (~90 ms at 200k resources). The LIMIT keeps the subquery from being merged
    # back into the join (on both databases); it never limits anything.
    refs = (
        select(REF.target_type, REF.target_id)
        .join(compartment, and_(REF.res_type == comp.res_type, REF.res_id == comp.res_id))
        .limit(_NO_LIMIT)
        .subquery("refs")
    )
    referenced = select(refs.c.target_type, refs.c.target_id).where(
        refs.c.target_type.in_(REFERENCED_TYPES)
    )
    return union(select(comp.res_type, comp.res_id), referenced).subquery("everything")


@lru_cache(maxsize=1)
def care_date_params() -> dict[str, str]:
    """resource type → the date parameter holding its care date ($everything start/end)."""
    raw = json.loads(CARE_DATES_FILE.read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def in_care_period(keys: Any, low: int, high: int) -> ColumnElement[bool]:
    """Rows of `keys` (res_type, res_id) whose care date overlaps [low, high] (µs), or that
    have none (a type without a care date, or a resource without a value: nothing says it
    is outside the period)."""
    D = idx_date.c
    pairs = tuple_(D.res_type, D.param).in_(sorted(care_date_params().items()))
    same = and_(D.res_type == keys.c.res_type, D.res_id == keys.c.res_id, pairs)
    dated = exists().where(same)
    overlaps = exists().where(same, D.low <= high, D.high >= low)
    return or_(not_(dated), overlaps)
