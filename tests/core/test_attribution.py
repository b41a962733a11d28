"""Attribution: P(side) against brute force at a corner, calibration, intervals, sectors, pairing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core import attribution as T  # noqa: N812 - short module aliases read like the maths
from truceline.core import rules
from truceline.core.agreement import Agreement, AgreementVersion, CompiledVersion, Party
from truceline.core.geodesy import GEOD, LocalFrame
from truceline.core.probability import normal_cdf

FRAME = LocalFrame.centred(37.5, 48.0)
# a 45 deg left turn at the origin of the frame: east for 20 km, then north-east for 20 km
CORNER_XY = np.array([[-20_000.0, 0.0], [0.0, 0.0], [14_142.1, 14_142.1]])
# the left side near the corner, for brute force in the plane (exact within metres of the frame centre)
LEFT_XY = shapely.Polygon([(-20_000, 0), (0, 0), (14_142.1, 14_142.1), (-20_000, 14_142.1)])


def _agreement(xy: np.ndarray) -> Agreement:
    lon, lat = FRAME.to_lonlat(xy[:, 0], xy[:, 1])
    return Agreement(
        id="t", name="test", parties=(Party(id="L", name="Left"), Party(id="R", name="Right")),
        left="L", right="R", line_extends="azimuth",
        versions=(AgreementVersion(effective_from=dt.date(2025, 1, 1),
                                   line=shapely.LineString(np.column_stack([lon, lat])),
                                   zones=(), rules=()),),
    )  # fmt: skip


@pytest.fixture(scope="module")
def corner() -> CompiledVersion:
    return _agreement(CORNER_XY).compiled(0)


@pytest.fixture(scope="module")
def corner_reversed() -> CompiledVersion:
    return _agreement(CORNER_XY[::-1].copy()).compiled(0)


def _lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return FRAME.to_lonlat(np.atleast_1d(x), np.atleast_1d(y))


def _brute(x: float, y: float, cov: np.ndarray, m: int = 200_000) -> float:
    rng = np.random.default_rng(99)
    pts = rng.multivariate_normal([x, y], cov, m)
    return float(np.mean(shapely.contains_xy(LEFT_XY, pts[:, 0], pts[:, 1])))


def test_attribution_constants_match_the_rule_engine() -> None:
    assert T.ATTRIBUTION_BAND == rules.ATTRIBUTION_BAND
    assert rules.UNDETERMINED == T.UNDETERMINED


def test_shortcut_on_a_straight_stretch(corner: CompiledVersion) -> None:
    """Phi(s / sqrt(n^T Sigma n)) with n the line's normal, for a tilted ellipse."""
    th = np.radians(30.0)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cov = R @ np.diag([400.0**2, 100.0**2]) @ R.T
    lon, lat = _lonlat(np.array([-10_000.0]), np.array([150.0]))
    sp = T.side_probability(corner, lon, lat, cov[None])
    assert not sp.monte_carlo[0]
    # the line runs east here: n is north, n^T Sigma n = cov[1, 1] (up to the 0.1 deg by which the
    # frame's north differs from the true north 10 km west of its centre)
    assert sp.sigma_across_m[0] == pytest.approx(np.sqrt(cov[1, 1]), rel=5e-3)
    assert sp.p_left[0] == pytest.approx(float(normal_cdf(150.0 / np.sqrt(cov[1, 1]))), abs=2e-3)
    assert sp.p_left[0] == pytest.approx(_brute(-10_000.0, 150.0, cov), abs=5e-3)
    assert sp.p_left_low[0] == sp.p_left_high[0] == sp.p_left[0]  # known covariance, no sampling


@pytest.mark.parametrize(("x", "y"), [(300.0, -400.0), (-200.0, 250.0), (0.0, -300.0)])
def test_monte_carlo_at_a_45_degree_corner(corner: CompiledVersion, x: float, y: float) -> None:
    cov = np.diag([900.0**2, 700.0**2])
    lon, lat = _lonlat(np.array([x]), np.array([y]))
    sp = T.side_probability(corner, lon, lat, cov[None], n_samples=20_000)
    truth = _brute(x, y, cov)
    shortcut = float(normal_cdf(sp.signed_distance_m[0] / sp.sigma_across_m[0]))
    assert sp.monte_carlo[0]
    assert sp.p_left[0] == pytest.approx(truth, abs=0.012)
    assert abs(shortcut - truth) > 0.07  # the shortcut would be wrong here (0.33 for 0.23 at 0, -300)
    assert sp.p_left_low[0] <= sp.p_left[0] <= sp.p_left_high[0]


def test_beyond_the_end_uses_monte_carlo(corner: CompiledVersion) -> None:
    lon, lat = _lonlat(np.array([-20_300.0, -20_300.0]), np.array([200.0, -2_000.0]))
    sp = T.side_probability(corner, lon, lat, np.tile(np.eye(2) * 500.0**2, (2, 1, 1)))
    assert sp.monte_carlo.all()
    assert 0.5 < sp.p_left[0] < 0.8  # 200 m to the left of the extended line, 500 m uncertain
    assert sp.p_left[1] < 1e-3


@settings(max_examples=20, deadline=None)
@given(
    st.floats(-3_000, 3_000), st.floats(-3_000, 3_000), st.floats(50, 2_000), st.floats(0.2, 1.0),
    st.floats(0, 180),
)  # fmt: skip
def test_reversing_the_line_swaps_the_sides(
    corner: CompiledVersion, corner_reversed: CompiledVersion, x: float, y: float, sd: float,
    ratio: float, az: float,
) -> None:  # fmt: skip
    th = np.radians(az)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cov = (R @ np.diag([sd**2, (sd * ratio) ** 2]) @ R.T)[None]
    lon, lat = _lonlat(np.array([x]), np.array([y]))
    a = T.side_probability(corner, lon, lat, cov, n_samples=8000)
    b = T.side_probability(corner_reversed, lon, lat, cov, n_samples=8000)
    tol = 0.025 if (a.monte_carlo[0] or b.monte_carlo[0]) else 1e-6
    assert a.p_left[0] + b.p_left[0] == pytest.approx(1.0, abs=tol)


def test_calibrated_near_a_corner(corner: CompiledVersion) -> None:
    """Among points stated at probability p, the fraction on the left is p (to within sampling)."""
    rng = np.random.default_rng(7)
    n = 3000
    true = np.column_stack([rng.uniform(-8_000, 6_000, n), rng.uniform(-2_500, 2_500, n)])
    sd = rng.uniform(100.0, 1_200.0, n)
    ratio = rng.uniform(0.3, 1.0, n)
    th = rng.uniform(0, np.pi, n)
    c, s = np.cos(th), np.sin(th)
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    cov = (
        R
        @ (np.eye(2)[None] * np.stack([sd**2, (sd * ratio) ** 2], -1)[:, None, :])
        @ R.transpose(0, 2, 1)
    )
    obs = true + np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal((n, 2)))
    lon, lat = _lonlat(obs[:, 0], obs[:, 1])
    sp = T.side_probability(corner, lon, lat, cov, n_samples=1500)
    left = shapely.contains_xy(LEFT_XY, true[:, 0], true[:, 1])
    p = sp.p_left
    edges = np.array([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    k = np.clip(np.digitize(p, edges) - 1, 0, len(edges) - 2)
    checked = 0
    for b in range(len(edges) - 1):  # bins of the reliability table
        m = k == b
        if m.sum() < 60:
            continue
        checked += 1
        se = np.sqrt(np.mean(p[m]) * (1 - np.mean(p[m])) / m.sum())
        assert abs(left[m].mean() - p[m].mean()) < max(0.05, 3 * se), (b, m.sum())
    assert checked >= 4
    assert sp.monte_carlo.any() and not sp.monte_carlo.all()


def test_interval_from_the_covariance_scale(corner: CompiledVersion) -> None:
    lon, lat = _lonlat(np.full(3, -10_000.0), np.full(3, 300.0))
    cov = np.tile(np.eye(2) * 300.0**2, (3, 1, 1))
    sp = T.side_probability(corner, lon, lat, cov, scale_dof=[3.0, 30.0, np.inf])
    width = sp.p_left_high - sp.p_left_low
    assert width[0] > width[1] > width[2] == 0.0
    assert np.all(sp.p_left_low <= sp.p_left) and np.all(sp.p_left <= sp.p_left_high)


def test_responsible_band_and_terms() -> None:
    p = np.array([0.99, 0.85, 0.6, 0.5, 0.15, 0.01, np.nan])
    a = T.Attribution(p, p, p, np.full(7, "muzzle_blast"), np.full(7, -1), "L", "R")
    assert a.responsible.tolist() == ["L", "L", T.UNDETERMINED, T.UNDETERMINED, "R", "R", ""]
    assert a.likelihood.tolist() == [
        "almost certain", "very likely", "likely", "roughly even chance", "very likely",
        "almost certain", "",
    ]  # fmt: skip
    np.testing.assert_allclose(a.p_party("R")[:6], 1 - p[:6])
    with pytest.raises(KeyError):
        a.p_party("X")


def test_bearing_sector(corner: CompiledVersion) -> None:
    # impacts 2 km south of the line (its right), bearings due north (across) and due south (away)
    lon, lat = _lonlat(np.full(3, -10_000.0), np.full(3, -2_000.0))
    sp = T.bearing_sector_probability(
        corner, lon, lat, [0.0, 180.0, 0.0], [4.0, 4.0, 0.5], [15.0, 15.0, 3.0]
    )
    assert sp.p_left[0] == 1.0 and sp.p_left[1] == 0.0
    # 0.5-3 km due north of an impact 2 km from the line: the line crosses the sector
    assert 0.2 < sp.p_left[2] < 0.8
    assert sp.monte_carlo.all()


def _fwd(lon: float, lat: float, az: float, d: float) -> tuple[float, float]:
    lo, la, _ = GEOD.fwd(lon, lat, az, d)
    return float(lo), float(la)


def test_pairing_by_range_and_flight_time() -> None:
    imp = (37.5, 48.0)
    b1 = _fwd(*imp, 10.0, 8_000.0)  # 8 km away; fired 25 s before: 320 m/s
    b2 = _fwd(*imp, 190.0, 9_000.0)  # 9 km away but 2 s before: 4,500 m/s, too fast
    b3 = _fwd(*imp, 100.0, 60_000.0)  # beyond the range
    lon = np.array([b1[0], b2[0], b3[0], imp[0]])
    lat = np.array([b1[1], b2[1], b3[1], imp[1]])
    t = np.array([100.0, 123.0, 0.0, 125.0])
    pairs = T.pair_impacts(lon, lat, t, [1, 1, 1, 2])
    assert pairs.best.tolist() == [-1, -1, -1, 0]
    assert pairs.blast.tolist() == [0]
    assert pairs.weight[0] + pairs.weight_none[3] == pytest.approx(1.0)
    assert pairs.weight[0] > 0.9


def test_ambiguous_pairing_mixes_the_sides(corner: CompiledVersion) -> None:
    # an impact on the line's right, two blasts 8 km either side of it, both consistent
    ilon, ilat = _lonlat(np.array([-10_000.0]), np.array([-1_000.0]))
    blon, blat = _lonlat(np.array([-10_000.0, -10_000.0]), np.array([7_000.0, -9_000.0]))
    lon = np.r_[blon, ilon]
    lat = np.r_[blat, ilat]
    cov = np.tile(np.eye(2) * 25.0, (3, 1, 1))
    attr, _, pairs = T.attribute(corner, lon, lat, cov, [0.0, 0.0, 25.0], [1, 1, 2])
    assert attr.method.tolist() == ["muzzle_blast", "muzzle_blast", "paired_impact"]
    assert attr.p_left[0] == 1.0 and attr.p_left[1] == 0.0
    assert len(pairs.blast) == 2
    assert 0.3 < attr.p_left[2] < 0.7 and attr.responsible[2] == T.UNDETERMINED
    # one blast only: the impact inherits its side
    attr1, _, _ = T.attribute(corner, lon[[0, 2]], lat[[0, 2]], cov[:2], [0.0, 25.0], [1, 2])
    assert attr1.p_left[1] > 0.85 and attr1.responsible[1] == "L"


def test_equivalent_sigma_reproduces_the_probability(corner: CompiledVersion) -> None:
    """A probability travels as a circular uncertainty: side_probability gives it back."""
    x = np.array([-10_000.0, -10_000.0, 0.0, 600.0, -10_000.0, -10_000.0, 500.0])
    y = np.array([3_000.0, -500.0, -1_500.0, 800.0, 2_000.0, 2_000.0, -600.0])
    p = np.array([0.9, 0.3, 0.35, 0.7, 1.0, np.nan, 0.45])
    lon, lat = _lonlat(x, y)
    sig = T.equivalent_sigma_m(corner, lon, lat, p)
    assert sig[4] == 0.0 and np.isnan(sig[5])
    cov = np.einsum("n,ij->nij", np.nan_to_num(sig) ** 2, np.eye(2))
    back = T.side_probability(corner, lon, lat, cov)
    assert not back.monte_carlo[0] and back.monte_carlo[2]
    np.testing.assert_allclose(back.p_left[:4], p[:4], atol=0.001)
    # right of a left turn: no circle reaches P(left) = 0.45 (the far field is 3/8 left); the
    # widest one gives the nearest probability
    assert sig[6] == pytest.approx(100_000.0, rel=1e-3) and 0.3 < back.p_left[6] < 0.45
