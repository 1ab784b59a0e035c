"""Result parameters: _sort, keyset paging, _include/_revinclude (bounded statements),
_summary, _elements, _total."""

from __future__ import annotations

import pytest

from gateway.fhir.operations.everything import EVERYTHING
from tests.search import data
from tests.search.conftest import all_ids, count_statements, ids, seed, store


@pytest.fixture(scope="module", autouse=True)
async def seeded(app):
    await seed(app, data.resources())


def _modes(bundle):
    return [
        (e["resource"]["resourceType"] + "/" + e["resource"]["id"], e["search"]["mode"])
        for e in bundle.get("entry", [])
    ]


async def test_sort_by_parameters(reader):
    assert await ids(reader, "Patient?_sort=birthdate") == ["p1", "p2", "p3", "p4"]
    assert await ids(reader, "Patient?_sort=-birthdate") == ["p3", "p2", "p1", "p4"]
    assert await ids(reader, "Patient?_sort=family,-_id") == ["p3", "p2", "p1", "p4"]
    assert await ids(reader, "Observation?_sort=-date,_id") == ["o5", "o4", "o2", "o1", "o3"]
    assert await ids(reader, "Patient?_sort=-_id") == ["p4", "p3", "p2", "p1"]


@pytest.mark.parametrize("sort", ["", "&_sort=-birthdate", "&_sort=family,_lastUpdated"])
async def test_paging_covers_everything_once(reader, sort):
    whole = await ids(reader, f"Patient?_count=100{sort}")
    assert await all_ids(reader, f"Patient?_count=1{sort}") == whole
    assert await all_ids(reader, f"Patient?_count=3{sort}") == whole


# Searches with an indexed clause take their page of ids from the index tables (id-driven);
# these walk the same data through that path, forwards and back.
@pytest.mark.parametrize(
    "query",
    [
        "Observation?status=final,preliminary,amended,registered",
        "Observation?code=2339-0,8302-2,8867-4,29463-7&date=ge1900",
        "Observation?subject:Patient.gender=male,female,unknown",
    ],
)
async def test_id_driven_pages_cover_everything_once_both_ways(app, reader, query):
    with count_statements(app.state.core) as counter:
        whole = await ids(reader, f"{query}&_count=100")
    assert any("page_ids" in st for st in counter.statements)  # the page: from index tables
    assert len(whole) >= 3 and whole == sorted(whole)
    assert await all_ids(reader, f"{query}&_count=2") == whole
    # Walk back from the last page with previous links: the same ids, in reverse page order.
    pages, url = [], f"{query}&_count=2"
    while url:
        b = (await reader.get(url)).json()
        pages.append([e["resource"]["id"] for e in b["entry"]])
        url = next((lk["url"] for lk in b["link"] if lk["relation"] == "next"), None)
        last = b
    back, url = [], next((lk["url"] for lk in last["link"] if lk["relation"] == "previous"), None)
    while url:
        b = (await reader.get(url)).json()
        back.insert(0, [e["resource"]["id"] for e in b["entry"]])
        url = next((lk["url"] for lk in b["link"] if lk["relation"] == "previous"), None)
    assert back == pages[:-1]


async def test_previous_links_walk_back(reader):
    r = (await reader.get("Observation?_count=2")).json()
    first = [e["resource"]["id"] for e in r["entry"]]
    nxt = next(lk["url"] for lk in r["link"] if lk["relation"] == "next")
    page2 = (await reader.get(nxt)).json()
    prev = next(lk["url"] for lk in page2["link"] if lk["relation"] == "previous")
    back = (await reader.get(prev)).json()
    assert [e["resource"]["id"] for e in back["entry"]] == first
    assert not [lk for lk in back["link"] if lk["relation"] == "previous"]


async def test_paging_is_stable_while_data_changes(app, reader):
    r = (await reader.get("Patient?_count=2")).json()
    seen = [e["resource"]["id"] for e in r["entry"]]
    nxt = next(lk["url"] for lk in r["link"] if lk["relation"] == "next")
    # An update of a seen resource and a new one that sorts first do not shift the next page.
    await store(
        app.state.core,
        [data.patient("p1", "张", "三", gender="male"), data.patient("a0", "新", "人")],
    )
    rest = await all_ids(reader, nxt)
    assert seen + rest == ["p1", "p2", "p3", "p4"]
    await seed(app, data.resources())


async def test_total(reader):
    b = (await reader.get("Patient?_count=1")).json()
    assert b["total"] == 4
    b = (await reader.get("Patient?_count=1&_total=none")).json()
    assert "total" not in b
    b = (await reader.get("Patient?_count=1&_total=estimate")).json()
    assert b["total"] >= 1
    b = (await reader.get("Patient?gender=male&_summary=count")).json()
    assert b["total"] == 2 and "entry" not in b
    b = (await reader.get("Observation?code=8302-2,29463-7&_count=1")).json()
    assert b["total"] == 3  # counted on the id-driven path


async def test_total_is_counted_up_to_the_limit(app, reader):
    """Beyond GATEWAY_SEARCH_TOTAL_LIMIT matches the default gives no total (counting them
    all would cost more than the page); _total=accurate always counts."""
    settings = app.state.core.settings
    saved = settings.search_total_limit
    settings.search_total_limit = 2
    try:
        for query in ("Observation?code=8302-2,29463-7", "Patient?birthdate:missing=false"):
            b = (await reader.get(f"{query}&_count=1")).json()
            assert "total" not in b and len(b["entry"]) == 1
            b = (await reader.get(f"{query}&_count=1&_total=accurate")).json()
            assert b["total"] == 3
            b = (await reader.get(f"{query}&_count=1&_total=estimate")).json()
            assert b["total"] >= 1
        b = (await reader.get("Observation?code=2339-0&_count=1")).json()
        assert b["total"] == 2  # within the limit: exact
    finally:
        settings.search_total_limit = saved


async def test_include_and_revinclude(reader):
    b = (await reader.get("Observation?code=8302-2&_include=Observation:subject")).json()
    assert sorted(_modes(b)) == [
        ("Observation/o1", "match"),
        ("Observation/o3", "match"),
        ("Patient/p1", "include"),
        ("Patient/p2", "include"),
    ]
    b = (await reader.get("Patient?_id=p1&_revinclude=Observation:subject")).json()
    assert sorted(_modes(b)) == [
        ("Observation/o1", "include"),
        ("Observation/o2", "include"),
        ("Patient/p1", "match"),
    ]
    b = (await reader.get("Patient?_id=p1&_include=*")).json()
    assert sorted(_modes(b)) == [
        ("Organization/org1", "include"),
        ("Patient/p1", "match"),
        ("Practitioner/doc1", "include"),
    ]
    b = (
        await reader.get(
            "Observation?_id=o1&_include=Observation:patient&_include:iterate=Patient:organization"
        )
    ).json()
    assert sorted(_modes(b)) == [
        ("Observation/o1", "match"),
        ("Organization/org1", "include"),
        ("Patient/p1", "include"),
    ]
    b = (
        await reader.get(
            "Observation?_id=o1&_include=Observation:patient&_include=Patient:organization"
        )
    ).json()
    assert ("Organization/org1", "include") not in _modes(b)  # no :iterate, no second hop
    b = (await reader.get("Observation?_id=o1&_include=Observation:subject:Group")).json()
    assert _modes(b) == [("Observation/o1", "match")]


async def _bulk(app, n: int) -> None:
    res = [
        data.patient(
            f"bulk{i:03d}", "赵", str(i), managingOrganization={"reference": "Organization/org1"}
        )
        for i in range(n)
    ]
    res += [data.obs(f"bo{i:03d}", f"Patient/bulk{i:03d}", "8867-4", "2020") for i in range(n)]
    await store(app.state.core, res)


@pytest.mark.parametrize("count", [5, 50])
async def test_include_and_chain_statement_count_is_bounded(app, reader, count):
    await _bulk(app, 60)
    core = app.state.core
    for url in (
        f"Observation?code=8867-4&_include=Observation:subject&_revinclude=Provenance:target"
        f"&_include:iterate=Patient:organization&_count={count}",
        f"Observation?subject:Patient.organization.name=越秀&_count={count}",
        f"Patient?_has:Observation:subject:code=8867-4&_revinclude=Observation:subject"
        f"&_count={count}",
    ):
        with count_statements(core) as counter:
            r = await reader.get(url)
        assert r.status_code == 200
        assert len(r.json()["entry"]) >= count
        assert 2 <= counter.count <= 6, (url, counter.statements)
    await seed(app, data.resources())


async def test_summary_and_elements(reader):
    b = (await reader.get("Patient?_id=p1&_elements=name")).json()
    res = b["entry"][0]["resource"]
    assert set(res) == {"resourceType", "id", "meta", "name"}
    assert any(t["code"] == "SUBSETTED" for t in res["meta"]["tag"])
    b = (await reader.get("Observation?_id=o1&_summary=true")).json()
    res = b["entry"][0]["resource"]
    assert "valueQuantity" in res and "code" in res and "text" not in res
    b = (await reader.get("Observation?_id=o1&_summary=data")).json()
    assert "valueQuantity" in b["entry"][0]["resource"]
    b = (await reader.get("Observation?_id=o1&_summary=text")).json()
    assert "valueQuantity" not in b["entry"][0]["resource"]
    b = (await reader.get("Patient?_id=p1")).json()
    assert "SUBSETTED" not in str(b)


@pytest.fixture
def with_everything(app):
    app.state.core.operations.setdefault("everything", EVERYTHING)


async def test_everything(reader, with_everything):
    b = (await reader.get("Patient/p1/$everything")).json()
    refs = {r for r, _ in _modes(b)}
    assert refs == {
        "Patient/p1",
        "Observation/o1",
        "Observation/o2",
        "Encounter/e1",
        "RiskAssessment/r1",
        "Practitioner/doc1",
        "Organization/org1",
    }
    assert b["total"] == len(refs)
    b = (await reader.get("Patient/p1/$everything?_type=Observation,Practitioner")).json()
    assert {r for r, _ in _modes(b)} == {"Observation/o1", "Observation/o2", "Practitioner/doc1"}
    b = (await reader.get("Patient/p1/$everything?_since=2999-01-01")).json()
    assert "entry" not in b
    paged = []
    url = "Patient/p1/$everything?_count=2"
    while url:
        page = (await reader.get(url)).json()
        paged += [r for r, _ in _modes(page)]
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
    assert sorted(paged) == sorted(refs) and len(paged) == len(refs)
    r = await reader.get("Patient/nobody/$everything")
    assert r.status_code == 404
    b = (await reader.get("Patient/$everything?_type=Patient&_count=100")).json()
    assert {r for r, _ in _modes(b)} == {"Patient/p1", "Patient/p2", "Patient/p3", "Patient/p4"}


async def test_everything_of_a_deleted_patient_is_410(app, reader):
    # R4 http.html#read: a deleted resource is 410 Gone, also through an operation on it.
    await store(app.state.core, [{"resourceType": "Patient", "id": "ev-gone"}])
    assert (await reader.delete("Patient/ev-gone")).status_code in (200, 204)
    r = await reader.get("Patient/ev-gone/$everything")
    assert r.status_code == 410, r.text


@pytest.mark.parametrize(
    ("query", "dated"),
    [
        ("start=2015-01-01&end=2015-12-31", {"Observation/o1", "Encounter/e1"}),
        ("start=2015-06-01", {"Observation/o1", "Observation/o2", "Encounter/e1"}),
        ("end=2015-06-01", {"Observation/o1", "Encounter/e1"}),
        ("start=2016", {"Observation/o2"}),
        ("start=2017", set()),
    ],
)
async def test_everything_start_end_filter_by_care_date(reader, query, dated):
    # R4 Patient-everything: "The date range relates to care dates ... If no start date is
    # provided, all records prior to the end date are in scope." Resources without a care date
    # (the Patient, a RiskAssessment without one) are not outside the range: they stay.
    b = (await reader.get(f"Patient/p1/$everything?{query}&_count=100")).json()
    got = {r for r, _ in _modes(b)}
    everything = {
        r for r, _ in _modes((await reader.get("Patient/p1/$everything?_count=100")).json())
    }
    with_care_date = {"Observation/o1", "Observation/o2", "Encounter/e1"}
    assert with_care_date <= everything
    assert got == (everything - with_care_date) | dated
    assert b["total"] == len(got)


async def test_everything_start_after_end_is_400(reader):
    r = await reader.get("Patient/p1/$everything?start=2012&end=2010")
    assert r.status_code == 400
    assert r.json()["issue"][0]["expression"] == ["start"]
