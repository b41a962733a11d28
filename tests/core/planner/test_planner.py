"""The planner's numbers against independent computations.

Areas and lengths with :class:`pyproj.Geod` directly (not through Truceline's geodesy), populations by
point-in-polygon one place at a time with shapely, distances by brute force over a finely densified
line, the Cramér-Rao bound from its closed form (emission time eliminated), and the replay against
counts made by hand.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math

import numpy as np
import pytest
import shapely
from pyproj import Geod

from truceline.core.agreement import Agreement, AgreementVersion, Party, Rule, Sector, Zone
from truceline.core.incidents import IncidentBatch
from truceline.core.planner import (
    ForceParameters,
    PlannerError,
    Scenario,
    SensorParameters,
    Settlements,
    apply_scenario,
    classify_by_days,
    compare_findings,
    compare_scenarios,
    coverage,
    force_plan,
    line_layout,
    replay,
    replay_findings,
    sensor_spacing_km,
)
from truceline.core.planner import _accuracy_m as accuracy_m
from truceline.core.planner import _template_accuracy as template_accuracy
from truceline.core.rules import Findings, classify

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


# -- lengths and areas -------------------------------------------------------------------------


def test_line_length_matches_geod(comparison) -> None:  # type: ignore[no-untyped-def]
    for m, line in zip(comparison.scenarios, (BASE, BUMP), strict=True):
        xy = np.asarray(line)
        expected = G.line_length(xy[:, 0], xy[:, 1]) / 1000.0
        assert m.line_length_km == pytest.approx(expected, abs=1e-3)


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


# -- force -------------------------------------------------------------------------------------


def test_force_per_sector(base: Agreement) -> None:
    p = ForceParameters(troops_per_km=4.5, op_spacing_km=10, op_crew=4, patrol_cycle_h=12,
                        patrol_speed_kmh=10, patrol_crew=8, rotation_factor=3)  # fmt: skip
    plan = force_plan(base.compiled(0), p)
    line = shapely.LineString(BASE)
    for row in plan.sectors:
        poly = next(s.geometry for s in base.sectors if s.id == row.sector)
        pieces = shapely.get_parts(shapely.intersection(line, poly))
        km = sum(G.line_length(*np.asarray(q.coords).T) for q in pieces) / 1000.0
        assert row.line_km - row.outside_km == pytest.approx(km, abs=0.3)
        assert row.observation_posts == math.ceil(row.line_km / 10)
        assert row.patrols_on_duty == math.ceil(row.line_km / 120)
        assert row.personnel_tasks == math.ceil(
            (row.observation_posts * 4 + row.patrols_on_duty * 8) * 3
        )
        assert row.personnel_density == math.ceil(row.line_km * 4.5)
        assert row.personnel == max(row.personnel_tasks, row.personnel_density)
    # The line east of the last sector (37.2-38 E) is counted in the sector before it.
    east = next(r for r in plan.sectors if r.sector == "east")
    tail = G.line_length([37.2, 38.0], [48.0, 48.0]) / 1000.0
    assert east.outside_km == pytest.approx(tail, abs=0.3)
    assert plan.line_km == pytest.approx(G.line_length(*np.asarray(BASE).T) / 1000.0, abs=0.01)
    dense = force_plan(base.compiled(0), p.model_copy(update={"troops_per_km": 77.0}))
    assert dense.personnel == sum(math.ceil(r.line_km * 77.0) for r in dense.sectors)


# -- acoustic sensors --------------------------------------------------------------------------


def _crb_closed_form(src: np.ndarray, sens: np.ndarray, sigma_s: float, c: float) -> float:
    """95 % semi-major axis from J_x = sum (u_i - mean u)(u_i - mean u)^T / (c^2 sigma^2)."""
    u = sens - src
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    du = u - u.mean(axis=0)
    j = du.T @ du / (c * c * sigma_s * sigma_s)
    lam = np.linalg.eigvalsh(np.linalg.inv(j)).max()
    return math.sqrt(-2.0 * math.log(0.05) * lam)


def test_bound_matches_closed_form() -> None:
    p = SensorParameters(estimate_weather=False, timing_sigma_ms=5.0, temperature_c=15.0)
    rng = np.random.default_rng(3)
    sens = rng.uniform(-8000, 8000, (9, 2))
    src = np.array([[500.0, -300.0], [4000.0, 2500.0], [-6000.0, 1000.0]])
    got = accuracy_m(src, np.broadcast_to(sens, (3, 9, 2)).copy(), np.ones((3, 9), bool), p)
    c = 331.3 + 0.606 * 15.0
    for k in range(3):
        assert got[k] == pytest.approx(_crb_closed_form(src[k], sens, 0.005, c), rel=1e-6)


def test_too_few_or_collinear_sensors_give_no_position() -> None:
    p = SensorParameters(estimate_weather=True, min_sensors=3)
    sens = np.column_stack([np.arange(4) * 1000.0, np.zeros(4)])
    src = np.array([[1500.0, 0.0], [1500.0, 3000.0]])
    acc = accuracy_m(src, np.broadcast_to(sens, (2, 4, 2)).copy(), np.ones((2, 4), bool), p)
    assert np.isinf(acc[0]) or acc[0] > 1e6  # on the row itself: no fix across it
    few = accuracy_m(src, np.broadcast_to(sens, (2, 4, 2)).copy(), np.array([[1, 1, 0, 0]] * 2, bool), p)
    assert np.all(np.isinf(few))


def test_spacing_is_the_widest_that_meets_the_target() -> None:
    p = SensorParameters(target_accuracy_m=25.0)
    s, acc = sensor_spacing_km(p)
    assert acc <= 25.0
    assert template_accuracy(s + 0.25, p) > 25.0
    tighter, _ = sensor_spacing_km(p.model_copy(update={"target_accuracy_m": 10.0}))
    assert tighter < s
    with pytest.raises(PlannerError, match="no sensor spacing"):
        sensor_spacing_km(p.model_copy(update={"target_accuracy_m": 0.5}))


def test_coverage_on_a_straight_line_matches_the_template_and_finds_a_hole() -> None:
    ag = _agreement([[34.0, 48.0], [38.0, 48.0]])
    cv = ag.compiled(0)
    p = SensorParameters()
    s, acc = sensor_spacing_km(p)
    lon, lat = line_layout(cv, s, p.rows_km)
    # Four rows every s km along ~298 km: about 4 x 298 / s sensors, a few more round the ends.
    length_km = cv.line_length_km
    assert 4 * length_km / s < lon.size < 4 * (length_km / s + 8)
    ch, worst, gaps = coverage(cv, lon, lat, p)
    inner = (ch > 30) & (ch < length_km - 30)
    assert np.max(worst[inner]) == pytest.approx(acc, rel=0.15)
    assert all(g.end_km < 10 or g.start_km > length_km - 10 for g in gaps)  # only at the ends
    # Take every sensor out between 36.0 and 36.3 E: a gap opens there, about that long or more.
    hole = (lon > 36.0) & (lon < 36.3)
    _, _, gaps2 = coverage(cv, lon[~hole], lat[~hole], p)
    mid = [g for g in gaps2 if 10 < g.start_km < length_km - 10]
    x0 = G.line_length([34.0, 36.0], [48.0, 48.0]) / 1000.0
    x1 = G.line_length([34.0, 36.3], [48.0, 48.0]) / 1000.0
    assert mid and all(x0 - 20 < g.start_km and g.end_km < x1 + 20 for g in mid)
    worst = max(mid, key=lambda g: g.length_km)
    assert worst.start_km < x0 + 5 and worst.end_km > x1 - 5
    assert 35.9 < worst.lon < 36.4 and math.isinf(worst.worst_accuracy_m)


# -- scenarios ---------------------------------------------------------------------------------


def test_apply_scenario_replaces_zones_and_revalidates(base: Agreement) -> None:
    wide = Zone(id="buffer", type="band", bands={"N": (0.0, 20.0), "S": (0.0, 20.0)}, buffer=True)
    ag = apply_scenario(base, zones=[wide])
    assert ag.versions[0].zones[0].bands["N"] == (0.0, 20.0)
    assert base.versions[0].zones[0].bands["N"] == (0.0, 15.0)
    far = Sector(id="far", geometry=shapely.box(30.0, 40.0, 31.0, 41.0))
    from truceline.errors import AgreementError

    with pytest.raises(AgreementError, match="does not touch the line"):
        apply_scenario(base, sectors=[far])


# -- replay ------------------------------------------------------------------------------------


def test_replay_counts_new_and_cleared_violations(base: Agreement) -> None:
    """Armed personnel 0-30 km north of the line; the buffer widened from 15 to 25 km."""
    rng = np.random.default_rng(11)
    n = 400
    lon = rng.uniform(34.5, 37.5, n)
    lat = rng.uniform(48.01, 48.27, n)  # north of the line (it bulges < 150 m north of 48 N)
    d = _brute_distance_m(BASE, lon, lat)
    keep = (np.abs(d - 15_000) > 50) & (np.abs(d - 25_000) > 50)
    lon, lat, d = lon[keep], lat[keep], d[keep]
    batch = IncidentBatch.from_columns(
        observed_at=np.full(lon.size, np.datetime64("2025-03-01T10:00", "us")),
        lon=lon,
        lat=lat,
        uncertainty_m=np.zeros(lon.size),
        kind=np.full(lon.size, "armed_personnel"),
    )
    wide = apply_scenario(
        base,
        zones=[Zone(id="buffer", type="band", bands={"N": (0.0, 25.0), "S": (0.0, 25.0)}, buffer=True)],
    )
    res = replay(batch, wide, base)
    assert res.before == int(np.sum(d < 15_000))
    assert res.after == int(np.sum(d < 25_000))
    assert res.new == int(np.sum((d >= 15_000) & (d < 25_000)))
    assert res.cleared == 0 and res.kept == res.before
    (ban,) = [r for r in res.by_rule if r.rule_id == "ban"]
    assert (ban.before, ban.after, ban.new) == (res.before, res.after, res.new)
    back = replay(batch, base, wide)
    assert (back.cleared, back.new) == (res.new, 0)
    assert res.after_by_party == {"N": res.after}
    # From stored findings (as the store returns them) the answer is the same.
    stored = classify(base, batch).findings
    again = compare_findings(stored, classify(wide, batch).findings, len(batch))
    assert (again.before, again.after, again.new) == (res.before, res.after, res.new)


def test_compare_findings_thresholds_and_keys() -> None:
    def f(inc: list[int], rule: list[str], p: list[float], who: list[str]) -> Findings:
        k = len(inc)
        return Findings(
            np.array(inc, np.intp), np.array(rule), np.full(k, "zone_ban"), np.array(who),
            np.array(p), np.full(k, ""),
        )  # fmt: skip

    before = f([0, 0, 1, 2], ["a", "b", "a", "a"], [0.9, 0.9, 0.4, 0.7], ["X", "X", "Y", "Y"])
    after = f([0, 2, 3, 3], ["a", "b", "a", "b"], [0.9, 0.6, 0.5, 0.2], ["X", "Y", "Y", "Y"])
    r = compare_findings(before, after, 4)
    # before: (0,a) (0,b) (2,a); after: (0,a) (2,b) (3,a)
    assert (r.before, r.after, r.kept, r.new, r.cleared) == (3, 3, 1, 2, 2)
    assert (r.incidents_before, r.incidents_after) == (2, 3)
    by = {x.rule_id: (x.before, x.after, x.kept, x.new, x.cleared) for x in r.by_rule}
    assert by == {"a": (2, 2, 1, 1, 1), "b": (1, 1, 0, 1, 1)}
    assert r.before_by_party == {"X": 2, "Y": 1} and r.after_by_party == {"X": 1, "Y": 2}


def _mixed_history(n: int, seed: int = 4) -> IncidentBatch:
    """Fire with origins and with bearings only, tanks (a daily cap), personnel, over five days."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(34.3, 37.7, n)  # not beyond the line's ends (Monte Carlo there is slow)
    lat = rng.uniform(47.6, 48.5, n)
    kind = rng.choice(np.array(["explosion", "armed_personnel", "heavy_weapon"]), n)
    wc = np.where(kind == "armed_personnel", "", rng.choice(np.array(["art", "art", "tank"]), n))
    r = rng.random(n)
    expl = kind == "explosion"
    olon = np.where(expl & (r < 0.6), lon + rng.normal(0, 0.1, n), np.nan)
    olat = np.where(expl & (r < 0.6), lat + rng.normal(0, 0.1, n), np.nan)
    t0 = np.datetime64("2025-02-01T00:00", "us")
    return IncidentBatch.from_columns(
        observed_at=t0 + rng.integers(0, 5 * 86_400, n).astype("timedelta64[s]"),
        lon=lon,
        lat=lat,
        uncertainty_m=rng.uniform(50, 3000, n),
        kind=kind,
        weapon_class=wc,
        origin_lon=olon,
        origin_lat=olat,
        origin_uncertainty_m=np.where(np.isfinite(olon), rng.uniform(100, 3000, n), np.nan),
        bearing_deg=np.where(expl & (r > 0.95), rng.uniform(0, 360, n), np.nan),
    )


def _rows(f: Findings) -> list[tuple[int, str, str, float]]:
    o = np.lexsort((f.rule_id, f.incident))
    return list(
        zip(f.incident[o].tolist(), f.rule_id[o].tolist(), f.responsible[o].tolist(),
            f.probability[o].tolist(), strict=True)
    )  # fmt: skip


@pytest.mark.parametrize("change", ["line", "zones", "both"])
def test_replay_reclassifies_only_what_the_change_reaches(base: Agreement, change: str) -> None:
    wide = [Zone(id="buffer", type="band", bands={"N": (0.0, 10.0), "S": (0.0, 10.0)}, buffer=True)]
    after = apply_scenario(
        base,
        line=shapely.LineString(BUMP) if change in ("line", "both") else None,
        zones=wide if change in ("zones", "both") else (),
    )
    batch = _mixed_history(1500)
    stored = classify(base, batch).findings
    got = replay_findings(batch, base, after, stored)
    full = classify(after, batch).findings
    assert _rows(got.findings) == _rows(full)
    assert got.reclassified.mean() > 0.02 and (~got.reclassified).sum() >= 50  # both paths taken
    assert np.any(np.isfinite(batch.origin_lon[~got.reclassified]))
    res = replay(batch, after, stored, stored_under=base)
    assert (res.after, res.new) == (
        compare_findings(stored, full, len(batch)).after,
        compare_findings(stored, full, len(batch)).new,
    )


def test_classify_by_days_equals_one_call(base: Agreement) -> None:
    batch = _mixed_history(1500, seed=9)  # five days, about 300 incidents a day
    one = classify(base, batch).findings
    assert any(r == "cap" for r in one.rule_id.tolist())  # daily caps are exercised
    for rows in (400, 250, 10_000):  # blocks of one or more whole days; a day above the limit
        assert _rows(classify_by_days(base, batch, max_rows=rows)) == _rows(one)
