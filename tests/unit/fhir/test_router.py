"""Routing is pure: (method, path) → interaction, no database."""

from __future__ import annotations

import pytest

from gateway.fhir.core import ROUTES
from gateway.fhir.request import FhirRequest
from gateway.fhir.router import Router
from gateway.vocab.outcomes import OperationOutcomeError

router = Router(dict(ROUTES), {})


@pytest.mark.parametrize(
    "method, url, interaction, args",
    [
        ("GET", "metadata", "capabilities", {}),
        ("POST", "", "transaction", {}),
        ("GET", "_history", "history-system", {}),
        ("GET", "Patient", "search-type", {"res_type": "Patient"}),
        ("POST", "Patient/_search", "search-type", {"res_type": "Patient"}),
        ("POST", "Patient", "create", {"res_type": "Patient"}),
        ("PUT", "Patient?identifier=a|b", "update", {"res_type": "Patient", "res_id": None}),
        ("GET", "Patient/_history", "history-type", {"res_type": "Patient"}),
        ("GET", "Patient/p-1", "read", {"res_id": "p-1"}),
        ("PATCH", "Patient/p.1", "patch", {"res_id": "p.1"}),
        ("GET", "Patient/p1/_history", "history-instance", {"res_id": "p1"}),
        ("GET", "Patient/p1/_history/3", "vread", {"res_id": "p1", "version": "3"}),
    ],
)
def test_routes(method, url, interaction, args):
    route, got = router.match(FhirRequest.from_url(method, url))
    assert route.interaction == interaction
    for k, v in args.items():
        assert got[k] == v


@pytest.mark.parametrize(
    "method, url, status",
    [
        ("GET", "Pateint/1", 404),  # unknown type
        ("GET", "SubscriptionTopic/1", 404),  # an R4B type, not R4: unknown here
        ("GET", "Patient/1/2", 404),  # not a FHIR path
        ("GET", "Patient/" + "x" * 65, 400),  # ids are at most 64 characters
        ("GET", "Patient/a_b", 400),  # '_' is not an id character
        ("DELETE", "metadata", 405),
        ("PUT", "Patient/1/_history", 405),
        ("GET", "$nope", 404),
    ],
)
def test_bad_paths_are_outcomes(method, url, status):
    with pytest.raises(OperationOutcomeError) as err:
        router.match(FhirRequest.from_url(method, url))
    assert err.value.status == status
    assert err.value.outcome()["resourceType"] == "OperationOutcome"
