"""Value normalisation shared by index extraction and (later) query parsing.

Everything here is pure and cheap; the search builder must use the same functions on query
values so stored rows and queries agree (string normalisation, date ranges, number precision,
UCUM canonical units, reference parsing).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"

UCUM_SYSTEM = "http://unitsofmeasure.org"
ISO4217_SYSTEM = "urn:iso:std:iso:4217"

# --------------------------------------------------------------------------------------------
# Strings


_WS = re.compile(r"\s+")


@lru_cache(maxsize=65536)
def normalize_string(value: str) -> str:
    """Normalise for default string matching: compatibility-decompose (NFKD: full-width →
    ASCII, ligatures split), drop combining marks (accents), recompose (NFC, so Hangul etc.
    round-trip), casefold, collapse whitespace. CJK text is unchanged apart from that
    (张三 → 张三, ＡＢＣ → abc, Müller → muller)."""
    decomposed = unicodedata.normalize("NFKD", value)
    if not decomposed.isascii():
        decomposed = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
        decomposed = unicodedata.normalize("NFC", decomposed)
    return _WS.sub(" ", decomposed.casefold()).strip()


# --------------------------------------------------------------------------------------------
# Dates


# FHIR decimal (datatypes.html), plus a leading '+' in search values (not '.5', '5.', '1_0').
_DECIMAL_RE = re.compile(r"^[+-]?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$", re.ASCII)
_DATE_RE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$",
    re.ASCII,
)
_MICRO = timedelta(microseconds=1)


def _add_months(dt: datetime, months: int) -> datetime:
    total = dt.year * 12 + (dt.month - 1) + months
    return dt.replace(year=total // 12, month=total % 12 + 1)


@lru_cache(maxsize=65536)
def date_range(value: str) -> tuple[datetime, datetime] | None:
    """The UTC period a FHIR date/dateTime/instant string stands for, precision-aware.

    '2024' → [2024-01-01T00:00:00Z, 2024-12-31T23:59:59.999999Z]; '2024-03' → the month;
    '2024-03-05' → the day; '…T10:00' → the minute; '…T10:00:00' → the second;
    '…T10:00:00.5' → [.5, .599999]. A time zone offset is converted to UTC. Values without a
    time zone (dates, and dateTimes that omit it) are taken as UTC — this gateway's documented
    choice; FHIR leaves it to the server. Returns None for unparseable input (the validator's
    job). Both ends are inclusive, at microsecond resolution.
    """
    m = _DATE_RE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        return None
    g = m.group
    try:
        year = int(g("y"))
        if g("m") is None:
            low = datetime(year, 1, 1, tzinfo=UTC)
            high = _end(low, months=12)
        elif g("d") is None:
            low = datetime(year, int(g("m")), 1, tzinfo=UTC)
            high = _end(low, months=1)
        elif g("H") is None:
            low = datetime(year, int(g("m")), int(g("d")), tzinfo=UTC)
            high = _end(low, delta=timedelta(days=1))
        else:
            frac = g("f")
            micro = int((frac + "000000")[:6]) if frac else 0
            low = datetime(
                year,
                int(g("m")),
                int(g("d")),
                int(g("H")),
                int(g("M")),
                int(g("S") or 0),
                micro,
                tzinfo=UTC,
            )
            if g("S") is None:
                step = timedelta(minutes=1)
            elif not frac:
                step = timedelta(seconds=1)
            else:
                step = timedelta(microseconds=10 ** max(0, 6 - len(frac)))
            tz = g("tz")
            if tz and tz != "Z":
                sign = 1 if tz[0] == "+" else -1
                offset = timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
                low = low - sign * offset
            high = _end(low, delta=step)
    except (ValueError, OverflowError):
        return None
    return low, high


def _end(low: datetime, months: int = 0, delta: timedelta | None = None) -> datetime:
    try:
        nxt = _add_months(low, months) if months else low + delta  # type: ignore[operator]
    except (ValueError, OverflowError):
        return datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    return nxt - _MICRO


# --------------------------------------------------------------------------------------------
# Numbers


def number_text(value: int | float | Decimal | str) -> str:
    """The written form used for implicit precision. Written resources hold decimals as Decimal
    (gateway.fhir.json_io), whose text is exactly what was sent (1.50 stays '1.50'); floats
    (data parsed elsewhere) use Python's shortest round-trip repr (1.50 → '1.5'), which can
    only widen the range, never narrow it."""
    if isinstance(value, bool):
        raise TypeError("boolean is not a number")
    if isinstance(value, float):
        return repr(value)
    return str(value)


@lru_cache(maxsize=65536)
def number_range(text: str) -> tuple[float, float, float] | None:
    """(value, low, high) for a decimal as written: ± half a unit of its last significant digit.

    '100' → (100, 99.5, 100.5); '100.00' → (100, 99.995, 100.005); '1.5' → (1.5, 1.45, 1.55);
    '1e2' / '1.0e2' → exponent form counts the mantissa's digits: 1e2 → [50, 150),
    1.0e2 → [95, 105). (The R4 page's own '1e2 → [95, 105)' example contradicts its rule;
    we follow the rule.) Returns None when not a finite number.
    """
    if not isinstance(text, str) or not _DECIMAL_RE.match(text.strip()):
        return None  # ASCII FHIR decimals only (Decimal() also takes '١٠٠', '1_00', '.5')
    try:
        d = Decimal(text.strip())
        if not d.is_finite():
            return None
        exp = d.as_tuple().exponent
        assert isinstance(exp, int)
        half = Decimal(5) * Decimal(10) ** (exp - 1)
        out = float(d), float(d - half), float(d + half)
    except ArithmeticError:  # an exponent beyond what Decimal's context holds: 0e999999999
        return None
    return out if all(math.isfinite(x) for x in out) else None


# --------------------------------------------------------------------------------------------
# Quantities (UCUM canonical form from a small table)


@lru_cache(maxsize=1)
def ucum_table() -> dict[str, tuple[float, str]]:
    raw = json.loads((DATA_DIR / "ucum-units.json").read_text(encoding="utf-8"))
    return {code: (float(f), canon) for code, (f, canon) in raw["units"].items()}


def canonical_quantity(
    value: float, system: str | None, code: str | None
) -> tuple[float, str] | None:
    """UCUM canonical (value, code) when the unit is UCUM and in the table, else None.

    1 g → (1.0, 'g'); 1000 mg → (1.0, 'g'); 5 mmol/L → (0.005, 'mol/L'). Values are rounded to
    12 significant digits so that equal quantities in different units compare equal."""
    if system != UCUM_SYSTEM or code is None:
        return None
    hit = ucum_table().get(code)
    if hit is None:
        return None
    factor, canon = hit
    return float(f"{value * factor:.12g}"), canon


# --------------------------------------------------------------------------------------------
# References

_ID_RE = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE_RE = re.compile(r"^[A-Z][A-Za-z]+$")


def parse_reference(ref: str) -> tuple[str | None, str | None, str | None]:
    """Split a Reference.reference string into (target_type, target_id, url).

    'Patient/123' → ('Patient', '123', None); 'Patient/123/_history/2' → ('Patient', '123',
    None); 'http://x/fhir/Patient/123' → ('Patient', '123', 'http://x/fhir/Patient/123');
    'urn:uuid:…' / 'urn:oid:…' → (None, None, ref); '123' → (None, '123', None);
    '#contained' → (None, None, None): contained targets are not indexed.
    A type is only recognised if it looks like a FHIR type name (capitalised word).
    """
    if not ref or ref.startswith("#"):
        return None, None, None
    if ref.startswith("urn:"):
        return None, None, ref
    absolute = "://" in ref
    path = ref.split("?", 1)[0]
    parts = path.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) >= 2 and _TYPE_RE.match(parts[-2]) and _ID_RE.match(parts[-1]):
        return parts[-2], parts[-1], ref if absolute else None
    if not absolute and len(parts) == 1 and _ID_RE.match(parts[0]):
        return None, parts[0], None
    return None, None, ref if absolute else None


def reference_type(ref: object) -> str | None:
    """The resource type a Reference points at, as far as it can be known without resolving:
    from the reference string, else from Reference.type. Used for `resolve() is T`."""
    if not isinstance(ref, dict):
        return None
    s = ref.get("reference")
    if isinstance(s, str):
        rtype = parse_reference(s)[0]
        if rtype:
            return rtype
    t = ref.get("type")
    if isinstance(t, str) and _TYPE_RE.match(t):
        return t
    return None
