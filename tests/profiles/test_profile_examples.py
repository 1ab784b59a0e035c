"""profiles/examples: every example is valid against the profiles it claims (and the defaults),
and every profile has at least one example."""

from __future__ import annotations

import pytest

from gateway.validation.locations import default_profiles_dir
from gateway.validation.registry import read_json

_EXAMPLES = sorted((default_profiles_dir() / "examples").glob("*.json"))


@pytest.mark.parametrize("path", _EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(validator, path):
    resource = read_json(path)
    assert resource["meta"]["profile"], "examples claim their profile"
    issues = validator.validate(resource)
    assert not [i for i in issues if i.is_error], [(i.expression, i.text_en) for i in issues]
    assert not [i for i in issues if i.severity == "warning"], [i.text_en for i in issues]


def test_every_profile_has_an_example(registry):
    claimed = {u for p in _EXAMPLES for u in read_json(p)["meta"]["profile"]}
    profiles = {
        sd["url"] for sd in registry.local["StructureDefinition"] if sd["type"] != "Extension"
    }
    assert profiles <= claimed, profiles - claimed


def test_every_extension_is_used_by_an_example(registry):
    text = "".join(p.read_text("utf-8") for p in _EXAMPLES)
    unused = [
        sd["url"]
        for sd in registry.local["StructureDefinition"]
        if sd["type"] == "Extension" and f'"{sd["url"]}"' not in text
    ]
    assert not unused


_PEOPLE = {"Patient", "Organization", "Practitioner", "PractitionerRole"}
# Held to our profile only when they claim it: a transaction Bundle carries no marker of ours.
_CLAIM_ONLY = {"Bundle"}


def test_default_profiles_pick_the_domain_resources_by_their_marks(validator):
    """Default mode: our domain resources carrying our marks get their profile; people and
    institutions only when they claim ours (standard FHIR from anyone is accepted)."""
    for path in _EXAMPLES:
        resource = read_json(path)
        claimed = resource["meta"]["profile"][:1]
        want = [] if resource["resourceType"] in _PEOPLE | _CLAIM_ONLY else claimed
        assert validator.profiles_for(resource) == want, path.name
        unmarked = {"resourceType": resource["resourceType"]}
        assert validator.profiles_for(unmarked) == [], path.name


def test_cn_mode_holds_every_person_and_institution_to_the_cn_profiles(registry):
    from gateway.validation import CN_PROFILES, Validator

    cn = Validator(registry, default_profiles=CN_PROFILES)
    for path in _EXAMPLES:
        resource = read_json(path)
        if resource["resourceType"] in _CLAIM_ONLY:
            assert cn.profiles_for(resource) == [], path.name
            continue
        assert cn.profiles_for(resource) == resource["meta"]["profile"][:1], path.name
        if resource["resourceType"] in _PEOPLE:
            bare = {"resourceType": resource["resourceType"]}
            assert cn.profiles_for(bare) == resource["meta"]["profile"][:1], path.name
