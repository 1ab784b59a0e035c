"""profiles/NamingSystem: one NamingSystem per identifier system we define, loaded by the
registry, installed and packed with the other conformance resources."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.validation.locations import CANONICAL_BASE, default_profiles_dir

_SID = re.compile(re.escape(CANONICAL_BASE) + r"/sid/[a-z0-9-]+")
_ROOT = default_profiles_dir().parent


def _unique_ids(registry) -> dict[str, dict]:
    return {u["value"]: ns for ns in registry.local["NamingSystem"] for u in ns["uniqueId"]}


def _sid_uses() -> set[str]:
    """Every identifier system of ours written in the profiles, mappings or the gateway."""
    found: set[str] = set()
    for folder, pattern in [
        (_ROOT / "profiles", "**/*.json"),
        (_ROOT / "profiles", "**/*.yaml"),
        (_ROOT / "mappings", "**/*"),
        (_ROOT / "gateway", "**/*.py"),
    ]:
        for path in Path(folder).glob(pattern):
            if path.is_file() and "generated" not in path.parts:
                found |= set(_SID.findall(path.read_text("utf-8", errors="replace")))
    return found


def test_every_identifier_system_we_use_has_a_naming_system(registry):
    described = _unique_ids(registry)
    used = _sid_uses()
    assert {f"{CANONICAL_BASE}/sid/uscc", f"{CANONICAL_BASE}/sid/contract"} <= used
    assert used - set(described) == set(), "add profiles/NamingSystem/NamingSystem-<name>.json"


def test_naming_systems_are_identifier_systems_with_a_preferred_uri(registry):
    systems = registry.local["NamingSystem"]
    assert len(systems) >= 9
    for ns in systems:
        assert ns["kind"] == "identifier" and ns["status"] == "active", ns["id"]
        uris = [u for u in ns["uniqueId"] if u["type"] == "uri"]
        assert len(uris) == 1 and uris[0]["preferred"] is True, ns["id"]
        oids = [u["value"] for u in ns["uniqueId"] if u["type"] == "oid"]
        # an OID is given bare, and its urn:oid: form is the URI
        assert all(uris[0]["value"] == "urn:oid:" + oid for oid in oids), ns["id"]


def test_national_identifier_systems_carry_their_oids(registry):
    described = _unique_ids(registry)
    for oid in ("2.16.156.10011.1.3", "2.16.156.10011.1.2", "2.16.156.10011.1.19"):
        assert described[oid] is described["urn:oid:" + oid]


def test_naming_systems_are_valid_r4(core_validator, registry):
    for ns in registry.local["NamingSystem"]:
        issues = core_validator.validate(ns)
        assert not [i for i in issues if i.is_error], (ns["id"], [i.text_en for i in issues])


def test_naming_systems_are_packed_and_installed(registry):
    from gateway.validation.package import package_files

    files = package_files(registry, default_profiles_dir())
    assert "package/NamingSystem-uscc.json" in files
    assert "package/NamingSystem-resident-id-card.json" in files
    installed = {(r["resourceType"], r["id"]) for r in registry.local_resources()}
    assert ("NamingSystem", "household-contract") in installed
