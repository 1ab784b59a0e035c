"""The contract and team rules of the regional policy packs, through the API, on SQLite and
PostgreSQL: each region's own numbers, every violation a 4xx OperationOutcome naming the rule
and the pack, nothing half-written."""

from __future__ import annotations

import asyncio

import pytest

from tests.policy.builders import (
    BASE,
    Region,
    code_of,
    coding,
    contract,
    ext,
    issue_text,
    organization,
    patient,
    post,
    role,
    team_body,
)


def fees(resource: dict) -> dict[tuple[str, str], float]:
    out = {}
    for e in resource.get("extension", []):
        if e["url"] == f"{BASE}/StructureDefinition/cn-contract-fee":
            parts = {p["url"]: p for p in e["extension"]}
            key = (
                parts["package"]["valueCanonical"].rsplit("/", 1)[1],
                parts["payer"]["valueCoding"]["code"],
            )
            out[key] = parts["amount"]["valueMoney"]["value"]
    return out


# --- one contract in force ----------------------------------------------------------------
async def test_second_contract_in_force_is_a_conflict_naming_the_first(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    first = await post(client, contract(resident, region))
    r = await client.post(
        "/CarePlan", json=contract(resident, region, start="2026-03-01", end="2027-02-28")
    )
    assert r.status_code == 409, r.text
    text = issue_text(r)
    assert f"CarePlan/{first['id']}" in text and region.team in text and region.doctor in text
    assert r.json()["issue"][0]["expression"] == ["CarePlan.subject"]
    found = await client.get("/CarePlan", params={"subject": resident})
    assert found.json()["total"] == 1


async def test_renewal_from_the_end_and_a_new_contract_after_termination(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    first = await post(client, contract(resident, region))
    renewal = contract(
        resident,
        region,
        start="2027-01-01",
        end="2027-12-31",
        sign_type="renewal",
        replaces=[{"reference": f"CarePlan/{first['id']}"}],
    )
    await post(client, renewal)
    # a renewal must say what it renews
    other = await patient(client)
    await post(client, contract(other, region))
    bare = contract(other, region, start="2027-01-01", end="2027-12-31", sign_type="renewal")
    r = await client.post("/CarePlan", json=bare)
    assert r.status_code == 422 and code_of(r) == "POL-2012", r.text
    # it renews a contract of its own resident, from that contract's end
    bare["replaces"] = [{"reference": f"CarePlan/{first['id']}"}]
    r = await client.post("/CarePlan", json=bare)
    assert r.status_code == 422 and code_of(r) == "POL-2103", r.text
    third = await patient(client)
    old = await post(client, contract(third, region))
    early = contract(third, region, start="2026-12-01", end="2027-11-30", sign_type="renewal")
    early["replaces"] = [{"reference": f"CarePlan/{old['id']}"}]
    r = await client.post("/CarePlan", json=early)
    assert r.status_code == 422 and code_of(r) == "POL-2104", r.text


async def test_a_suspended_contract_still_binds_and_a_terminated_one_does_not(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    first = await post(client, contract(resident, region))
    first["status"] = "on-hold"
    r = await client.put(f"/CarePlan/{first['id']}", json=first)
    assert r.status_code == 200, r.text
    r = await client.post("/CarePlan", json=contract(resident, region, sign_type="switch"))
    assert r.status_code == 409
    ended = r.json()
    first = (await client.get(f"/CarePlan/{first['id']}")).json()
    first["status"] = "revoked"
    first["extension"] += [
        ext("cn-termination-reason", valueCoding=coding("termination-reason", "switched")),
        ext("cn-termination-date", valueDate="2026-05-31"),
    ]
    r = await client.put(f"/CarePlan/{first['id']}", json=first)
    assert r.status_code == 200, r.text
    switched = contract(resident, region, start="2026-06-01", end="2027-05-31", sign_type="switch")
    await post(client, switched)
    assert ended["resourceType"] == "OperationOutcome"


async def test_twenty_contracts_racing_for_one_resident_one_wins(client, app):
    if app.state.core.store.engine.dialect.name != "postgresql":
        pytest.skip("concurrency is PostgreSQL's (SQLite writers are serial)")
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    replies = await asyncio.gather(
        *(client.post("/CarePlan", json=contract(resident, region)) for _ in range(20))
    )
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [201] + [409] * 19, statuses
    found = await client.get("/CarePlan", params={"subject": resident, "status": "active"})
    assert found.json()["total"] == 1


async def test_a_transaction_breaking_a_rule_writes_nothing(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    await post(client, contract(resident, region))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {"resourceType": "Patient", "name": [{"text": "不应留下"}]},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": contract(resident, region),
                "request": {"method": "POST", "url": "CarePlan"},
            },
        ],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 409, r.text
    assert (await client.get("/Patient", params={"name": "不应留下"})).json()["total"] == 0


async def test_conditional_subject_in_a_transaction_is_resolved_for_the_rule(client):
    region = await Region.make(client, "guangzhou")
    made = await post(
        client,
        {
            "resourceType": "Patient",
            "identifier": [{"system": "urn:oid:2.16.156.10011.1.2", "value": "HR0001"}],
            "name": [{"text": "李四"}],
        },
    )
    await post(client, contract(f"Patient/{made['id']}", region))
    second = contract("Patient?identifier=urn:oid:2.16.156.10011.1.2|HR0001", region)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": second, "request": {"method": "POST", "url": "CarePlan"}}],
    }
    r = await client.post("", json=bundle)
    assert r.status_code == 409, r.text


# --- lifecycle ------------------------------------------------------------------------------
async def test_lifecycle_steps_outside_the_pack_are_refused_naming_the_allowed(client):
    region = await Region.make(client, "guangzhou")
    resident = await patient(client)
    r = await client.post("/CarePlan", json=contract(resident, region, status="entered-in-error"))
    assert r.status_code == 422 and code_of(r) == "POL-2001", r.text
    # history is recorded as it was: an expired contract may be written as such
    past = contract(resident, region, start="2024-01-01", end="2024-12-31", status="completed")
    await post(client, past)
    made = await post(client, contract(resident, region))
    made["status"] = "revoked"
    made["extension"] += [
        ext("cn-termination-reason", valueCoding=coding("termination-reason", "moved-out")),
        ext("cn-termination-date", valueDate="2026-04-30"),
    ]
    assert (await client.put(f"/CarePlan/{made['id']}", json=made)).status_code == 200
    back = (await client.get(f"/CarePlan/{made['id']}")).json()
    back["status"] = "active"
    back["extension"] = [e for e in back["extension"] if "termination" not in e["url"]]
    r = await client.put(f"/CarePlan/{made['id']}", json=back)
    assert r.status_code == 422 and code_of(r) == "POL-2002"
    assert "from 'revoked' it may go to: entered-in-error" in issue_text(r)


# --- periods, per region ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("where", "end", "status", "rule"),
    [
        ("guangzhou", "2026-12-31", 201, None),
        ("guandu", "2026-12-31", 201, None),  # a 5+X team
        ("guangzhou", "2027-12-31", 422, "POL-2005"),  # Guangzhou: one year
        ("guangzhou", "2026-06-30", 422, "POL-2004"),
        ("xinjiang", "2028-12-31", 201, None),  # Xinjiang: 1 to 3 years
        ("xinjiang", "2029-12-31", 422, "POL-2005"),
        ("hangzhou", "2030-12-31", 201, None),  # Zhejiang: at least a year
        ("elsewhere", "2026-09-30", 422, "POL-2004"),  # national default: at least a year
    ],
)
async def test_contract_periods_per_region(client, where, end, status, rule):
    region = await Region.make(client, where)
    resident = await patient(client)
    r = await client.post("/CarePlan", json=contract(resident, region, end=end))
    assert r.status_code == status, r.text
    if rule:
        assert code_of(r) == rule
        assert ".yaml" in issue_text(r)


# --- yearly confirmation (Zhongyuan: three years, confirmed each year) --------------------
def confirmation(year: int, day: str) -> dict:
    return ext(
        "cn-yearly-confirmation",
        extension=[{"url": "year", "valuePositiveInt": year}, {"url": "date", "valueDate": day}],
    )


async def test_zhongyuan_three_year_contract_needs_its_yearly_confirmations(client):
    region = await Region.make(client, "zhongyuan")
    resident = await patient(client)
    body = contract(resident, region, start="2024-01-01", end="2026-12-31")
    r = await client.post("/CarePlan", json=body)
    assert r.status_code == 422 and code_of(r) == "POL-2009", r.text
    assert "year 2" in issue_text(r)
    body["extension"] += [confirmation(2, "2025-01-06"), confirmation(3, "2026-01-05")]
    await post(client, body)

    other = await patient(client)
    late = contract(other, region, start="2024-01-01", end="2026-12-31")
    late["extension"] += [confirmation(2, "2025-01-06"), confirmation(4, "2026-01-05")]
    r = await client.post("/CarePlan", json=late)
    assert r.status_code == 422 and "cnc-9" in issue_text(r)  # the profile: no year 4 here
    late["extension"][-1] = confirmation(3, "2024-03-01")  # before year 3 is in reach
    r = await client.post("/CarePlan", json=late)
    assert r.status_code == 422 and code_of(r) == "POL-2008"
    r = await client.post(
        "/CarePlan", json=contract(other, region, start="2024-01-01", end="2027-12-31")
    )
    assert r.status_code == 422 and code_of(r) == "POL-2005"  # 4 years: beyond 3


# --- packages and fees --------------------------------------------------------------------
async def test_xinjiang_packages_get_the_table_payer_amounts(client):
    region = await Region.make(client, "xinjiang")
    resident = await patient(client)
    made = await post(
        client,
        contract(
            resident,
            region,
            packages=["cn-basic-medical-package", "cn-hypertension-package"],
        ),
    )
    assert fees(made) == {
        ("cn-basic-medical-package", "insurer"): 20,
        ("cn-basic-medical-package", "individual"): 5,
        ("cn-hypertension-package", "insurer"): 59,
        ("cn-hypertension-package", "individual"): 17,
        ("cn-hypertension-package", "public-health"): 10,
    }
    stored = (await client.get(f"/CarePlan/{made['id']}")).json()
    assert fees(stored) == fees(made)


@pytest.mark.parametrize(
    ("packages", "rule"),
    [
        (
            ["cn-basic-medical-package", "cn-hypertension-package", "cn-diabetes-package"],
            "POL-2014",
        ),
        (["cn-hypertension-package"], "POL-2015"),
        (["cn-basic-medical-package", "cn-zj-contract-service-fee"], "POL-2013"),
    ],
)
async def test_xinjiang_package_combinations(client, packages, rule):
    region = await Region.make(client, "xinjiang")
    resident = await patient(client)
    r = await client.post("/CarePlan", json=contract(resident, region, packages=packages))
    assert r.status_code == 422 and code_of(r) == rule, r.text


def fee(package: str, payer: str, amount: float) -> dict:
    return ext(
        "cn-contract-fee",
        extension=[
            {"url": "package", "valueCanonical": f"{BASE}/PlanDefinition/{package}"},
            {"url": "payer", "valueCoding": coding("payer-type", payer)},
            {"url": "amount", "valueMoney": {"value": amount, "currency": "CNY"}},
        ],
    )


async def test_stated_fees_are_checked_against_the_pack(client):
    region = await Region.make(client, "xinjiang")
    packages = ["cn-basic-medical-package"]
    # The insurer amount is a cap (不高于): less is fine when the individual pays the rest.
    ok = contract(await patient(client), region, packages=packages)
    ok["extension"] += [
        fee("cn-basic-medical-package", "insurer", 18),
        fee("cn-basic-medical-package", "individual", 7),
    ]
    made = await post(client, ok)
    assert fees(made)[("cn-basic-medical-package", "insurer")] == 18
    for stated, rule in [
        ([("insurer", 21), ("individual", 4)], "POL-2019"),  # above the cap
        ([("insurer", 20), ("individual", 6)], "POL-2018"),  # does not add up
        ([("insurer", 20), ("individual", 4), ("finance", 1)], "POL-2020"),
    ]:
        body = contract(await patient(client), region, packages=packages)
        body["extension"] += [fee("cn-basic-medical-package", p, a) for p, a in stated]
        r = await client.post("/CarePlan", json=body)
        assert r.status_code == 422 and code_of(r) == rule, (stated, r.text)


async def test_zhejiang_city_fees_follow_the_team_institution(client):
    hangzhou = await Region.make(client, "hangzhou")
    made = await post(
        client,
        contract(await patient(client), hangzhou, packages=["cn-zj-contract-service-fee"]),
    )
    assert fees(made) == {
        ("cn-zj-contract-service-fee", "individual"): 12,
        ("cn-zj-contract-service-fee", "finance"): 108,
    }


# --- teams ----------------------------------------------------------------------------------
async def test_zhongyuan_team_missing_a_required_physician_is_refused(client):
    org = await organization(client, "zhongyuan")
    members = [
        ("gp", await role(client, org, "gp", "03")),
        ("specialist", await role(client, org, "specialist", "05.01")),
        ("public-health", await role(client, org, "public-health", "01")),
    ]
    r = await client.post("/CareTeam", json=team_body(org, "1+1+1", members))
    assert r.status_code == 422 and code_of(r) == "POL-2202", r.text
    assert "外科医师" in issue_text(r) and "zhongyuan.yaml" in issue_text(r)


async def test_a_model_the_region_does_not_use_is_refused(client):
    org = await organization(client, "guangzhou")
    members = [("gp", await role(client, org, "gp", "02"))]
    r = await client.post("/CareTeam", json=team_body(org, "5+X", members))
    assert r.status_code == 422 and code_of(r) == "POL-2201", r.text


async def test_team_and_its_members_in_one_transaction(client):
    org = await organization(client, "zhongyuan")
    entries, members = [], []
    for i, (team_role, specialty) in enumerate(
        [("gp", "03"), ("specialist", "04"), ("specialist", "05"), ("public-health", "01")]
    ):
        url = f"urn:uuid:00000000-0000-4000-8000-00000000000{i}"
        entries.append(
            {
                "fullUrl": url,
                "resource": {
                    "resourceType": "PractitionerRole",
                    "organization": {"reference": org},
                    "code": [{"coding": [coding("team-role", team_role)]}],
                    "specialty": [{"coding": [coding("clinical-specialty", specialty)]}],
                },
                "request": {"method": "POST", "url": "PractitionerRole"},
            }
        )
        members.append((team_role, url))
    entries.append(
        {
            "resource": team_body(org, "1+1+1", members),
            "request": {"method": "POST", "url": "CareTeam"},
        }
    )
    r = await client.post(
        "", json={"resourceType": "Bundle", "type": "transaction", "entry": entries}
    )
    assert r.status_code == 200, r.text


# --- team capacity (a pack with a small cap, so the test stays small) ----------------------
@pytest.fixture
async def small_teams(tmp_path, database_url):
    import shutil

    from tests.conftest import client_for, running_app
    from tests.policy.test_packs import PACKS

    profiles = tmp_path / "profiles"
    shutil.copytree(PACKS.parent, profiles)
    pack = profiles / "policy" / "zhongyuan.yaml"
    pack.write_text(pack.read_text("utf-8").replace("max: 1500", "max: 2"), "utf-8")
    async with running_app(database_url, profiles_dir=profiles) as application:
        async with client_for(application) as c:
            yield c


async def test_a_team_at_capacity_takes_no_new_household(small_teams):
    client = small_teams
    region = await Region.make(client, "zhongyuan")

    def household_contract(subject: str, household: str) -> dict:
        body = contract(subject, region, start="2026-01-01", end="2026-12-31")
        body["identifier"].append({"system": f"{BASE}/sid/household-contract", "value": household})
        body["extension"].append(
            ext("cn-signing-unit", valueCoding=coding("signing-unit", "household"))
        )
        return body

    # two members of household A and one of B: two households, at the cap
    for household in ["HH-A", "HH-A", "HH-B"]:
        await post(client, household_contract(await patient(client), household))
    # another member of A adds no household
    await post(client, household_contract(await patient(client), "HH-A"))
    r = await client.post("/CarePlan", json=household_contract(await patient(client), "HH-C"))
    assert r.status_code == 422 and code_of(r) == "POL-2102", r.text
    assert "3 households" in issue_text(r) and "cap is 2" in issue_text(r)
