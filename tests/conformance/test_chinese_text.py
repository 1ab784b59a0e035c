"""Chinese text: UTF-8 on the wire, exact round trip, string search.

R4 http.html §mime-type: "The FHIR resources ... SHALL be encoded using UTF-8"; json.html: JSON
is UTF-8 and characters need no escaping. search.html §string: "By default, a field matches a
string query if the value of the field equals or starts with the supplied parameter value, after
both have been normalized by case and accent"; "address-city" is a string parameter on Patient.
"""

from __future__ import annotations

import json

from ._helpers import SYS, entry, patient, tx

ZHANG = patient(
    "zh-1",
    name=[{"text": "张三", "family": "张", "given": ["三"]}],
    gender="male",
    address=[{"city": "广州市", "district": "越秀区", "line": ["中山五路 1 号"]}],
)
OUYANG = patient(
    "zh-2",
    name=[{"text": "欧阳娜娜", "family": "欧阳", "given": ["娜娜"]}],
    gender="female",
    address=[{"city": "深圳市", "district": "南山区"}],
)


def utf8(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


async def post_raw(client, doc) -> dict:
    r = await client.post(
        f"/{doc['resourceType']}",
        content=utf8(doc),
        headers={"content-type": "application/fhir+json; charset=utf-8"},
    )
    assert r.status_code == 201, r.text
    return r


async def test_round_trip_is_exact_utf8(client):
    for doc in (ZHANG, OUYANG):
        created = await post_raw(client, doc)
        assert created.headers["content-type"].lower().replace(" ", "") in (
            "application/fhir+json",
            "application/fhir+json;charset=utf-8",
        )
        body = created.json()
        read = await client.get(f"/Patient/{body['id']}")
        assert read.status_code == 200
        for raw in (created.content, read.content):
            text = raw.decode("utf-8")  # strict: fails on anything that is not UTF-8
            for s in ("张三", "欧阳娜娜", "广州市", "越秀区", "中山五路 1 号", "深圳市"):
                if s in json.dumps(doc, ensure_ascii=False):
                    assert s.encode("utf-8") in raw
            assert "\\u" not in text
        got = read.json()
        for key in ("name", "address", "identifier", "gender"):
            assert got[key] == doc[key]


async def test_search_by_chinese_name_prefix(client):
    zhang = (await post_raw(client, ZHANG)).json()
    ouyang = (await post_raw(client, OUYANG)).json()

    async def ids(**params) -> list[str]:
        r = await client.get("/Patient", params=params)
        assert r.status_code == 200, r.text
        return sorted(
            e["resource"]["id"]
            for e in r.json().get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        )

    assert await ids(name="张") == [zhang["id"]]
    assert await ids(name="张三") == [zhang["id"]]
    assert await ids(name="欧阳") == [ouyang["id"]]
    assert await ids(name="娜娜") == [ouyang["id"]]
    assert await ids(family="欧阳") == [ouyang["id"]]
    assert await ids(given="三") == [zhang["id"]]
    assert await ids(name="李") == []
    # percent-encoded by hand, exactly as a browser sends it
    r = await client.get("/Patient?name=%E5%BC%A0")
    assert [e["resource"]["id"] for e in r.json().get("entry", [])] == [zhang["id"]]


async def test_search_by_chinese_city(client):
    zhang = (await post_raw(client, ZHANG)).json()
    ouyang = (await post_raw(client, OUYANG)).json()
    for params, expected in [
        ({"address-city": "广州市"}, [zhang["id"]]),
        ({"address-city": "广州"}, [zhang["id"]]),
        ({"address-city": "深圳市"}, [ouyang["id"]]),
        ({"address-city": "北京市"}, []),
        ({"address": "越秀"}, [zhang["id"]]),
    ]:
        r = await client.get("/Patient", params=params)
        assert r.status_code == 200, r.text
        got = [e["resource"]["id"] for e in r.json().get("entry", [])]
        assert got == expected, params


async def test_chinese_text_in_transaction_and_history(client):
    r = await client.post(
        "",
        content=utf8(
            tx(entry("POST", "Patient", ZHANG), entry("GET", f"Patient?identifier={SYS}|zh-1"))
        ),
    )
    assert r.status_code == 200
    assert "张三".encode() in r.content and b"\\u" not in r.content
    found = r.json()["entry"][1]["resource"]["entry"][0]["resource"]
    assert found["name"] == ZHANG["name"]
    h = await client.get("/Patient/_history")
    assert "广州市".encode() in h.content and b"\\u" not in h.content
