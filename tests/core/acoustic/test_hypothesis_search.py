"""The compiled 3-sensor hypothesis search against the NumPy reference, on a scene made here
(pyproj and NumPy from the physics, not the project's simulator): the same hypotheses bit for
bit, and the same grouping of every detection."""

from __future__ import annotations

import importlib
from dataclasses import replace

import numpy as np
import pytest
from pyproj import Transformer

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths
from truceline.core.acoustic.detections import DetectionIndex

assoc = importlib.import_module("truceline.core.acoustic.associate")


def _scene(seed: int) -> tuple[A.SensorNetwork, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """18 sensors scattered over 24 km, 80 events in 4 minutes heard through a 6 m/s wind, 5 %
    false detections; returns the network, each detection's sensor, time, event (-1 false) and
    the wind."""
    rng = np.random.default_rng(seed)
    n_s = 18
    sxy = rng.uniform(-12_000, 12_000, (n_s, 2))
    inv = Transformer.from_crs(
        "+proj=aeqd +lon_0=37.8 +lat_0=48.3 +datum=WGS84 +units=m", "EPSG:4326", always_xy=True
    )
    lon, lat = inv.transform(sxy[:, 0], sxy[:, 1])
    sigma_ms = rng.choice([1.0, 2.0, 5.0], n_s)
    net = A.SensorNetwork.build(
        [f"S{i}" for i in range(n_s)], lon, lat, timing_sigma_ms=sigma_ms, elevation_m=np.zeros(n_s)
    )
    n_ev = 80
    src = rng.uniform(-10_000, 10_000, (n_ev, 2))
    t0 = 1.75e9 + np.sort(rng.uniform(0, 240, n_ev))
    c = 340.0
    wind = np.array([4.0, -4.5])
    d = sxy[None, :, :] - src[:, None, :]
    dist = np.linalg.norm(d, axis=-1)
    u = d / dist[..., None]
    t = t0[:, None] + dist / (c + u @ wind) + rng.normal(0, 1, dist.shape) * sigma_ms * 1e-3
    heard = (dist < 20_000) & (rng.random(dist.shape) < 0.9)
    ev, sens = np.nonzero(heard)
    times = t[ev, sens]
    n_false = int(0.05 * len(times))
    sens = np.r_[sens, rng.integers(0, n_s, n_false)]
    times = np.r_[times, rng.uniform(t0.min(), t0.max() + 60, n_false)]
    ev = np.r_[ev, np.full(n_false, -1)]
    o = np.argsort(times)
    return net, sens[o], times[o], ev[o], wind


@pytest.mark.parametrize("seed", [3, 4])
def test_compiled_search_makes_the_reference_hypotheses(seed: int) -> None:
    """Every detection as a seed, with the narrow and the wide neighbourhoods: the same best
    hypothesis (detections, count, cost) from the compiled kernel and from NumPy."""
    net, sens, times, _, wind = _scene(seed)
    n = len(sens)
    opt = A.AssociationOptions().for_network(net)
    det_c = np.full(n, 340.0)
    det_w = np.tile(wind, (n, 1))
    det_sc, det_sw = np.full(n, 1.2), np.full(n, 1.0)
    t_base = float(times.min())
    stride = float(times.max() - t_base) + 1e4
    keep = np.ones(n, bool)
    keep[::7] = False  # some detections already claimed: the index holds the others
    index = DetectionIndex.build(np.flatnonzero(keep), sens, times, stride, t_base)
    sc_tbl = assoc._score_tables(net, 0, opt.n_score, opt.range_m)
    seeds = np.flatnonzero(keep)
    for k_nb in (opt.n_neighbours, opt.n_neighbours + 2):
        nb = assoc._neighbour_tables(net, 0, k_nb, opt.range_m)
        args = (net, 0, seeds, sens, times, det_c, det_w, det_sc, det_sw, index, nb, sc_tbl, opt)
        ref = assoc._hypotheses(*args)
        got = assoc._hypotheses_compiled(*args)
        assert len(ref.seed) > 0.9 * len(seeds)
        np.testing.assert_array_equal(got.seed, ref.seed)
        np.testing.assert_array_equal(got.count, ref.count)
        np.testing.assert_array_equal(got.cost, ref.cost)  # bit for bit
        np.testing.assert_array_equal(got.dets, ref.dets)


def test_compiled_search_groups_as_the_reference() -> None:
    """The whole association (sweep, rounds, extension) with either search: the same event of
    every detection, and nearly every event found."""
    net, sens, times, truth, wind = _scene(5)
    n = len(sens)
    opt = A.AssociationOptions(compiled=True)
    kw = {
        "det_wind_mps": np.tile(wind, (n, 1)),
        "det_c_sigma_mps": np.full(n, 1.2),
        "det_wind_sigma_mps": np.full(n, 1.0),
    }
    det_c = np.full(n, 340.0)
    fast = A.associate(net, sens, times, det_c, options=opt, **kw)  # type: ignore[arg-type]
    ref = A.associate(net, sens, times, det_c, options=replace(opt, compiled=False), **kw)  # type: ignore[arg-type]
    np.testing.assert_array_equal(fast, ref)
    found = 0  # events with 80 % of their detections in one group (locate sheds the strays)
    for e in range(int(truth.max()) + 1):
        groups, counts = np.unique(fast[truth == e], return_counts=True)
        found += int(groups[np.argmax(counts)] >= 0 and counts.max() >= 0.8 * counts.sum())
    assert found >= 0.9 * 80
