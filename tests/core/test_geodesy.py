"""Geodesy against an independent reference: GeographicLib's geodesics through pyproj.Geod."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core.geodesy import GEOD, LineIndex, LocalFrame, ecef, offset_region

from ..conftest import SMALL_LINE
from ..geodesic_reference import reference_distance_m

LINE = np.array(SMALL_LINE)


@pytest.fixture(scope="module")
def index() -> LineIndex:
    return LineIndex([LINE])


def test_ecef_matches_pyproj() -> None:
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    lon, lat = np.array([0.0, 36.5, -120.0]), np.array([0.0, 48.2, -33.0])
    x, y, z = tr.transform(lon, lat, np.zeros(3))
    np.testing.assert_allclose(ecef(lon, lat), np.column_stack([x, y, z]), atol=1e-6)


def test_distance_within_one_metre_up_to_200_km(index: LineIndex) -> None:
    rng = np.random.default_rng(7)
    # Points spread across both sides, the bend, and beyond the ends.
    lon = rng.uniform(32.5, 39.5, 80)
    lat = rng.uniform(45.8, 51.2, 80)
    got = index.nearest(lon, lat).distance_m
    ref = np.array([reference_distance_m(a, b, LINE) for a, b in zip(lon, lat, strict=True)])
    near = ref <= 200_000
    assert near.sum() > 40
    err = np.abs(got - ref)
    assert err[near].max() <= 1.0, f"max error {err[near].max():.3f} m"


def test_utm_shortcut_is_far_worse(index: LineIndex) -> None:
    """The reason this module exists: a single-UTM-zone planar distance is off by far more."""
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", "EPSG:32636", always_xy=True)
    lon, lat = np.array([38.9, 33.2]), np.array([49.5, 47.9])
    lx, ly = tr.transform(LINE[:, 0], LINE[:, 1])
    px, py = tr.transform(lon, lat)
    planar = shapely.distance(shapely.points(px, py), shapely.LineString(np.column_stack([lx, ly])))
    ref = np.array([reference_distance_m(a, b, LINE) for a, b in zip(lon, lat, strict=True)])
    assert np.abs(planar - ref).max() > 50.0
    assert np.abs(index.distance_m(lon, lat) - ref).max() < 1.0


def test_side_left_and_right(index: LineIndex) -> None:
    # The line runs south from (36, 50): east of it is its left, west its right.
    n = index.nearest([36.8, 35.7], [49.6, 49.6])
    assert n.side.tolist() == [1, -1]


def test_multipart_line_and_chainage() -> None:
    a = np.array([[30.0, 48.0], [30.5, 48.0]])
    b = np.array([[31.0, 48.0], [31.5, 48.0]])
    idx = LineIndex([a, b])
    n = idx.nearest([30.75, 31.25], [48.0, 48.0])
    # In the gap the nearest point is a part's end; in the second part the chainage adds the first.
    assert n.at_end[0]
    first_len = GEOD.inv(30.0, 48.0, 30.5, 48.0)[2]
    assert n.chainage_m[1] == pytest.approx(first_len + GEOD.inv(31.0, 48.0, 31.25, 48.0)[2], abs=1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-0.6, 0.6), st.floats(0.05, 0.5)), min_size=2, max_size=8),
    st.floats(-1.5, 1.5),
    st.floats(-1.5, 1.5),
)
def test_matches_brute_force_on_random_lines(
    steps: list[tuple[float, float]], dx: float, dy: float
) -> None:
    """Wiggly random lines: the fast search finds the same nearest distance as checking everything."""
    lon = 30.0 + np.cumsum([0.0] + [s[0] for s in steps])
    lat = 48.0 + np.cumsum([0.0] + [s[1] for s in steps])
    line = np.column_stack([lon, lat])
    if not shapely.LineString(line).is_simple:
        return
    idx = LineIndex([line])
    px, py = lon.mean() + dx, lat.mean() + dy
    got = float(idx.distance_m([px], [py])[0])
    # Brute force on a very finely densified line (10 m), exact Geod.inv to every vertex.
    fine = LineIndex([line], max_segment_m=10.0)
    _, _, d = GEOD.inv(np.full(fine.lon.size, px), np.full(fine.lon.size, py), fine.lon, fine.lat)
    # The finely sampled minimum overestimates by at most (5 m)^2 / (2 d).
    assert got <= d.min() + 0.05  # the chord-to-arc formula is good to a few cm
    assert got >= d.min() - 1.0 - 25.0 / max(d.min(), 1.0)


@pytest.mark.parametrize("dist_km", [2.0, 15.0, 70.0, 140.0])
def test_offset_outline_is_at_the_distance(index: LineIndex, dist_km: float) -> None:
    """Zone outlines for maps agree with the computed distance to within 1 m."""
    from truceline.core.agreement import _geodesic_buffer, _split_sides

    area = _geodesic_buffer(index, 250_000.0)
    sides = _split_sides(index, area)
    for side in (1, -1):
        poly = shapely.intersection(offset_region(index, dist_km * 1000.0, side), sides[side])
        rings = [shapely.get_coordinates(g.exterior) for g in shapely.get_parts(poly)]
        pts = np.vstack([np.vstack([r, (r[:-1] + r[1:]) / 2]) for r in rings])
        # Keep the outer edge: drop points on the line or on the side polygon's dividing line.
        divider = shapely.boundary(sides[side])
        off_divider = ~shapely.dwithin(divider, shapely.points(pts), 1e-5)
        d = index.distance_m(pts[:, 0], pts[:, 1])
        outer = off_divider & (d > 1.0)
        assert outer.sum() > 20
        assert np.abs(d[outer] - dist_km * 1000.0).max() <= 1.0


def test_side_beyond_a_sharp_corner() -> None:
    """A point whose nearest point is a corner of more than 90 deg lies on the outside of the turn."""
    # East, then a sharp left turn back towards the west-north-west.
    idx = LineIndex([np.array([[30.0, 48.0], [31.0, 48.0], [30.2, 48.3]])])
    n = idx.nearest([31.5], [48.05])  # ahead of the corner, slightly north: still outside the turn
    assert n.at_end.tolist() == [False]
    assert n.foot_lon[0] == pytest.approx(31.0, abs=1e-6)
    assert n.side.tolist() == [-1]
    # Whichever of the two segments meeting at the corner the search settles on, the side is the same.
    p = ecef([31.5], [48.05])
    chord = np.sqrt(idx._chord2(p, np.array([int(np.argmin(np.hypot(idx.lon - 31.0, idx.lat - 48.0)))])))
    k = int(np.argmin(np.hypot(idx.lon - 31.0, idx.lat - 48.0)))  # the corner among densified vertices
    for seg, t in ((k - 1, 1.0), (k, 0.0)):
        r = idx._result(p, np.array([seg]), np.array([t]), chord)
        assert r.side.tolist() == [-1], (seg, t)


def test_mean_longitude_across_the_antimeridian() -> None:
    from truceline.core.geodesy import mean_lon, unwrapped_lon

    lon = np.array([30.1, 30.3, 30.2])
    assert mean_lon(lon) == float(np.mean(lon))  # the plain mean, bit for bit, away from 180
    assert np.array_equal(unwrapped_lon(lon), lon)
    assert abs(abs(mean_lon([179.9, -179.9])) - 180.0) < 1e-9  # not 0
    assert abs(mean_lon([179.0, -179.0, -179.0]) - (-179.0 - 2.0 / 3.0)) < 1e-9
    assert np.allclose(unwrapped_lon([179.5, -179.5]), [179.5, 180.5])
    assert mean_lon([]) == 0.0


def test_degree_pads_and_bounds_hold_on_the_ellipsoid() -> None:
    """Every point within d of a point (geodesic) lies within the pads of d; no degree of latitude
    or longitude spans more than M_PER_DEG_MAX."""
    from truceline.core.geodesy import M_PER_DEG_MAX, pad_lat_deg, pad_lon_deg

    rng = np.random.default_rng(11)
    n = 20_000
    lat0 = rng.uniform(-85.0, 85.0, n)
    lon0 = rng.uniform(-180.0, 180.0, n)
    d = rng.uniform(1.0, 60_000.0, n)
    lon1, lat1, _ = GEOD.fwd(lon0, lat0, rng.uniform(0.0, 360.0, n), d)
    dlon = np.abs((np.asarray(lon1) - lon0 + 180.0) % 360.0 - 180.0)
    dlat = np.abs(np.asarray(lat1) - lat0)
    far = np.maximum(np.abs(lat0), np.abs(lat1)) + pad_lat_deg(d)  # farthest latitude within reach
    assert (dlat <= pad_lat_deg(d)).all()
    assert (dlon <= pad_lon_deg(d, far)).all()
    lat = np.linspace(-89.5, 89.5, 181)
    _, _, m_lat = GEOD.inv(np.zeros_like(lat), lat - 0.5, np.zeros_like(lat), lat + 0.5)
    m_lon = GEOD.line_lengths([0.0, 1.0], [0.0, 0.0])  # a degree of the equator
    assert max(np.max(m_lat), np.max(m_lon)) <= M_PER_DEG_MAX


@pytest.mark.parametrize(
    "lon0, lat0", [(37.0, 48.0), (33.3, 35.1), (127.0, 38.0), (-70.5, -33.0), (179.9, 10.0)]
)
def test_local_frame_is_the_azimuthal_equidistant_projection_of_its_crs(
    lon0: float, lat0: float
) -> None:
    """The frame's cheap PROJ pipelines give the same numbers as the CRS route, both ways."""
    from pyproj import CRS, Transformer

    crs = CRS.from_proj4(f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +datum=WGS84 +units=m +no_defs")
    fwd = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    inv = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    rng = np.random.default_rng(3)
    lon = lon0 + rng.uniform(-2.0, 2.0, 2000)
    lat = lat0 + rng.uniform(-2.0, 2.0, 2000)
    frame = LocalFrame.centred(lon0, lat0)
    x, y = frame.to_xy(lon, lat)
    xr, yr = fwd.transform(lon, lat)
    np.testing.assert_allclose(x, xr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(y, yr, rtol=0, atol=1e-9)
    lo, la = frame.to_lonlat(x, y)
    lor, lar = inv.transform(x, y)
    np.testing.assert_allclose(lo, lor, rtol=0, atol=1e-12)
    np.testing.assert_allclose(la, lar, rtol=0, atol=1e-12)
