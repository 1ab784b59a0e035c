"""Chinese national identifiers, checked wherever they appear, without the rest of a profile.

A resident ID number (居民身份证号码, `urn:oid:2.16.156.10011.1.3`) must carry a valid GB 11643
check character and, on a person with a birthDate or gender, agree with them (digits 7-14 are
the birth date, digit 17 the sex); a lower-case x check character is accepted with a warning.
A unified social credit code (统一社会信用代码, our `/sid/uscc` system) must pass GB 32100 and
the GB 11714 check of the organisation code inside it. Data quality for Chinese data, no
barrier for anyone else's: an identifier of another system is never looked at. Our CN profiles
state the same rules as invariants (cnp-1, cnp-2, cnp-4 on Patient, cnpr-1, cnpr-2, cnpr-3 on
Practitioner, cno-1); the walker skips these checks where such a profile already applies them.
Messages never repeat the number itself.
"""

from __future__ import annotations

from typing import Any

from gateway.validation.checksums import (
    id_card_birth_date,
    id_card_lowercase_x,
    id_card_sex,
    id_card_valid,
    uscc_valid,
)
from gateway.validation.locations import CANONICAL_BASE

ID_CARD = "urn:oid:2.16.156.10011.1.3"
USCC = CANONICAL_BASE + "/sid/uscc"
_CHECKS = {ID_CARD: ("VAL-1090", id_card_valid), USCC: ("VAL-1091", uscc_valid)}
# Our profiles' invariants stating the same rules: where one applies, it reports instead.
CHECK_KEYS = frozenset({"cnp-1", "cnpr-1", "cno-1"})
_BIRTH_KEYS, _SEX_KEYS = frozenset({"cnp-2", "cnpr-2"}), frozenset({"cnp-4", "cnpr-3"})
# Resources describing a person, with the birthDate and gender an ID number must agree with.
PERSONS = frozenset({"Patient", "Practitioner", "RelatedPerson", "Person"})

Problem = tuple[str, dict[str, Any]]


def identifier_problem(identifier: dict[str, Any], covered: frozenset[str]) -> Problem | None:
    """A national identifier whose check character (or format) is wrong, or (a warning, whatever
    profile applies) an ID number with a lower-case x; `covered` holds the invariant keys
    already applied to this element. The fields may carry the issue's `severity`."""
    system = identifier.get("system")
    check = _CHECKS.get(system)  # type: ignore[arg-type]
    value = identifier.get("value")
    if check is None or not isinstance(value, str):
        return None
    if not check[1](value):
        return None if covered & CHECK_KEYS else (check[0], {})
    if system == ID_CARD and id_card_lowercase_x(value):
        return "VAL-1094", {"severity": "warning"}
    return None


def person_problems(
    resource: dict[str, Any], path: str, covered: frozenset[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(message id, FHIRPath, fields) for each valid ID number of a person that disagrees with
    the person's birthDate (to its precision) or gender (male/female); `covered` as above."""
    if resource.get("resourceType") not in PERSONS:
        return []
    birth, gender = resource.get("birthDate"), resource.get("gender")
    out = []
    identifiers = resource.get("identifier")
    for i, ident in enumerate(identifiers if isinstance(identifiers, list) else []):
        if not isinstance(ident, dict) or ident.get("system") != ID_CARD:
            continue
        value = ident.get("value")
        if not isinstance(value, str) or not id_card_valid(value):
            continue  # the check character is reported on its own
        where = f"{path}.identifier[{i}].value"
        born = id_card_birth_date(value)
        if (
            not covered & _BIRTH_KEYS
            and isinstance(birth, str)
            and born is not None
            and not born.isoformat().startswith(birth)
        ):
            out.append(("VAL-1092", where, {"birth_date": birth}))
        if (
            not covered & _SEX_KEYS
            and gender in ("male", "female")
            and id_card_sex(value) != gender
        ):
            out.append(("VAL-1093", where, {"gender": gender}))
    return out
