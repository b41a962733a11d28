"""The batched solver: estimator against the Cramér-Rao bound, robustness, error ellipses."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths
from truceline.core.acoustic.detections import gather, pad_groups
from truceline.core.simulate import acoustic as S  # noqa: N812 - short module aliases read like the maths

from .conftest import LINE_LAT, LINE_LON


def _true_xy(net: A.SensorNetwork, frame: np.ndarray, shots: S.SimShots) -> np.ndarray:
    xy = np.empty((len(shots), 2))
    for f in np.unique(frame):
        m = frame == f
        xy[m, 0], xy[m, 1] = net.frames[f].to_xy(shots.lon[m], shots.lat[m])
    return xy


def _given_association(net: A.SensorNetwork, shots: S.SimShots, det: S.SimDetections):  # type: ignore[no-untyped-def]
    groups = pad_groups(np.where(det.echo, -1, det.event), len(shots), det.arrival_s)
    return gather(net, groups, det.sensor, det.arrival_s)


def test_error_ellipse_axes_and_orientation() -> None:
    # 1-sigma 30 m along north-east, 10 m across
    th = np.radians(45.0)
    R = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    cov = R @ np.diag([30.0**2, 10.0**2]) @ R.T
    a, b, az = A.error_ellipse(cov[None], confidence=1 - np.exp(-0.5))
    assert a[0] == pytest.approx(30.0) and b[0] == pytest.approx(10.0)
    assert az[0] == pytest.approx(45.0)


def test_crb_matches_the_eliminated_t0_formula() -> None:
    """J_x = 1/(c² σ²) Σ (u_i - ū)(u_i - ū)^T when t0 is eliminated and σ is equal (technical brief)."""
    rng = np.random.default_rng(0)
    sensors = rng.uniform(-10_000, 10_000, (12, 2))
    src = np.array([[1500.0, -700.0]])
    c, sig = 340.0, 0.005
    crb = A.cramer_rao_bound(src, sensors[None], np.ones((1, 12), bool), np.full((1, 12), sig), c)
    u = (sensors - src) / np.linalg.norm(sensors - src, axis=1)[:, None]
    du = u - u.mean(axis=0)
    J = du.T @ du / (c * sig) ** 2
    np.testing.assert_allclose(crb[0], np.linalg.inv(J), rtol=1e-9)


def test_crb_ellipse_longer_across_the_line() -> None:
    """Two rows 2 and 8 km behind the line: the ellipse is 3-5x longer across the line than along it."""
    xs = np.arange(-50_000, 50_001, 5_000.0)
    sens = np.stack(
        [np.r_[xs, xs + 2500], np.r_[np.full(len(xs), -2000.0), np.full(len(xs), -8000.0)]], 1
    )
    for y in (0.0, 10_000.0, 20_000.0):
        crb = A.cramer_rao_bound(
            np.array([[0.0, y]]), sens[None], np.ones((1, len(sens)), bool),
            np.full((1, len(sens)), 0.005), 340.0,
        )  # fmt: skip
        a, b, az = A.error_ellipse(crb)
        assert 3.0 <= a[0] / b[0] <= 5.0
        assert abs(az[0] - 0.0) < 5 or abs(az[0] - 180.0) < 5  # major axis north-south


def test_estimator_reaches_the_crb(net: A.SensorNetwork, sim_net: S.SimNetwork) -> None:
    shots = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=3000, duration_s=3000 * 60.0, seed=11,
        chainage_km=(20, 60), depth_km=(1, 7), with_impacts=False,
    )  # fmt: skip
    det = S.simulate_detections(sim_net, shots, seed=12, p_miss=0.0, p_false=0.0, max_range_m=15e3)
    frame, sxy, t_rel, sig, dz, mask, _ = _given_association(net, shots, det)
    c = float(A.speed_of_sound_mps(15.0))
    res = A.solve_events(sxy, t_rel, mask, sig, np.full(len(shots), c), None, dz)
    xy = _true_xy(net, frame, shots)
    rmse = np.sqrt(np.mean(np.sum((res.xy_m - xy) ** 2, axis=1)))
    crb = A.cramer_rao_bound(xy, sxy, mask, sig, c, None, dz)
    bound = np.sqrt(np.mean(np.trace(crb, axis1=1, axis2=2)))
    assert res.ok.all()
    assert 0.9 <= rmse / bound <= 1.15, (rmse, bound)
    # the reported covariance is the Fisher information at the solution: close to the bound
    rep = np.sqrt(np.mean(np.trace(res.cov_m2, axis1=1, axis2=2)))
    assert rep == pytest.approx(bound, rel=0.15)


def test_soft_l1_resists_delayed_arrivals() -> None:
    """Two delayed arrivals (echoes) out of 18: the robust solution stays within metres."""
    rng = np.random.default_rng(5)
    n, k = 400, 18
    sensors = rng.uniform(-8000, 8000, (n, k, 2))
    src = rng.uniform(-3000, 3000, (n, 2))
    c = 340.0
    d = np.linalg.norm(sensors - src[:, None, :], axis=-1)
    t = d / c + rng.normal(0, 0.005, (n, k))
    t[:, :2] += rng.uniform(0.3, 1.5, (n, 2))
    args = (sensors, t, np.ones((n, k), bool), np.full((n, k), 0.005), np.full(n, c))
    robust = A.solve_events(*args)
    plain = A.solve_events(*args, options=A.SolverOptions(loss="linear", n_subsets=0))
    e_r = np.median(np.linalg.norm(robust.xy_m - src, axis=1))
    e_p = np.median(np.linalg.norm(plain.xy_m - src, axis=1))
    assert e_r < 5.0 and e_p > 4 * e_r
    # the delayed arrivals are flagged as outliers
    assert (~robust.inlier[:, :2]).mean() > 0.95


def test_wrong_temperature_and_wind_are_absorbed(net: A.SensorNetwork, sim_net: S.SimNetwork) -> None:
    shots = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=600, duration_s=600 * 60.0, seed=21,
        chainage_km=(20, 60), depth_km=(1, 7), with_impacts=False,
    )  # fmt: skip
    det = S.simulate_detections(
        sim_net, shots, seed=22, p_miss=0.0, p_false=0.0, temperature_c=5.0,
        wind_speed_mps=5.0, wind_from_deg=70.0,
    )  # fmt: skip
    frame, sxy, t_rel, sig, dz, mask, _ = _given_association(net, shots, det)
    xy = _true_xy(net, frame, shots)
    c_told = np.full(len(shots), float(A.speed_of_sound_mps(15.0)))
    fixed = A.solve_events(sxy, t_rel, mask, sig, c_told, None, dz)
    free = A.solve_events(
        sxy, t_rel, mask, sig, c_told, None, dz,
        options=A.SolverOptions(estimate_c=True, estimate_wind=True),
    )  # fmt: skip
    e_fixed = np.median(np.linalg.norm(fixed.xy_m - xy, axis=1))
    e_free = np.median(np.linalg.norm(free.xy_m - xy, axis=1))
    crb = A.cramer_rao_bound(
        xy, sxy, mask, sig, A.speed_of_sound_mps(5.0), A.wind_vector_mps(5.0, 70.0), dz
    )
    bound = np.median(np.sqrt(np.trace(crb, axis1=1, axis2=2)))
    assert e_fixed > 50.0  # a wrong temperature and an ignored wind move sources far
    assert e_free < 3.0 * bound
    assert np.median(free.c_mps) == pytest.approx(float(A.speed_of_sound_mps(5.0)), abs=1.0)


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(10))))
def test_solution_independent_of_sensor_order(perm: list[int]) -> None:
    rng = np.random.default_rng(3)
    sensors = rng.uniform(-6000, 6000, (1, 10, 2))
    src = np.array([[800.0, -1200.0]])
    t = np.linalg.norm(sensors - src[:, None], axis=-1) / 340.0 + rng.normal(0, 0.004, (1, 10))
    args = (np.ones((1, 10), bool), np.full((1, 10), 0.005), np.full(1, 340.0))
    a = A.solve_events(sensors, t, *args)
    p = np.array(perm)
    b = A.solve_events(sensors[:, p], t[:, p], *args)
    np.testing.assert_allclose(a.xy_m, b.xy_m, atol=1e-3)
