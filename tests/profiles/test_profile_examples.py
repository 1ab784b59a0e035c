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


def test_default_profiles_pick_the_domain_resources(validator):
    for path in _EXAMPLES:
        resource = read_json(path)
        assert validator.profiles_for(resource) == resource["meta"]["profile"][:1], path.name
