"""Salvos: rounds from one firing point seconds apart, told apart from neighbours and strays."""

from __future__ import annotations

import numpy as np

from truceline.core.acoustic.salvo import SalvoOptions, find_salvos


def _cov(n: int, sd_m: float) -> np.ndarray:
    return np.tile(np.eye(2) * sd_m**2, (n, 1, 1))


def test_rounds_of_one_point_form_one_salvo_and_others_stay_alone() -> None:
    rng = np.random.default_rng(3)
    # a 5-round salvo at (1000, 2000), 2-6 s apart, fixes scattered by 5 m; interleaved with a
    # second point 400 m away firing at the same times, and a stray 20 s later at the first point's
    # neighbourhood but 300 m off
    t_a = 100.0 + np.concatenate([[0.0], np.cumsum(rng.uniform(2, 6, 4))])
    xy_a = np.array([1000.0, 2000.0]) + rng.normal(0, 5, (5, 2))
    t_b = t_a + 0.5
    xy_b = np.array([1400.0, 2000.0]) + rng.normal(0, 5, (5, 2))
    t_c = np.array([t_a[-1] + 20.0])
    xy_c = np.array([[1000.0, 2300.0]])
    t = np.concatenate([t_b, t_c, t_a])  # any input order
    xy = np.concatenate([xy_b, xy_c, xy_a])
    s = find_salvos(xy, t, _cov(len(t), 5.0))
    assert np.all(s.size[:5] == 5) and len(set(s.first[:5].tolist())) == 1
    assert np.all(s.size[6:] == 5) and len(set(s.first[6:].tolist())) == 1
    assert s.first[0] != s.first[6]
    # the first round is the earliest: its own index
    assert s.first[6] == 6 and s.first[0] == 0
    assert s.first[5] == -1 and s.size[5] == 1


def test_a_gap_longer_than_allowed_splits_and_signals_must_agree() -> None:
    t = np.array([0.0, 4.0, 8.0, 60.0, 64.0])
    xy = np.zeros((5, 2))
    s = find_salvos(xy, t, _cov(5, 5.0), options=SalvoOptions(max_gap_s=30.0))
    assert s.size.tolist() == [3, 3, 3, 2, 2]
    assert s.first.tolist() == [0, 0, 0, 3, 3]
    sig = np.array([1, 2, 1, 0, 0])  # a muzzle blast, an impact, a muzzle blast
    s = find_salvos(xy, t, _cov(5, 5.0), sig)
    assert s.first[1] == -1 and s.size[0] == 2 and s.first[2] == 0


def test_positions_outside_their_ellipses_are_not_one_point() -> None:
    t = np.array([0.0, 3.0])
    xy = np.array([[0.0, 0.0], [60.0, 0.0]])
    assert find_salvos(xy, t, _cov(2, 5.0)).first.tolist() == [-1, -1]
    # the same fixes with 40 m uncertainty are one point
    assert find_salvos(xy, t, _cov(2, 40.0)).first.tolist() == [0, 0]
    assert find_salvos(np.zeros((0, 2)), np.zeros(0), np.zeros((0, 2, 2))).size.tolist() == []
