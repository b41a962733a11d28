"""Territory against independent computations.

Areas with :class:`pyproj.Geod` directly (not through Truceline's geodesy), populations by
point-in-polygon one place at a time with shapely, distances by brute force over a finely densified
line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from truceline.core.agreement import Agreement
from truceline.core.planner.compare import compare_scenarios
from truceline.core.planner.scenario import Scenario
from truceline.core.planner.settlements import Settlements

from .conftest import BASE, G, _area_ring, _brute_distance_m


def test_areas_held_and_changing_hands(comparison) -> None:  # type: ignore[no-untyped-def]
    ref, new = comparison.scenarios
    area = _area_ring()
    total = abs(G.polygon_area_perimeter(*area.exterior.xy)[0]) / 1e6
    for m in (ref, new):
        assert m.area_km2["N"] + m.area_km2["S"] == pytest.approx(total, rel=1e-6)
    # The land inside the bump, edges geodesic as in the two lines, passes from N to S.
    ring = np.array([[35.5, 48.0], [36.5, 48.0], [36.5, 48.3], [35.5, 48.3]])
    bump_km2 = abs(G.polygon_area_perimeter(ring[:, 0], ring[:, 1])[0]) / 1e6
    moved = {(c.from_party, c.to_party): c.area_km2 for c in new.changes}
    assert moved[("N", "S")] == pytest.approx(bump_km2, rel=1e-4)
    assert moved[("S", "N")] == pytest.approx(0.0, abs=0.01)
    assert ref.area_km2["N"] - new.area_km2["N"] == pytest.approx(bump_km2, rel=1e-4)
    assert ref.changes == ()


def test_buffer_area_against_closed_form(comparison) -> None:  # type: ignore[no-untyped-def]
    """A band of width w along a geodesic line of length L, plus quarter discs beyond both ends.

    On the ellipsoid the band's area is L w to second order in w / R (< 1e-5 here); the ends add
    pi w^2 / 2. The base line's three geodesics meet at shallow angles: the bends add or remove
    wedges of w^2 tan(a / 2)-ish, small; compared at 0.2 %.
    """
    m = comparison.scenarios[0]
    w = 15.0
    length = m.line_length_km
    expected = length * w + math.pi * w * w / 2
    for party in ("N", "S"):
        assert m.buffer_km2[party] == pytest.approx(expected, rel=2e-3)


# -- settlements -------------------------------------------------------------------------------


def test_population_in_buffer_by_point_in_polygon(comparison, base, places) -> None:  # type: ignore[no-untyped-def]
    m = comparison.scenarios[0]
    cv = base.compiled(0)
    zone = cv.zones["buffer"]
    for side, party in ((1, "N"), (-1, "S")):
        poly = cv.zone_polygons(zone)[side]
        inside = [
            poly.contains(shapely.Point(x, y)) for x, y in zip(places.lon, places.lat, strict=True)
        ]
        idx = np.flatnonzero(inside)
        assert idx.size > 20  # the test means something
        assert m.in_buffer[party].count == idx.size
        assert m.in_buffer[party].population == int(places.population[idx].sum())
        top = m.in_buffer[party].largest[0]
        assert top[1] == int(places.population[idx].max())


def test_population_changing_hands_by_point_in_polygon(comparison, base, bump, places) -> None:  # type: ignore[no-untyped-def]
    new = comparison.scenarios[1]
    a, b = base.compiled(0), bump.compiled(0)
    for s, (src, dst) in ((-1, ("N", "S")), (1, ("S", "N"))):
        idx = [
            i
            for i, (x, y) in enumerate(zip(places.lon, places.lat, strict=True))
            if b.side_polygon(s).contains(shapely.Point(x, y))
            and a.side_polygon(-s).contains(shapely.Point(x, y))
        ]
        ch = next(c for c in new.changes if (c.from_party, c.to_party) == (src, dst))
        assert ch.places.count == len(idx)
        assert ch.places.population == int(places.population[idx].sum())
    assert next(c for c in new.changes if c.to_party == "S").places.count > 5


def test_withdrawal_bands_by_brute_force_distance(base: Agreement, places: Settlements) -> None:
    # Places 1 km or more from the line (which runs along 48 N, north is N's side), within 0.4 deg.
    sel = np.flatnonzero((np.abs(places.lat - 48.0) < 0.4) & (np.abs(places.lat - 48.0) > 0.01))
    d = _brute_distance_m(BASE, places.lon[sel], places.lat[sel])
    edges = np.array([25_000.0, 40_000.0])
    clear = np.min(np.abs(d[:, None] - edges[None, :]), axis=1) > 50.0  # none on a band's edge
    sel, d = sel[clear], d[clear]
    sub = places.take(sel)
    (m,) = compare_scenarios([Scenario("base", "Base", "", base)], sub, sensors=None).scenarios
    north = sub.lat > 48.0
    assert {(b.party, b.distance_km) for b in m.withdrawal} == {("N", 25.0), ("S", 40.0)}
    for band in m.withdrawal:
        on_side = north if band.party == "N" else ~north
        hit = on_side & (d < band.distance_km * 1000.0)
        assert hit.sum() > 20
        assert band.places.count == int(hit.sum())
        assert band.places.population == int(sub.population[hit].sum())
