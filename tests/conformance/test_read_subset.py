"""_summary and _elements on read and vread (R4 search.html §3.1.1.5.9: "_summary ... can be
used with read as well as search"; a subset is marked with the SUBSETTED tag)."""

from __future__ import annotations

from ._helpers import create, patient

SUBSETTED = ("http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "SUBSETTED")


def tags(res: dict) -> set[tuple[str, str]]:
    return {(t.get("system"), t.get("code")) for t in res.get("meta", {}).get("tag", [])}


async def test_summary_and_elements_on_read_and_vread(client):
    p = await create(
        client,
        patient(
            "subset",
            text={
                "status": "generated",
                "div": '<div xmlns="http://www.w3.org/1999/xhtml">张三</div>',
            },
            maritalStatus={"text": "已婚"},
            photo=[{"contentType": "image/png", "data": "AA=="}],
        ),
    )
    for url in (f"/Patient/{p['id']}", f"/Patient/{p['id']}/_history/1"):
        full = (await client.get(url)).json()
        assert SUBSETTED not in tags(full) and "photo" in full

        r = await client.get(url, params={"_summary": "true"})
        assert r.status_code == 200 and r.headers["etag"] == 'W/"1"'
        summary = r.json()
        assert SUBSETTED in tags(summary)
        assert "photo" not in summary and "maritalStatus" not in summary  # not summary elements
        assert summary["name"] == full["name"] and summary["gender"] == full["gender"]

        text = (await client.get(url, params={"_summary": "text"})).json()
        assert set(text) <= {"resourceType", "id", "meta", "text"} and "text" in text

        data = (await client.get(url, params={"_summary": "data"})).json()
        assert "text" not in data and "photo" in data and SUBSETTED in tags(data)

        elements = (await client.get(url, params={"_elements": "gender"})).json()
        assert set(elements) == {"resourceType", "id", "meta", "gender"}

        unchanged = (await client.get(url, params={"_summary": "false"})).json()
        assert unchanged == full

        assert (await client.get(url, params={"_summary": "count"})).status_code == 400
