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


GB2261 = "urn:oid:2.16.156.10011.2.3.3.4"
GB4761 = "urn:oid:2.16.156.10011.2.3.3.8"
CV020101 = "urn:oid:2.16.156.10011.2.3.1.1"


def test_national_code_systems_are_identified_by_their_ws_t_500_oids(registry):
    for id_, oid in [
        ("gb-t-2261-1", GB2261),
        ("gb-t-4761", GB4761),
        ("id-document-type", CV020101),
    ]:
        assert registry.terminology.code_system(id_).url == oid
        assert registry.is_local(oid)  # ours, although outside our namespace
    assert not registry.is_local("urn:oid:2.16.156.10011.2.3.3.5")


def test_a_former_code_system_url_is_still_understood(registry):
    former = f"{CN}/CodeSystem/gb-t-2261-1"
    assert registry.terminology.code_system(former).url == GB2261
    vs = f"{CN}/ValueSet/gb-t-2261-1"
    assert _result(validate_code(registry, url=vs, system=former, code="2"))["result"] is True
    assert _result(validate_code(registry, url=vs, system=GB2261, code="2"))["result"] is True
    # the expansion itself names the current system only
    assert {c["system"] for c in expand_valueset(registry, vs)["expansion"]["contains"]} == {GB2261}


def test_gb_2261_keeps_the_legacy_codes_as_deprecated(registry):
    entry = registry.terminology.code_system(GB2261)
    assert set(entry.concepts) == {"0", "1", "2", "5", "6", "9"}
    assert {c for c, k in entry.concepts.items() if k.properties.get("status") == "deprecated"} == {
        "5",
        "6",
    }
    cm = registry.find("ConceptMap", id="gb-t-2261-1-to-administrative-gender")[0]
    targets = {e["code"]: [t["code"] for t in e["target"]] for e in cm["group"][0]["element"]}
    assert targets == {
        "0": ["unknown"],
        "1": ["male"],
        "2": ["female"],
        "5": ["male"],
        "6": ["female"],
        "9": ["unknown"],
    }


def test_gb_4761_groups_and_tells_80_from_97(registry):
    cs = registry.find("CodeSystem", id="gb-t-4761")[0]
    assert cs["hierarchyMeaning"] == "grouped-by"
    assert registry.find("CodeSystem", id="gb-t-2260")[0]["hierarchyMeaning"] == "part-of"
    entry = registry.terminology.code_system(GB4761)
    assert entry.concepts["28"].parent == "20"  # 女婿, listed under 子 without being a son
    english = {
        code: next(d["value"] for d in entry.concepts[code].designations if d["language"] == "en")
        for code in ("80", "97")
    }
    assert english["80"] != english["97"]
    assert entry.concepts["97"].parent == "80"


def test_institution_kinds_follow_ws_218(registry):
    entry = registry.terminology.code_system(f"{CN}/CodeSystem/institution-kind")
    display = {code: c.display for code, c in entry.concepts.items()}
    assert display["B100"] == "社区卫生服务中心" and display["B200"] == "社区卫生服务站"
    assert display["C100"] == "街道卫生院" and display["C2"] == "乡镇卫生院"
    assert entry.concepts["C210"].parent == "C2" and entry.concepts["C100"].parent == "C1"
    assert entry.concepts["D211"].parent == "D2" and entry.concepts["D110"].parent == "D1"
    assert display["D600"] == "村卫生室"
    local = {code for code, c in entry.concepts.items() if c.properties.get("local")}
    assert local == {"medical-alliance"}
    assert not {"chc", "township-hospital", "clinic"} & set(entry.concepts)


def test_specialties_follow_the_national_catalogue(registry):
    entry = registry.terminology.code_system(f"{CN}/CodeSystem/clinical-specialty")
    first = {code for code, c in entry.concepts.items() if c.parent is None}
    assert first == {f"{n:02d}" for n in [*range(1, 29), 30, 31, 32, 50, 51, 52, 69]}
    assert entry.concepts["02"].display == "全科医疗科"
    assert entry.concepts["05.01"].parent == "05" and entry.concepts["03.04"].parent == "03"
    below_05 = expand_valueset(registry, f"{CN}/ValueSet/clinical-specialty", filter="妇科")
    assert "05.01" in _codes(below_05)
