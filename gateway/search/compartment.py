"""Patient compartment (R4 CompartmentDefinition `patient`, shipped as data) → SQL sets.

A resource is in Patient/x's compartment when one of its compartment parameters (e.g.
Observation.subject/performer, Encounter.patient) refers to Patient/x; the reference rows are
already indexed, so membership is one subquery on idx_reference.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, tuple_

from gateway.store.tables import idx_reference, resources

COMPARTMENT_FILE = Path(__file__).resolve().parent / "data" / "patient-compartment.json"
# Resources outside the compartment that $everything adds when a member refers to them.
REFERENCED_TYPES = ("Practitioner", "Organization", "Location", "Medication")
REF = idx_reference.c
R = resources.c


@lru_cache(maxsize=1)
def patient_compartment() -> dict[str, tuple[str, ...]]:
    """resource type → the parameters that link it to a Patient."""
    raw = json.loads(COMPARTMENT_FILE.read_text(encoding="utf-8"))
    return {t: tuple(p for p in params if not p.startswith("{")) for t, params in raw.items()}


def _pointing_at(patient_ids: list[str] | None) -> list[ColumnElement[bool]]:
    conds = [REF.target_type == "Patient"]
    if patient_ids is not None:
        conds.append(REF.target_id.in_(patient_ids))
    return conds


def member_pairs(patient_ids: list[str] | None) -> Any:
    """(type, id) of every resource in the compartments of the given Patients (None: any)."""
    by_type = [
        and_(REF.res_type == t, REF.param.in_(params))
        for t, params in sorted(patient_compartment().items())
        if params
    ]
    return select(REF.res_type, REF.res_id).where(*_pointing_at(patient_ids), or_(*by_type))


def everything_where(
    patient_ids: list[str] | None, types: list[str] | None, since: int | None
) -> list[ColumnElement[bool]]:
    """Conditions on `resources` for $everything: the patients, their compartments, and the
    Practitioners/Organizations/Locations/Medications those refer to."""
    members = member_pairs(patient_ids)
    patients = R.res_type == "Patient"
    own = REF.res_type == "Patient"
    if patient_ids is not None:
        patients = and_(patients, R.res_id.in_(patient_ids))
        own = and_(own, REF.res_id.in_(patient_ids))
    referenced = select(REF.target_type, REF.target_id).where(
        REF.target_type.in_(REFERENCED_TYPES),
        or_(own, tuple_(REF.res_type, REF.res_id).in_(members)),
    )
    key = tuple_(R.res_type, R.res_id)
    conds: list[ColumnElement[bool]] = [
        R.deleted.is_(False),
        or_(patients, key.in_(members), key.in_(referenced)),
    ]
    if types:
        conds.append(R.res_type.in_(types))
    if since is not None:
        conds.append(R.last_updated >= since)
    return conds
