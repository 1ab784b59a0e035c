"""The policy packs as data: each region's numbers as its documents give them, which pack an
organisation falls under, and a broken pack stopping start-up with the place named."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.policy.pack import PackError, Packs
from gateway.settings import Settings

PACKS = Path(Settings(_env_file=None).profiles_dir) / "policy"


@pytest.fixture(scope="module")
def packs() -> Packs:
    return Packs.load(PACKS)


def test_every_region_of_the_documents_has_a_pack(packs):
    assert {p.region for p in packs.regional} == {
        "zhongyuan",
        "guandu",
        "zhejiang",
        "guangzhou",
        "xinjiang",
    }
    for pack in packs.regional:
        assert (PACKS.parents[2] / ".." / "shared" / "policy").exists() or pack.source


@pytest.mark.parametrize(
    ("division", "region"),
    [
        ("410102", "zhongyuan"),
        ("410103", "national"),  # another district of Zhengzhou
        ("530111", "guandu"),
        ("330106", "zhejiang"),
        ("440104", "guangzhou"),
        ("650102", "xinjiang"),
        ("110101", "national"),
        (None, "national"),
    ],
)
def test_an_organisation_falls_under_the_pack_of_its_division(packs, division, region):
    assert packs.for_division(division).region == region


def test_regional_numbers(packs):
    by = {p.region: p for p in packs}
    assert by["zhongyuan"].contracts.period.max_months == 36
    assert by["zhongyuan"].contracts.confirmation.yearly
    assert by["zhongyuan"].teams.capacity.max == 1500
    assert by["zhongyuan"].teams.capacity.unit == "households"
    assert [r.label for r in by["zhongyuan"].teams.models["1+1+1"].required] == [
        "内科医师",
        "外科医师",
        "妇科医师",
        "公卫医师",
    ]
    assert by["guangzhou"].contracts.period.max_months == 12
    assert by["guangzhou"].prescriptions.long_max_days == 60
    assert (by["guangzhou"].fees.team_percent, by["guangzhou"].fees.institution_percent) == (80, 20)
    assert by["guangzhou"].referrals.reserved == {"expert": 20}
    assert by["xinjiang"].prescriptions.long_max_days == 84
    assert by["xinjiang"].referrals.reserved == {"outpatient": 50, "examination": 50}
    assert (
        by["guandu"].referrals.green_channel_down
        and not by["xinjiang"].referrals.green_channel_down
    )
    assert by["guandu"].referrals.task == packs.national.referrals.task
    assert by["xinjiang"].fees.staff_min_percent == 70
    assert "functional-community" in by["xinjiang"].contracts.signing_units
    assert by["guandu"].service_frequency.key_population_per_year == 4
    assert by["guandu"].service_frequency.others_per_year == 1
    # the national lifecycle is inherited
    assert by["xinjiang"].contracts.transitions == packs.national.contracts.transitions


def test_xinjiang_package_table_exactly(packs):
    xj = {p.name: p for p in packs.for_division("65").packages}
    table = {
        "基本公卫服务包": (10, {"public-health": 10}),
        "基本医疗服务包": (25, {"insurer": 20, "individual": 5}),
        "65岁及以上老年人个性签约服务包": (
            79,
            {"insurer": 49, "individual": 20, "public-health": 10},
        ),
        "高血压患者个性签约服务包": (86, {"insurer": 59, "individual": 17, "public-health": 10}),
        "糖尿病患者个性签约服务包": (101, {"insurer": 66, "individual": 25, "public-health": 10}),
    }
    assert set(xj) == set(table)
    for name, (price, shares) in table.items():
        assert xj[name].price == price
        assert {s.payer: s.amount for s in xj[name].shares} == {
            k: Decimal(v) for k, v in shares.items()
        }
        assert all(s.cap == (s.payer == "insurer") for s in xj[name].shares)
        if xj[name].items:  # the item rows add up to the price
            assert sum(i.price * i.times for i in xj[name].items) == price


@pytest.mark.parametrize(
    ("division", "price", "shares"),
    [
        ("330106", 120, {"individual": 12, "finance": 108}),  # Hangzhou 10% / 25% + 65%
        ("330203", 180, {"insurer": 80, "public-health": 50, "individual": 50}),  # Ningbo
        ("330302", 120, {"individual": 24, "insurer": 48, "public-health": 48}),  # Wenzhou
        ("330402", 120, {"individual": 10, "public-health": 10, "finance": 100}),  # Jiaxing
        ("331102", 60, {"finance": 50, "individual": 10}),  # Lishui
        ("330602", 120, {"finance": 120}),  # Shaoxing
    ],
)
def test_zhejiang_city_fees(packs, division, price, shares):
    offered = packs.for_division(division).packages_for(division)
    [package] = offered.values()
    assert package.price == price
    assert {s.payer: s.amount for s in package.shares} == {k: Decimal(v) for k, v in shares.items()}


def test_a_city_without_a_fee_table_offers_no_package(packs):
    assert packs.for_division("330802").packages_for("330802") == {}  # Quzhou


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "policy"
    shutil.copytree(PACKS, folder)
    return folder


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("xinjiang.yaml", "price: 25", "price: 26", "xinjiang.yaml: packages[1]"),
        ("zhongyuan.yaml", "max: 1500", "max: -1", "zhongyuan.yaml: teams.capacity.max"),
        ("guangzhou.yaml", "max_months: 12", "max_months: 6", "guangzhou.yaml: contracts"),
        ("guandu.yaml", 'divisions: ["530111"]', 'divisions: ["5301x"]', "guandu.yaml: divisions"),
        ("guandu.yaml", "service_frequency:", "service_frequency: [", "guandu.yaml"),
        ("zhejiang.yaml", 'divisions: ["33"]', 'divisions: ["65"]', "also xinjiang's"),
        ("national.yaml", "on-hold: [active,", "on-hold: [on-hold,", "cannot follow itself"),
    ],
)
def test_a_broken_pack_is_refused_naming_the_place(tmp_path, file, old, new, message):
    folder = _copy(tmp_path)
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PackError) as err:
        Packs.load(folder)
    assert message in str(err.value)


async def test_a_broken_pack_stops_start_up(tmp_path, database_url):
    from tests.conftest import running_app

    profiles = tmp_path / "profiles"
    shutil.copytree(PACKS.parent, profiles)
    bad = profiles / "policy" / "xinjiang.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("price: 25", "price: 24"), "utf-8")
    with pytest.raises(PackError, match="xinjiang.yaml"):
        async with running_app(database_url, profiles_dir=profiles):
            pass
