"""Conditional requests: If-None-Match lists and If-Match: * (RFC 9110 §13.1.1, §13.1.2).

RFC 9110: If-Match = "*" / #entity-tag, If-None-Match = "*" / #entity-tag. "If the field value
is '*', the condition is true if the origin server has a current representation for the target
resource" (If-Match), and "If the field value is a list of entity tags, the condition is false if
one of the listed tags matches the entity tag of the selected representation" (If-None-Match,
weak comparison). R4 http.html: the ETag is W/"versionId"; a failed If-Match is 412.

The parsing lives in gateway.fhir.responses; the decisions are taken in the interactions
(read.py, update.py, delete.py, patch.py, transaction.py) and the repository.
"""

from __future__ import annotations

import pytest

from gateway.fhir.responses import parse_etag, parse_etags, parse_if_match, tags_match
from gateway.vocab.outcomes import OperationOutcomeError

from ._helpers import all_versions, assert_outcome, create, patient


# --- the parser -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("*", "*"),
        (" * ", "*"),
        ('W/"1"', [1]),
        ('"1"', [1]),
        ("1", [1]),
        ('W/"1", W/"2"', [1, 2]),
        ('W/"1",W/"2" ,  "3"', [1, 2, 3]),
        ('W/"abc", W/"2"', [2]),  # a tag that is not one of our versions never matches
        ('"a,b", W/"4"', [4]),  # a comma inside a tag is part of the tag
        ('W/"1",', [1]),  # empty list elements are allowed (RFC 9110 §5.6.1.2)
    ],
)
def test_parse_etags(value, expected):
    assert parse_etags(value) == expected


@pytest.mark.parametrize("value", ["W/1", 'W/"1', '"1" "2"', '*, W/"1"', "", 'x"1"', ","])
def test_parse_etags_malformed_is_400(value):
    with pytest.raises(OperationOutcomeError) as err:
        parse_etags(value)
    assert err.value.status == 400


def test_tags_match_and_if_match():
    assert tags_match('W/"1", W/"2"', 2)
    assert not tags_match('W/"1", W/"2"', 3)
    assert tags_match("*", 7)
    assert not tags_match("*", None)
    assert parse_if_match("*") == "*"
    assert parse_if_match('W/"3"') == 3
    assert parse_if_match(None) is None
    assert parse_etag('W/"3"') == 3  # the single-version form the handlers use today


# --- over HTTP --------------------------------------------------------------------------------
async def test_if_none_match_list(client):
    p = await create(client, patient("inm"))
    url = f"/Patient/{p['id']}"
    r = await client.get(url, headers={"If-None-Match": 'W/"1", W/"2"'})
    assert r.status_code == 304, r.text
    r = await client.get(url, headers={"If-None-Match": 'W/"7", "8"'})
    assert r.status_code == 200, r.text
    assert r.json()["id"] == p["id"]


async def test_if_none_match_star_and_single_still_work(client):
    p = await create(client, patient("inm1"))
    url = f"/Patient/{p['id']}"
    assert (await client.get(url, headers={"If-None-Match": "*"})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": 'W/"1"'})).status_code == 304
    assert (await client.get(url, headers={"If-None-Match": 'W/"2"'})).status_code == 200
    assert_outcome(await client.get(url, headers={"If-None-Match": "garbage"}), 400)


async def test_if_match_star_on_missing_is_412(client):
    r = await client.put(
        "/Patient/im-missing", json=patient("im", id="im-missing"), headers={"If-Match": "*"}
    )
    assert_outcome(r, 412)
    assert await all_versions(client) == []
    assert_outcome(await client.delete("/Patient/im-missing", headers={"If-Match": "*"}), 412)


async def test_if_match_star_on_existing_proceeds(client):
    r = await client.put("/Patient/im-x", json=patient("im", id="im-x"))
    assert r.status_code == 201, r.text
    r = await client.put(
        "/Patient/im-x",
        json=patient("im", id="im-x", gender="female"),
        headers={"If-Match": "*"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == 'W/"2"'
    r = await client.patch(
        "/Patient/im-x",
        json=[{"op": "replace", "path": "/gender", "value": "male"}],
        headers={"content-type": "application/json-patch+json", "If-Match": "*"},
    )
    assert r.status_code == 200, r.text
    r = await client.delete("/Patient/im-x", headers={"If-Match": "*"})
    assert r.status_code in (200, 204), r.text
