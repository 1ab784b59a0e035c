"""Native implementations of hot invariants, keyed by (key, exact FHIRPath expression).

Each function takes the element's JSON value and the environment ({"resource",
"rootResource"}) and returns True when the invariant holds, with the FHIRPath semantics of
the expression it replaces (an empty result holds). tests/unit/validation checks every one
against fhirpathpy over the official examples.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

Native = Callable[[Any, dict[str, Any]], bool]

_XHTML = "{http://www.w3.org/1999/xhtml}"
_ALLOWED_TAGS = frozenset(
    "a abbr acronym b big blockquote br caption cite code col colgroup dd dfn div dl dt em "
    "h1 h2 h3 h4 h5 h6 hr i img li ol p pre q samp small span strong sub sup table tbody td "
    "tfoot th thead tr tt ul var".split()
)
# Separators between the parts of a transliterated minority name (艾力·买买提): the middle dot
# U+00B7 of the standard spelling, and the look-alikes input methods and registers produce: the
# bullet U+2022, the katakana middle dot U+30FB and the full-width full stop U+FF0E.
_NAME_DOTS = "\u00b7\u2022\u30fb\uff0e"
_CJK = re.compile(rf"^[\u3400-\u9fff{_NAME_DOTS}]+$")
_NO_DOTS = {ord(d): None for d in _NAME_DOTS}


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _has_choice(obj: dict[str, Any], name: str) -> bool:
    n = len(name)
    return any(k.startswith(name) and len(k) > n and k[n].isupper() for k in obj) or any(
        k.startswith("_" + name) and len(k) > n + 1 and k[n + 1].isupper() for k in obj
    )


def ele_1(value: Any, env: dict[str, Any]) -> bool:
    if isinstance(value, dict):
        return any(k != "id" for k in value)
    return value is not None


def ext_1(value: Any, env: dict[str, Any]) -> bool:
    if not isinstance(value, dict):
        return True
    return bool(value.get("extension")) != _has_choice(value, "value")


def dom_2(value: Any, env: dict[str, Any]) -> bool:
    return not any(
        c.get("contained") for c in _values(value.get("contained")) if isinstance(c, dict)
    )


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _refs_to_container(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("reference") == "#":
            return True
        return any(_refs_to_container(v) for k, v in node.items() if k != "reference")
    if isinstance(node, list):
        return any(_refs_to_container(v) for v in node)
    return False


def dom_3(value: Any, env: dict[str, Any]) -> bool:
    contained = [c for c in _values(value.get("contained")) if isinstance(c, dict)]
    if not contained:
        return True
    resource = env["resource"]
    strings = set(_strings(resource))
    for c in contained:
        cid = c.get("id")
        if cid is not None and "#" + str(cid) in strings:
            continue
        if not _refs_to_container(c) and not any(s == "#" for s in _strings(c)):
            return False
    return True


def dom_4(value: Any, env: dict[str, Any]) -> bool:
    for c in _values(value.get("contained")):
        meta = c.get("meta", {}) if isinstance(c, dict) else {}
        if "versionId" in meta or "lastUpdated" in meta:
            return False
    return True


def dom_5(value: Any, env: dict[str, Any]) -> bool:
    return not any(
        isinstance(c, dict) and c.get("meta", {}).get("security")
        for c in _values(value.get("contained"))
    )


def dom_6(value: Any, env: dict[str, Any]) -> bool:
    text = value.get("text")
    return isinstance(text, dict) and "div" in text


def _parse_div(div: Any) -> ET.Element | None:
    if not isinstance(div, str):
        return None
    try:
        root = ET.fromstring(div)
    except ET.ParseError:
        return None
    return root if root.tag == _XHTML + "div" else None


def html_elements_ok(div: Any) -> bool:
    """txt-1: a well-formed XHTML div with basic formatting elements only, no event handlers."""
    root = _parse_div(div)
    if root is None:
        return False
    for el in root.iter():
        if not el.tag.startswith(_XHTML) or el.tag[len(_XHTML) :] not in _ALLOWED_TAGS:
            return False
        if any(attr.lower().startswith("on") for attr in el.attrib):
            return False
    return True


def html_has_content(div: Any) -> bool:
    """txt-2: some non-whitespace content (text or an image)."""
    root = _parse_div(div)
    if root is None:
        return False
    return any(
        (el.text or "").strip() or (el.tail or "").strip() or el.tag == _XHTML + "img"
        for el in root.iter()
    )


def html_checks(div: Any) -> bool:
    """fhirpathpy's htmlChecks(): both narrative rules."""
    return html_elements_ok(div) and html_has_content(div)


def txt_1(value: Any, env: dict[str, Any]) -> bool:
    return html_elements_ok(value)


def txt_2(value: Any, env: dict[str, Any]) -> bool:
    return html_has_content(value)


def ref_1(value: Any, env: dict[str, Any]) -> bool:
    """A local reference names a contained resource; `#` alone, from a contained resource,
    names its container (dom-3 counts it; R4's expression forgot it, R5's says it)."""
    ref = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#"):
        return True
    if ref == "#" and env["resource"] is not env["rootResource"]:
        return True
    ids = {
        c.get("id") for c in _values(env["rootResource"].get("contained")) if isinstance(c, dict)
    }
    return ref[1:] in ids


def _parse_moment(text: str) -> tuple[tuple[int, ...], datetime | None] | None:
    m = re.match(
        r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})?)?)?)?$",
        text,
    )
    if not m:
        return None
    parts = tuple(int(p) for p in m.groups()[:3] if p is not None)
    if m.group(4) is None:
        return parts, None
    iso = text.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    return parts, moment


def compare_moments(a: str, b: str) -> int | None:
    """FHIRPath ordering of two date/dateTime strings: -1, 0, 1, or None (not comparable)."""
    pa, pb = _parse_moment(a), _parse_moment(b)
    if pa is None or pb is None:
        return None
    if pa[1] is not None and pb[1] is not None and pa[1].tzinfo and pb[1].tzinfo:
        return (pa[1] > pb[1]) - (pa[1] < pb[1])
    n = min(len(pa[0]), len(pb[0]))
    if pa[0][:n] != pb[0][:n]:
        return -1 if pa[0][:n] < pb[0][:n] else 1
    if len(pa[0]) == len(pb[0]) and (pa[1] is None) == (pb[1] is None):
        return 0
    return None  # equal at the common precision only: FHIRPath gives empty


def per_1(value: Any, env: dict[str, Any]) -> bool:
    """`start <= end`; when the two are equal to their common precision only (a date against
    a time on that day), FHIRPath's comparison is empty, not true, and an invariant SHALL be
    true: the reference validator fails it, and so does this."""
    start, end = value.get("start"), value.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    order = compare_moments(start, end)
    return order is not None and order <= 0


def que_12(value: Any, env: dict[str, Any]) -> bool:
    """R4 publishes `enableWhen.count() > 2`, but its text, the enableBehavior definition and
    the later versions say more than one enableWhen needs enableBehavior: the rule as meant."""
    when = value.get("enableWhen")
    return not (isinstance(when, list) and len(when) > 1) or "enableBehavior" in value


def _quantity_le(low: Any, high: Any) -> bool:
    if not isinstance(low, dict) or not isinstance(high, dict):
        return True
    a, b = low.get("value"), high.get("value")
    if not isinstance(a, int | float | Decimal) or not isinstance(b, int | float | Decimal):
        return True
    if (low.get("code") or low.get("unit")) != (high.get("code") or high.get("unit")):
        return True  # different units: not comparable without UCUM, FHIRPath gives empty
    return a <= b


def rng_2(value: Any, env: dict[str, Any]) -> bool:
    return _quantity_le(value.get("low"), value.get("high"))


def que_7(value: Any, env: dict[str, Any]) -> bool:
    return value.get("operator") != "exists" or "answerBoolean" in value


def cpt_2(value: Any, env: dict[str, Any]) -> bool:
    return "value" not in value or "system" in value


def qty_3(value: Any, env: dict[str, Any]) -> bool:
    return "code" not in value or "system" in value


def att_1(value: Any, env: dict[str, Any]) -> bool:
    return "data" not in value or "contentType" in value


def _present(value: dict[str, Any], name: str) -> bool:
    """The element is there: a value, or (a primitive) only its extensions (`_name`)."""
    return value.get(name) is not None or value.get("_" + name) is not None


def obs_3(value: Any, env: dict[str, Any]) -> bool:
    return not isinstance(value, dict) or any(_present(value, n) for n in ("low", "high", "text"))


def sqty_1(value: Any, env: dict[str, Any]) -> bool:
    return not isinstance(value, dict) or not _present(value, "comparator")


def org_1(value: Any, env: dict[str, Any]) -> bool:
    return not isinstance(value, dict) or bool(value.get("identifier")) or _present(value, "name")


def name_consistent(name: Any) -> bool:
    """HumanName.text carries the family and given names (Chinese: family + given, no space;
    a minority name with a middle dot: its parts in either order)."""
    if not isinstance(name, dict) or not isinstance(name.get("text"), str):
        return True
    text = name["text"]
    family: str = name["family"] if isinstance(name.get("family"), str) else ""
    given = [g for g in name.get("given", []) if isinstance(g, str)]
    if _CJK.match(text):
        if any(d in text for d in _NAME_DOTS):
            return _dotted_name_consistent(text, family, "".join(given))
        if family and given:
            return text == family + "".join(given)
        return text.startswith(family) and text.endswith("".join(given))
    lowered = text.lower()
    return all(part.lower() in lowered for part in [family, *given] if part)


def _dotted_name_consistent(text: str, family: str, given: str) -> bool:
    """A minority name written with a middle dot carries its parts in either order (艾力·买买提
    may record family 买买提 and given 艾力, or the reverse); the separators are not compared."""
    whole, family, given = (s.translate(_NO_DOTS) for s in (text, family, given))
    if family and given:
        return whole in (family + given, given + family)
    part = family or given
    return whole.startswith(part) or whole.endswith(part)


def obs_6(value: Any, env: dict[str, Any]) -> bool:
    return not (
        isinstance(value, dict)
        and value.get("dataAbsentReason") is not None
        and _has_choice(value, "value")
    )


def obs_7(value: Any, env: dict[str, Any]) -> bool:
    """A component repeats none of the Observation's own codings when it has a value."""
    if not isinstance(value, dict) or not _has_choice(value, "value"):
        return True
    code = env["resource"].get("code") if isinstance(env["resource"], dict) else None
    own = _values(code.get("coding")) if isinstance(code, dict) else []
    if not own:
        return True
    for comp in _values(value.get("component")):
        ccode = comp.get("code") if isinstance(comp, dict) else None
        codings = _values(ccode.get("coding")) if isinstance(ccode, dict) else []
        if any(c in own for c in codings):
            return False
    return True


_DOM3 = (
    "contained.where((('#'+id in (%resource.descendants().reference | "
    "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
    "%resource.descendants().as(url))) or descendants().where(reference = '#').exists() or "
    "descendants().where(as(canonical) = '#').exists() or "
    "descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()"
)

NATIVE: dict[tuple[str, str], Native] = {
    ("ele-1", "hasValue() or (children().count() > id.count())"): ele_1,
    ("ext-1", "extension.exists() != value.exists()"): ext_1,
    ("dom-2", "contained.contained.empty()"): dom_2,
    ("dom-3", _DOM3): dom_3,
    ("dom-4", "contained.meta.versionId.empty() and contained.meta.lastUpdated.empty()"): dom_4,
    ("dom-5", "contained.meta.security.empty()"): dom_5,
    ("dom-6", "text.`div`.exists()"): dom_6,
    ("txt-1", "htmlChecks()"): txt_1,
    ("txt-2", "htmlChecks()"): txt_2,
    (
        "ref-1",
        "reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
        "%rootResource.contained.id.trace('ids'))",
    ): ref_1,
    ("per-1", "start.hasValue().not() or end.hasValue().not() or (start <= end)"): per_1,
    ("obs-6", "dataAbsentReason.empty() or value.empty()"): obs_6,
    (
        "obs-7",
        "value.empty() or component.code.where(coding.intersect(%resource.code.coding).exists())"
        ".empty()",
    ): obs_7,
    ("cpt-2", "value.empty() or system.exists()"): cpt_2,
    ("qty-3", "code.empty() or system.exists()"): qty_3,
    ("att-1", "data.empty() or contentType.exists()"): att_1,
    # on every lab result, its quantities and its lab (measured: a fifth of an ORU's validation)
    ("obs-3", "low.exists() or high.exists() or text.exists()"): obs_3,
    ("sqty-1", "comparator.empty()"): sqty_1,
    ("org-1", "(identifier.count() + name.count()) > 0"): org_1,
    # fhirpathpy cannot compare Quantities or type-test choice values; native semantics instead
    ("rng-2", "low.empty() or high.empty() or (low <= high)"): rng_2,
    ("que-7", "operator = 'exists' implies (answer is Boolean)"): que_7,
    ("que-12", "enableWhen.count() > 2 implies enableBehavior.exists()"): que_12,
}

# Natives whose answer deliberately differs from fhirpathpy's: engine gaps (Quantity
# comparison, `is` on choice values), txt-1/txt-2, which R4 gives the same expression
# `htmlChecks()` although they state two rules (allowed markup; some content): split by key,
# per-1 (an empty comparison is not true), que-12 (the rule as its text states it) and ref-1
# (`#` from a contained resource names its container, as dom-3 and R5's ref-1 say).
FHIRPATHPY_GAPS = frozenset({"rng-2", "que-7", "txt-1", "txt-2", "per-1", "que-12", "ref-1"})
