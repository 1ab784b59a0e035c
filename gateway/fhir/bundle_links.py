"""Links inside a transaction's resources: rewritten to the ids the server assigned.

R4 http.html (transaction): "Servers SHALL replace all matching links in the bundle, whether
they are found in the resource ids, resource references, elements of type uri, url, oid, uuid,
and <a href="" & <img src="" in the narrative." References may name any entry's fullUrl;
other uri values and narrative links are rewritten only for `urn:uuid:`/`urn:oid:` fullUrls,
which are placeholders by definition (an http fullUrl can also be a resource's canonical url,
which must stay as written). Conditional references (`Patient?identifier=…`) are returned to
the caller, which resolves them after the transaction's writes (the spec's last step).

Pure functions over the parsed JSON, in place, one iterative walk per resource.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_PLACEHOLDER = ("urn:uuid:", "urn:oid:")
_NARRATIVE_LINK = re.compile(r"""\b(href|src)\s*=\s*(["'])(.*?)\2""", re.S)


class UnresolvedLink(Exception):
    def __init__(self, node: dict[str, Any], ref: str):
        super().__init__(ref)
        self.node, self.ref = node, ref


def placeholders_of(idmap: dict[str, str]) -> dict[str, str]:
    """The `urn:uuid:`/`urn:oid:` part of an idmap: links rewritten outside references too."""
    return {k: v for k, v in idmap.items() if k.startswith(_PLACEHOLDER)}


def rewrite_links(
    resource: dict[str, Any],
    idmap: dict[str, str],
    placeholders: dict[str, str],
    is_conditional: Callable[[str], bool],
) -> list[dict[str, Any]]:
    """Rewrite every link to a fullUrl of the bundle (idmap: fullUrl → 'Type/id';
    placeholders: placeholders_of(idmap)). Returns the Reference objects whose `reference` is
    a conditional reference. Raises UnresolvedLink for a placeholder reference (urn:uuid:…)
    that names no entry."""
    conditional: list[dict[str, Any]] = []
    stack: list[Any] = [resource]
    while stack:
        node = stack.pop()
        if type(node) is list:
            stack.extend(v for v in node if type(v) is dict or type(v) is list)
            continue
        for key, value in node.items():
            kind = type(value)
            if kind is dict or kind is list:
                stack.append(value)
            elif kind is not str:
                continue
            elif key == "reference":
                new = idmap.get(value)
                if new is not None:
                    node[key] = new
                elif value.startswith(_PLACEHOLDER):
                    raise UnresolvedLink(node, value)
                elif is_conditional(value):
                    conditional.append(node)
            elif key == "div" and placeholders:
                node[key] = _rewrite_narrative(value, placeholders)
            elif value in placeholders:
                node[key] = placeholders[value]
    return conditional


def _rewrite_narrative(div: str, placeholders: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        new = placeholders.get(m.group(3))
        return m.group(0) if new is None else f"{m.group(1)}={m.group(2)}{new}{m.group(2)}"

    return _NARRATIVE_LINK.sub(sub, div) if "=" in div else div


def path_to(root: Any, target: Any, prefix: str) -> str:
    """The FHIRPath-style location of `target` (an object inside `root`), for error messages."""
    stack: list[tuple[Any, str]] = [(root, prefix)]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if type(node) is dict:
            stack.extend((v, f"{path}.{k}") for k, v in node.items() if type(v) in (dict, list))
        elif type(node) is list:
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(node) if type(v) in (dict, list))
    return prefix
