"""Search value escapes (R4 search §3.1.1.1 "Escaping search parameters"): `\\,` `\\$` `\\|`
and `\\\\` stand for the literal characters, whatever the parameter type."""

from __future__ import annotations

import pytest

from tests.search.conftest import ids, seed

SYS = "http://example.org/codes"

RESOURCES = [
    {
        "resourceType": "Observation",
        "id": "piped",
        "status": "final",
        "code": {"coding": [{"system": SYS, "code": "a|b"}]},
        "valueString": "x,y",
    },
    {
        "resourceType": "Observation",
        "id": "plain",
        "status": "final",
        "code": {"coding": [{"system": SYS, "code": "b"}]},
        "valueString": "x",
    },
    {"resourceType": "Patient", "id": "pipe-name", "name": [{"family": "O|Neil"}]},
    {"resourceType": "Patient", "id": "slash-name", "name": [{"family": "A\\B"}]},
]


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    await seed(app, RESOURCES)


CASES = [
    ("Observation?code=a\\|b", {"piped"}),
    (f"Observation?code={SYS}|a\\|b", {"piped"}),
    (f"Observation?code={SYS}|b", {"plain"}),
    ("Observation?code=b,a\\|b", {"piped", "plain"}),
    ("Observation?value-string=x\\,y", {"piped"}),
    ("Observation?value-string:exact=x", {"plain"}),
    ("Patient?family=o\\|neil", {"pipe-name"}),
    ("Patient?family:exact=A\\\\B", {"slash-name"}),
    ("Patient?_id=pipe-name,slash-name", {"pipe-name", "slash-name"}),
]


@pytest.mark.parametrize(("url", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_escaped_values(reader, url, expected):
    assert set(await ids(reader, url + "&_count=50")) == expected
