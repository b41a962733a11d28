"""Acoustic localisation: estimator against the Cramér-Rao bound, robustness, association."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths
from truceline.core import acoustic_sim as S  # noqa: N812 - short module aliases read like the maths

LINE_LON = np.array([37.0, 37.5, 38.0])
LINE_LAT = np.array([47.8, 48.0, 48.1])


@pytest.fixture(scope="module")
def sim_net() -> S.SimNetwork:
    return S.line_network(LINE_LON, LINE_LAT, spacing_km=5, chainage_km=(0, 80))


@pytest.fixture(scope="module")
def net(sim_net: S.SimNetwork) -> A.SensorNetwork:
    return A.SensorNetwork.build(
        sim_net.sensor_id, sim_net.lon, sim_net.lat,
        elevation_m=sim_net.elevation_m, timing_sigma_ms=sim_net.timing_sigma_ms,
    )  # fmt: skip


def _true_xy(net: A.SensorNetwork, frame: np.ndarray, shots: S.SimShots) -> np.ndarray:
    xy = np.empty((len(shots), 2))
    for f in np.unique(frame):
        m = frame == f
        xy[m, 0], xy[m, 1] = net.frames[f].to_xy(shots.lon[m], shots.lat[m])
    return xy


def _given_association(net: A.SensorNetwork, shots: S.SimShots, det: S.SimDetections):  # type: ignore[no-untyped-def]
    groups = A._pad_groups(np.where(det.echo, -1, det.event), len(shots), det.arrival_s)
    return A._gather(net, groups, det.sensor, det.arrival_s)


def test_speed_of_sound_and_wind() -> None:
    assert A.speed_of_sound_mps(0.0) == pytest.approx(331.3)
    assert A.speed_of_sound_mps(20.0) == pytest.approx(343.42)
    # wind from the west blows towards the east
    np.testing.assert_allclose(A.wind_vector_mps(5.0, 270.0), [5.0, 0.0], atol=1e-12)


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


def _recovered(res: A.LocationResult, det: S.SimDetections, min_sensors: int = 5) -> tuple[int, int]:
    truth: dict[int, set[int]] = {}
    for i, e in enumerate(det.event.tolist()):
        if e >= 0 and not det.echo[i]:
            truth.setdefault(e, set()).add(i)
    eligible = {e for e, s in truth.items() if len(s) >= min_sensors}
    ok = 0
    for d in res.events.detections:
        e = Counter(det.event[d].tolist()).most_common(1)[0][0]
        if e in eligible and set(d.tolist()) == truth[e]:
            ok += 1
    return ok, len(eligible)


def test_association_with_dense_overlapping_events(net: A.SensorNetwork, sim_net: S.SimNetwork) -> None:
    """50 events a minute in one sector, a fifth with an adversarial partner (its mirror image
    across the line within 0.3 s), 5 % false and 10 % missed detections, 2 % echoes."""
    base = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=84, duration_s=240.0, seed=31, chainage_km=(15, 65)
    )  # 168 events (muzzle blasts and impacts) in 4 minutes
    shots = S.adversarial_partners(LINE_LON, LINE_LAT, base, fraction=0.2, seed=33)
    det = S.simulate_detections(sim_net, shots, seed=32, p_echo=0.02)
    res = A.locate_detections(
        net, det.sensor, det.arrival_s, weather=A.Weather.constant(15.0),
        det_signal=det.signal, det_amplitude_db=det.amplitude_db,
    )  # fmt: skip
    exact, right, n = S.score_association(res.events.detections, det)
    assert len(shots) > 190 and n > 190
    assert right / n >= 0.97 and exact / n >= 0.88, (exact, right, n)
    # every detection is either in exactly one event or explained
    in_events = np.concatenate(res.events.detections)
    assert len(np.unique(in_events)) == len(in_events)
    assert len(in_events) + len(res.unassigned.detection) == len(det)
    assert set(res.unassigned.reason) <= {"echo", "outlier", "too_few_sensors", "no_event"}
    # false detections end in no event
    false = np.flatnonzero(det.event < 0)
    assert np.mean(res.event_of_detection[false] < 0) > 0.97


def test_simultaneous_events_are_separated(net: A.SensorNetwork, sim_net: S.SimNetwork) -> None:
    """Adversarial overlap: pairs of blasts at the same instant, mirrored across the line."""
    lon, lat = S.line_points(LINE_LON, LINE_LAT, np.array([30e3, 30e3, 45e3, 45e3]),
                             np.array([4e3, -4e3, 3e3, -3e3]))  # fmt: skip
    t = S.EPOCH_2025_03_01_S + np.array([0.0, 0.0, 0.4, 0.4])
    shots = S.SimShots(
        lon, lat, t, np.ones(4, np.intp), np.array([1, -1, 1, -1]), np.arange(4),
        np.array([4.0, 4.0, 3.0, 3.0]), np.full(4, 10.0),
    )  # fmt: skip
    det = S.simulate_detections(sim_net, shots, seed=41, p_miss=0.0, p_false=0.0)
    res = A.locate_detections(net, det.sensor, det.arrival_s)
    ok, n = _recovered(res, det)
    assert (ok, n) == (4, 4)


def test_unassigned_detections_have_reasons(net: A.SensorNetwork, sim_net: S.SimNetwork) -> None:
    shots = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=20, duration_s=600.0, seed=51, chainage_km=(20, 60),
        with_impacts=False,
    )  # fmt: skip
    det = S.simulate_detections(sim_net, shots, seed=52, p_miss=0.0, p_false=0.05, p_echo=0.05)
    res = A.locate_detections(net, det.sensor, det.arrival_s)
    reason = dict(zip(res.unassigned.detection.tolist(), res.unassigned.reason.tolist(), strict=True))
    echoes = np.flatnonzero(det.echo)
    assert np.mean([reason.get(i) == "echo" for i in echoes]) > 0.9
    false = np.flatnonzero(det.event < 0)
    assert np.mean([reason.get(i) in ("no_event", "echo") for i in false]) > 0.95
    assert all(m for m in res.unassigned.message)
    assert len(res.events) == 20


def test_detections_that_make_no_event_are_all_explained(net: A.SensorNetwork) -> None:
    """Scattered arrivals (minutes apart) form no event: each is left out with a reason."""
    sensor = np.arange(6, dtype=np.intp)
    t = 1.7e9 + 300.0 * np.arange(6)
    res = A.locate_detections(net, sensor, t)
    assert len(res.events) == 0
    assert sorted(res.unassigned.detection.tolist()) == list(range(6))
    assert set(res.unassigned.reason.tolist()) <= {"no_event", "too_few_sensors"}
    assert all(res.unassigned.message)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_greedy_assignment_equals_the_sequential_greedy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 60))
    slot = rng.integers(0, 12, m)
    det = rng.integers(0, 15, m)
    score = rng.random(m)
    kept = A._greedy_assignment(slot, det, score, 15)
    seq = np.zeros(m, bool)
    s_used: set[int] = set()
    d_used: set[int] = set()
    for i in np.argsort(score):  # the sequential reference
        if slot[i] not in s_used and det[i] not in d_used:
            seq[i] = True
            s_used.add(int(slot[i]))
            d_used.add(int(det[i]))
    np.testing.assert_array_equal(kept, seq)


def test_score_forgives_only_what_time_cannot_tell() -> None:
    """A detection of event 1 given to event 0 counts as right only when it lies within 21 ms of
    where event 0's own (missed) arrival was expected at that sensor."""
    sensor = np.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5])
    t = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    event = np.repeat([0, 1], 6)
    # event 0's arrival at sensor 5 was missed; it was expected at 0.5 s (detection 5 is event 1's)
    event[5] = 1
    exp_s = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5])
    exp_e = np.repeat([0, 1], 6)
    n = len(t)
    det = S.SimDetections(
        np.array([f"D{i}" for i in range(n)]), sensor, t, np.ones(n, np.intp), np.zeros(n), event,
        np.zeros(n, bool), sensor, exp_e, exp_s,
    )  # fmt: skip
    located = [np.arange(6), np.arange(6, 12)]
    exact, right, n_ev = S.score_association(located, det)
    assert (exact, right, n_ev) == (0, 2, 2)
    # the same swap 100 ms away from any expected arrival is a wrong association (both events)
    det2 = S.SimDetections(
        det.detection_id, sensor, np.where(np.arange(n) == 5, 0.45, t), det.signal,
        det.amplitude_db, event, det.echo, sensor, exp_e, np.where(np.arange(n) == 5, 0.55, exp_s),
    )  # fmt: skip
    assert S.score_association(located, det2)[1] == 0
