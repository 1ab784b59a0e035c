"""Resources that accumulate across records (a household Group's members): the stored version
and the record's rendering merged into the version to write.

Items are matched by the spec's key (the member's `entity.identifier`): a record's item
replaces the stored one with the same key, or is added; stored items the record does not name
are kept, so members sent in separate records (or requests) all stay. An item marked `$weak`
in the template (the head of household a member's record names, before the head's own record
arrives) only fills a gap: it never replaces an item with its key.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from gateway.mapping.spec import MergeSpec


def merge(current: dict[str, Any] | None, new: dict[str, Any], rule: MergeSpec) -> dict[str, Any]:
    merged = {k: v for k, v in new.items() if k != rule.list}
    items: list[dict[str, Any]] = []
    index: dict[bytes, int] = {}
    for item in (current or {}).get(rule.list) or []:
        _place(items, index, copy.deepcopy(item), weak=False, key=_key(item, rule.key))
    for item in new.get(rule.list) or []:
        item = dict(item)
        weak = bool(item.pop("$weak", False))
        _place(items, index, item, weak, _key(item, rule.key))
    if items:
        merged[rule.list] = items
    if rule.count:
        merged[rule.count] = len(items)
    return merged


def strip_weak(resource: dict[str, Any], rule: MergeSpec) -> dict[str, Any]:
    """The record's rendering alone, as it is stored when nothing is stored yet."""
    return merge(None, resource, rule)


def _place(
    items: list[dict[str, Any]],
    index: dict[bytes, int],
    item: dict[str, Any],
    weak: bool,
    key: bytes | None,
) -> None:
    if key is None:
        items.append(item)
    elif key in index:
        if not weak:
            items[index[key]] = item
    else:
        index[key] = len(items)
        items.append(item)


def _key(item: Any, path: str) -> bytes | None:
    node = item
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    if node is None:
        return None
    return orjson.dumps(node, option=orjson.OPT_SORT_KEYS)
