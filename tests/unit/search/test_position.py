"""Location near: position rows, query values, and the distance approximation's error."""

from __future__ import annotations

import math

import pytest

from gateway.search.extract import IndexExtractor
from gateway.search.position import DEFAULT_KM, KM_PER_DEGREE, Near, parse_near
from gateway.store.rows import NumberRow
from gateway.vocab.outcomes import OperationOutcomeError


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_position_rows_share_a_group(extractor: IndexExtractor) -> None:
    loc = {"resourceType": "Location", "position": {"latitude": 23.129, "longitude": 113.264}}
    rows = {r for r in extractor.extract(loc).number if r.param.startswith("near$")}
    assert rows == {
        NumberRow("near$0", 23.129, 23.129, 23.129, 0),
        NumberRow("near$1", 113.264, 113.264, 113.264, 0),
    }


@pytest.mark.parametrize(
    "position",
    [{"latitude": 23.1}, {"latitude": 91, "longitude": 0}, {"latitude": "23", "longitude": 1}],
)
def test_incomplete_or_impossible_positions_are_not_indexed(
    extractor: IndexExtractor, position: dict
) -> None:
    rows = extractor.extract({"resourceType": "Location", "position": position})
    assert not [r for r in rows.number if r.param.startswith("near$")]


def test_parse_near_units_and_default_distance() -> None:
    assert parse_near("23.1|113.2|5|km", "near") == Near(23.1, 113.2, 5.0)
    assert parse_near("23.1|113.2|500|m", "near").km == pytest.approx(0.5)
    assert parse_near("23.1|113.2|2|[mi_i]", "near").km == pytest.approx(3.218688)
    assert parse_near("23.1|113.2|3", "near").km == 3.0
    assert parse_near("23.1|113.2", "near").km == DEFAULT_KM


@pytest.mark.parametrize(
    "value",
    [
        "",
        "23.1",
        "x|113",
        "91|0|1",
        "23|181|1",
        "23|113|-1",
        "23|113|5|furlong",
        "1|2|3|km|x",
        "nan|113|1",
        "23|113|nan",
        "23|113|inf",
        "23|113|1e400",
    ],
)
def test_parse_near_rejects_malformed_values(value: str) -> None:
    with pytest.raises(OperationOutcomeError) as err:
        parse_near(value, "near")
    assert err.value.status == 400


@pytest.mark.parametrize("lat", [18.0, 23.0, 40.0, 53.0])
@pytest.mark.parametrize("km", [1.0, 50.0, 200.0])
def test_equirectangular_distance_is_within_one_percent(lat: float, km: float) -> None:
    near = Near(lat, 113.0, km)
    for bearing in range(0, 360, 15):
        b = math.radians(bearing)
        dlat = km * math.cos(b) / KM_PER_DEGREE
        dlon = km * math.sin(b) / near.lon_scale
        true = haversine_km(lat, 113.0, lat + dlat, 113.0 + dlon)
        assert abs(true - km) / km < 0.01
        assert abs(dlat) <= near.dlat + 1e-9
        assert abs(dlon) <= near.dlon + 1e-9


def test_a_huge_distance_is_the_whole_earth() -> None:
    assert parse_near("23.1|113.2|1e9|km", "near").km <= 20_037.5


def test_a_circle_across_the_antimeridian_has_a_second_centre() -> None:
    assert Near(0.0, 113.0, 20.0).centres == [113.0]
    assert Near(0.0, 179.95, 20.0).centres == [179.95, 179.95 - 360]
    assert Near(0.0, -179.95, 20.0).centres == [-179.95, -179.95 + 360]
