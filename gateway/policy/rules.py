"""The domain rules on every write path: the store calls `before_write` for each write and
`after_writes` once the transaction's writes are in (REST, transaction entries, `$ingest`, HL7
v2 all write through it). A violation raises an OperationOutcome and the whole transaction
rolls back: nothing is half-written.

- before each write: a contract's lifecycle step (it needs the version it replaces) and its
  payer amounts, added from the pack when the contract states none;
- after the writes (the transaction's other resources in view: a team and its members, a
  contract and its team written together): a contract's period, confirmations, signing
  party, packages and fees, one contract in force per resident, the team's capacity; a team's
  model and composition.

Referrals, their Tasks, reserved slots and long prescriptions: gateway.policy.referrals,
slots and prescriptions (a referral posted alone gets its Task; a booking turns its slot busy:
both as further writes of the same transaction); a result's recognition mark: result_mark.
"""

from __future__ import annotations

import weakref
from typing import Any

import orjson

from gateway.policy import contract_terms as terms
from gateway.policy.contracts import (
    check_capacity,
    check_one_in_force,
    check_replaces,
    governing_pack,
)
from gateway.policy.fhir_values import extensions, has_category
from gateway.policy.lookup import Lookup, TransactionReads
from gateway.policy.pack import Packs
from gateway.policy.prescriptions import check_long_prescription
from gateway.policy.referrals import (
    check_referral,
    check_task,
    is_referral,
    is_referral_task,
    task_for,
)
from gateway.policy.result_mark import check_decision, is_recognition_decision, set_mark
from gateway.policy.slots import book, mark_slot
from gateway.policy.teams import check_team
from gateway.search.sql import SearchSql
from gateway.store.model import Stored, Write
from gateway.store.repository import Repository


def is_contract(resource: dict[str, Any] | None) -> bool:
    return (
        resource is not None
        and resource.get("resourceType") == "CarePlan"
        and has_category(resource, "family-doctor-contract")
    )


def is_team(resource: dict[str, Any] | None) -> bool:
    return (
        resource is not None
        and resource.get("resourceType") == "CareTeam"
        and has_category(resource, "family-doctor-team")
    )


_BEFORE = frozenset(
    {"CarePlan", "ServiceRequest", "Task", "Slot", "MedicationRequest"}
    | {"DiagnosticReport", "Observation"}
)
_STEPS = frozenset({"CarePlan", "Task"})
_AFTER = frozenset({"CarePlan", "CareTeam", "ServiceRequest", "Appointment"})


class DomainRules:
    def __init__(self, packs: Packs, registry: Any, sql: SearchSql):
        self.packs = packs
        self.registry = registry
        self.sql = sql
        # per transaction (its Repository): what the rules resolved, shared across its writes
        self._reads: weakref.WeakKeyDictionary[Repository, TransactionReads] = (
            weakref.WeakKeyDictionary()
        )

    def _lookup(self, repo: Repository, reads: TransactionReads | None = None) -> Lookup:
        return Lookup(repo, self.registry, self.sql, self.packs, reads)

    async def before_write(self, repo: Repository, w: Write, cur: Stored | None) -> None:
        reads = self._reads.get(repo)
        if reads is None:
            reads = self._reads[repo] = TransactionReads()
        reads.wrote(w.res_type)  # called before every write of the transaction
        resource = w.resource
        if resource is None or w.res_type not in _BEFORE:
            return
        exists = cur is not None and not cur.deleted
        previous = None  # the version replaced: only the rules about steps read it
        if cur is not None and exists and w.res_type in _STEPS:
            previous = orjson.loads(cur.content)
        lookup = self._lookup(repo, reads)
        if is_contract(resource):
            await self._contract_step(lookup, resource, previous)
        elif is_referral(resource):
            await check_referral(lookup, resource)
        elif is_referral_task(resource):
            owner = (resource.get("owner") or {}).get("reference")
            pack, _ = await lookup.pack_of(owner)
            flow = pack.referrals.task
            ctx = repo.ctx
            await check_task(lookup, flow, resource, previous, ctx.organization, ctx.role)
        elif w.res_type == "Slot" and not exists:
            await mark_slot(repo, lookup, resource)
        elif w.res_type == "MedicationRequest" and has_category(resource, "long-prescription"):
            await check_long_prescription(lookup, resource)
        elif w.res_type in ("DiagnosticReport", "Observation"):
            await set_mark(lookup, resource)  # the recognition mark is the gateway's to set
        elif is_recognition_decision(resource):  # a receiving doctor's accepted | repeated
            await check_decision(lookup, resource, repo.ctx.organization, repo.ctx.role)

    async def _contract_step(
        self, lookup: Lookup, contract: dict[str, Any], previous: dict[str, Any] | None
    ) -> None:
        pack, division = await governing_pack(lookup, contract)
        old = previous.get("status") if is_contract(previous) else None  # type: ignore[union-attr]
        terms.check_step(pack, old, str(contract.get("status")))
        chosen = terms.check_packages(pack, division, contract)
        if chosen and not extensions(contract, terms.FEE):
            contract.setdefault("extension", []).extend(terms.fee_extensions(chosen))

    async def after_writes(self, repo: Repository, made: list[Stored]) -> list[Write]:
        lookup: Lookup | None = None
        more: list[Write] = []
        for st in made:
            if st.deleted or st.res_type not in _AFTER:
                continue
            doc = orjson.loads(st.content)
            lookup = lookup or self._lookup(repo)
            if is_contract(doc):
                await self._contract(lookup, doc, st)
            elif is_team(doc):
                await check_team(lookup, doc)
            elif is_referral(doc) and st.version == 1:
                task = await task_for(lookup, doc, f"ServiceRequest/{st.res_id}")
                more += [task] if task else []
            elif st.res_type == "Appointment":
                more += await book(lookup, doc)
        return more

    async def _contract(self, lookup: Lookup, contract: dict[str, Any], st: Stored) -> None:
        pack, division = await governing_pack(lookup, contract)
        in_force = contract.get("status") in pack.contracts.in_force
        if in_force or contract.get("status") == "draft":
            terms.check_period(pack, contract)
        terms.check_confirmations(pack, contract, in_force)
        terms.check_signing(pack, contract)
        chosen = terms.check_packages(pack, division, contract)
        terms.check_fees(pack, contract, chosen)
        await check_replaces(lookup, contract)
        await check_one_in_force(lookup, pack, contract)
        old = None
        if st.version > 1:
            before = await lookup.repo.vread(st.res_type, st.res_id, st.version - 1)
            if before is not None and not before.deleted:
                old = orjson.loads(before.content)
        await check_capacity(lookup, pack, contract, old)
