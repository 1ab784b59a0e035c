import pytest

from gateway.validation.terminology import Terminology
from gateway.validation.terminology_ops import (
    TerminologyError,
    expand_valueset,
    find_conformance,
    lookup_code,
    validate_code,
)

CN = "https://fhir.jtys.cn"


def _codes(vs):
    return {c["code"] for c in vs["expansion"].get("contains", [])}


def test_hierarchy_filters_and_excludes():
    term = Terminology()
    term.add(
        {
            "resourceType": "CodeSystem",
            "url": "urn:cs",
            "content": "complete",
            "concept": [
                {
                    "code": "a",
                    "concept": [{"code": "a1"}, {"code": "a2", "concept": [{"code": "a2x"}]}],
                },
                {"code": "b"},
            ],
        }
    )
    term.add(
        {
            "resourceType": "ValueSet",
            "url": "urn:vs1",
            "compose": {
                "include": [
                    {
                        "system": "urn:cs",
                        "filter": [{"property": "concept", "op": "is-a", "value": "a"}],
                    }
                ],
                "exclude": [{"system": "urn:cs", "concept": [{"code": "a1"}]}],
            },
        }
    )
    term.add(
        {
            "resourceType": "ValueSet",
            "url": "urn:vs2",
            "compose": {
                "include": [
                    {
                        "system": "urn:cs",
                        "filter": [{"property": "concept", "op": "descendent-of", "value": "a"}],
                    }
                ]
            },
        }
    )
    term.add(
        {
            "resourceType": "ValueSet",
            "url": "urn:ext",
            "compose": {"include": [{"system": "http://snomed.info/sct"}]},
        }
    )
    assert term.expand("urn:vs1").codes == {"a", "a2", "a2x"}
    assert term.expand("urn:vs2").codes == {"a1", "a2", "a2x"}
    assert term.expand("urn:ext") is None  # external code system: not expandable locally


def test_core_value_set_expands(registry):
    exp = registry.terminology.expand("http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1")
    assert exp.codes == {"male", "female", "other", "unknown"}


def test_every_local_value_set_expands(registry):
    for vs in registry.local["ValueSet"]:
        exp = registry.terminology.expand(vs["url"])
        assert exp is not None and exp.items, vs["url"]


def test_local_code_systems_have_english_designations(registry):
    for cs in registry.local["CodeSystem"]:
        entry = registry.terminology.code_system(cs["url"])
        for concept in entry.concepts.values():
            assert concept.display, (cs["url"], concept.code)
            assert any(d.get("language") == "en" for d in concept.designations), concept.code


def test_expand_with_filter_and_paging(registry):
    vs = expand_valueset(registry, f"{CN}/ValueSet/termination-reason", filter="一年")
    assert _codes(vs) == {"unreachable-1y", "refused-1y"}
    vs = expand_valueset(registry, "key-population", filter="diabetes")  # by id, English
    assert _codes(vs) == {"diabetes"}
    vs = expand_valueset(registry, "gb-t-4761", offset=2, count=3)
    assert vs["expansion"]["total"] > 80 and len(vs["expansion"]["contains"]) == 3


def test_expand_display_language(registry):
    vs = expand_valueset(registry, "gb-t-2261-1", display_language="en")
    assert {c["code"]: c["display"] for c in vs["expansion"]["contains"]}["2"] == "Female"


def test_expand_errors(registry):
    with pytest.raises(TerminologyError) as err:
        expand_valueset(registry, "no-such-value-set")
    assert err.value.status == 404
    with pytest.raises(TerminologyError) as err:
        expand_valueset(registry, "http://hl7.org/fhir/ValueSet/observation-codes")
    assert err.value.status == 422
    assert err.value.outcome()["issue"][0]["details"]["coding"][0]["code"] == "VAL-2002"


def test_lookup(registry):
    out = lookup_code(registry, f"{CN}/CodeSystem/institution-level", "3A")
    params = {p["name"]: p for p in out["parameter"]}
    assert params["display"]["valueString"] == "三级甲等"
    assert {"name": "code", "valueCode": "parent"} in params["property"]["part"]
    with pytest.raises(TerminologyError):
        lookup_code(registry, f"{CN}/CodeSystem/institution-level", "4A")


def _result(params):
    return {p["name"]: next(v for k, v in p.items() if k != "name") for p in params["parameter"]}


def test_validate_code(registry):
    vs = f"{CN}/ValueSet/team-model"
    cs = f"{CN}/CodeSystem/team-model"
    assert _result(validate_code(registry, url=vs, system=cs, code="5+X"))["result"] is True
    assert _result(validate_code(registry, url=vs, system=cs, code="2+2"))["result"] is False
    bad_display = validate_code(registry, system=cs, code="5+X", display="Five plus X")
    assert _result(bad_display)["result"] is False
    cc = {"coding": [{"system": "urn:other", "code": "x"}, {"system": cs, "code": "1+N"}]}
    assert _result(validate_code(registry, url=vs, codeable_concept=cc))["result"] is True


def test_find_conformance(registry):
    found = find_conformance(
        registry, "StructureDefinition", url=f"{CN}/StructureDefinition/cn-patient"
    )
    assert [sd["id"] for sd in found] == ["cn-patient"] and "snapshot" in found[0]
    assert find_conformance(registry, "CodeSystem", id="gb-t-4761")
    assert not find_conformance(registry, "ValueSet", url=f"{CN}/ValueSet/team-model|9.9")
