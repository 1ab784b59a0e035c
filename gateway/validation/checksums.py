"""Check characters of Chinese national identifiers, usable from Python and from FHIRPath.

- GB 11643-1999 citizen identity number (居民身份证号码): 17 digits + ISO 7064 MOD 11-2 check
  character (0-9 or X); digits 7-14 are the birth date, digit 17 is odd for men, even for women.
  A lower-case x is accepted (many systems store it so; `id_card_lowercase_x` lets callers warn).
  The residence permits of Hong Kong, Macao and Taiwan residents (港澳台居民居住证, 2018) use the
  same format with the prefixes 81, 82 and 83; 83 is no GB/T 2260 province, so the prefixes an ID
  number may start with are the province codes plus 83.
- GB 32100-2015 unified social credit code (统一社会信用代码): 17 characters + a MOD 31 check
  character over the alphabet 0-9A-Z without I, O, Z, S, V. Positions 9-17 are the GB 11714
  organisation code (组织机构代码), 8 characters and its own MOD 11 check character (0-9 or X),
  whose character values are those of GB 11714 (0-9, then A=10 … Z=35).
- GB/T 2260 administrative-division code (行政区划代码): six digits under a known province.

`FHIRPATH_FUNCTIONS` registers these for fhirpathpy's user invocation table, so our profiles'
invariants can say `value.cnIdCardValid()`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"^[1-9]\d{16}[\dXx]$")

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC_RE = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")
_ORG_VALUES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # GB 11714 Annex A: A=10 … Z=35
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_RE = re.compile(r"^[0-9A-Z]{8}[0-9X]$")

# GB/T 2260 province-level codes (省级行政区划).
PROVINCE_CODES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
    "61 62 63 64 65 71 81 82".split()
)
# 港澳台居民居住证: 810000 Hong Kong, 820000 Macao, 830000 Taiwan residents.
ID_PREFIXES = PROVINCE_CODES | {"83"}
_DIVISION_RE = re.compile(r"^\d{6}$")


def id_card_check_char(first17: str) -> str:
    """The GB 11643 (ISO 7064 MOD 11-2) check character for 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def id_card_birth_date(number: str) -> date | None:
    """The birth date embedded in an 18-character ID number, or None when it is not a date."""
    if len(number) != 18 or not number[6:14].isdigit():
        return None
    try:
        return date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return None


def id_card_valid(number: str) -> bool:
    """Format, real birth date, known prefix and check character of an 18-character number
    (a lower-case x check character is accepted)."""
    if not isinstance(number, str) or not _ID_RE.match(number):
        return False
    if number[:2] not in ID_PREFIXES or id_card_birth_date(number) is None:
        return False
    return id_card_check_char(number[:17]) == number[17].upper()


def id_card_lowercase_x(number: str) -> bool:
    """A valid number written with a lower-case x check character (GB 11643 writes X)."""
    return isinstance(number, str) and number.endswith("x") and id_card_valid(number)


def id_card_sex(number: str) -> str | None:
    """'male' or 'female' from the 17th digit (odd men, even women)."""
    if len(number) != 18 or not number[16].isdigit():
        return None
    return "male" if int(number[16]) % 2 else "female"


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a USCC."""
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def uscc_valid(code: str) -> bool:
    """Format (18 characters, allowed alphabet, 6-digit division), GB 32100 check character and
    the GB 11714 check character of the organisation code in positions 9-17."""
    if not isinstance(code, str) or not _USCC_RE.match(code):
        return False
    return uscc_check_char(code[:17]) == code[17] and org_code_valid(code[8:17])


def org_code_check_char(first8: str) -> str:
    """GB 11714 organisation-code check character: 11 - (sum of values x weights) mod 11, where
    10 is written X and 11 is written 0; a letter's value is 10 for A up to 35 for Z."""
    total = sum(_ORG_VALUES.index(c) * w for c, w in zip(first8, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def org_code_valid(code: str) -> bool:
    """Nine characters: an 8-character GB 11714 body (digits and upper-case letters) and its
    check character."""
    return bool(isinstance(code, str) and _ORG_RE.match(code)) and (
        org_code_check_char(code[:8]) == code[8]
    )


def division_code_valid(code: str) -> bool:
    """Six digits under a GB/T 2260 province code."""
    return isinstance(code, str) and bool(_DIVISION_RE.match(code)) and code[:2] in PROVINCE_CODES


# ---- FHIRPath functions (fhirpathpy user invocation table) ----
def _each(fn):
    def invoke(inputs: list[Any]) -> list[Any]:
        return [fn(x) if isinstance(x, str) else False for x in inputs]

    return invoke


def _birth_date_string(number: str) -> str | bool:
    born = id_card_birth_date(number)
    return born.isoformat() if born else False


FHIRPATH_FUNCTIONS: dict[str, dict[str, Any]] = {
    "cnIdCardValid": {"fn": _each(id_card_valid), "arity": {0: []}},
    "cnIdCardBirthDate": {"fn": _each(_birth_date_string), "arity": {0: []}},
    "cnIdCardSex": {"fn": _each(lambda n: id_card_sex(n) or False), "arity": {0: []}},
    "cnUsccValid": {"fn": _each(uscc_valid), "arity": {0: []}},
    "cnDivisionValid": {"fn": _each(division_code_valid), "arity": {0: []}},
}
