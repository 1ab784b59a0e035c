"""Data-type rules the R4 definitions state in prose, not as invariants (the reference validator
checks them):

- Attachment.size is "the number of bytes of data that make up this attachment (before base64
  encoding)" and Attachment.hash "the calculated hash of the data using SHA-1, represented
  using base64": both must agree with `data` when it is present;
- Coding.system is an absolute URI ("The URI may be an OID (urn:oid:...) or a UUID
  (urn:uuid:...)"): a relative or local name identifies no code system;
- an Identifier of a Chinese national system passes its check character (national_ids.py).

Each rule takes the value and the invariant keys already applied to its element (a profile
stating the same rule reports it instead) and returns its problems; a problem's fields may name
its `severity` (an error unless they do).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable
from typing import Any

from gateway.validation import national_ids

Problem = tuple[str, str, dict[str, Any]]  # message id, FHIRPath below the value, fields

_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S")


def _decoded(text: Any) -> bytes | None:
    if not isinstance(text, str):
        return None
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None  # malformed base64 is the primitive check's to report


def attachment(value: dict[str, Any], covered: frozenset[str] = frozenset()) -> list[Problem]:
    data = _decoded(value.get("data"))
    if data is None:
        return []
    out = []
    size = value.get("size")
    if isinstance(size, int) and not isinstance(size, bool) and size != len(data):
        out.append(("VAL-1110", ".size", {"size": size, "actual": len(data)}))
    stated = _decoded(value.get("hash"))
    if stated is not None and stated != hashlib.sha1(data).digest():  # noqa: S324 - R4 says SHA-1
        out.append(("VAL-1111", ".hash", {}))
    return out


def coding(value: dict[str, Any], covered: frozenset[str] = frozenset()) -> list[Problem]:
    system = value.get("system")
    if isinstance(system, str) and not _ABSOLUTE.match(system):
        return [("VAL-1112", ".system", {"system": system[:100]})]
    return []


def identifier(value: dict[str, Any], covered: frozenset[str] = frozenset()) -> list[Problem]:
    problem = national_ids.identifier_problem(value, covered)
    return [(problem[0], ".value", problem[1])] if problem else []


RULES: dict[str, Callable[[dict[str, Any], frozenset[str]], list[Problem]]] = {
    "Attachment": attachment,
    "Coding": coding,
    "Identifier": identifier,
}
