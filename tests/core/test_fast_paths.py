"""The fast paths of the rule engine against their reference implementations.

The bearing-sector attribution decides each draw's side with the side polygons and takes the
median distance from an evenly spread subset of the draws; the reference computes every draw's
nearest point on the line. The two side tests differ only for draws within centimetres of the line
(measured: 4 events of 3,000 had one such draw, 6-18 cm from it), so a probability moves by at
most one draw (1/256) and rarely; the median distance moves by at most ``MEDIAN_TOL`` of the
sector's depth (measured: 3.5 % at most, 0.5 % typically).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import truceline.core.attribution as A  # noqa: N812
import truceline.core.rules as R  # noqa: N812
from truceline.core.agreement import Agreement, CompiledVersion, RuleType
from truceline.core.geodesy import LineIndex
from truceline.core.incidents import IncidentBatch
from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import load_agreement

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ukraine-2024"
#: Largest difference allowed between the subset median and the full median of a sector's signed
#: distances, as a share of the sector's depth (max - min range): the stated error of the subset.
MEDIAN_TOL = 0.05


def _reference_sector(
    cv: CompiledVersion,
    lon: A.FloatArray,
    lat: A.FloatArray,
    bearing_deg: A.FloatArray,
    min_range_km: A.FloatArray,
    max_range_km: A.FloatArray,
    *,
    n_samples: int = 512,
    seed: int = 12345,
) -> A.SideProbability:
    """The sector probability as first written: every draw located on the line."""
    n = len(lon)
    r_lo = np.asarray(min_range_km, np.float64) * 1000.0
    r_hi = np.asarray(max_range_km, np.float64) * 1000.0
    out = A.SideProbability.empty(n)
    u = A._sobol(n_samples, 4, seed)
    m = len(u)
    az = np.asarray(bearing_deg)[:, None] + A.COMPASS_16_HALF_WIDTH_DEG * (2.0 * u[None, :, 0] - 1.0)
    dist = r_lo[:, None] + (r_hi - r_lo)[:, None] * u[None, :, 1]
    olon, olat, _ = A.GEOD.fwd(np.repeat(lon, m), np.repeat(lat, m), az.ravel(), dist.ravel())
    s, _ = A._signed(cv, np.asarray(olon), np.asarray(olat))
    s = s.reshape(n, m)
    inside = np.isfinite(s)
    kk = np.sum(inside & (s > 0), axis=1).astype(np.float64)
    tot = inside.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.p_left[:] = np.where(tot > 0, kk / tot, np.nan)
    srt = np.sort(np.where(inside, s, np.inf), axis=1)
    mid = srt[np.arange(n), np.maximum((tot.astype(np.intp) - 1) // 2, 0)]
    out.signed_distance_m[:] = np.where(tot > 0, mid, np.nan)
    return out


@pytest.fixture(scope="module")
def ukraine() -> Agreement:
    return load_agreement(EXAMPLE)


@pytest.fixture(scope="module")
def sectors(ukraine: Agreement) -> tuple[CompiledVersion, dict[str, A.FloatArray]]:
    """A few thousand crater bearings: impacts within 30 km of the line, any bearing, common ranges."""
    cv = ukraine.compiled(len(ukraine.versions) - 1)
    rng = np.random.default_rng(11)
    k = rng.integers(0, cv.line.lon.size, 3000)
    off = rng.uniform(-30_000.0, 30_000.0, k.size)
    lon, lat, _ = A.GEOD.fwd(cv.line.lon[k], cv.line.lat[k], rng.uniform(0, 360, k.size), np.abs(off))
    ranges = np.array([(1.0, 20.0), (2.0, 15.0), (0.5, 3.0), (4.0, 40.0)])[rng.integers(0, 4, k.size)]
    return cv, {
        "lon": np.asarray(lon),
        "lat": np.asarray(lat),
        "bearing_deg": rng.uniform(0.0, 360.0, k.size),
        "min_range_km": ranges[:, 0],
        "max_range_km": ranges[:, 1],
    }


def test_sector_fast_path_matches_reference(
    sectors: tuple[CompiledVersion, dict[str, A.FloatArray]],
) -> None:
    cv, a = sectors
    fast = A.bearing_sector_probability(cv, **a, n_samples=256)
    ref = _reference_sector(cv, **a, n_samples=256)
    both = np.isfinite(ref.p_left)
    assert both.sum() > 2500
    np.testing.assert_array_equal(np.isfinite(fast.p_left), both)
    d = np.abs(fast.p_left[both] - ref.p_left[both])
    assert float(d.max()) <= 1.0 / 256 + 1e-12  # one draw at most
    assert float(np.mean(d > 0)) < 0.005
    depth = (a["max_range_km"] - a["min_range_km"])[both] * 1000.0
    err = np.abs(fast.signed_distance_m[both] - ref.signed_distance_m[both]) / depth
    assert float(err.max()) <= MEDIAN_TOL, float(err.max())


def test_rule_engine_findings_unchanged_on_simulated_reports(
    ukraine: Agreement, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole findings on simulated reports: the same findings, probabilities and parties; the
    explanations differ at most in the origin's distance (the subset median)."""
    start = max(ukraine.effective_from + dt.timedelta(days=45), ukraine.versions[-1].effective_from)
    sim = simulate(ukraine, SimulationConfig(days=2, seed=5, start=start, events_per_day=2000))
    batch = IncidentBatch.from_incidents(sim.reports)
    fast = R.classify(ukraine, batch).findings

    def reference(cv: CompiledVersion, lon, lat, brg, lo, hi, *, n_samples, seed):  # type: ignore[no-untyped-def]
        return _reference_sector(cv, lon, lat, brg, lo, hi, n_samples=n_samples, seed=seed)

    monkeypatch.setattr(R, "bearing_sector_probability", reference)
    ref = R.classify(ukraine, batch).findings
    assert len(ref) > 1000
    np.testing.assert_array_equal(fast.incident, ref.incident)
    np.testing.assert_array_equal(fast.rule_id, ref.rule_id)
    assert float(np.mean(fast.responsible == ref.responsible)) > 0.995
    dp = np.abs(fast.probability - ref.probability)
    assert float(dp.max()) <= 1.0 / 256 + 1e-4 and float(np.mean(dp > 0)) < 0.005
    same = np.array(
        [a == b for a, b in zip(fast.explanation.tolist(), ref.explanation.tolist(), strict=True)]
    )
    bearing = np.array(["(bearing " in e for e in ref.explanation.tolist()])
    assert bearing.sum() > 50
    assert same[~bearing].all()

    # the rest differ only in the origin's distance (within the subset's error of the sector's
    # depth, at most 40 km here) and, rarely, in P by one draw
    def parts(e: str) -> tuple[str, float, float, str]:
        head, rest = e.split("(bearing ")
        dist, rest = rest.split(" km from the line, P=")
        p, tail = rest.split("), impact")
        return head, float(dist), float(p), tail

    for a, b in zip(fast.explanation[bearing].tolist(), ref.explanation[bearing].tolist(), strict=True):
        ha, da, pa, ta = parts(a)
        hb, db, pb, tb = parts(b)
        assert (ha, ta) == (hb, tb)
        assert abs(da - db) <= MEDIAN_TOL * 40.0 + 0.1, (a, b)
        assert abs(pa - pb) <= 0.01 + 1e-9, (a, b)


# -- small batches: the fixed-cost shortcuts against the vectorised paths --------------------------


@pytest.fixture(scope="module")
def reports(ukraine: Agreement) -> IncidentBatch:
    """Two simulated days (the simulator's realistic mix), about 2,000 reports."""
    start = max(ukraine.effective_from + dt.timedelta(days=45), ukraine.versions[-1].effective_from)
    sim = simulate(ukraine, SimulationConfig(days=2, seed=23, start=start, events_per_day=600))
    return IncidentBatch.from_incidents(sim.reports)


_FACTS = ("side", "party_side", "distance_km", "p_side", "zones", "sector", "version")
_FINDING_COLS = ("rule_id", "rule_type", "responsible", "probability", "explanation")


def _per_incident(cls: R.Classification, offset: int = 0) -> dict[int, tuple[Any, ...]]:
    """Each incident's facts and findings (as Python values: floats compare bitwise-equal)."""
    f = cls.findings
    found: dict[int, list[tuple[object, ...]]] = {}
    cols = [getattr(f, c).tolist() for c in _FINDING_COLS]
    for j, i in enumerate(f.incident.tolist()):
        found.setdefault(i + offset, []).append(tuple(c[j] for c in cols))
    facts = [getattr(cls, k).tolist() for k in _FACTS]
    return {
        i + offset: (*(c[i] for c in facts), tuple(found.get(i + offset, [])))
        for i in range(cls.side.size)
    }


def _one_by_one(ag: Agreement, batch: IncidentBatch, size: int) -> dict[int, tuple[Any, ...]]:
    out: dict[int, tuple[Any, ...]] = {}
    for lo in range(0, len(batch), size):
        rows = np.arange(lo, min(lo + size, len(batch)))
        out |= _per_incident(R.classify(ag, batch.take(rows)), lo)
    return out


def test_nearest_for_a_few_points_matches_the_batch(ukraine: Agreement) -> None:
    """LineIndex.nearest measures every candidate at once for up to _FEW points: the same answer,
    bitwise, as the rank-by-rank search of a large batch (near the line, far from it, beyond its
    grid, and on the zone outlines' indexes)."""
    cv = ukraine.compiled(len(ukraine.versions) - 1)
    rng = np.random.default_rng(3)
    k = rng.integers(0, cv.line.lon.size, 3000)
    d = np.concatenate([rng.uniform(0.0, 30_000.0, 2400), rng.uniform(0.0, 600_000.0, 600)])
    lon, lat, _ = A.GEOD.fwd(cv.line.lon[k], cv.line.lat[k], rng.uniform(0, 360, k.size), d)
    lon, lat = np.asarray(lon), np.asarray(lat)
    polygons = [z for z in cv.zones.values() if z.type == "polygon"]
    assert polygons
    for index in [cv.line, *(R._boundary_index(cv, z) for z in polygons)]:
        whole = index.nearest(lon, lat)
        for size in (1, 5, index._FEW):
            assert size <= index._FEW
            parts = [index.nearest(lon[i : i + size], lat[i : i + size]) for i in range(0, 1500, size)]
            for name in whole.__dataclass_fields__:
                got = np.concatenate([getattr(p, name) for p in parts])
                want = getattr(whole, name)[: got.size]
                assert got.dtype == want.dtype, name
                np.testing.assert_array_equal(got, want, err_msg=f"{name}, groups of {size}")


def test_single_reports_match_the_vectorised_paths(
    ukraine: Agreement, reports: IncidentBatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each report classified alone (as the server adjudicates a submission) gives, bitwise, what
    the vectorised paths give: with the small-batch shortcuts switched off (every field, every
    finding), and in one batch of all the reports (every field, every finding but the count caps,
    which count over the batch by design)."""
    singles = _one_by_one(ukraine, reports, 1)
    in_sevens = _one_by_one(ukraine, reports, 7)
    with monkeypatch.context() as m:
        m.setattr(R, "_FEW", 0)
        m.setattr(LineIndex, "_FEW", 0)
        plain = _one_by_one(ukraine, reports, 1)
        plain_sevens = _one_by_one(ukraine, reports, 7)
    assert singles == plain
    assert in_sevens == plain_sevens
    whole = _per_incident(R.classify(ukraine, reports))

    def no_caps(rows: dict[int, tuple[Any, ...]]) -> dict[int, tuple[Any, ...]]:
        cap = RuleType.count_cap.value
        return {i: (*v[:-1], tuple(f for f in v[-1] if f[1] != cap)) for i, v in rows.items()}

    assert no_caps(singles) == no_caps(whole)
    assert no_caps(in_sevens) == no_caps(whole)
    # the reports exercise the rules: findings of every kind but the caps, fire with origins and bearings
    kinds = {f[1] for v in singles.values() for f in v[-1]}
    assert {"zone_ban", "withdrawal", "fire_across", "drone_flight"} <= kinds, kinds
    assert np.isfinite(reports.origin_lon).sum() > 50 and np.isfinite(reports.bearing_deg).sum() > 50


# -- proven sectors: P without drawing, bitwise ----------------------------------------------------


def _all_draws_sector(
    cv: CompiledVersion, a: dict[str, A.FloatArray], *, n_samples: int = 512, seed: int = 12345
) -> A.SideProbability:
    """The sector probability drawing every launch point (as before sectors could be proven):
    each draw's side from the side polygons, the median from the first 64 draws."""
    n = len(a["lon"])
    r_lo = a["min_range_km"] * 1000.0
    r_hi = a["max_range_km"] * 1000.0
    u = A._sobol(n_samples, 4, seed)
    m = len(u)
    az = a["bearing_deg"][:, None] + A.COMPASS_16_HALF_WIDTH_DEG * (2.0 * u[None, :, 0] - 1.0)
    dist = r_lo[:, None] + (r_hi - r_lo)[:, None] * u[None, :, 1]
    olon, olat, _ = A.GEOD.fwd(np.repeat(a["lon"], m), np.repeat(a["lat"], m), az.ravel(), dist.ravel())
    olon, olat = np.asarray(olon).reshape(n, m), np.asarray(olat).reshape(n, m)
    side = cv.side_of(olon.ravel(), olat.ravel()).reshape(n, m)
    kk = np.sum(side > 0, axis=1).astype(np.float64)
    tot = np.sum(side != 0, axis=1).astype(np.float64)
    out = A.SideProbability.empty(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out.p_left[:] = np.where(tot > 0, kk / tot, np.nan)
    lo, hi = A._wilson(kk, tot, 0.9)
    out.p_left_low[:] = np.where(tot > 0, lo, np.nan)
    out.p_left_high[:] = np.where(tot > 0, hi, np.nan)
    out.signed_distance_m[:] = A._median_signed(
        cv, lambda rows, w: (olon[rows, :w], olat[rows, :w]), n, 64, m
    )
    out.monte_carlo[:] = True
    return out


def test_proven_sectors_match_all_draws_bitwise(
    sectors: tuple[CompiledVersion, dict[str, A.FloatArray]],
) -> None:
    """Sectors whose box lies in cells wholly on one side skip their draws: every value the same,
    bitwise, as drawing them all; and the shortcut is taken often (a box that only rarely proves
    anything would leave this test unable to fail)."""
    cv, a = sectors
    cv.prepare(within_m=200_000.0)
    box = A._sector_box(a["lon"], a["lat"], a["bearing_deg"], a["min_range_km"] * 1e3,
                        a["max_range_km"] * 1e3, A.COMPASS_16_HALF_WIDTH_DEG)  # fmt: skip
    proven = cv.side_of_boxes(*box)
    assert 0.2 < float(np.mean(proven != 0)) < 0.95
    fast = A.bearing_sector_probability(cv, **a)
    ref = _all_draws_sector(cv, a)
    for name in ("p_left", "p_left_low", "p_left_high", "signed_distance_m", "monte_carlo"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
    np.testing.assert_array_equal(ref.p_left[proven > 0], 1.0)
    np.testing.assert_array_equal(ref.p_left[proven < 0], 0.0)


def test_sector_box_holds_every_draw(sectors: tuple[CompiledVersion, dict[str, A.FloatArray]]) -> None:
    """The sector's box holds all its launch points (the fast path's premise), with room to spare."""
    _, a = sectors
    lo0, la0, lo1, la1 = A._sector_box(a["lon"], a["lat"], a["bearing_deg"], a["min_range_km"] * 1e3,
                                       a["max_range_km"] * 1e3, A.COMPASS_16_HALF_WIDTH_DEG)  # fmt: skip
    u = A._sobol(4096, 4, 7)
    m = len(u)
    az = a["bearing_deg"][:, None] + A.COMPASS_16_HALF_WIDTH_DEG * (2.0 * u[None, :, 0] - 1.0)
    r = a["min_range_km"][:, None] + (a["max_range_km"] - a["min_range_km"])[:, None] * u[None, :, 1]
    n = len(a["lon"])
    lon0, lat0 = np.repeat(a["lon"], m), np.repeat(a["lat"], m)
    olon, olat, _ = A.GEOD.fwd(lon0, lat0, az.ravel(), r.ravel() * 1e3)
    olon, olat = np.asarray(olon).reshape(n, m), np.asarray(olat).reshape(n, m)
    assert np.all(np.isfinite(lo0))
    assert np.all(olon.min(axis=1) > lo0) and np.all(olon.max(axis=1) < lo1)
    assert np.all(olat.min(axis=1) > la0) and np.all(olat.max(axis=1) < la1)


def test_uniform_boxes_agree_with_lookup(ukraine: Agreement) -> None:
    """Every point of a box the side lookup calls uniform gets that polygon from :meth:`lookup`;
    boxes leaving the grid, unclassified cells and the line's cells prove nothing."""
    cv = ukraine.compiled(len(ukraine.versions) - 1)
    cv.prepare(within_m=200_000.0)
    look = cv._side_lookup
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.uniform(look.x0, look.x0 + look.nx * look.cell, n)
    y = rng.uniform(look.y0, look.y0 + look.ny * look.cell, n)
    w, h = rng.uniform(0.0, 0.2, n), rng.uniform(0.0, 0.2, n)
    k = look.uniform(x, y, x + w, y + h)
    assert (k == 0).sum() > 100 and (k == 1).sum() > 100 and (k == -1).sum() > 100
    t = rng.uniform(0.0, 1.0, (n, 64))
    px, py = x[:, None] + w[:, None] * t, y[:, None] + h[:, None] * t[:, ::-1]
    px[:, 0], py[:, 0], px[:, 1], py[:, 1] = x, y, x + w, y + h  # the corners themselves
    got = look.lookup(px.ravel(), py.ravel()).reshape(n, 64)
    ok = k >= 0
    np.testing.assert_array_equal(got[ok], np.repeat(k[ok, None], 64, axis=1))
    assert np.all(look.uniform([look.x0 - 1.0], [look.y0], [look.x0 + 0.01], [look.y0 + 0.01]) == -1)
    fresh = type(look)(look.polygons, look.cell)  # nothing classified yet
    assert np.all(fresh.uniform(x, y, x + w, y + h) == -1)


def test_proven_origins_match_all_draws_bitwise(
    ukraine: Agreement, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Origins sent to Monte Carlo (near the line's ends, bends) whose draws' box lies in cells
    wholly on one side skip their side tests: the same values, bitwise, as testing every draw."""
    cv = ukraine.compiled(len(ukraine.versions) - 1)
    cv.prepare(within_m=200_000.0)
    rng = np.random.default_rng(17)
    n = 1500
    ends = np.flatnonzero(cv.line.is_part_start | cv.line.is_part_end)
    k = np.concatenate([rng.choice(ends, n // 2), rng.integers(0, cv.line.lon.size, n - n // 2)])
    lon, lat, _ = A.GEOD.fwd(cv.line.lon[k], cv.line.lat[k], rng.uniform(0, 360, n),
                             rng.uniform(0.0, 40_000.0, n))  # fmt: skip
    sig = rng.uniform(100.0, 4000.0, n)
    cov = np.einsum("n,ij->nij", sig**2, np.eye(2))
    fast = A.side_probability(cv, lon, lat, cov)
    with monkeypatch.context() as m:
        m.setattr(type(cv), "side_of_boxes", lambda self, *a: np.zeros(np.size(a[0]), np.int8))
        ref = A.side_probability(cv, lon, lat, cov)
    mc = ref.monte_carlo
    assert mc.sum() > 200 and ((ref.p_left[mc] == 0.0) | (ref.p_left[mc] == 1.0)).sum() > 30
    for name in ("p_left", "p_left_low", "p_left_high", "signed_distance_m", "monte_carlo"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)
