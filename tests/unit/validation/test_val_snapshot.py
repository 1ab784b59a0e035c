import json

from gateway.validation.generate import stale_snapshots
from gateway.validation.locations import default_profiles_dir
from gateway.validation.snapshot import generate_snapshot


def test_committed_snapshots_are_fresh(core_dir):
    stale = stale_snapshots(default_profiles_dir(), core_dir)
    assert not stale, (
        f"stale snapshots {stale}: run `python -m gateway.validation.generate` and commit "
        "profiles/generated/"
    )


def test_every_profile_has_a_snapshot():
    folder = default_profiles_dir()
    sources = {p.name for p in (folder / "StructureDefinition").glob("*.json")}
    generated = {p.name for p in (folder / "generated").glob("*.json")}
    assert sources == generated


def test_slices_and_unrolled_types(registry):
    sd = registry.structure_definition("https://fhir.jtys.cn/StructureDefinition/cn-patient")
    by_id = {e["id"]: e for e in sd["snapshot"]["element"]}
    card = by_id["Patient.identifier:idCard"]
    assert card["sliceName"] == "idCard" and card["max"] == "1"
    assert by_id["Patient.identifier:idCard.system"]["fixedUri"] == "urn:oid:2.16.156.10011.1.3"
    assert {c["key"] for c in card["constraint"]} >= {"ele-1", "cnp-1"}
    assert by_id["Patient.name.text"]["min"] == 1
    assert by_id["Patient.name.family"]["path"] == "Patient.name.family"  # HumanName unrolled
    ids = [e["id"] for e in sd["snapshot"]["element"]]
    assert ids.index("Patient.identifier:idCard") == ids.index("Patient.identifier") + 1


def test_generator_on_a_small_differential(registry):
    diff = {
        "resourceType": "StructureDefinition",
        "url": "urn:test",
        "type": "Observation",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Observation",
        "derivation": "constraint",
        "differential": {
            "element": [
                {"id": "Observation.code.coding", "path": "Observation.code.coding", "min": 1},
                {
                    "id": "Observation.code.coding.system",
                    "path": "Observation.code.coding.system",
                    "fixedUri": "http://loinc.org",
                },
            ]
        },
    }
    snap = generate_snapshot(diff, registry.structure_definition)
    by_id = {e["id"]: e for e in snap["snapshot"]["element"]}
    assert by_id["Observation.code.coding"]["min"] == 1
    assert by_id["Observation.code.coding.system"]["fixedUri"] == "http://loinc.org"
    assert json.dumps(snap)  # plain JSON
