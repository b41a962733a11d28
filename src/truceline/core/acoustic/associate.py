"""Association: group detections into candidate events.

Every detection seeds 3-sensor hypotheses, built and scored for all seeds at once; hypotheses
that own all their detections are accepted best first, then each accepted event, fitted,
gathers the detections it predicts at the other sensors in range.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace

import numpy as np

from truceline.core.acoustic.detections import DetectionIndex, gather, pad_groups
from truceline.core.acoustic.network import SensorNetwork
from truceline.core.acoustic.solver import SolverOptions, predict_arrivals, solve_events
from truceline.core.arrays import BoolArray, FloatArray, IntArray

__all__ = [
    "SIGNAL_RANGE_M",
    "AssociationOptions",
    "associate",
    "default_max_range_m",
]


@dataclass(frozen=True)
class AssociationOptions:
    """Options of :func:`associate`.

    Attributes
    ----------
    n_neighbours
        Nearest sensors of a seed's sensor whose detections form 3-sensor hypotheses with the seed.
    max_candidates
        Detections per neighbour considered (the first ones after the seed).
    n_score
        Sensors near the seed's sensor against which a hypothesis is scored.
    n_prescore, n_keep
        Every hypothesis is first scored against the ``n_prescore`` sensors nearest the seed's,
        and only the ``n_keep`` best of each seed against all ``n_score`` (0: no first stage).
    tol_s, tol_sigma, tol_rel
        Scoring window around the arrival a hypothesis predicts at sensor ``k`` (with the told
        speed of sound and wind, ``d / (c + w . u)`` along each path): ``tol_s`` (the error of a
        3-sensor fix) plus ``tol_sigma`` standard deviations of the predicted difference to the
        seed's arrival: both sensors' timing sigmas, the speed of sound's uncertainty times
        ``|d_k - d_seed| / c^2`` and the wind's times ``|s_k - s_seed| / c^2``. Under weather told
        more vaguely than ``tol_rel`` (relative to ``c``, over those ``tol_sigma`` sigmas), the
        first pass uses that much and the network's own measurement of the propagation narrows
        the second pass.
    extend_tol_s
        Base tolerance when an accepted event, fitted with the speed of sound free, gathers the
        detections it predicts at the other sensors in range.
    min_sensors
        Detections needed to accept an event.
    max_range_m
        Range (m) beyond which sensors are not expected to hear an event: the association's
        radius. ``None`` (the default) derives it from the signal and the network
        (:func:`default_max_range_m`): 25 km, the range at which muzzle blasts and impacts of
        artillery are heard, widened on a sparse network until every sensor has
        ``min_sensors - 1`` others within it.
    c_slack
        Relative uncertainty of the told speed of sound, for the time windows.
    max_rounds
        Rounds of hypothesis generation and conflict resolution.
    hearing_fraction, hearing_bin_m
        Events regather detections only at sensors within the distance at which this network hears
        events: the last distance (in bins of ``hearing_bin_m``) at which at least this fraction
        of the recording sensors hold an arrival of the first solve's events, plus one bin
        (capped by ``max_range_m``; ``None`` for ``max_range_m``). Beyond it a detection near the
        predicted time is far likelier another event's arrival or a false detection.
    far_claims, clutter_window_s
        Once the events have settled, each claims the arrivals it predicts at the sensors beyond
        the hearing range (to ``max_range_m``) that are likelier its arrival than clutter: the
        network's measured probability of hearing an event at that distance against the
        sensor's rate of detections within ``clutter_window_s`` of the prediction.
    share_propagation
        Estimate the speed of sound and the wind from the well-determined events (at least
        ``shared_min_sensors`` inliers) of each ``shared_window_s``, and hold every event near that
        estimate (priors ``shared_c_sigma_mps``, ``shared_wind_sigma_mps``) instead of letting each
        event fit its own atmosphere: weakly determined events stop trading position for sound
        speed and keep their genuine arrivals.
    regather_sigma, regather_floor_s
        Window around a predicted arrival, in standard deviations of the prediction, and its
        minimum (s).
    regather_rounds
        Most rounds of regather and relocation (they stop when the claims no longer change and the
        ghosts have been dropped).
    ghost_p_value, ghost_range_fraction
        An event heard by fewer of the active sensors within ``ghost_range_fraction`` of the hearing
        range than this binomial quantile allows (at the network's detection probability) is a
        ghost, dropped so that its arrivals go back to the events that made them; ``None`` keeps
        every event.
    merge_radius_m
        A ghost is merged with an event within this space-time distance (time scaled by 340 m/s)
        when their union fits as one event (an event split in two by the association).
    second_pass_tol_rel
        With the shared propagation, the detections the association left out are associated again
        with the measured speed of sound and this relative tolerance (``None``: no second pass).
    consistency_level, consistency_rounds
        Every event emitted passes a chi-square test on its residuals at this level (degrees of
        freedom: inliers - 3); one that fails drops its worst arrival and is solved again, at most
        ``consistency_rounds`` times, then is left out (its arrivals explained as
        ``inconsistent``). ``None``: no test.
    late_sigma
        With the consistency test, an arrival later than the rest of its event predicts by more
        than this many standard deviations (its studentized deleted residual: echoes and multipath
        arrivals are late, never early) is shed the same way, even when the chi-square passes.
    confident_count
        With a number, a cheap first pass (every detection seeds 3-sensor hypotheses with its two
        nearest neighbours only) lets the events it explains at this many sensors claim their
        detections before the full search (``None``, the default: no first pass). About 2.2x less
        association time at 50 events a minute; off by default because it moves the stress
        suite's right sets and ghosts within their scene-to-scene spread but not to the last digit
        (BENCHMARKS.md, issue 14 session 5).
    compiled, compiled_min_detections
        Search the 3-sensor hypotheses with the compiled kernel
        (:mod:`truceline.core.acoustic.hypothesis_search`, numba) rather than the NumPy
        reference: both give the same hypotheses bit for bit. ``None`` (the default): the compiled
        one when at least ``compiled_min_detections`` detections are to be associated, or when it
        is already loaded in this process. Loading numba and the cached kernel costs 1.5-2 s of
        CPU once per process, more than the NumPy search of a few thousand detections takes
        (0.6 s for the 4,100 detections of the stress suite's mixed scene, against 9 s for the
        14,600 of its sector scene, which the kernel searches in 2.5 s; BENCHMARKS.md, issue 14
        session 6).
    """

    n_neighbours: int = 4
    max_candidates: int = 12
    n_score: int = 14
    n_prescore: int = 6
    n_keep: int = 6
    tol_s: float = 0.06
    tol_sigma: float = 4.0
    tol_rel: float = 0.01
    extend_tol_s: float = 0.02
    min_sensors: int = 5
    max_range_m: float | None = None
    c_slack: float = 0.08
    max_rounds: int = 6
    hearing_fraction: float | None = 0.1
    hearing_bin_m: float = 500.0
    far_claims: bool = True
    clutter_window_s: float = 30.0
    share_propagation: bool = True
    shared_min_sensors: int = 10
    shared_window_s: float = 1800.0
    shared_c_sigma_mps: float = 1.5
    shared_wind_sigma_mps: float = 1.5
    regather_sigma: float = 5.0
    regather_floor_s: float = 0.02
    regather_rounds: int = 8
    ghost_p_value: float | None = 1e-4
    ghost_range_fraction: float = 0.9
    merge_radius_m: float = 5000.0
    second_pass_tol_rel: float | None = 0.03
    mirror_max_ratio: float = 0.25
    consistency_level: float | None = 0.99
    consistency_rounds: int = 3
    late_sigma: float = 3.5
    ambiguity_min_weight: float = 0.01
    sweep_s: float = 30.0
    sweep_min_seeds: int = 256
    sweep_lookahead_s: float = 15.0
    confident_count: int | None = None
    compiled: bool | None = None
    compiled_min_detections: int = 6000

    @property
    def range_m(self) -> float:
        """``max_range_m`` once resolved (25 km when not)."""
        return SIGNAL_RANGE_M if self.max_range_m is None else float(self.max_range_m)

    def for_network(self, net: SensorNetwork) -> AssociationOptions:
        """These options with ``max_range_m`` resolved for ``net``."""
        if self.max_range_m is not None:
            return self
        return replace(self, max_range_m=default_max_range_m(net, self.min_sensors))


SIGNAL_RANGE_M = 25_000.0
"""How far a muzzle blast or an impact of artillery is heard by a ground sensor (m)."""


def default_max_range_m(net: SensorNetwork, min_sensors: int = 5) -> float:
    """The association radius for a network: :data:`SIGNAL_RANGE_M`, or 1.2 times the largest
    distance from a sensor to its ``min_sensors - 1``-th nearest other sensor when that is larger
    (on a sparse network an event is heard by ``min_sensors`` sensors only that far out)."""
    k = min(min_sensors, net.n_sensors)
    far = 0.0
    for f in range(len(net.frames)):  # frames (a handful)
        own = net.frame_of_sensor == f
        if own.any():
            d, _ = net.trees[f].query(net.xy_m[f][own], k=k)
            far = max(far, float(np.max(np.atleast_2d(d)[:, -1])))
    return max(SIGNAL_RANGE_M, 1.2 * far)


@dataclass(frozen=True)
class _Hyp:
    seed: IntArray  # (H,) seed detection
    dets: IntArray  # (H, S) matched detections, -1 padded
    count: IntArray
    cost: FloatArray


def _pair_slots(n: int) -> IntArray:
    a, b = np.triu_indices(n, 1)
    return np.stack([a, b], axis=1).astype(np.intp)


def _hypotheses(
    net: SensorNetwork,
    frame: int,
    seeds: IntArray,
    det_sensor: IntArray,
    det_t: FloatArray,
    det_c: FloatArray,
    det_w: FloatArray,
    det_sc: FloatArray,
    det_sw: FloatArray,
    index: DetectionIndex,
    nb: IntArray,
    score_tbl: IntArray,
    opt: AssociationOptions,
    pairs: IntArray | None = None,
) -> _Hyp:
    """Best 3-sensor hypothesis per seed, scored against the sensors near the seed (from the pairs
    of neighbours ``pairs``, default every pair)."""
    xy = net.xy_m[frame]
    m_c = opt.max_candidates
    s0 = det_sensor[seeds]
    ts = det_t[seeds]
    cs = det_c[seeds]
    ws = det_w[seeds]  # (S, 2) the seed's told wind
    cap = opt.tol_rel * cs / opt.tol_sigma
    sc_s = np.minimum(det_sc[seeds], cap)
    sw_s = np.minimum(det_sw[seeds], cap)
    nbs = nb[s0]  # (S, Kn)
    nb_ok = nbs >= 0
    nbs_c = np.where(nb_ok, nbs, 0)
    dist = np.linalg.norm(xy[nbs_c] - xy[s0][:, None, :], axis=-1)
    c_lo = cs * (1.0 - opt.c_slack) - np.hypot(ws[:, 0], ws[:, 1])
    eps = 0.02
    lo = np.searchsorted(index.keys, index.key(nbs_c, ts[:, None] - eps))
    hi = np.searchsorted(index.keys, index.key(nbs_c, ts[:, None] + dist / c_lo[:, None] + eps))
    cand = lo[..., None] + np.arange(m_c)
    cvalid = (cand < hi[..., None]) & nb_ok[..., None]
    cand = np.clip(cand, 0, max(len(index.det) - 1, 0))
    cdet = index.det[cand] if len(index.det) else np.zeros_like(cand)
    # to first order in w / c the wind delays an arrival by -w . (s - x) / c^2: linear in the
    # sensor's position, so times corrected by w . s / c^2 are those of still air (the source's
    # part, w . x / c^2, shifts every arrival alike and is absorbed by the emission time)
    shift_s0 = (ws[:, 0] * xy[s0, 0] + ws[:, 1] * xy[s0, 1]) / cs**2
    ct = (
        det_t[cdet]
        + ((ws[:, 0, None] * xy[nbs_c, 0] + ws[:, 1, None] * xy[nbs_c, 1]) / cs[:, None] ** 2)[..., None]
    )
    ts_c = ts + shift_s0
    if pairs is None:
        pairs = _pair_slots(nbs.shape[1])
    a, b = pairs[:, 0], pairs[:, 1]
    sa = xy[nbs_c[:, a]] - xy[s0][:, None, :]  # (S, P, 2)
    sb = xy[nbs_c[:, b]] - xy[s0][:, None, :]
    det2 = sa[..., 0] * sb[..., 1] - sa[..., 1] * sb[..., 0]
    geo_ok = np.abs(det2) > 1e-3 * (np.sum(sa * sa, -1) + np.sum(sb * sb, -1))
    inv = (
        np.stack([np.stack([sb[..., 1], -sa[..., 1]], -1), np.stack([-sb[..., 0], sa[..., 0]], -1)], -2)
        / np.where(geo_ok, det2, 1.0)[..., None, None]
    )  # inverse of [[sa],[sb]] (rows)
    # only the combinations of a candidate in each window on a well-conditioned pair are solved
    # (one flat row each, in the order of (seed, pair, candidate at a, candidate at b))
    ci, cp, cm, cn = np.nonzero(
        cvalid[:, a][..., :, None] & cvalid[:, b][..., None, :] & geo_ok[..., None, None]
    )
    cs_c = cs[ci]
    da = cs_c * (ct[ci, a[cp], cm] - ts_c[ci])  # (N,)
    db = cs_c * (ct[ci, b[cp], cn] - ts_c[ci])
    ba = (np.sum(sa * sa, -1)[ci, cp] - da**2) / 2.0
    bb = (np.sum(sb * sb, -1)[ci, cp] - db**2) / 2.0
    # x = inv @ (b - r0 * delta) = p + r0 q
    i00, i01 = inv[ci, cp, 0, 0], inv[ci, cp, 0, 1]
    i10, i11 = inv[ci, cp, 1, 0], inv[ci, cp, 1, 1]
    px = i00 * ba + i01 * bb
    py = i10 * ba + i11 * bb
    qx = -(i00 * da + i01 * db)
    qy = -(i10 * da + i11 * db)
    qa = qx * qx + qy * qy - 1.0
    qb = px * qx + py * qy
    qc = px * px + py * py
    disc = qb * qb - qa * qc
    sq = np.sqrt(np.maximum(disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        safe_qa = np.where(np.abs(qa) > 1e-9, qa, np.nan)
        r1 = (-qb + sq) / safe_qa
        r2 = (-qb - sq) / safe_qa
        rlin = np.where(np.abs(qa) <= 1e-9, -qc / np.where(qb != 0, 2 * qb, np.nan), np.nan)
    roots = np.stack([np.where(np.isfinite(r1), r1, rlin), r2], axis=-1)  # (N, 2)
    rv = (disc >= 0)[:, None] & np.isfinite(roots) & (roots >= 0) & (roots <= opt.range_m)
    hs = np.nonzero(rv)
    if len(hs[0]) == 0:
        e = np.zeros(0, np.intp)
        return _Hyp(e, np.zeros((0, 1), np.intp), e, np.zeros(0))
    k = hs[0]
    si = ci[k]
    r0 = roots[hs]
    hx = px[k] + r0 * qx[k] + xy[s0[si], 0]
    hy = py[k] + r0 * qy[k] + xy[s0[si], 1]
    wh = ws[si]
    ch = cs[si]
    r0s = np.maximum(r0, 1e-3)
    u0 = (wh[:, 0] * (xy[s0[si], 0] - hx) + wh[:, 1] * (xy[s0[si], 1] - hy)) / r0s
    ht0 = ts[si] - r0 / (ch + u0)
    # score against the sensors near the seed, with the full propagation model; what depends on
    # the seed alone (the scored sensors, their timing and the baseline to the seed) is tabled once
    sc_tab = score_tbl[s0]  # (S, K)
    sc_tab_ok = sc_tab >= 0
    sc_tab_c = np.where(sc_tab_ok, sc_tab, 0)
    kx, ky = xy[sc_tab_c, 0], xy[sc_tab_c, 1]
    sig_k = net.timing_sigma_ms[sc_tab_c] * 1e-3
    sig_0 = net.timing_sigma_ms[s0] * 1e-3
    var_timing = sig_k**2 + sig_0[:, None] ** 2
    baseline = np.hypot(kx - xy[s0, 0, None], ky - xy[s0, 1, None])
    var_wind = (sw_s[:, None] * baseline / (cs**2)[:, None]) ** 2
    c2 = (cs**2)[si]

    def score(h: IntArray, cols: slice) -> tuple[IntArray, IntArray, FloatArray]:
        """Detections matched (H, S), their count and cost for hypotheses ``h`` against the
        score table's columns ``cols``."""
        rows = si[h]
        scc = sc_tab_c[rows, cols]  # (H, S)
        ex = kx[rows, cols] - hx[h, None]
        ey = ky[rows, cols] - hy[h, None]
        dk = np.hypot(ex, ey)
        sc_ok = sc_tab_ok[rows, cols] & (dk <= opt.range_m)
        wu = (wh[h, 0, None] * ex + wh[h, 1, None] * ey) / np.maximum(dk, 1e-3)
        tp = ht0[h, None] + dk / (ch[h, None] + wu)
        var = (
            var_timing[rows, cols]
            + (sc_s[rows, None] * (dk - r0[h, None]) / c2[h, None]) ** 2
            + var_wind[rows, cols]
        )
        tol = opt.tol_s + opt.tol_sigma * np.sqrt(var)
        md, mdist = index.nearest(scc, tp, tol, sc_ok)
        z = np.where(md >= 0, mdist / tol, 0.0)
        return md, (md >= 0).sum(axis=1), np.sum(z * z, axis=1)

    n_h = len(si)
    allh = np.arange(n_h)
    if opt.n_prescore and opt.n_prescore < score_tbl.shape[1] and opt.n_keep:
        # a cheap first score against the nearest few sensors; only the best few hypotheses of
        # each seed are scored against them all
        _, c1, k1 = score(allh, slice(0, opt.n_prescore))
        o = np.lexsort((k1, -c1, si))
        start = np.r_[0, np.flatnonzero(si[o][1:] != si[o][:-1]) + 1]
        rank = np.arange(n_h) - np.repeat(start, np.diff(np.r_[start, n_h]))
        allh = np.sort(o[rank < opt.n_keep])
    md, count, cost = score(allh, slice(None))
    si = si[allh]
    # best hypothesis per seed: most detections, then least cost
    order = np.lexsort((cost, -count, si))
    first = order[np.r_[True, si[order][1:] != si[order][:-1]]]
    dets = md[first]
    # make sure the seed is recorded
    seed_d = seeds[si[first]]
    has_seed = np.any(dets == seed_d[:, None], axis=1)
    dets = np.concatenate([dets, np.where(has_seed, -1, seed_d)[:, None]], axis=1)
    cnt = (dets >= 0).sum(axis=1)
    return _Hyp(seed_d, dets, cnt, cost[first])


def _hypotheses_compiled(
    net: SensorNetwork,
    frame: int,
    seeds: IntArray,
    det_sensor: IntArray,
    det_t: FloatArray,
    det_c: FloatArray,
    det_w: FloatArray,
    det_sc: FloatArray,
    det_sw: FloatArray,
    index: DetectionIndex,
    nb: IntArray,
    score_tbl: IntArray,
    opt: AssociationOptions,
    pairs: IntArray | None = None,
) -> _Hyp:
    """:func:`_hypotheses` by the compiled kernel (the same hypotheses, bit for bit)."""
    from truceline.core.acoustic.hypothesis_search import best_hypotheses  # numba: ~0.3 s to load

    has, dets, cnt, cost = best_hypotheses(
        seeds, det_sensor, det_t, det_c, det_w, det_sc, det_sw, index.keys, index.det,
        index.stride, index.t_base, net.xy_m[frame], net.timing_sigma_ms, nb, score_tbl,
        _pair_slots(nb.shape[1]) if pairs is None else pairs,
        max_candidates=opt.max_candidates, tol_s=opt.tol_s, tol_sigma=opt.tol_sigma,
        tol_rel=opt.tol_rel, c_slack=opt.c_slack, range_m=opt.range_m,
        n_prescore=opt.n_prescore, n_keep=opt.n_keep,
    )  # fmt: skip
    return _Hyp(np.asarray(seeds[has], np.intp), dets[has], cnt[has], cost[has])


def _resolve(h: _Hyp, n_det: int, min_sensors: int) -> BoolArray:
    """Accept hypotheses that own every detection they use, best (count, cost) first."""
    nh = len(h.seed)
    if nh == 0:
        return np.zeros(0, bool)
    order = np.lexsort((h.cost, -h.count))
    rank = np.empty(nh, np.intp)
    rank[order] = np.arange(nh)
    eligible = h.count >= min_sensors
    owner = np.full(n_det, nh, np.intp)
    rows, cols = np.nonzero((h.dets >= 0) & eligible[:, None])
    np.minimum.at(owner, h.dets[rows, cols], rank[rows])
    owns = np.ones(h.dets.shape, bool)
    owns[rows, cols] = owner[h.dets[rows, cols]] == rank[rows]
    return np.asarray(eligible & np.all(owns, axis=1), bool)


def _neighbour_tables(net: SensorNetwork, frame: int, k: int, max_m: float) -> IntArray:
    tree = net.trees[frame]
    kk = min(k + 1, net.n_sensors)
    dist, idx = tree.query(net.xy_m[frame], k=kk, distance_upper_bound=max_m)
    idx = np.where(np.isfinite(dist), idx, -1)
    # drop the sensor itself (first column, distance 0)
    return np.asarray(idx[:, 1:], np.intp)


def _score_tables(net: SensorNetwork, frame: int, k: int, max_m: float) -> IntArray:
    tree = net.trees[frame]
    kk = min(k, net.n_sensors)
    dist, idx = tree.query(net.xy_m[frame], k=kk, distance_upper_bound=max_m)
    return np.asarray(np.where(np.isfinite(dist), idx, -1), np.intp)


def _extend(
    net: SensorNetwork,
    dets: IntArray,
    det_sensor: IntArray,
    det_time_s: FloatArray,
    det_c_mps: FloatArray,
    det_w: FloatArray,
    det_sc: FloatArray,
    avail: BoolArray,
    stride: float,
    t_base: float,
    opt: AssociationOptions,
) -> IntArray:
    """Fit accepted hypotheses and add the available detections they predict at every sensor in range.

    Returns the (E, W) detections of each event (-1 padded); a detection wanted by two events goes to
    the one it fits best.
    """
    n_ev = len(dets)
    if n_ev == 0:
        return dets
    frame, sxy, t_rel, sig, dz, mask, t_ref = gather(net, dets, det_sensor, det_time_s)
    first_det = np.where(mask, dets, 0)[:, 0]
    seed_c = det_c_mps[first_det]
    res = solve_events(
        sxy, t_rel, mask, sig, seed_c, det_w[first_det], dz,
        options=SolverOptions(estimate_c=True, n_subsets=0, max_iter=10, min_sensors=3),
        c_sigma_mps=det_sc[first_det],
    )  # fmt: skip
    pool = avail.copy()
    pool[dets[dets >= 0]] = True
    index = DetectionIndex.build(np.flatnonzero(pool), det_sensor, det_time_s, stride, t_base)
    k_max = min(64, net.n_sensors)
    owner = np.full(len(det_sensor), -1, np.intp)
    best = np.full(len(det_sensor), np.inf)
    found = np.full((n_ev, k_max), -1, np.intp)
    score = np.full((n_ev, k_max), np.inf)
    for f in range(len(net.frames)):  # frames, not events
        ev = np.flatnonzero(frame == f)
        if len(ev) == 0:
            continue
        dist, sens = net.trees[f].query(res.xy_m[ev], k=k_max, distance_upper_bound=opt.range_m)
        ok = np.isfinite(dist)
        sens = np.where(ok, sens, 0)
        tp, J = predict_arrivals(
            res.xy_m[ev], res.t0_s[ev], res.c_mps[ev], res.wind_mps[ev], net.xy_m[f][sens],
            np.zeros(sens.shape), True, False, jac=True,
        )  # fmt: skip
        assert J is not None
        tp = tp + t_ref[ev, None]
        var = np.einsum("nki,nij,nkj->nk", J, res.cov_theta[ev], J)
        var = var + (net.timing_sigma_ms[sens] * 1e-3) ** 2
        dk = np.where(ok, dist, np.inf)
        dmin = np.min(dk, axis=1, keepdims=True)
        dmin = np.where(np.isfinite(dmin), dmin, 0.0)  # rows with no sensor in range
        spread = np.where(ok, dk - dmin, 0.0)
        tol = opt.extend_tol_s + 5.0 * np.sqrt(var) + 0.005 * np.abs(spread) / seed_c[ev, None]
        md, mdist = index.nearest(sens, tp, np.where(ok, tol, 0.0), ok)
        found[ev, : md.shape[1]] = md
        score[ev, : md.shape[1]] = np.where(md >= 0, mdist / np.where(ok, tol, 1.0), np.inf)
    rows, cols = np.nonzero(found >= 0)
    np.minimum.at(best, found[rows, cols], score[rows, cols])
    win = score[rows, cols] <= best[found[rows, cols]]
    owner[found[rows, cols][win]] = rows[win]
    # keep the hypothesis' own detections too (the final solve weeds out outliers)
    r0, c0 = np.nonzero(dets >= 0)
    free = owner[dets[r0, c0]] < 0
    owner[dets[r0, c0][free]] = r0[free]
    sel = np.flatnonzero(owner >= 0)
    return pad_groups(owner, n_ev, det_time_s) if len(sel) else dets


def associate(
    net: SensorNetwork,
    det_sensor: IntArray,
    det_time_s: FloatArray,
    det_c_mps: FloatArray,
    *,
    options: AssociationOptions | None = None,
    available: BoolArray | None = None,
    det_wind_mps: FloatArray | None = None,
    det_c_sigma_mps: FloatArray | None = None,
    det_wind_sigma_mps: FloatArray | None = None,
) -> IntArray:
    """Group detections into candidate events.

    Every detection seeds 3-sensor hypotheses (closed form with two detections at its nearest sensors
    in the time window allowed by the distance and the speed of sound); each hypothesis is scored by
    the detections it predicts at the nearby sensors; hypotheses that own all their detections are
    accepted best first, and the rest are retried without the claimed detections.

    Parameters
    ----------
    net
        The sensor network.
    det_sensor, det_time_s
        Sensor index and arrival time (POSIX s) of each detection.
    det_c_mps
        Told speed of sound at each detection's time.
    det_wind_mps, det_c_sigma_mps, det_wind_sigma_mps
        Told wind (east, north; default calm) at each detection's time, and the uncertainties of
        the told speed of sound and of each wind component (default 6 and 5 m/s: not told).
    options
        Association options.
    available
        Detections that may be used (default all).

    Returns
    -------
    ndarray of int
        Event number of each detection, -1 when it joined no event.
    """
    opt = (options or AssociationOptions()).for_network(net)
    n_det = len(det_sensor)
    event = np.full(n_det, -1, np.intp)
    if n_det == 0:
        return event
    avail = np.ones(n_det, bool) if available is None else available.copy()
    det_w = np.zeros((n_det, 2)) if det_wind_mps is None else np.asarray(det_wind_mps, np.float64)
    det_sc = np.full(n_det, 6.0) if det_c_sigma_mps is None else np.asarray(det_c_sigma_mps, np.float64)
    det_sw = (
        np.full(n_det, 5.0) if det_wind_sigma_mps is None else np.asarray(det_wind_sigma_mps, np.float64)
    )
    t_base = float(np.min(det_time_s))
    stride = float(np.max(det_time_s) - t_base) + 1e4
    n_frames = len(net.frames)
    nb_tables = [_neighbour_tables(net, f, opt.n_neighbours, opt.range_m) for f in range(n_frames)]
    nb_wide = [_neighbour_tables(net, f, opt.n_neighbours + 2, opt.range_m) for f in range(n_frames)]
    sc_tables = [_score_tables(net, f, opt.n_score, opt.range_m) for f in range(n_frames)]
    det_frame = net.frame_of_sensor[det_sensor]
    n_events = 0
    compiled = opt.compiled
    if compiled is None:
        loaded = "truceline.core.acoustic.hypothesis_search" in sys.modules
        compiled = loaded or int(avail.sum()) >= opt.compiled_min_detections

    def run_round(
        seeds_all: IntArray, wide: bool, pairs: IntArray | None = None, min_count: int = opt.min_sensors
    ) -> tuple[_Hyp, BoolArray]:
        index = DetectionIndex.build(np.flatnonzero(avail), det_sensor, det_time_s, stride, t_base)
        hyps: list[_Hyp] = []
        for f in range(n_frames):  # a handful of frames; vectorised inside
            seeds = seeds_all[det_frame[seeds_all] == f]
            if compiled:
                hyps.append(
                    _hypotheses_compiled(
                        net, f, seeds, det_sensor, det_time_s, det_c_mps, det_w, det_sc, det_sw,
                        index, nb_wide[f] if wide else nb_tables[f], sc_tables[f], opt, pairs,
                    )
                )  # fmt: skip
                continue
            for lo in range(0, len(seeds), 2000):  # chunks bound the memory
                hyps.append(
                    _hypotheses(
                        net, f, seeds[lo : lo + 2000], det_sensor, det_time_s, det_c_mps, det_w,
                        det_sc, det_sw, index,
                        nb_wide[f] if wide else nb_tables[f], sc_tables[f], opt, pairs,
                    )
                )  # fmt: skip
        width = max((x.dets.shape[1] for x in hyps), default=1)
        h = _Hyp(
            np.concatenate([x.seed for x in hyps] + [np.zeros(0, np.intp)]),
            np.concatenate(
                [
                    np.pad(x.dets, ((0, 0), (0, width - x.dets.shape[1])), constant_values=-1)
                    for x in hyps
                ]
                + [np.zeros((0, width), np.intp)]
            ),
            np.concatenate([x.count for x in hyps] + [np.zeros(0, np.intp)]),
            np.concatenate([x.cost for x in hyps] + [np.zeros(0)]),
        )
        return h, _resolve(h, n_det, min_count)

    def claim(
        h: _Hyp, acc: BoolArray, mine: BoolArray | None = None, own: BoolArray | None = None
    ) -> IntArray:
        """Extend the accepted hypotheses and give them their detections; returns the seeds whose
        good hypothesis lost a conflict. With ``mine``, only those hypotheses claim (the others,
        accepted in a look-ahead, still compete for the detections they predict), and only the
        seeds ``own`` are returned."""
        nonlocal n_events
        d = _extend(
            net, h.dets[acc], det_sensor, det_time_s, det_c_mps, det_w, det_sc, avail, stride, t_base,
            opt,
        )  # fmt: skip
        lost = (~acc) & (h.count >= opt.min_sensors)
        keep = np.ones(len(d), bool) if mine is None else mine[acc]
        if mine is not None:
            d = np.where(keep[:, None], d, -1)
        if own is not None:
            lost &= own
        ids = n_events + np.cumsum(keep) - 1
        rows, cols = np.nonzero(d >= 0)
        event[d[rows, cols]] = ids[rows]
        avail[d[rows, cols]] = False
        n_events += int(keep.sum())
        return np.asarray(h.seed[lost], np.intp)

    final = max(opt.max_rounds - 1, 0)
    rnd = 0
    if opt.confident_count is not None and min(t.shape[1] for t in nb_tables) >= 2:
        # a cheap first pass: every detection seeds from its two nearest neighbours only (one
        # pair of the n_neighbours (n_neighbours - 1) / 2); the events it explains at
        # ``confident_count`` sensors claim their detections (the other hypotheses it accepts
        # compete for them but claim nothing), and the search below starts from what is left
        h, acc = run_round(np.flatnonzero(avail), False, _pair_slots(2))
        claim(h, acc, h.count >= opt.confident_count)
    seeds_all = np.flatnonzero(avail)
    if opt.sweep_s > 0 and final > 0 and len(seeds_all):
        # the first round sweeps time: the seeds of each slice, in order, see only the detections
        # the events of the slices before did not claim, so an event is found from the few
        # arrivals of its first slice rather than from every arrival. The seeds of the next
        # ``sweep_lookahead_s`` compete too (conflicts and the detections an event predicts go to
        # the best hypothesis, as in one global round) but claim only in their own slice.
        t_seed = det_time_s[seeds_all]
        o = np.argsort(t_seed, kind="stable")
        seeds_t, t_sorted = seeds_all[o], t_seed[o]
        slot = np.floor((t_sorted - t_base) / opt.sweep_s).astype(np.intp)
        bounds = np.r_[0, np.flatnonzero(np.diff(slot)) + 1, len(slot)]
        lost_all = []
        lo = 0
        for i in range(1, len(bounds)):  # time slices: the sweep is sequential
            hi = int(bounds[i])
            if hi - lo < opt.sweep_min_seeds and hi < len(slot):
                continue  # a quiet slice joins the next one
            ahead = int(np.searchsorted(t_sorted, t_sorted[hi - 1] + opt.sweep_lookahead_s, "right"))
            part = seeds_t[lo:ahead]
            own = np.arange(lo, ahead) < hi
            own, part = own[avail[part]], part[avail[part]]
            lo = hi
            if not own.any():
                continue
            h, acc = run_round(part, False)
            # an event claims in the slice of its first arrival, whichever seed found it
            first_t = np.min(np.where(h.dets >= 0, det_time_s[h.dets], np.inf), axis=1)
            mine = first_t <= t_sorted[hi - 1]
            lost_all.append(claim(h, acc, mine, np.isin(h.seed, part[own])))
        rnd = 1
        seeds_all = np.unique(np.concatenate([*lost_all, np.zeros(0, np.intp)]))
        seeds_all = seeds_all[avail[seeds_all]]
        if rnd >= final:
            seeds_all = np.flatnonzero(avail)
    while True:
        wide = rnd >= final
        if len(seeds_all) == 0:
            if wide:
                break
            rnd = final  # nothing left to retry: go to the final sweep with wider neighbourhoods
            seeds_all = np.flatnonzero(avail)
            continue
        lost = claim(*run_round(seeds_all, wide))
        if wide:
            break
        rnd += 1
        # next round: the seeds whose good hypothesis lost a conflict; the last round sweeps all
        seeds_all = np.unique(lost)
        seeds_all = seeds_all[avail[seeds_all]]
        if rnd >= final:
            seeds_all = np.flatnonzero(avail)
    return event
