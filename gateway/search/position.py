"""Location `near` (R4's one `special` parameter): `near=latitude|longitude|distance|units`.

A position is indexed like a two-component composite (gateway.search.composite): number rows
`near$0` (latitude) and `near$1` (longitude) with the same grp. A search is a box around the
point (each coordinate range-scanned in its index) refined by the equirectangular distance,
which needs only arithmetic (SQLite has no trigonometry) and is within 1% of the great-circle
distance up to 200 km at China's latitudes (18–53°N; tests/unit/search/test_position.py).
A circle crossing ±180° is searched around the point and its copy 360° away.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.search.composite import component_code
from gateway.search.paths import compile_linear, walk
from gateway.search.registry import SearchParameter, split_for_type
from gateway.store.rows import IndexRows, NumberRow
from gateway.vocab import outcomes

POSITION_TYPE = "Location.position"
KM_PER_DEGREE = 6371.0088 * math.pi / 180  # mean Earth radius (IUGG)
# The spec leaves the distance of `near=lat|long` to the server.
DEFAULT_KM = 10.0
MAX_KM = 20_037.5  # half the Earth's circumference: every point is within it
UNITS_KM = {"km": 1.0, "m": 0.001, "[mi_i]": 1.609344, "mi": 1.609344}


def is_position(p: SearchParameter) -> bool:
    return p.type == "special" and p.code == "near"


@dataclass(slots=True)
class PositionPlan:
    param: SearchParameter
    paths: list[tuple[Any, ...]]

    def extract(self, resource: dict, rows: IndexRows) -> None:
        grp = 0
        for ops in self.paths:
            for pos in walk(resource, ops):
                lat, lon = _coordinate(pos, "latitude", 90), _coordinate(pos, "longitude", 180)
                if lat is not None and lon is not None:
                    code = self.param.code
                    rows.number.add(NumberRow(component_code(code, 0), lat, lat, lat, grp))
                    rows.number.add(NumberRow(component_code(code, 1), lon, lon, lon, grp))
                    grp += 1


def _coordinate(pos: Any, key: str, limit: float) -> float | None:
    v = pos.get(key) if type(pos) is dict else None
    if not isinstance(v, int | float | Decimal) or isinstance(v, bool):
        return None
    f = float(v)  # type: ignore[arg-type]
    return f if -limit <= f <= limit else None


def compile_position(resource_type: str, p: SearchParameter) -> PositionPlan | None:
    if not is_position(p) or not p.expression:
        return None
    paths = []
    for part in split_for_type(p.expression, resource_type):
        for lp in compile_linear(resource_type, part) or ():
            if lp.type == POSITION_TYPE:
                paths.append(lp.ops)
    return PositionPlan(p, paths) if paths else None


@dataclass(frozen=True, slots=True)
class Near:
    lat: float
    lon: float
    km: float

    @property
    def dlat(self) -> float:
        return self.km / KM_PER_DEGREE

    @property
    def dlon(self) -> float:
        """Half the box's width in degrees of longitude."""
        return min(self.dlat / max(math.cos(math.radians(self.lat)), 1e-6), 360.0)

    @property
    def centres(self) -> list[float]:
        """The query longitude, and its copy 360° away when the circle crosses ±180°: stored
        longitudes on the far side are measured from that copy."""
        out = [self.lon]
        if self.lon + self.dlon > 180:
            out.append(self.lon - 360)
        if self.lon - self.dlon < -180:
            out.append(self.lon + 360)
        return out

    @property
    def lon_scale(self) -> float:
        """km per degree of longitude at this latitude."""
        return KM_PER_DEGREE * math.cos(math.radians(self.lat))


def parse_near(value: str, name: str) -> Near:
    parts = value.split("|")
    try:
        if len(parts) < 2 or len(parts) > 4:
            raise ValueError
        lat, lon = float(parts[0]), float(parts[1])
        distance = float(parts[2]) if len(parts) > 2 and parts[2] else None
        units = parts[3] if len(parts) > 3 and parts[3] else "km"
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):  # NaN fails these too
            raise ValueError
        if distance is not None and not 0 <= distance < math.inf:
            raise ValueError
    except ValueError:
        raise outcomes.bad_request(
            f"Invalid near value '{value}': expected latitude|longitude|distance|units",
            name,
            "GW-1325",
        ) from None
    if units not in UNITS_KM:
        raise outcomes.bad_request(
            f"Unsupported distance units '{units}' for {name} (km, m or [mi_i])", name, "GW-1325"
        )
    km = DEFAULT_KM if distance is None else distance * UNITS_KM[units]
    return Near(lat, lon, min(km, MAX_KM))
