"""Several planned messages written as one transaction (group commit): MLLP senders on
concurrent connections each wait for their ACK, so the messages that arrived while the last
transaction was being written go together into the next one, and its fixed cost (begin,
locks, commit) is shared. Each message is still stored whole or not at all: a group that fails
is written again one message per transaction, and each gets its own ACK or NAK.

Messages that write one resource (the same report sent twice, two A08 of one patient) never
share a group; resources they only name (the patient and the lab, created only when none
matches) are written once for the group, and every message's links follow that entry.

Before its transaction, a group's business identifiers are resolved together (`resolve`): one
search for the whole group (every resource type and identifier system at once), instead of
one per entry inside the transaction. A resource already stored is written by its id
(`PUT Type/id`); a create-only resource already stored (the patient, the lab) is not sent
at all, its links point at it; a new resource is written by an id derived from its type and business
identifier (`PUT Type/<uuid5>`), so two writers creating it at once (two `gateway mllp`
processes) write one resource, never two. An identifier the search cannot tell (matching
several resources, or a value it cannot search) is left conditional: the transaction decides
and reports it as before.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from gateway.hl7v2.receive import Prepared
from gateway.vocab.json_io import json_copy


@dataclass
class Group:
    members: list[Prepared] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    # per member, per entry of its plan: the index of the group entry it became (None: the
    # entry of an earlier member, written for both)
    spans: list[list[int | None]] = field(default_factory=list)
    _written: set[str] = field(default_factory=set)  # "PUT url" of every member
    _created: dict[str, str] = field(default_factory=dict)  # create-only key → fullUrl

    def accepts(self, ready: Prepared) -> bool:
        return not (_writes(ready) & self._written)

    def add(self, ready: Prepared) -> None:
        self._written |= _writes(ready)
        same: dict[str, str] = {}
        span: list[int | None] = []
        kept: list[dict[str, Any]] = []
        for entry in ready.plan.entries:
            request = entry["request"]
            if request["method"] == "POST" and request.get("ifNoneExist"):
                key = f"{request['url']}?{request['ifNoneExist']}"
                if key in self._created:
                    same[entry["fullUrl"]] = self._created[key]
                    span.append(None)
                    continue
                self._created[key] = entry["fullUrl"]
            span.append(len(self.entries) + len(kept))
            kept.append(json_copy(entry))
        if same:
            for entry in kept:
                _relink(entry["resource"], same)
        self.entries += kept
        self.members.append(ready)
        self.spans.append(span)

    def bundle(self) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}

    async def resolve(self, lookup: Lookup) -> None:
        """The group's business identifiers resolved before its transaction (see the module's
        docstring); `lookup({(type, system): values})` answers, per (type, system), value →
        the ids of the stored resources having that identifier, leaving out the values it
        cannot tell (all of them in one query: a group of one message pays one round trip)."""
        keyed: list[tuple[int, str, str, str, str]] = []  # entry, type, query, system, value
        wanted: dict[tuple[str, str], set[str]] = defaultdict(set)
        for i, entry in enumerate(self.entries):
            request = entry["request"]
            if request["method"] == "PUT" and "?" in request["url"]:
                res_type, _, query = request["url"].partition("?")
            elif request["method"] == "POST" and request.get("ifNoneExist"):
                res_type, query = request["url"], request["ifNoneExist"]
            else:
                continue
            key = identifier_of(query)
            if key is None:
                continue
            keyed.append((i, res_type, query, *key))
            wanted[(res_type, key[0])].add(key[1])
        found = (
            await lookup({key: sorted(values) for key, values in wanted.items()}) if wanted else {}
        )
        links: dict[str, str] = {}
        dropped: set[int] = set()
        for i, res_type, query, system, value in keyed:
            ids = found.get((res_type, system), {}).get(value)
            if ids is None or len(ids) > 1:
                continue  # not told, or several: the transaction decides (and reports)
            entry = self.entries[i]
            if entry["request"]["method"] == "POST":
                if ids:  # stored already: named, not sent
                    links[entry["fullUrl"]] = f"{res_type}/{ids[0]}"
                    dropped.add(i)
                continue
            res_id = ids[0] if ids else stable_id(res_type, query)
            entry["request"] = {"method": "PUT", "url": f"{res_type}/{res_id}"}
            entry["resource"]["id"] = res_id
        if dropped:
            kept = [e for i, e in enumerate(self.entries) if i not in dropped]
            moved: dict[int, int] = {}
            for i in range(len(self.entries)):
                if i not in dropped:
                    moved[i] = len(moved)
            self.spans = [[None if i is None else moved.get(i) for i in s] for s in self.spans]
            self.entries = kept
        if links:
            for entry in self.entries:
                _relink(entry["resource"], links)

    def answers(self, response: dict[str, Any]) -> list[list[dict[str, Any] | None]]:
        """Per member, the response entries of its own entries."""
        entries = list(response.get("entry") or [])
        return [[entries[i] if i is not None else None for i in span] for span in self.spans]


Wanted = dict[tuple[str, str], list[str]]  # (type, identifier system) → values
Lookup = Callable[[Wanted], Awaitable[dict[tuple[str, str], dict[str, list[str]]]]]
_IDS = uuid.UUID("6f1d5c1e-6c7a-4c52-9a43-2f0f7d1b8e11")  # the namespace of stable_id


def stable_id(res_type: str, query: str) -> str:
    """The id a new resource gets from its type and business identifier: the same for every
    writer, so two creating it at once write one resource."""
    return str(uuid.uuid5(_IDS, f"{res_type}?{query}"))


def identifier_of(query: str) -> tuple[str, str] | None:
    """(system, value) of a search by one identifier (`identifier=system|value`), else None."""
    params = parse_qsl(query, keep_blank_values=True)
    if len(params) != 1 or params[0][0] != "identifier" or "|" not in params[0][1]:
        return None
    system, _, value = params[0][1].partition("|")
    if not system or not value or any(c in value for c in ",\\|"):
        return None
    return system, value


def _writes(ready: Prepared) -> set[str]:
    return {
        f"PUT {e['request']['url']}" for e in ready.plan.entries if e["request"]["method"] == "PUT"
    }


def _relink(node: Any, urls: dict[str, str]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in urls:
            node["reference"] = urls[ref]
        for value in node.values():
            if isinstance(value, dict | list):
                _relink(value, urls)
    elif isinstance(node, list):
        for value in node:
            _relink(value, urls)
