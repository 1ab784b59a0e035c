"""FHIR value → index rows, per search-parameter type and FHIR data type (R4 search spec).

``emitter(param, fhir_type)`` returns a function ``emit(value, rows)`` that adds the rows one
value contributes, or None when values of that type never produce rows for that parameter type
(e.g. SampledData for a quantity parameter). The same emitters serve the fast path and the
fhirpathpy path, so both give identical rows for identical selected values.

Choices made here (documented for the search builder):
- token: each Coding → (system, code, text=display); CodeableConcept.text → (None, None, text);
  Identifier → (system, value, text=type.text); ContactPoint → (None, value); code/string/uri/id
  → (None, value); boolean → (None, 'true'|'false'). ``text`` is normalised like strings.
  Identifier.type is indexed for :of-type as extra rows (param '<code>:of-type').
- string: primitives; HumanName → family, given, prefix, suffix, text as separate rows;
  Address → line, city, district, state, postalCode, country, text.
- date: date/dateTime/instant → precision range (values.date_range, naive times are UTC);
  Period → [start.low, end.high], a missing end is None (open); Timing → one row spanning
  its events and repeat.boundsPeriod.
- number: implicit precision range from the written form (values.number_range).
- quantity: Quantity and its profiles (Age, Duration, …) → value, precision range, system,
  code, unit, UCUM canonical; Money → system urn:iso:std:iso:4217, code = currency;
  Range → value = low (else high), low/high = the range ends (±inf when open), no canonical.
  SampledData is not indexed.
- reference: Reference.reference (relative, versioned, absolute, urn:, bare id with a
  single-target parameter), Reference.identifier → ident_system/ident_value; canonical/uri
  values → url (+ version after '|'), plus target type/id when the url ends in Type/id.
  '#contained' references are not indexed (their identifier still is).
- uri: uri/url/canonical/string values as written.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from gateway.search.paths import TYPE2PARENT
from gateway.search.registry import SearchParameter
from gateway.search.values import (
    ISO4217_SYSTEM,
    canonical_quantity,
    date_range,
    normalize_string,
    number_range,
    number_text,
    parse_reference,
)
from gateway.store.rows import (
    DateRow,
    IndexRows,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)

Emit = Callable[[Any, IndexRows], None]

_KINDS = frozenset(
    {
        "CodeableConcept",
        "Coding",
        "Identifier",
        "ContactPoint",
        "HumanName",
        "Address",
        "Reference",
        "Quantity",
        "Money",
        "Range",
        "Period",
        "Timing",
        "string",
        "uri",
        "boolean",
        "integer",
        "decimal",
        "date",
        "dateTime",
        "instant",
    }
)
_SYSTEM_KINDS = {
    "System.String": "string",
    "System.Boolean": "boolean",
    "System.Integer": "integer",
    "System.Decimal": "decimal",
    "System.DateTime": "dateTime",
    "System.Date": "date",
}


def kind_of(fhir_type: str | None) -> str | None:
    """The handled base type of a FHIR type: Age → Quantity, code → string, canonical → uri…"""
    if fhir_type is None:
        return None
    if fhir_type in _SYSTEM_KINDS:
        return _SYSTEM_KINDS[fhir_type]
    t: str | None = fhir_type
    for _ in range(8):
        if t is None or t in _KINDS:
            return t
        t = TYPE2PARENT.get(t)
    return None


def _str(v: Any) -> str | None:
    return v if type(v) is str and v else None


def _norm(v: Any) -> str | None:
    return normalize_string(v) if type(v) is str and v else None


def _list(v: Any) -> list[Any]:
    if v is None:
        return []
    return v if type(v) is list else [v]


# --------------------------------------------------------------------------------------------
# token


def _token_coding(code: str, c: Any, out: set[TokenRow]) -> None:
    if type(c) is not dict:
        return
    system, value, display = _str(c.get("system")), _str(c.get("code")), _norm(c.get("display"))
    if system or value or display:
        out.add(TokenRow(code, system, value, display))


def _of_type_rows(code: str, id_type: dict, value: str, out: set[TokenRow]) -> None:
    """Identifier.type codings for ``:of-type``: param ``{code}:of-type``, the type's system,
    and ``type-code|value`` as the code (one row per type coding)."""
    for c in _list(id_type.get("coding")):
        if type(c) is dict and _str(c.get("code")):
            out.add(TokenRow(f"{code}:of-type", _str(c.get("system")), f"{c['code']}|{value}"))


def _token_emitter(code: str, kind: str) -> Emit | None:
    if kind == "CodeableConcept":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is not dict:
                return
            codings = _list(v.get("coding"))
            for c in codings:
                _token_coding(code, c, rows.token)
            text = _norm(v.get("text"))
            # :text matches the text or a display: a text equal to a coding's display (most
            # coded data) is already found through that coding's row.
            if text and not any(
                type(c) is dict and _norm(c.get("display")) == text for c in codings
            ):
                rows.token.add(TokenRow(code, None, None, text))

        return emit
    if kind == "Coding":

        def emit(v: Any, rows: IndexRows) -> None:
            _token_coding(code, v, rows.token)

        return emit
    if kind == "Identifier":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is not dict:
                return
            system, value = _str(v.get("system")), _str(v.get("value"))
            if system or value:
                t = v.get("type")
                text = _norm(t.get("text")) if type(t) is dict else None
                rows.token.add(TokenRow(code, system, value, text))
                if type(t) is dict and value:
                    _of_type_rows(code, t, value, rows.token)

        return emit
    if kind == "ContactPoint":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is dict and _str(v.get("value")):
                rows.token.add(TokenRow(code, None, v["value"]))

        return emit
    if kind == "boolean":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is bool:
                rows.token.add(TokenRow(code, None, "true" if v else "false"))

        return emit
    if kind in ("string", "uri"):

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is str and v:
                rows.token.add(TokenRow(code, None, v))

        return emit
    if kind == "integer":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is int:
                rows.token.add(TokenRow(code, None, str(v)))

        return emit
    return None


# --------------------------------------------------------------------------------------------
# string

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


def _string_emitter(code: str, kind: str) -> Emit | None:
    def add(s: Any, out: set[StringRow]) -> None:
        if type(s) is str:
            n = normalize_string(s)
            if n:
                out.add(StringRow(code, n, s))

    if kind in ("string", "uri"):

        def emit(v: Any, rows: IndexRows) -> None:
            add(v, rows.string)

        return emit
    if kind in ("HumanName", "Address"):
        parts = _NAME_PARTS if kind == "HumanName" else _ADDRESS_PARTS

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is not dict:
                return
            for p in parts:
                x = v.get(p)
                if type(x) is list:
                    for s in x:
                        add(s, rows.string)
                else:
                    add(x, rows.string)

        return emit
    return None


# --------------------------------------------------------------------------------------------
# date


def _timing_bounds(v: dict) -> tuple[Any, Any] | None:
    lows: list[Any] = []
    highs: list[Any] = []
    open_low = open_high = False
    for e in _list(v.get("event")):
        r = date_range(e) if type(e) is str else None
        if r:
            lows.append(r[0])
            highs.append(r[1])
    rep = v.get("repeat")
    bp = rep.get("boundsPeriod") if type(rep) is dict else None
    if type(bp) is dict:
        s = date_range(bp["start"]) if type(bp.get("start")) is str else None
        e = date_range(bp["end"]) if type(bp.get("end")) is str else None
        if s or e:
            if s:
                lows.append(s[0])
            else:
                open_low = True
            if e:
                highs.append(e[1])
            else:
                open_high = True
    if not lows and not highs:
        return None
    return (
        None if open_low or not lows else min(lows),
        None if open_high or not highs else max(highs),
    )


def _date_emitter(code: str, kind: str) -> Emit | None:
    if kind in ("date", "dateTime", "instant"):

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is str:
                r = date_range(v)
                if r:
                    rows.date.add(DateRow(code, r[0], r[1]))

        return emit
    if kind == "Period":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is not dict:
                return
            s, e = v.get("start"), v.get("end")
            rs = date_range(s) if type(s) is str else None
            re_ = date_range(e) if type(e) is str else None
            if rs or re_:
                rows.date.add(DateRow(code, rs[0] if rs else None, re_[1] if re_ else None))

        return emit
    if kind == "Timing":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is dict:
                b = _timing_bounds(v)
                if b:
                    rows.date.add(DateRow(code, b[0], b[1]))

        return emit
    return None


# --------------------------------------------------------------------------------------------
# number / quantity


def _num(v: Any) -> tuple[float, float, float] | None:
    if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
        return number_range(number_text(v))
    return None


def _number_emitter(code: str, kind: str) -> Emit | None:
    if kind in ("integer", "decimal"):

        def emit(v: Any, rows: IndexRows) -> None:
            r = _num(v)
            if r:
                rows.number.add(NumberRow(code, r[0], r[1], r[2]))

        return emit
    return None


def _quantity_row(code: str, q: Any) -> QuantityRow | None:
    if type(q) is not dict:
        return None
    r = _num(q.get("value"))
    if r is None:
        return None
    system, ucode = _str(q.get("system")), _str(q.get("code"))
    canon = canonical_quantity(r[0], system, ucode)
    return QuantityRow(
        code,
        r[0],
        r[1],
        r[2],
        system,
        ucode,
        _str(q.get("unit")),
        canon[0] if canon else None,
        canon[1] if canon else None,
    )


def _quantity_emitter(code: str, kind: str) -> Emit | None:
    if kind == "Quantity":

        def emit(v: Any, rows: IndexRows) -> None:
            row = _quantity_row(code, v)
            if row:
                rows.quantity.add(row)

        return emit
    if kind == "Money":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is dict:
                r = _num(v.get("value"))
                if r:
                    cur = _str(v.get("currency"))
                    rows.quantity.add(
                        QuantityRow(
                            code, r[0], r[1], r[2], ISO4217_SYSTEM if cur else None, cur, cur
                        )
                    )

        return emit
    if kind == "Range":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is not dict:
                return
            lo, hi = _quantity_row(code, v.get("low")), _quantity_row(code, v.get("high"))
            ref = lo or hi
            if ref is None:
                return
            rows.quantity.add(
                QuantityRow(
                    code,
                    ref.value,
                    lo.value if lo else float("-inf"),
                    hi.value if hi else float("inf"),
                    ref.system,
                    ref.code,
                    ref.unit,
                )
            )

        return emit
    return None


# --------------------------------------------------------------------------------------------
# reference / uri


def _canonical_row(code: str, s: str) -> ReferenceRow:
    url, _, version = s.partition("|")
    rtype, rid, _ = parse_reference(url) if "://" in url else (None, None, None)
    return ReferenceRow(code, rtype, rid, url, version or None)


def _reference_emitter(code: str, kind: str, targets: tuple[str, ...]) -> Emit | None:
    single = targets[0] if len(targets) == 1 else None
    if kind == "Reference":

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is not dict:
                return
            rtype = rid = url = None
            ref = v.get("reference")
            if type(ref) is str and ref:
                rtype, rid, url = parse_reference(ref)
                if rid and rtype is None and url is None:
                    rtype = single
            ident = v.get("identifier")
            isys = ival = None
            if type(ident) is dict:
                isys, ival = _str(ident.get("system")), _str(ident.get("value"))
            if rid or url or isys or ival:
                rows.reference.add(ReferenceRow(code, rtype, rid, url, None, isys, ival))

        return emit
    if kind in ("uri", "string"):

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is str and v:
                rows.reference.add(_canonical_row(code, v))

        return emit
    return None


def _uri_emitter(code: str, kind: str) -> Emit | None:
    if kind in ("uri", "string"):

        def emit(v: Any, rows: IndexRows) -> None:
            if type(v) is str and v:
                rows.uri.add(UriRow(code, v))

        return emit
    return None


def emitter(param: SearchParameter, fhir_type: str | None) -> Emit | None:
    kind = kind_of(fhir_type)
    if kind is None:
        return None
    t = param.type
    if t == "token":
        return _token_emitter(param.code, kind)
    if t == "string":
        return _string_emitter(param.code, kind)
    if t == "date":
        return _date_emitter(param.code, kind)
    if t == "number":
        return _number_emitter(param.code, kind)
    if t == "quantity":
        return _quantity_emitter(param.code, kind)
    if t == "reference":
        return _reference_emitter(param.code, kind, param.target)
    if t == "uri":
        return _uri_emitter(param.code, kind)
    return None  # composite, special
