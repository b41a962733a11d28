"""The pipeline: association of dense and overlapping events, and reasons for what is left out."""

from __future__ import annotations

import importlib
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths
from truceline.core.acoustic.locate import _greedy_assignment
from truceline.core.simulate import acoustic as S  # noqa: N812 - short module aliases read like the maths

from .conftest import LINE_LAT, LINE_LON


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
    kept = _greedy_assignment(slot, det, score, 15)
    seq = np.zeros(m, bool)
    s_used: set[int] = set()
    d_used: set[int] = set()
    for i in np.argsort(score):  # the sequential reference
        if slot[i] not in s_used and det[i] not in d_used:
            seq[i] = True
            s_used.add(int(slot[i]))
            d_used.add(int(det[i]))
    np.testing.assert_array_equal(kept, seq)


def test_time_sweep_groups_as_one_round(net: A.SensorNetwork, sim_net: S.SimNetwork) -> None:
    """The first round swept in 30 s slices (each seeing only what the slices before left) groups a
    dense scene as well as every detection seeding at once."""
    base = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=84, duration_s=240.0, seed=41, chainage_km=(15, 65)
    )  # fmt: skip
    shots = S.adversarial_partners(LINE_LON, LINE_LAT, base, fraction=0.2, seed=43)
    det = S.simulate_detections(sim_net, shots, seed=42, p_echo=0.02)
    right = {}
    for name, sweep_s in (("global", 0.0), ("sweep", 30.0)):
        res = A.locate_detections(
            net, det.sensor, det.arrival_s, weather=A.Weather.constant(15.0),
            det_signal=det.signal, det_amplitude_db=det.amplitude_db,
            association=A.AssociationOptions(sweep_s=sweep_s, sweep_min_seeds=64),
        )  # fmt: skip
        _exact, right[name], n = S.score_association(res.events.detections, det)
        in_events = np.concatenate(res.events.detections)
        assert len(np.unique(in_events)) == len(in_events)
    assert right["sweep"] >= right["global"] - 2 and right["sweep"] / n >= 0.97, (right, n)


def test_confident_first_pass_groups_as_the_full_search(
    net: A.SensorNetwork, sim_net: S.SimNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The opt-in first pass (seeds with their two nearest neighbours only; events explained at
    ``confident_count`` sensors claim first) leaves the full 3-sensor search fewer seeds and groups
    a dense scene as well as the full search alone."""
    assoc = importlib.import_module("truceline.core.acoustic.associate")  # the module, not the function

    base = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=84, duration_s=240.0, seed=51, chainage_km=(15, 65)
    )  # fmt: skip
    shots = S.adversarial_partners(LINE_LON, LINE_LAT, base, fraction=0.2, seed=53)
    det = S.simulate_detections(sim_net, shots, seed=52, p_echo=0.02)
    full_seeds = {"n": 0}

    def counting(search: Any) -> Any:
        def count(*args: Any, **kw: Any) -> Any:
            if kw.get("pairs") is None and (len(args) < 14 or args[13] is None):
                full_seeds["n"] += len(args[2])
            return search(*args, **kw)

        return count

    # the NumPy reference and the compiled search (the default) take the same arguments
    monkeypatch.setattr(assoc, "_hypotheses", counting(assoc._hypotheses))
    monkeypatch.setattr(assoc, "_hypotheses_compiled", counting(assoc._hypotheses_compiled))
    right, seeds = {}, {}
    for name, cc in (("full", None), ("first pass", 10)):
        full_seeds["n"] = 0
        res = A.locate_detections(
            net, det.sensor, det.arrival_s, weather=A.Weather.constant(15.0),
            det_signal=det.signal, det_amplitude_db=det.amplitude_db,
            association=A.AssociationOptions(confident_count=cc),
        )  # fmt: skip
        _exact, right[name], n = S.score_association(res.events.detections, det)
        seeds[name] = full_seeds["n"]
        in_events = np.concatenate(res.events.detections)
        assert len(np.unique(in_events)) == len(in_events)
    assert seeds["first pass"] < 0.8 * seeds["full"], seeds
    assert right["first pass"] >= right["full"] - 3 and right["first pass"] / n >= 0.97, (right, n)
