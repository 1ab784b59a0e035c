"""One search value → a condition on one index-table row, per parameter type (R4 search §3.1.1).

The query value is read with the same functions that index resources (gateway.search.values),
so ``name=Müller`` and a stored ``MULLER`` normalise alike, and ``date=2024`` is the whole year.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, true

from gateway.search.query_values import date_range, number_range, split_prefix
from gateway.search.values import UCUM_SYSTEM, parse_reference, ucum_table
from gateway.vocab import outcomes
from gateway.vocab.search_model import ESCAPED_PIPE, Clause


def unescaped(value: str) -> str:
    """A value (part) as the client meant it: escaped pipes back to `|`."""
    return value.replace(ESCAPED_PIPE, "|")


def _split(value: str, maxsplit: int = -1) -> list[str]:
    """Split on the separating (unescaped) `|`, each part literal."""
    return [unescaped(p) for p in value.split("|", maxsplit)]


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _number_cond(col: Any, prefix: str, value: str, name: str) -> ColumnElement[bool]:
    val, lo, hi = number_range(value, name)
    ap = abs(val) * 0.1
    return {
        "eq": lambda: and_(col >= lo, col < hi),
        "ne": lambda: or_(col < lo, col >= hi),
        "gt": lambda: col > val,
        "lt": lambda: col < val,
        "ge": lambda: col >= val,
        "le": lambda: col <= val,
        "sa": lambda: col > val,
        "eb": lambda: col < val,
        "ap": lambda: and_(col >= val - ap, col <= val + ap),
    }[prefix]()


# Types whose values have `|`-separated parts: they split first, then take parts literally.
_PIPED = frozenset({"token", "reference", "quantity", "special"})


class ValueConditions:
    def __init__(self, normalise: Callable[[str], str], base_url: str = ""):
        self.normalise = normalise
        self.base_url = base_url

    def cond(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.type not in _PIPED:
            v = unescaped(v)
        return getattr(self, f"_{c.type}")(t, c, v)  # type: ignore[no-any-return]

    def _token(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "text":
            return t.c.text.like(like_escape(self.normalise(unescaped(v))) + "%", escape="\\")
        if c.modifier == "of-type":
            parts = _split(v)
            if len(parts) != 3 or not parts[1] or not parts[2]:
                raise outcomes.bad_request(
                    f"Invalid :of-type value '{unescaped(v)}': expected system|code|value",
                    f"{c.name}:of-type",
                    "GW-1323",
                )
            system, code, value = parts
            cond = t.c.code == f"{code}|{value}"
            return and_(cond, t.c.system == system) if system else cond  # type: ignore[no-any-return]
        if c.modifier not in (None, "not"):
            raise self.bad_modifier(c)
        if "|" not in v:
            return t.c.code == unescaped(v)  # type: ignore[no-any-return]
        system, code = _split(v, 1)
        if not system:
            return and_(t.c.system.is_(None), t.c.code == code)
        if not code:
            return t.c.system == system  # type: ignore[no-any-return]
        return and_(t.c.system == system, t.c.code == code)

    def _string(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "exact":
            return t.c.exact == v  # type: ignore[no-any-return]
        if c.modifier == "contains":
            return t.c.norm.like("%" + like_escape(self.normalise(v)) + "%", escape="\\")
        if c.modifier is not None:
            raise self.bad_modifier(c)
        return t.c.norm.like(like_escape(self.normalise(v)) + "%", escape="\\")

    def _uri(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier in ("below", "above"):
            # R4 search.html (uri): ":above and :below modifiers only apply to URLs, and not
            # URNs such as OIDs"; they compare whole path segments.
            scheme, sep, rest = v.partition("://")
            if not sep or not scheme or not rest.strip("/"):
                raise outcomes.bad_request(
                    f"':{c.modifier}' applies to URLs, not '{v}'",
                    f"{c.name}:{c.modifier}",
                    "GW-1321",
                )
            if c.modifier == "above":
                return t.c.uri.in_(url_ancestors(v))  # type: ignore[no-any-return]
            base = v.rstrip("/")
            # SQLite's LIKE ignores ASCII case; URIs compare case-sensitively (as on PostgreSQL).
            below = base + "/"
            return or_(
                t.c.uri.in_((base, below)),
                and_(
                    t.c.uri.like(like_escape(base) + "/%", escape="\\"),
                    func.substr(t.c.uri, 1, len(below)) == below,
                ),
            )
        if c.modifier is not None:
            raise self.bad_modifier(c)
        return t.c.uri == v  # type: ignore[no-any-return]

    def _reference(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier == "identifier":
            if "|" not in v:
                return t.c.ident_value == unescaped(v)  # type: ignore[no-any-return]
            system, value = _split(v, 1)
            if not system:
                return t.c.ident_value == value  # type: ignore[no-any-return]
            return and_(t.c.ident_system == system, t.c.ident_value == value)
        type_mod = c.modifier if c.modifier and c.modifier[:1].isupper() else None
        if c.modifier is not None and type_mod is None:
            raise self.bad_modifier(c)
        if self.base_url and v.startswith(self.base_url + "/"):
            v = v[len(self.base_url) + 1 :]
        if "://" in v or v.startswith("urn:"):
            return self._absolute_reference(t, v)
        v = unescaped(v)
        parts = v.split("/")
        if len(parts) >= 2:
            return and_(t.c.target_type == parts[-2], t.c.target_id == parts[-1])
        cond = t.c.target_id == v
        return and_(cond, t.c.target_type == type_mod) if type_mod else cond

    @staticmethod
    def _absolute_reference(t: Any, v: str) -> ColumnElement[bool]:
        """An absolute URL matches references written with that URL, and local references to
        the same Type/id (the server is one of the bases a client may use)."""
        url, version = (_split(v, 1) + [""])[:2]
        cond = t.c.url == url
        if version:
            return and_(cond, t.c.version == version)
        rtype, rid, _ = parse_reference(url)
        if rtype and rid:
            local = and_(t.c.url.is_(None), t.c.target_type == rtype, t.c.target_id == rid)
            return or_(cond, local)
        return cond  # type: ignore[no-any-return]

    def _date(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self.bad_modifier(c)
        return self.date_cond(t.c.low, t.c.high, v, c.name)

    @staticmethod
    def date_cond(low: Any, high: Any, v: str, name: str) -> ColumnElement[bool]:
        prefix, value = split_prefix(v)
        sl, sh = date_range(value, name)
        return {  # type: ignore[no-any-return]
            "eq": lambda: and_(low >= sl, high <= sh),
            "ne": lambda: or_(low < sl, high > sh),
            "gt": lambda: high > sh,
            "lt": lambda: low < sl,
            "ge": lambda: high >= sl,
            "le": lambda: low <= sh,
            "sa": lambda: low > sh,
            "eb": lambda: high < sl,
            "ap": lambda: and_(low <= sh, high >= sl),
        }[prefix]()

    def _number(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self.bad_modifier(c)
        prefix, value = split_prefix(v)
        return _number_cond(t.c.value, prefix, value, c.name)

    def _quantity(self, t: Any, c: Clause, v: str) -> ColumnElement[bool]:
        if c.modifier is not None:
            raise self.bad_modifier(c)
        number, *unit = _split(v, 2)
        prefix, value = split_prefix(number)
        system, code = unit if len(unit) == 2 else ("", unit[0] if unit else "")
        hit = ucum_table().get(code) if system == UCUM_SYSTEM and code else None
        if hit is not None:  # compare in canonical units: 1 g finds 1000 mg
            number_range(value, c.name)  # 400 on a malformed number
            return and_(
                t.c.canon_code == hit[1],
                _number_cond(t.c.canon_value, prefix, _scale(value, hit[0]), c.name),
            )
        cond = _number_cond(t.c.value, prefix, value, c.name)
        if not code and not system:
            return cond
        unit_cond = or_(t.c.code == code, t.c.unit == code) if code else true()
        return and_(cond, unit_cond, t.c.system == system) if system else and_(cond, unit_cond)

    @staticmethod
    def bad_modifier(c: Clause) -> outcomes.OperationOutcomeError:
        return outcomes.bad_request(
            f"Modifier ':{c.modifier}' is not supported for {c.type} parameter '{c.name}'",
            f"{c.name}:{c.modifier}",
            "GW-1321",
        )


def url_ancestors(url: str) -> list[str]:
    """The URL and each path-segment ancestor of it down to scheme://host, with and without a
    trailing slash: what `:above` matches."""
    scheme, _, rest = url.partition("://")
    parts = rest.rstrip("/").split("/")
    out = {url}
    for i in range(1, len(parts) + 1):
        prefix = f"{scheme}://" + "/".join(parts[:i])
        out.update((prefix, prefix + "/"))
    return sorted(out)


def _scale(value: str, factor: float) -> str:
    """The query number in canonical units, keeping its written precision (so '5' mg is still
    ± 0.5 mg after scaling to g)."""
    from decimal import Decimal

    d = Decimal(value.strip())
    scaled = d * Decimal(repr(factor))
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    shift = Decimal(repr(factor)).adjusted()
    return str(scaled.quantize(Decimal(f"1e{exp + shift}")))
