"""Shared fixtures of the planner's tests: an eastward line along 48 N, a bumped variant, places.

The helpers here compute references independently of Truceline's geodesy (:class:`pyproj.Geod`
directly, brute force over a finely densified line).
"""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest
import shapely
from pyproj import Geod

from truceline.core.agreement import Agreement, AgreementVersion, Party, Rule, Sector, Zone
from truceline.core.planner.compare import compare_scenarios
from truceline.core.planner.force import ForceParameters
from truceline.core.planner.scenario import Scenario, apply_scenario
from truceline.core.planner.settlements import Settlements

G = Geod(ellps="WGS84")

# An eastward line along 48 N (vertices at 48 N, geodesics between them); left is north.
BASE = [[34.0, 48.0], [35.5, 48.0], [36.5, 48.0], [38.0, 48.0]]
# The same with a bump north between 35.5 and 36.5 E: the land inside it passes to the right side.
BUMP = [[34.0, 48.0], [35.5, 48.0], [35.5, 48.3], [36.5, 48.3], [36.5, 48.0], [38.0, 48.0]]


def _area_ring() -> shapely.Polygon:
    """Area of application: a box whose edges are densified (0.02 deg) so that they stay put."""
    xs = np.arange(33.0, 39.0001, 0.02)
    ys = np.arange(46.5, 49.5001, 0.02)
    ring = np.vstack(
        [
            np.column_stack([xs, np.full(xs.size, 46.5)]),
            np.column_stack([np.full(ys.size, 39.0), ys]),
            np.column_stack([xs[::-1], np.full(xs.size, 49.5)]),
            np.column_stack([np.full(ys.size, 33.0), ys[::-1]]),
        ]
    )
    return shapely.Polygon(ring)


def _agreement(line: list[list[float]], buffer_km: float = 15.0) -> Agreement:
    zones = (
        Zone(
            id="buffer", type="band", bands={"N": (0.0, buffer_km), "S": (0.0, buffer_km)}, buffer=True
        ),
    )
    zones += (Zone(id="limit", type="band", bands={"N": (15.0, 35.0), "S": (15.0, 35.0)}),)
    rules = (
        Rule(id="ban", type="zone_ban", zone="buffer", kinds=("armed_personnel",)),
        Rule(id="fire", type="fire_across", zone="buffer"),
        Rule(id="cap", type="count_cap", zone="limit", weapon_classes=("tank",), max_count=3),
        Rule(
            id="wd-art", type="withdrawal", weapon_classes=("art",), distance_km={"N": 25.0, "S": 40.0}
        ),
    )
    sectors = (
        Sector(id="west", nation="A", geometry=shapely.box(33.0, 46.5, 35.0, 49.5)),
        Sector(id="east", nation="B", geometry=shapely.box(35.0, 46.5, 37.2, 49.5)),
    )
    from truceline.core.agreement import WeaponClass

    return Agreement(
        id="t",
        name="test",
        parties=(Party(id="N", name="North"), Party(id="S", name="South")),
        left="N",
        right="S",
        area=_area_ring(),
        line_extends="azimuth",  # the ring stops short of the line's ends
        weapon_classes=(
            WeaponClass(id="art", min_range_km=2, max_range_km=30),
            WeaponClass(id="tank", max_range_km=5),
        ),
        sectors=sectors,
        versions=(
            AgreementVersion(
                effective_from=dt.date(2025, 1, 1),
                line=shapely.LineString(line),
                zones=zones,
                rules=rules,
            ),
        ),
    )


@pytest.fixture(scope="module")
def base() -> Agreement:
    return _agreement(BASE)


@pytest.fixture(scope="module")
def bump(base: Agreement) -> Agreement:
    return apply_scenario(base, line=shapely.LineString(BUMP))


@pytest.fixture(scope="module")
def places() -> Settlements:
    rng = np.random.default_rng(7)
    n = 1500
    lon = rng.uniform(33.2, 38.8, n)
    lat = np.r_[rng.uniform(47.6, 48.6, n - 300), rng.uniform(46.6, 49.4, 300)]
    pop = rng.integers(500, 200_000, n)
    return Settlements.from_columns(np.char.add("p", np.arange(n).astype(str)), lon, lat, pop)


@pytest.fixture(scope="module")
def comparison(base: Agreement, bump: Agreement, places: Settlements):  # type: ignore[no-untyped-def]
    return compare_scenarios(
        [Scenario("base", "Base", "", base), Scenario("bump", "Bump", "", bump)],
        places,
        force=ForceParameters(troops_per_km=4.5),
        sensors=None,
    )


def _brute_distance_m(line: list[list[float]], lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Distance to the line by brute force: the line densified to 200 m, Geod.inv to every vertex.

    The nearest vertex is at most 100 m along the line from the true foot: beyond 1 km from the
    line that overstates the distance by under 5 m.
    """
    pts = [line[0]]
    for a, b in itertools.pairwise(line):
        _, _, d = G.inv(a[0], a[1], b[0], b[1])
        n = max(int(d // 200.0), 1)
        pts.extend(G.npts(a[0], a[1], b[0], b[1], n - 1) if n > 1 else [])
        pts.append(b)
    v = np.asarray(pts)
    out = np.empty(lon.size)
    for i in range(lon.size):  # an independent reference, slow on purpose
        _, _, d = G.inv(np.full(len(v), lon[i]), np.full(len(v), lat[i]), v[:, 0], v[:, 1])
        out[i] = np.min(d)
    return out
