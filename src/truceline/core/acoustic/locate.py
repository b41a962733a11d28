"""The pipeline: associate, locate, regather, relocate; and a reason for every detection left out."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from truceline.core.acoustic.associate import AssociationOptions, associate
from truceline.core.acoustic.detections import SIGNALS, DetectionIndex, gather, pad_groups
from truceline.core.acoustic.network import SensorNetwork
from truceline.core.acoustic.propagation import (
    UNTOLD_TEMPERATURE_SIGMA_C,
    UNTOLD_WIND_SIGMA_MPS,
    Weather,
)
from truceline.core.acoustic.salvo import SalvoOptions, find_salvos
from truceline.core.acoustic.solver import (
    SolveResult,
    SolverOptions,
    error_ellipse,
    nanmedian_rows,
    predict_arrivals,
    solve_events,
)
from truceline.core.arrays import BoolArray, FloatArray, IntArray

__all__ = [
    "LocatedEvents",
    "LocationResult",
    "Unassigned",
    "locate_detections",
]


@dataclass(frozen=True)
class LocatedEvents:
    """Located events (E of them); positions WGS84, covariances in the local plane (x east, y north).

    An event whose likelihood has a second mode (the mirror image across a near-linear array) of
    weight at least ``AssociationOptions.ambiguity_min_weight`` is ``ambiguous``: ``lon``, ``lat``
    and ``cov_m2`` are its most probable mode, ``alt_lon``, ``alt_lat``, ``alt_cov_m2`` the other
    and ``alt_weight`` that one's probability (NaN / 0 for an event with one mode).

    ``salvo`` is the index of the first round of the salvo the event belongs to (rounds from one
    firing point seconds apart, see :mod:`truceline.core.acoustic.salvo`; -1 when it is alone) and
    ``salvo_size`` that salvo's number of rounds (1 when alone).
    """

    emitted_at_s: FloatArray
    lon: FloatArray
    lat: FloatArray
    xy_m: FloatArray
    frame: IntArray
    cov_m2: FloatArray
    semi_major_m: FloatArray
    semi_minor_m: FloatArray
    orientation_deg: FloatArray
    n_sensors: IntArray
    residual_rms_ms: FloatArray
    c_mps: FloatArray
    signal: IntArray
    detections: list[IntArray]
    ambiguous: BoolArray
    alt_lon: FloatArray
    alt_lat: FloatArray
    alt_cov_m2: FloatArray
    alt_weight: FloatArray
    salvo: IntArray
    salvo_size: IntArray

    def __len__(self) -> int:
        return len(self.emitted_at_s)

    @classmethod
    def empty(cls) -> LocatedEvents:
        """No events."""
        z = np.zeros(0)
        zi = np.zeros(0, np.intp)
        return cls(
            z, z, z, np.zeros((0, 2)), zi, np.zeros((0, 2, 2)), z, z, z, zi, z, z, zi, [],
            np.zeros(0, bool), z, z, np.zeros((0, 2, 2)), z, zi, zi,
        )  # fmt: skip


@dataclass(frozen=True)
class Unassigned:
    """Detections that fit no event, each with a reason code and a message."""

    detection: IntArray
    reason: NDArray[np.str_]
    message: list[str]


@dataclass(frozen=True)
class LocationResult:
    """Output of :func:`locate_detections`: events, and detections left out with their reasons."""

    events: LocatedEvents
    unassigned: Unassigned
    event_of_detection: IntArray


def _dist_ok(dist: FloatArray) -> FloatArray:
    """Distances from a KD-tree query with missing neighbours (inf) replaced by 1 m."""
    return np.where(np.isfinite(dist), dist, 1.0)


def _common_xy(net: SensorNetwork, frame: IntArray, xy_m: FloatArray) -> FloatArray:
    """Positions from their own frames into the first frame's plane (to compare across frames;
    metre-accurate for the short distances compared, anywhere along a long network)."""
    out = np.array(xy_m, np.float64, copy=True)
    for f in np.unique(frame):  # frames, not events
        if f == 0:
            continue
        m = frame == f
        lon, lat = net.frames[f].to_lonlat(xy_m[m, 0], xy_m[m, 1])
        out[m, 0], out[m, 1] = net.frames[0].to_xy(lon, lat)
    return out


def _duplicates(
    res: SolveResult, frame: IntArray, t_ref: FloatArray, groups: IntArray, net: SensorNetwork
) -> BoolArray:
    """Events that repeat a better-supported event (same place and emission time, any frame)."""
    n = len(frame)
    dup = np.zeros(n, bool)
    if n < 2:
        return dup
    xy = _common_xy(net, frame, res.xy_m)
    pts = np.column_stack([xy, (res.t0_s + (t_ref - t_ref.min())) * 340.0])
    pts = np.where(np.isfinite(pts), pts, 1e15)
    pairs = cKDTree(pts).query_pairs(r=150.0, output_type="ndarray")
    if len(pairs) == 0:
        return dup
    i, j = pairs[:, 0], pairs[:, 1]
    # the one with fewer inliers (then the later index) is the duplicate
    worse_j = (res.n_used[j] < res.n_used[i]) | ((res.n_used[j] == res.n_used[i]) & (j > i))
    dup[np.where(worse_j, j, i)] = True
    return dup


def _greedy_assignment(slot: IntArray, det: IntArray, score: FloatArray, n_det: int) -> BoolArray:
    """Edges (slot, detection) kept by a greedy assignment on ``score`` (lowest first): each slot
    and each detection at most once. Runs as rounds of mutual best edges, which accept exactly
    the edges the sequential greedy would, many at a time."""
    n_slot = int(slot.max()) + 1 if len(slot) else 0
    keep = np.zeros(len(slot), bool)
    live = np.ones(len(slot), bool)
    # break ties deterministically: a tiny rank term
    key = score + np.argsort(np.argsort(score, kind="stable"), kind="stable") * 1e-12
    while live.any():  # each round accepts every edge that is the best of both its ends
        idx = np.flatnonzero(live)
        bs = np.full(n_slot, np.inf)
        bd = np.full(n_det, np.inf)
        np.minimum.at(bs, slot[idx], key[idx])
        np.minimum.at(bd, det[idx], key[idx])
        acc = idx[(key[idx] <= bs[slot[idx]]) & (key[idx] <= bd[det[idx]])]
        if len(acc) == 0:
            break
        keep[acc] = True
        s_used = np.zeros(n_slot, bool)
        d_used = np.zeros(n_det, bool)
        s_used[slot[acc]] = True
        d_used[det[acc]] = True
        live &= ~(s_used[slot] | d_used[det])
    return keep


def _held_out(
    ev: IntArray, groups: IntArray, res: SolveResult, sens: IntArray, ok: BoolArray,
    t_pred: FloatArray, var_pred: FloatArray, sig: FloatArray, det_sensor: IntArray,
    det_time_s: FloatArray, n_sensors: int,
) -> tuple[FloatArray, FloatArray]:  # fmt: skip
    """Predicted arrival times and their variances (prediction and timing) at the (event, sensor)
    slots ``sens`` of the events ``ev``; at a sensor whose arrival the event holds as an inlier,
    those of the fit without that arrival.

    The arrival an event holds drew its fit towards itself by its leverage ``h`` (the prediction's
    variance over the timing's): the fit without it predicts ``t_pred - r h / (1 - h)`` (``r`` the
    arrival's residual) with variance ``var_pred / (1 - h)``. Judged against the full fit, an
    arrival of another event that the event took at a sensor where it has leverage confirms
    itself against the event's own arrival beside it.
    """
    g = groups[ev]
    use = (g >= 0) & res.inlier[ev]
    gg = np.where(use, g, 0)
    rows = np.arange(len(ev))[:, None]
    key = (rows * n_sensors + det_sensor[gg])[use]
    o = np.argsort(key)
    key, t_held = key[o], det_time_s[gg][use][o]
    var = sig**2 + np.maximum(var_pred, 0.0)
    if len(key) == 0:
        return t_pred, var
    q = rows * n_sensors + sens
    pos = np.clip(np.searchsorted(key, q), 0, len(key) - 1)
    held = ok & (key[pos] == q)
    # the solver scales its covariance by the reduced chi-square when that exceeds 1
    inflate = np.maximum(1.0, res.chi2[ev] / np.maximum(res.n_used[ev] - 3, 1))[:, None]
    h = np.clip(np.maximum(var_pred, 0.0) / inflate / sig**2, 0.0, 0.95)
    r = np.where(held, t_held[pos] - t_pred, 0.0)
    t_out = np.where(held, t_pred - r * h / (1.0 - h), t_pred)
    return t_out, np.where(held, sig**2 + np.maximum(var_pred, 0.0) / (1.0 - h), var)


def _far_gate(
    index: DetectionIndex, hearing: _Hearing, sens: IntArray, t_pred: FloatArray, var: FloatArray,
    dist: FloatArray, ok: BoolArray, opt: AssociationOptions,
) -> FloatArray:  # fmt: skip
    """The largest squared standardized residual ``(t - t_pred)^2 / var`` at which a detection at
    each (event, sensor) slot is likelier the event's arrival than clutter; infinite within the
    hearing range (there the window alone decides).

    The arrival is heard with probability ``p`` (the network's measured hearing at that
    distance) and falls around the prediction with density ``N(t_pred, var)``; clutter (other
    events' arrivals, false detections) comes at the sensor's local rate ``lam``, its detections
    per second within ``clutter_window_s`` of the prediction. The detection is the arrival when
    ``p N(r; 0, var) > (1 - p) lam``, i.e. ``r^2 / var < 2 log(p / (1 - p)) - 2 log(lam) -
    log(2 pi var)``.
    """
    p = np.clip(hearing.p_at(np.where(ok, dist, 0.0)), 1e-6, 1.0 - 1e-6)
    w = opt.clutter_window_s
    key = index.key(np.where(ok, sens, 0), t_pred)
    n = np.searchsorted(index.keys, key + w) - np.searchsorted(index.keys, key - w)
    lam = np.maximum(n, 1) / (2.0 * w)
    limit = 2.0 * np.log(p / (1.0 - p)) - 2.0 * np.log(lam) - np.log(2.0 * np.pi * var)
    return np.where(dist <= hearing.range_m, np.inf, limit)


def _ghosts(
    res: SolveResult, frame: IntArray, groups: IntArray, det_sensor: IntArray, alive: BoolArray,
    net: SensorNetwork, range_m: float, active: BoolArray, opt: AssociationOptions,
) -> BoolArray:  # fmt: skip
    """Events that too few of the sensors that should hear them heard: ghosts.

    A wrong group of arrivals can fit a position well (a mirror or a mixture of events), but a real
    event is heard by most active sensors within the network's hearing range. The detection
    probability is the median over the events with enough sensors in range; an event whose count
    of inliers is below its binomial ``ghost_p_value`` quantile is a ghost.
    """
    from scipy.special import bdtr  # the binomial cdf (scipy.stats costs ~0.5 s to import)

    ghost = np.zeros(len(alive), bool)
    if opt.ghost_p_value is None or not alive.any():
        return ghost
    n_range = np.zeros(len(alive), np.intp)
    r = opt.ghost_range_fraction * range_m
    k_max = min(64, net.n_sensors)
    for f in range(len(net.frames)):  # frames, not events
        ev = np.flatnonzero(alive & (frame == f))
        if len(ev) == 0:
            continue
        dist, idx = net.trees[f].query(res.xy_m[ev], k=k_max, distance_upper_bound=r)
        ok = np.isfinite(np.atleast_2d(dist))
        idx = np.where(ok, np.atleast_2d(idx), 0)
        n_range[ev] = np.sum(ok & active[idx], axis=1)
    # inliers within the same distance
    use = res.inlier & (groups >= 0)
    s_xy = net.xy_m[frame[:, None], det_sensor[np.where(use, groups, 0)]]
    near = use & (np.hypot(*(s_xy - res.xy_m[:, None, :]).transpose(2, 0, 1)) <= r)
    n_used = np.minimum(near.sum(axis=1), n_range)
    enough = alive & (n_range >= 8)
    if enough.sum() < 20:  # too few events to know the detection probability
        return ghost
    p_d = float(np.clip(np.median(n_used[enough] / n_range[enough]), 0.3, 0.99))
    p = bdtr(n_used, n_range, p_d)
    return np.asarray(alive & (n_range >= 8) & (p < opt.ghost_p_value), bool)


@dataclass(frozen=True)
class _Hearing:
    """How this network hears events: the probability that a recording sensor holds an event's
    arrival, by distance (bins of ``bin_m``), and the range that ends where it falls below
    ``AssociationOptions.hearing_fraction``."""

    range_m: float
    bin_m: float
    p_heard: FloatArray  # (bins,)

    def p_at(self, dist_m: FloatArray) -> FloatArray:
        """The probability of hearing an event at each distance (m)."""
        if len(self.p_heard) == 0:
            return np.ones(np.shape(dist_m))
        b = np.minimum(np.nan_to_num(dist_m, posinf=0.0) // self.bin_m, len(self.p_heard) - 1)
        return np.asarray(self.p_heard[b.astype(np.intp)], np.float64)


def _hearing(
    res: SolveResult, groups: IntArray, alive: BoolArray, net: SensorNetwork, frame: IntArray,
    det_sensor: IntArray, active: BoolArray, opt: AssociationOptions,
) -> _Hearing:  # fmt: skip
    """How far this network hears events (``AssociationOptions.hearing_fraction``), and with what
    probability at each distance.

    The fraction of the recording sensors at each distance (bins of ``hearing_bin_m``) from the
    located events that hold one of their arrivals: the hearing range ends at the last bin where
    that fraction is still ``hearing_fraction`` or more (and at least two arrivals), plus one
    bin. Measured, not assumed: a signal heard to 15 km on one network and to 30 km on another
    gets its own range on each. The fractions themselves (with half an arrival and half a miss
    added to each bin, so that a bin of few pairs is not called certain) are the probabilities.
    """
    everywhere = _Hearing(opt.range_m, opt.hearing_bin_m, np.zeros(0))
    if opt.hearing_fraction is None:
        return everywhere
    use = res.inlier & (groups >= 0) & alive[:, None]
    rows, cols = np.nonzero(use)
    if len(rows) < 200:  # too few to measure
        return everywhere
    s = det_sensor[groups[rows, cols]]
    d_in = np.hypot(*(net.xy_m[frame[rows], s] - res.xy_m[rows]).T)
    k_max = min(64, net.n_sensors)
    d_all: list[FloatArray] = []
    for f in range(len(net.frames)):  # frames, not events
        ev = np.flatnonzero(alive & (frame == f))
        if len(ev) == 0:
            continue
        dist, idx = net.trees[f].query(res.xy_m[ev], k=k_max, distance_upper_bound=opt.range_m)
        dist, idx = np.atleast_2d(dist), np.atleast_2d(idx)
        ok = np.isfinite(dist)
        ok[ok] = active[idx[ok]]
        d_all.append(dist[ok])
    width = opt.hearing_bin_m
    n_bins = int(np.ceil(opt.range_m / width))
    heard = np.bincount(np.minimum(d_in // width, n_bins - 1).astype(np.intp), minlength=n_bins)
    slots = np.bincount(
        np.minimum(np.concatenate(d_all) // width, n_bins - 1).astype(np.intp), minlength=n_bins
    )
    frac = heard / np.maximum(slots, 1)
    p_heard = (heard + 0.5) / (np.maximum(slots, heard) + 1.0)
    hears = np.flatnonzero((frac >= opt.hearing_fraction) & (heard >= 2))
    if len(hears) == 0:
        return _Hearing(opt.range_m, width, p_heard)
    return _Hearing(float(min(opt.range_m, (hears[-1] + 2) * width)), width, p_heard)


def _shared_propagation(
    res: SolveResult, t_ref: FloatArray, alive: BoolArray, opt: AssociationOptions, told: Weather
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray] | None:
    """The prior on the speed of sound and the wind, per time window, after measuring them.

    The network measures them: the median over the well-determined events (at least
    ``shared_min_sensors`` inliers, solved with vague priors) of each ``shared_window_s``. The told
    weather is kept where it is at least as precise as ``shared_c_sigma_mps`` /
    ``shared_wind_sigma_mps`` and agrees with that measurement within 3 sigma (told and measured
    uncertainties combined); elsewhere (weather not told, vague, or contradicted: a wrong
    reading) the measurement is the prior, with the shared sigmas.

    Returns window centres (s), speeds and their sigmas (m/s), winds (east, north) and their
    sigmas (m/s), or None when no window has enough events.
    """
    good = alive & (res.n_used >= opt.shared_min_sensors)
    if good.sum() < 5:
        return None
    t = t_ref[good]
    b = np.floor((t - t.min()) / opt.shared_window_s).astype(np.intp)
    cnt = np.bincount(b)
    keep = np.flatnonzero(cnt >= 5)
    if len(keep) == 0:
        return None
    ts, cs, ws, se_c, se_w = [], [], [], [], []
    for k in keep:  # time windows (a few per hour), not events
        m = b == k
        ts.append(float(np.median(t[m])))
        c_k = res.c_mps[good][m]
        w_k = res.wind_mps[good][m]
        cs.append(float(np.median(c_k)))
        ws.append(np.median(w_k, axis=0))
        # standard error of a median: 1.25 sigma / sqrt(n), sigma from the MAD
        root_n = np.sqrt(m.sum())
        se_c.append(1.25 * 1.4826 * float(np.median(np.abs(c_k - cs[-1]))) / root_n)
        se_w.append(1.25 * 1.4826 * float(np.max(np.median(np.abs(w_k - ws[-1]), axis=0))) / root_n)
    t_b, c_m, w_m = np.array(ts), np.array(cs), np.array(ws)
    c_t, w_t = told.at(t_b)
    sc_t, sw_t = told.sigma_at(t_b)
    keep_c = (sc_t <= opt.shared_c_sigma_mps) & (
        np.abs(c_m - c_t) <= 3.0 * np.sqrt(sc_t**2 + np.array(se_c) ** 2)
    )
    keep_w = (sw_t <= opt.shared_wind_sigma_mps) & (
        np.max(np.abs(w_m - w_t), axis=1) <= 3.0 * np.sqrt(sw_t**2 + np.array(se_w) ** 2)
    )
    return (
        t_b,
        np.where(keep_c, c_t, c_m),
        np.where(keep_c, sc_t, opt.shared_c_sigma_mps),
        np.where(keep_w[:, None], w_t, w_m),
        np.where(keep_w, sw_t, opt.shared_wind_sigma_mps),
    )


def _prior_at(
    prop: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray], t: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Speed of sound, its sigma, wind (N, 2) and its sigma at times ``t`` from the windows' priors."""
    t_b, c_b, sc_b, w_b, sw_b = prop
    w = np.stack([np.interp(t, t_b, w_b[:, 0]), np.interp(t, t_b, w_b[:, 1])], 1)
    return np.interp(t, t_b, c_b), np.interp(t, t_b, sc_b), w, np.interp(t, t_b, sw_b)


def locate_detections(
    net: SensorNetwork,
    det_sensor: IntArray,
    det_time_s: FloatArray,
    *,
    weather: Weather | None = None,
    det_signal: IntArray | None = None,
    det_amplitude_db: FloatArray | None = None,
    association: AssociationOptions | None = None,
    solver: SolverOptions | None = None,
    echo_window_s: float = 3.0,
    amplitude_sigma_db: float = 4.0,
    salvo: SalvoOptions | None = None,
) -> LocationResult:
    """Associate detections into events and locate them; explain every detection left out.

    Parameters
    ----------
    net
        The sensor network.
    det_sensor, det_time_s
        Sensor index and arrival time (POSIX seconds) of each detection.
    weather
        Told weather with its uncertainty, a prior for the speed of sound and the wind (default
        :meth:`Weather.untold`: 15 deg C and calm, both very uncertain).
    det_signal
        Signal code per detection (see :data:`SIGNALS`).
    det_amplitude_db
        Amplitude per detection (NaN when unknown); helps give each detection to the right one of
        two events whose arrivals coincide at a sensor.
    association, solver
        Options; by default the speed of sound and the wind are estimated (with priors).
    echo_window_s
        A later arrival this soon after an event's direct arrival at the same sensor is called an echo.
    salvo
        How located events are grouped into salvos (``LocatedEvents.salvo``).
    """
    a_opt = (association or AssociationOptions()).for_network(net)
    s_opt = solver or SolverOptions(estimate_c=True, estimate_wind=True)
    wx = weather or Weather.untold()
    det_sensor = np.asarray(det_sensor, np.intp)
    det_time_s = np.asarray(det_time_s, np.float64)
    n_det = len(det_sensor)
    sig_code = np.zeros(n_det, np.intp) if det_signal is None else np.asarray(det_signal, np.intp)
    amp = None if det_amplitude_db is None else np.asarray(det_amplitude_db, np.float64)
    det_c, det_w = wx.at(det_time_s)
    det_sc, det_sw = wx.sigma_at(det_time_s)
    event = associate(
        net, det_sensor, det_time_s, det_c, options=a_opt, det_wind_mps=det_w,
        det_c_sigma_mps=det_sc, det_wind_sigma_mps=det_sw,
    )  # fmt: skip
    n_ev = int(event.max()) + 1 if n_det and event.max() >= 0 else 0

    # the prior on the propagation once the network has measured it (None: the first solve, with
    # the told values held only as loosely as untold weather, so that a wrong reading shows)
    prop: tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray] | None = None
    loose_c = 0.606 * UNTOLD_TEMPERATURE_SIGMA_C
    first_solve = True

    def solve(
        groups: IntArray, start: FloatArray | None = None, start_frame: IntArray | None = None,
        robust: bool = False,
    ) -> tuple[SolveResult, IntArray, FloatArray, IntArray]:  # fmt: skip
        """Solve padded groups; with ``start`` (positions in ``start_frame``), from there alone
        (the mode of the likelihood nearest to the start), every detection an inlier unless
        ``robust``."""
        frame, sxy, t_rel, sig, dz, mask, t_ref = gather(net, groups, det_sensor, det_time_s)
        opt = s_opt
        if start is not None:
            assert start_frame is not None
            start = _between_frames(net, start, start_frame, frame)
            opt = replace(s_opt, n_subsets=0) if robust else replace(s_opt, loss="linear", n_subsets=0)
        if prop is None:
            c_e, w_e = wx.at(t_ref)
            sc_e, sw_e = wx.sigma_at(t_ref)
            if a_opt.share_propagation and first_solve:
                sc_e = np.maximum(sc_e, loose_c)
                sw_e = np.maximum(sw_e, UNTOLD_WIND_SIGMA_MPS)
        else:
            # the atmosphere is shared: every event is held near the prior of its time window
            c_e, sc_e, w_e, sw_e = _prior_at(prop, t_ref)
        res = solve_events(
            sxy, t_rel, mask, sig, c_e, w_e, dz, options=opt, c_sigma_mps=sc_e,
            wind_sigma_mps=sw_e, start_xy_m=start, start_only=start is not None,
        )  # fmt: skip
        return res, frame, t_ref, groups

    def solve_m(groups: IntArray) -> tuple[SolveResult, IntArray, FloatArray, IntArray]:
        """:func:`solve`, then events whose sensors lie near one line are solved again from the
        mirror image of their solution across it, robustly, on all their arrivals: the mirror is
        kept when it holds more of them as inliers (or as many, better). Done at every step, so
        that an event on the wrong side does not lose, as outliers, the arrivals of the sensors
        off the line that tell the sides apart."""
        res, frame, t_ref, groups = solve(groups)
        cand = np.flatnonzero(res.ok & (res.n_used >= 4))
        if len(cand) == 0:
            return res, frame, t_ref, groups
        use = res.inlier[cand] & (groups[cand] >= 0)
        lin = _near_linear(net, frame[cand], groups[cand], use, det_sensor, a_opt.mirror_max_ratio)
        if not lin.any():
            return res, frame, t_ref, groups
        li = cand[lin]
        g_in = np.where(use[lin], groups[li], -1)
        mirror = _mirror(net, frame[li], g_in, det_sensor, res.xy_m[li])
        rb, fb, tb, _ = solve(groups[li], mirror, frame[li], robust=True)
        better = rb.ok & (
            (rb.n_used > res.n_used[li]) | ((rb.n_used == res.n_used[li]) & (rb.chi2 < res.chi2[li]))
        )
        if better.any():
            res, groups = _replace_rows(res, groups, li[better], _take(rb, better), groups[li[better]])
            frame, t_ref = frame.copy(), t_ref.copy()
            frame[li[better]], t_ref[li[better]] = fb[better], tb[better]
        return res, frame, t_ref, groups

    index = DetectionIndex.build(
        np.arange(n_det), det_sensor, det_time_s,
        float(det_time_s.max() - det_time_s.min()) + 1e4 if n_det else 1e4,
        float(det_time_s.min()) if n_det else 0.0,
    )  # fmt: skip

    def regather(
        res: SolveResult, frame: IntArray, t_ref: FloatArray, groups: IntArray, alive: BoolArray,
        hearing: _Hearing, far: bool = False,
    ) -> IntArray:  # fmt: skip
        """Each event claims at most one detection at every sensor within the hearing range: of
        the two detections either side of its predicted arrival (within the window), the one under
        which the pair (event, detection) is likeliest, decided for all events at once by a
        greedy assignment (mutual best rounds), so that a detection taken by a better-fitting
        event leaves its slot's other candidate to the event that lost it.

        ``far``: sensors out to the association radius too. Beyond the hearing range an event is
        rarely heard, so a detection there is claimed only when it is likelier the event's
        arrival than another event's or a false one (:func:`_far_gate`), and every claim is
        weighed by the probability that a sensor at its distance hears an event, so that a
        detection goes to the event near it rather than to one that sensor seldom hears."""
        k_max = min(64, net.n_sensors)
        e_rows: list[IntArray] = []
        e_slot: list[IntArray] = []
        e_det: list[IntArray] = []
        e_score: list[FloatArray] = []
        for f in range(len(net.frames)):  # frames, not events
            ev = np.flatnonzero(alive & (frame == f))
            if len(ev) == 0:
                continue
            dist, sens = net.trees[f].query(
                res.xy_m[ev], k=k_max, distance_upper_bound=a_opt.range_m if far else hearing.range_m
            )
            sens = np.atleast_2d(sens)
            ok = np.isfinite(np.atleast_2d(dist))
            sens = np.where(ok, sens, 0)
            sxy = net.xy_m[f][sens]
            g = groups[ev]
            gm = g >= 0
            gg = np.where(gm, g, 0)
            src_elev = nanmedian_rows(np.where(gm, net.elevation_m[det_sensor[gg]], np.nan), 1)
            dz = net.elevation_m[sens] - src_elev[:, None]
            tp, J = predict_arrivals(
                res.xy_m[ev], res.t0_s[ev] + t_ref[ev], res.c_mps[ev], res.wind_mps[ev], sxy, dz,
                s_opt.estimate_c, s_opt.estimate_wind, jac=True,
            )  # fmt: skip
            assert J is not None
            var_pred = np.einsum("nki,nij,nkj->nk", J, res.cov_theta[ev], J)
            sig = net.timing_sigma_ms[sens] * 1e-3
            tp, var = _held_out(
                ev, groups, res, sens, ok, tp, var_pred, sig, det_sensor, det_time_s, net.n_sensors
            )
            tol = np.maximum(a_opt.regather_floor_s, a_opt.regather_sigma * np.sqrt(var))
            level = None
            if amp is not None:
                d_used = np.hypot(*(net.xy_m[f][det_sensor[gg]] - res.xy_m[ev, None, :]).T)
                level = nanmedian_rows(
                    np.where(gm, amp[gg] + 20.0 * np.log10(np.maximum(d_used.T, 1.0)), np.nan), 1
                )
            ev_sig = np.zeros(len(ev), np.intp)
            if det_signal is not None:
                sg = np.where(gm, sig_code[gg], 0)
                n_mb = np.sum(sg == 1, axis=1)
                n_im = np.sum(sg == 2, axis=1)
                ev_sig = np.where(n_mb > n_im, 1, np.where(n_im > n_mb, 2, 0))
            gate = _far_gate(index, hearing, sens, tp, var, dist, ok, a_opt) if far else None
            p_heard = hearing.p_at(np.where(ok, dist, 0.0)) if far else None
            for md, mdist in index.two_nearest(sens, tp, tol, ok):  # below and above the prediction
                hit = md >= 0
                if gate is not None:
                    hit &= mdist**2 / var < gate
                # minus twice the Gaussian log-likelihood of the arrival (and of its amplitude,
                # under spherical spreading from the event's source level, when amplitudes are given)
                score = mdist**2 / var + np.log(var)
                if p_heard is not None:
                    score = score - 2.0 * np.log(np.maximum(p_heard, 1e-6))
                if level is not None and amp is not None:
                    a_pred = level[:, None] - 20.0 * np.log10(np.maximum(_dist_ok(dist), 1.0))
                    za = (amp[np.where(hit, md, 0)] - a_pred) / amplitude_sigma_db
                    score = score + np.where(hit & np.isfinite(za), za * za, 0.0)
                if det_signal is not None:
                    # a muzzle blast and an impact are different events: a known signal that
                    # differs from the event's (majority) signal counts as a 5-sigma misfit
                    d_sig = sig_code[np.where(hit, md, 0)]
                    clash = (ev_sig[:, None] > 0) & (d_sig > 0) & (d_sig != ev_sig[:, None])
                    score = score + np.where(clash, 25.0, 0.0)
                r, c = np.nonzero(hit)
                e_rows.append(ev[r])
                e_slot.append(ev[r] * net.n_sensors + sens[r, c])
                e_det.append(md[r, c])
                e_score.append(score[r, c])
        new_event = np.full(n_det, -1, np.intp)
        if e_rows:
            rows = np.concatenate(e_rows)
            slot = np.concatenate(e_slot)
            dets = np.concatenate(e_det)
            score = np.concatenate(e_score)
            _, slot = np.unique(slot, return_inverse=True)
            win = _greedy_assignment(slot.ravel(), dets, score, n_det)
            new_event[dets[win]] = rows[win]
        return new_event

    groups = pad_groups(event, n_ev, det_time_s)
    res, frame, t_ref, groups = solve_m(groups)
    alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
    active = np.bincount(det_sensor, minlength=net.n_sensors) > 0  # sensors that were recording
    hearing = _hearing(res, groups, alive, net, frame, det_sensor, active, a_opt)
    hear_m = hearing.range_m
    if a_opt.share_propagation:
        prop = _shared_propagation(res, t_ref, alive, a_opt, wx)
    first_solve = False  # from here on the prior is the told weather, or what the network measured
    if prop is not None and a_opt.second_pass_tol_rel is not None:
        # a second association of what the first left out, with the speed of sound the events
        # measured and wider windows: far events under a wrong told temperature and a wind
        left = event < 0
        if left.sum() >= a_opt.min_sensors:
            c2, sc2, w2, sw2 = _prior_at(prop, det_time_s)
            ev2 = associate(
                net, det_sensor, det_time_s, c2, available=left,
                options=replace(a_opt, tol_rel=a_opt.second_pass_tol_rel, max_rounds=3),
                det_wind_mps=w2, det_c_sigma_mps=sc2, det_wind_sigma_mps=sw2,
            )  # fmt: skip
            if (ev2 >= 0).any():
                event = np.where(ev2 >= 0, ev2 + n_ev, event)
                n_ev += int(ev2.max()) + 1
                groups = pad_groups(event, n_ev, det_time_s)
                res, frame, t_ref, groups = solve_m(groups)
                alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)

    def merge_splits(
        res: SolveResult, frame: IntArray, t_ref: FloatArray, groups: IntArray, alive: BoolArray,
        ghost: BoolArray,
    ) -> IntArray | None:  # fmt: skip
        """One event split into two groups looks like two ghosts (each heard by too few of the
        sensors around it): merge a ghost with a nearby event when their union, solved, fits
        every arrival and is heard as an event should be. Returns the new event of each
        detection, or None when nothing merges."""
        cand = np.flatnonzero(ghost)
        part = np.flatnonzero(alive | ghost)
        if len(cand) == 0 or len(part) < 2:
            return None
        t_base = float(np.min(t_ref))
        xy = _common_xy(net, frame, res.xy_m)
        pts = np.column_stack([xy[part], (res.t0_s[part] + t_ref[part] - t_base) * 340.0])
        qts = np.column_stack([xy[cand], (res.t0_s[cand] + t_ref[cand] - t_base) * 340.0])
        k = min(4, len(part))
        d, nb = cKDTree(pts).query(qts, k=k, distance_upper_bound=a_opt.merge_radius_m)
        d, nb = np.asarray(d).reshape(len(cand), k), np.asarray(nb).reshape(len(cand), k)
        okp = np.isfinite(d)
        j = part[np.where(okp, nb, 0)]
        okp &= j != cand[:, None]
        ii = [np.broadcast_to(cand[:, None], j.shape)[okp]]
        jj = [j[okp]]
        pi, pj = np.concatenate(ii), np.concatenate(jj)
        if len(pi) == 0:
            return None
        both = np.concatenate([groups[pi], groups[pj]], axis=1)
        srt = np.sort(np.where(both >= 0, det_sensor[np.where(both >= 0, both, 0)], -1), axis=1)
        clash = np.any((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0), axis=1)
        pi, pj, both = pi[~clash], pj[~clash], both[~clash]
        if len(pi) == 0:
            return None
        # pack the union to the left, then solve every candidate union at once
        order = np.argsort(both < 0, axis=1, kind="stable")
        both = np.take_along_axis(both, order, axis=1)
        rm, fm, _, gm = solve(both)
        n_in = (both >= 0).sum(axis=1)
        good = rm.ok & (rm.n_used >= np.ceil(0.9 * n_in))
        good &= ~_ghosts(rm, fm, gm, det_sensor, good, net, hear_m, active, a_opt)
        if not good.any():
            return None
        # each event in one merge at most, the best-supported unions first
        gi, gj, gn = pi[good], pj[good], rm.n_used[good]
        win = _greedy_assignment(gi, gj, -gn.astype(np.float64), len(alive))
        gi, gj = gi[win], gj[win]
        drop = np.isin(gj, gi)
        gi, gj = gi[~drop], gj[~drop]
        label = np.full(len(alive), -1, np.intp)
        label[part] = part
        label[gj] = gi
        out = np.full(n_det, -1, np.intp)
        rows, cols = np.nonzero(groups >= 0)
        out[groups[rows, cols]] = label[rows]
        return out

    def drop_ghosts(
        res: SolveResult, frame: IntArray, t_ref: FloatArray, groups: IntArray, alive: BoolArray
    ) -> tuple[SolveResult, IntArray, FloatArray, IntArray, BoolArray, bool]:
        """A group that stays small where many sensors should have heard it is a ghost, or half
        of an event split in two: merge the halves, drop the ghosts."""
        ghost = _ghosts(res, frame, groups, det_sensor, alive, net, hear_m, active, a_opt)
        if not ghost.any():
            return res, frame, t_ref, groups, alive, False
        merged = merge_splits(res, frame, t_ref, groups, alive & ~ghost, ghost)
        if merged is not None:
            groups = pad_groups(merged, n_ev, det_time_s)
            res, frame, t_ref, groups = solve_m(groups)
            alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
            ghost = _ghosts(res, frame, groups, det_sensor, alive, net, hear_m, active, a_opt)
        return res, frame, t_ref, groups, alive & ~ghost, True

    previous: IntArray | None = event
    ghosts_tested = False
    for _ in range(a_opt.regather_rounds):  # a few rounds, each vectorised over all events
        new_event = regather(res, frame, t_ref, groups, alive, hearing)
        if previous is not None and np.array_equal(new_event, previous):
            # converged: every event holds what it predicts. Only now test for ghosts (an event
            # whose first solution was off still has to claim its arrivals), then go on without
            if ghosts_tested:
                break
            ghosts_tested = True
            res, frame, t_ref, groups, alive, changed = drop_ghosts(res, frame, t_ref, groups, alive)
            if not changed:
                break
            previous = None
            continue
        previous = new_event
        groups = pad_groups(new_event, n_ev, det_time_s)
        res, frame, t_ref, groups = solve_m(groups)
        alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
    if not ghosts_tested:
        res, frame, t_ref, groups, alive, _ = drop_ghosts(res, frame, t_ref, groups, alive)
    if a_opt.far_claims and hearing.range_m < a_opt.range_m:
        # the events, settled on what the sensors within the hearing range heard, claim the
        # arrivals of the sensors beyond it that they explain (claimed in every round, a false
        # detection there drags an event whose sensors all lie on one side, by a speed of sound
        # and an emission time a little off, until it loses its genuine arrivals)
        new_event = regather(res, frame, t_ref, groups, alive, hearing, far=True)
        groups = pad_groups(new_event, n_ev, det_time_s)
        res, frame, t_ref, groups = solve_m(groups)
        alive = alive & res.ok
    res2, frame2, t_ref2, groups2 = res, frame, t_ref, groups
    n_min = max(a_opt.min_sensors - 1, s_opt.min_sensors)
    # mirror solutions: the likelihood of sensors near one line has a second mode across it.
    # Each mode's posterior mass decides which is the event's position and which its alternative
    n_all = len(alive)
    alt_xy = np.full((n_all, 2), np.nan)
    alt_frame = frame2.copy()
    alt_cov = np.full((n_all, 2, 2), np.nan)
    alt_w = np.zeros(n_all)
    cand = np.flatnonzero(alive & (res2.n_used >= n_min))
    lin = _near_linear(net, frame2[cand], groups2[cand], res2.inlier[cand] & (groups2[cand] >= 0),
                       det_sensor, a_opt.mirror_max_ratio)  # fmt: skip
    if lin.any():
        li = cand[lin]
        g = np.where(res2.inlier[li] & (groups2[li] >= 0), groups2[li], -1)
        g = np.take_along_axis(g, np.argsort(g < 0, axis=1, kind="stable"), axis=1)
        mirror = _mirror(net, frame2[li], g, det_sensor, res2.xy_m[li])
        ra, fa, _, _ = solve(g, res2.xy_m[li], frame2[li])
        rb, fb, tb, _ = solve(g, mirror, frame2[li])
        dof = np.maximum(ra.n_used - 3, 1)
        temper = np.maximum(1.0, np.minimum(ra.chi2, rb.chi2) / dof)
        # the posterior mass of each mode (Laplace): exp(-chi2 / 2) sqrt(det cov)
        logw_a = -ra.chi2 / (2 * temper) + 0.5 * np.log(np.maximum(np.linalg.det(ra.cov_m2), 1e-12))
        logw_b = -rb.chi2 / (2 * temper) + 0.5 * np.log(np.maximum(np.linalg.det(rb.cov_m2), 1e-12))
        w_b = 1.0 / (1.0 + np.exp(np.clip(logw_a - logw_b, -700, 700)))
        # the same mode twice (the mirror start fell back) is no second mode
        d_ab = np.hypot(*(_between_frames(net, rb.xy_m, fb, fa) - ra.xy_m).T)
        lam = np.linalg.eigvalsh(ra.cov_m2)[:, -1]
        distinct = rb.ok & ra.ok & (d_ab > 3.0 * np.sqrt(np.maximum(lam, 0.0)) + 10.0)
        w_b = np.where(distinct, w_b, 0.0)
        swap = w_b > 0.5
        if swap.any():  # the mirror is the more probable: it becomes the event's solution
            sw = li[swap]
            res2, groups2 = _replace_rows(res2, groups2, sw, _take(rb, swap), g[swap])
            frame2, t_ref2 = frame2.copy(), t_ref2.copy()
            frame2[sw], t_ref2[sw] = fb[swap], tb[swap]
        alt_xy[li] = np.where(swap[:, None], ra.xy_m, rb.xy_m)
        alt_frame[li] = np.where(swap, fa, fb)
        alt_cov[li] = np.where(swap[:, None, None], ra.cov_m2, rb.cov_m2)
        alt_w[li] = np.where(swap, 1.0 - w_b, w_b)
    # every event emitted must fit one source: its residuals pass a chi-square test, and no arrival
    # is later than the others allow (echoes and multipath arrivals are only ever late); one that
    # fails sheds the arrival whose removal improves the fit most (the largest studentized deleted
    # residual, so that one late arrival at a precise sensor that drags the fit does not cost the
    # genuine arrivals of the noisier ones) and is solved again robustly on the rest, a few times,
    # else is left out
    inconsistent = np.zeros(len(alive), bool)
    if a_opt.consistency_level is not None:
        from scipy.special import chdtri  # the chi-square quantile (scipy.stats: ~0.5 s to import)

        for rnd in range(a_opt.consistency_rounds + 1):
            live = alive & (res2.n_used >= n_min)
            limit = chdtri(np.maximum(res2.n_used - 3, 1), 1.0 - a_opt.consistency_level)
            z_del = _deleted_residuals(net, res2, groups2, det_sensor, det_time_s, s_opt)
            late = np.nanmax(np.where(res2.inlier, z_del, -np.inf), axis=1) > a_opt.late_sigma
            late &= res2.n_used > n_min
            bad = np.flatnonzero(live & ((res2.chi2 > limit) | late))
            if len(bad) == 0:
                break
            if rnd == a_opt.consistency_rounds:
                still = bad[res2.chi2[bad] > limit[bad]]
                inconsistent[still] = True
                alive = alive & ~inconsistent
                break
            use = res2.inlier[bad] & (groups2[bad] >= 0)
            score = np.where(use, np.nan_to_num(np.abs(z_del[bad]), nan=np.inf), -1.0)
            worst = np.argmax(score, axis=1)
            # the robust solve from the current fix reconsiders the arrivals it called outliers
            keep_slot = groups2[bad] >= 0
            keep_slot[np.arange(len(bad)), worst] = False
            g = np.where(keep_slot, groups2[bad], -1)
            o = np.argsort(~keep_slot, axis=1, kind="stable")
            g = np.take_along_axis(g, o, axis=1)
            rs, fs, ts, gs = solve(g, res2.xy_m[bad], frame2[bad], robust=True)
            # an event that the robust solve lost keeps its previous inliers less the worst
            lost = ~rs.ok | (rs.n_used < n_min)
            if lost.any():
                use[np.arange(len(bad)), worst] = False
                gl = np.where(use[lost], groups2[bad[lost]], -1)
                gl = np.take_along_axis(gl, np.argsort(gl < 0, axis=1, kind="stable"), axis=1)
                rl, fl, tl, _ = solve(gl, res2.xy_m[bad[lost]], frame2[bad[lost]])
                rs, gs = _replace_rows(rs, gs, np.flatnonzero(lost), rl, gl)
                fs, ts = fs.copy(), ts.copy()
                fs[lost], ts[lost] = fl, tl
            res2, groups2 = _replace_rows(res2, groups2, bad, rs, gs)
            frame2, t_ref2 = frame2.copy(), t_ref2.copy()
            frame2[bad], t_ref2[bad] = fs, ts
    used = np.zeros(groups2.shape, bool)
    used[:] = res2.inlier & (groups2 >= 0)
    keep = alive & (res2.n_used >= n_min)
    final_event = np.full(n_det, -1, np.intp)
    new_ids = np.cumsum(keep) - 1
    rows, cols = np.nonzero(used & keep[:, None])
    final_event[groups2[rows, cols]] = new_ids[rows]

    ev_idx = np.flatnonzero(keep)
    xy_out = res2.xy_m[ev_idx]
    cov = res2.cov_m2[ev_idx]
    t0_out = res2.t0_s[ev_idx] + t_ref2[ev_idx]
    frame_out = frame2[ev_idx]
    ambiguous = alt_w[ev_idx] >= a_opt.ambiguity_min_weight
    alt_weight = np.where(ambiguous, alt_w[ev_idx], 0.0)
    lon, lat = _lonlat(net, frame_out, xy_out)
    alt_lon, alt_lat = _lonlat(net, alt_frame[ev_idx], np.where(ambiguous[:, None], alt_xy[ev_idx], 0.0))
    alt_lon = np.where(ambiguous, alt_lon, np.nan)
    alt_lat = np.where(ambiguous, alt_lat, np.nan)
    alt_cov_out = np.where(ambiguous[:, None, None], alt_cov[ev_idx], np.nan)
    smaj, smin, orient = error_ellipse(cov)
    dets = [groups2[i][used[i]] for i in ev_idx]  # output assembly only
    # signal: most common known code among the used detections
    sg = np.where(used, sig_code[np.where(groups2 >= 0, groups2, 0)], -1)[ev_idx]
    counts = np.stack([(sg == s).sum(axis=1) for s in range(len(SIGNALS))], axis=1)
    counts[:, 0] = 0
    signal = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), 0)
    salvos = find_salvos(_common_xy(net, frame_out, xy_out), t0_out, cov, signal, salvo)
    events = LocatedEvents(
        emitted_at_s=t0_out,
        lon=lon,
        lat=lat,
        xy_m=xy_out,
        frame=frame_out,
        cov_m2=cov,
        semi_major_m=smaj,
        semi_minor_m=smin,
        orientation_deg=orient,
        n_sensors=res2.n_used[ev_idx],
        residual_rms_ms=res2.rms_ms[ev_idx],
        c_mps=res2.c_mps[ev_idx],
        signal=signal.astype(np.intp),
        detections=dets,
        ambiguous=ambiguous,
        alt_lon=alt_lon,
        alt_lat=alt_lat,
        alt_cov_m2=alt_cov_out,
        alt_weight=alt_weight,
        salvo=salvos.first,
        salvo_size=salvos.size,
    )
    unassigned = _explain(
        net, final_event, new_event, event, keep, new_ids, det_sensor, det_time_s, echo_window_s,
        a_opt.min_sensors, inconsistent,
    )  # fmt: skip
    return LocationResult(events, unassigned, final_event)


def _take(res: SolveResult, rows: BoolArray | IntArray) -> SolveResult:
    """The solutions of some events."""
    return SolveResult(**{f: getattr(res, f)[rows] for f in SolveResult.__dataclass_fields__})


def _replace_rows(
    res: SolveResult, groups: IntArray, rows: IntArray, sub: SolveResult, sub_groups: IntArray
) -> tuple[SolveResult, IntArray]:
    """``res`` and ``groups`` with the given rows replaced by a solve of fewer columns (padded)."""
    k = groups.shape[1]
    out: dict[str, NDArray[Any]] = {}
    for f in SolveResult.__dataclass_fields__:
        a = np.array(getattr(res, f), copy=True)
        b = getattr(sub, f)
        if a.ndim == 2 and a.shape[1] == k and f in ("inlier", "residual_s"):
            fill = False if f == "inlier" else np.nan
            b = np.concatenate([b, np.full((len(rows), k - b.shape[1]), fill, dtype=a.dtype)], axis=1)
        a[rows] = b
        out[f] = a
    g = groups.copy()
    g[rows] = np.concatenate(
        [sub_groups, np.full((len(rows), k - sub_groups.shape[1]), -1, np.intp)], axis=1
    )
    return SolveResult(**out), g


def _lonlat(net: SensorNetwork, frame: IntArray, xy: FloatArray) -> tuple[FloatArray, FloatArray]:
    """WGS84 lon, lat of positions given in their own frames."""
    lon = np.full(len(frame), np.nan)
    lat = np.full(len(frame), np.nan)
    for f in np.unique(frame):  # frames, not events
        m = frame == f
        lon[m], lat[m] = net.frames[int(f)].to_lonlat(xy[m, 0], xy[m, 1])
    return lon, lat


def _between_frames(net: SensorNetwork, xy: FloatArray, f_from: IntArray, f_to: IntArray) -> FloatArray:
    """Positions moved from the frames ``f_from`` into the frames ``f_to``."""
    out = np.array(xy, np.float64, copy=True)
    moved = f_from != f_to
    if not moved.any():
        return out
    lon, lat = _lonlat(net, f_from[moved], out[moved])
    idx = np.flatnonzero(moved)
    for f in np.unique(f_to[moved]):  # frames, not events
        m = f_to[moved] == f
        out[idx[m], 0], out[idx[m], 1] = net.frames[int(f)].to_xy(lon[m], lat[m])
    return out


def _deleted_residuals(
    net: SensorNetwork,
    res: SolveResult,
    groups: IntArray,
    det_sensor: IntArray,
    det_time_s: FloatArray,
    s_opt: SolverOptions,
) -> FloatArray:
    """Studentized deleted residuals (E, K) of the inliers (NaN elsewhere): each arrival's residual
    over its standard deviation under a fit without it, ``r / (sigma sqrt(1 - h))`` with ``h`` the
    arrival's leverage (its weight times its prediction's variance under the fit's information).
    Positive: later than predicted."""
    _, sxy, _, sig, dz, mask, _ = gather(net, groups, det_sensor, det_time_s)
    _, J = predict_arrivals(
        res.xy_m, res.t0_s, res.c_mps, res.wind_mps, sxy, dz, s_opt.estimate_c, s_opt.estimate_wind,
        jac=True,
    )  # fmt: skip
    assert J is not None
    dof = np.maximum(res.n_used - 3, 1)
    inflate = np.maximum(1.0, res.chi2 / dof)
    cov = res.cov_theta / inflate[:, None, None]  # the information's inverse, unscaled
    h = np.einsum("nki,nij,nkj->nk", J, cov, J) / sig**2
    h = np.clip(np.nan_to_num(h, nan=0.0), 0.0, 0.95)
    use = res.inlier & mask
    return np.where(use, res.residual_s / (sig * np.sqrt(1.0 - h)), np.nan)


def _principal_axes(
    net: SensorNetwork, frame: IntArray, groups: IntArray, use: BoolArray, det_sensor: IntArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Centroid (E, 2), principal direction (E, 2) and the ratio of the spreads across and along
    it (E,) of each event's sensors."""
    g = np.where(use, groups, 0)
    sxy = net.xy_m[frame[:, None], det_sensor[g]]
    n = np.maximum(use.sum(axis=1), 1)[:, None]
    m = np.sum(np.where(use[..., None], sxy, 0.0), axis=1) / n
    d = np.where(use[..., None], sxy - m[:, None, :], 0.0)
    cxx = np.sum(d[..., 0] ** 2, axis=1)
    cyy = np.sum(d[..., 1] ** 2, axis=1)
    cxy = np.sum(d[..., 0] * d[..., 1], axis=1)
    half = 0.5 * (cxx + cyy)
    disc = np.sqrt(np.maximum(0.25 * (cxx - cyy) ** 2 + cxy**2, 0.0))
    l1, l2 = half + disc, np.maximum(half - disc, 0.0)
    ang = 0.5 * np.arctan2(2 * cxy, cxx - cyy)
    e1 = np.stack([np.cos(ang), np.sin(ang)], axis=1)
    return m, e1, np.sqrt(l2 / np.maximum(l1, 1e-9))


def _near_linear(
    net: SensorNetwork, frame: IntArray, groups: IntArray, use: BoolArray, det_sensor: IntArray,
    max_ratio: float,
) -> BoolArray:  # fmt: skip
    """Events whose sensors lie near one line: the spread across their principal axis (the
    smaller singular value of the centred positions) at most ``max_ratio`` of the spread along."""
    if len(frame) == 0:
        return np.zeros(0, bool)
    _, _, ratio = _principal_axes(net, frame, groups, use, det_sensor)
    return np.asarray(ratio <= max_ratio, bool)


def _mirror(
    net: SensorNetwork, frame: IntArray, groups: IntArray, det_sensor: IntArray, xy: FloatArray
) -> FloatArray:
    """The mirror images of positions across the principal axis of each event's sensors."""
    m, e1, _ = _principal_axes(net, frame, groups, groups >= 0, det_sensor)
    d = xy - m
    along = np.sum(d * e1, axis=1)[:, None] * e1
    return np.asarray(m + 2.0 * along - d, np.float64)


def _explain(
    net: SensorNetwork,
    final_event: IntArray,
    gathered_event: IntArray,
    associated_event: IntArray,
    keep: BoolArray,
    new_ids: IntArray,
    det_sensor: IntArray,
    det_time_s: FloatArray,
    echo_window_s: float,
    min_sensors: int,
    inconsistent: BoolArray,
) -> Unassigned:
    """A reason for every detection that is in no located event."""
    left = np.flatnonzero(final_event < 0)
    reason = np.full(len(left), "no_event", dtype=object)
    near = np.full(len(left), -1, np.intp)
    dt = np.full(len(left), np.nan)
    used = np.flatnonzero(final_event >= 0)
    if len(used) and len(left):
        t_base = float(det_time_s.min())
        stride = float(det_time_s.max() - t_base) + 1e4
        keys = det_sensor[used] * stride + (det_time_s[used] - t_base)
        o = np.argsort(keys)
        keys, used = keys[o], used[o]
        q = det_sensor[left] * stride + (det_time_s[left] - t_base)
        # the latest used (direct) arrival at the same sensor before this detection
        pos = np.searchsorted(keys, q, side="right") - 1
        posc = np.clip(pos, 0, len(keys) - 1)
        same = (pos >= 0) & (det_sensor[used[posc]] == det_sensor[left])
        dt = np.where(same, det_time_s[left] - det_time_s[used[posc]], np.nan)
        echo = same & (dt > 0) & (dt <= echo_window_s)
        near = np.where(echo, final_event[used[posc]], -1)
        reason[echo] = "echo"
    g = gathered_event[left]
    was = np.where(g >= 0, g, associated_event[left])
    gi = np.clip(g, 0, max(len(keep) - 1, 0))
    in_kept = (g >= 0) & keep[gi] if len(keep) else np.zeros(len(left), bool)
    outlier = in_kept & (reason == "no_event")
    reason[outlier] = "outlier"
    if outlier.any():
        near = np.where(outlier, new_ids[gi], near)
    mixed = (g >= 0) & inconsistent[gi] & (reason == "no_event") if len(keep) else in_kept & False
    reason[mixed] = "inconsistent"
    small = (was >= 0) & ~in_kept & (reason == "no_event")
    reason[small] = "too_few_sensors"
    msgs: list[str] = []
    sid = net.sensor_id[det_sensor[left]]
    for i in range(len(left)):  # message formatting for people, not a numeric path
        r = reason[i]
        if r == "echo":
            msgs.append(
                f"later arrival at sensor {sid[i]} {dt[i] * 1e3:.0f} ms after the direct arrival used "
                f"by event {near[i]}: an echo or a reverberation; kept out of the solution"
            )
        elif r == "outlier":
            msgs.append(
                f"arrival at sensor {sid[i]} does not fit event {near[i]} (residual beyond the outlier "
                f"threshold): an echo, interference or a wrong association"
            )
        elif r == "inconsistent":
            msgs.append(
                f"arrival at sensor {sid[i]} was grouped with arrivals that do not fit one source "
                f"(the chi-square of their residuals stayed beyond its 99 % quantile after the worst "
                f"were dropped): two events mixed, or echoes; left out rather than located wrong"
            )
        elif r == "too_few_sensors":
            msgs.append(
                f"grouped with too few other detections to locate an event (at least {min_sensors} "
                f"sensors are needed), or with a group that most of the sensors around its position "
                f"did not hear (a ghost of other events); check that the neighbouring sensors were "
                f"recording"
            )
        else:
            msgs.append(
                f"no located event predicts an arrival at sensor {sid[i]} near this time: a false "
                f"detection, or an event heard by fewer than {min_sensors} sensors"
            )
    return Unassigned(left.astype(np.intp), reason.astype(str), msgs)
