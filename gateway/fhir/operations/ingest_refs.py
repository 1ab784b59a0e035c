"""Searches of mapped records resolved before their transaction, many at once.

- Conditional references (`CareTeam?identifier=…`): to the entry of the same transaction the
  search names (a Group member's Patient of the same record), else to the one stored resource
  it matches, remembered for the request (a thousand contracts name twenty teams). The
  transaction then writes literal references once, instead of writing, resolving and amending
  every version holding one. A search matching no resource, or several, is left as it is: the
  transaction reports it, located.
- Business keys of the records' own resources (`PUT CarePlan?identifier=…`): a resource
  already stored is written by its id; a new one stays a conditional update, which the
  transaction serialises, so two requests creating one contract never make two.

Searches of one identifier system are asked together (`identifier=s|a,s|b,…`), and the
matches told apart by their identifiers.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import parse_qsl

import orjson

from gateway.fhir.parse import is_resource_type
from gateway.fhir.router import Call
from gateway.mapping.plan import Planned
from gateway.store.model import Stored

_LIMIT = 2000  # searches per request to the store: identifiers OR-ed in one


class References:
    def __init__(self, call: Call):
        self.call = call
        self.found: dict[str, str] = {}  # "Type?query" → "Type/id", matches only

    async def resolve(self, entries: list[tuple[int, Planned]]) -> tuple[dict[str, str], set[int]]:
        """(search → what it names in this transaction: an entry's fullUrl or "Type/id";
        the records left with a search matching nothing or several, whose transaction would
        fail). Also finds the stored resources the entries' business keys name."""
        in_bundle = {f"{p.type}?{p.query}": p.full_url for _, p in entries if p.query}
        refs = [(n, node["reference"]) for n, p in entries for node in references(p.resource)]
        wanted = {ref for _, ref in refs} - set(self.found) - set(in_bundle)
        self.found.update(await self._matches(wanted))
        targets = {**self.found, **in_bundle}
        unresolved = {n for n, ref in refs if ref not in targets}
        own = [p for _, p in entries if p.query and p.spec.merge is None and p.known is None]
        stored = await self._matches({f"{p.type}?{p.query}" for p in own})
        for p in own:
            ref = stored.get(f"{p.type}?{p.query}")
            if ref is not None:
                p.known = ref.split("/", 1)[1]
        return targets, unresolved

    async def _matches(self, searches: set[str]) -> dict[str, str]:
        """search → "Type/id" for the searches matching exactly one resource."""
        out: dict[str, str] = {}
        groups: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
        for search in searches:
            res_type, _, query = search.partition("?")
            key = _identifier(query)
            if key is None:  # not a plain identifier search: asked alone
                found = await self.call.core.conditional_match(self.call.repo, res_type, query)
                if len(found) == 1:
                    out[search] = found[0].ref
                continue
            groups[(res_type, key[0])][key[1]] = search
        for (res_type, system), by_value in groups.items():
            values = list(by_value)
            for i in range(0, len(values), _LIMIT):
                chunk = values[i : i + _LIMIT]
                for value, ref in (await self._by_identifier(res_type, system, chunk)).items():
                    out[by_value[value]] = ref
        return out

    async def _by_identifier(self, res_type: str, system: str, values: list[str]) -> dict[str, str]:
        core, repo = self.call.core, self.call.repo
        joined = ",".join(f"{_escape(system)}|{_escape(v)}" for v in values)
        sr = core.parse_search(res_type, [("identifier", joined)])
        rows = await repo.search_rows(core.search_sql.where(sr), [], 2 * len(values) + 1)
        visible = await repo.visible([(st.res_type, st.res_id) for st in rows])
        owners: dict[str, list[Stored]] = defaultdict(list)
        for st in rows:
            for value in _values(st, system):
                owners[value].append(st)
        return {
            value: found[0].ref
            for value, found in owners.items()
            if value in values and len(found) == 1 and (res_type, found[0].res_id) in visible
        }


def _identifier(query: str) -> tuple[str, str] | None:
    params = parse_qsl(query, keep_blank_values=True)
    if len(params) != 1 or params[0][0] != "identifier" or "|" not in params[0][1]:
        return None
    system, _, value = params[0][1].partition("|")
    if not system or not value or "," in value or "\\" in value:
        return None
    return system, value


def _escape(text: str) -> str:
    """A search value's reserved characters (R4 search.html#escaping)."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|")


def _values(st: Stored, system: str) -> list[str]:
    identifiers = orjson.loads(st.content).get("identifier") or []
    return [
        i["value"]
        for i in identifiers
        if isinstance(i, dict) and i.get("system") == system and isinstance(i.get("value"), str)
    ]


def references(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The Reference objects whose `reference` is a search (Type?query)."""
    out: list[dict[str, Any]] = []
    stack: list[Any] = [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            ref = node.get("reference")
            if isinstance(ref, str) and "?" in ref and is_resource_type(ref.split("?", 1)[0]):
                out.append(node)
            stack.extend(v for v in node.values() if isinstance(v, dict | list))
    return out
