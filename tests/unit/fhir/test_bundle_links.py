"""Transaction link rewriting (pure): references, uri values, narrative; conditional refs."""

from __future__ import annotations

import pytest

from gateway.fhir.bundle_links import (
    UnresolvedLink,
    path_to,
    placeholders_of,
    rewrite_links,
)

U1 = "urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0"
HTTP = "http://example.org/fhir/StructureDefinition/cn-patient"
IDMAP = {U1: "Patient/p-1", HTTP: "StructureDefinition/sd-1"}


def _conditional(ref: str) -> bool:
    return ref.startswith("Patient?")


def rewrite(resource: dict) -> list[dict]:
    return rewrite_links(resource, IDMAP, placeholders_of(IDMAP), _conditional)


def test_references_to_any_fullurl_are_rewritten() -> None:
    obs = {
        "resourceType": "Observation",
        "subject": {"reference": U1},
        "focus": [{"reference": HTTP}, {"reference": "Patient/kept"}],
    }
    assert rewrite(obs) == []
    assert obs["subject"] == {"reference": "Patient/p-1"}
    assert obs["focus"] == [
        {"reference": "StructureDefinition/sd-1"},
        {"reference": "Patient/kept"},
    ]


def test_placeholder_uris_and_narrative_links_are_rewritten() -> None:
    obs = {
        "resourceType": "Observation",
        "extension": [{"url": "http://example.org/source", "valueUri": U1}],
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{U1}">张三</a>'
            f"<img src='{U1}'/><a href=\"{HTTP}\">x</a></div>",
        },
    }
    rewrite(obs)
    assert obs["extension"][0]["valueUri"] == "Patient/p-1"
    div = obs["text"]["div"]
    assert U1 not in div
    assert 'href="Patient/p-1"' in div and "src='Patient/p-1'" in div
    assert f'href="{HTTP}"' in div  # an http fullUrl can be a real address: kept


def test_an_http_fullurl_outside_references_is_kept() -> None:
    sd = {"resourceType": "StructureDefinition", "url": HTTP}
    rewrite(sd)
    assert sd["url"] == HTTP


def test_conditional_references_are_returned_unresolved() -> None:
    obs = {"resourceType": "Observation", "subject": {"reference": "Patient?identifier=a|b"}}
    found = rewrite(obs)
    assert found == [obs["subject"]]
    assert obs["subject"]["reference"] == "Patient?identifier=a|b"


def test_an_unknown_placeholder_reference_is_located() -> None:
    obs = {
        "resourceType": "Observation",
        "hasMember": [{"reference": "Patient/1"}, {"reference": "urn:uuid:nope"}],
    }
    with pytest.raises(UnresolvedLink) as exc:
        rewrite(obs)
    assert exc.value.ref == "urn:uuid:nope"
    where = "Bundle.entry[2].resource"
    assert path_to(obs, exc.value.node, where) == f"{where}.hasMember[1]"
