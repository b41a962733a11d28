"""Batched maximum-likelihood location of events from their arrival times, and its bounds.

:func:`solve_events` runs one Levenberg-Marquardt over all events at once (closed-form and
random-subset starts, robust soft-L1 IRLS, outlier rejection, then plain maximum likelihood on
the inliers); :func:`cramer_rao_bound` and :func:`error_ellipse` say how well a geometry can do.
:func:`predict_arrivals` and :func:`nanmedian_rows` serve the package's other modules too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from truceline.core.arrays import BoolArray, FloatArray, IntArray

__all__ = [
    "SolveResult",
    "SolverOptions",
    "cramer_rao_bound",
    "error_ellipse",
    "solve_events",
]


@dataclass(frozen=True)
class SolverOptions:
    """Options of :func:`solve_events`.

    Attributes
    ----------
    estimate_c
        Estimate the speed of sound (with a Gaussian prior around the told value, so that it only
        moves where the geometry constrains it).
    estimate_wind
        Estimate the wind vector too (prior around the told wind).
    c_prior_sigma_mps, wind_prior_sigma_mps
        Prior standard deviations (6 m/s is about 10 deg C).
    loss
        ``"soft_l1"`` (IRLS, then outliers dropped and plain ML on the inliers) or ``"linear"``.
    soft_l1_scale
        Soft-L1 scale, in units of each detection's sigma.
    outlier_sigma
        Residuals beyond this many (robustly scaled) sigmas are dropped after the robust phase.
    n_subsets
        Random 4-sensor subsets tried as closed-form starts (consensus against echoes).
    min_sensors
        Events with fewer inliers than this are not located.
    """

    estimate_c: bool = False
    estimate_wind: bool = False
    c_prior_sigma_mps: float = 6.0
    wind_prior_sigma_mps: float = 5.0
    loss: Literal["soft_l1", "linear"] = "soft_l1"
    soft_l1_scale: float = 3.0
    outlier_sigma: float = 4.0
    max_iter: int = 25
    n_subsets: int = 6
    min_sensors: int = 4
    seed: int = 0


@dataclass(frozen=True)
class SolveResult:
    """Per-event solution of :func:`solve_events` (N events, K sensor slots).

    ``t0_s`` is relative to the ``t_ref_s`` given to the solver; ``cov_m2`` is the position block of
    the inverse Fisher information (plus priors) at the solution, scaled up by the reduced chi-square
    when that exceeds 1; ``cov_theta`` is the whole (P, P) matrix over (x, y, t0[, c][, wx, wy]);
    ``chi2`` is the sum of the inliers' squared normalised residuals.
    """

    xy_m: FloatArray
    t0_s: FloatArray
    c_mps: FloatArray
    wind_mps: FloatArray
    cov_m2: FloatArray
    cov_theta: FloatArray
    inlier: BoolArray
    residual_s: FloatArray
    rms_ms: FloatArray
    n_used: IntArray
    ok: BoolArray
    chi2: FloatArray


def predict_arrivals(
    pos: FloatArray,
    t0: FloatArray,
    c: FloatArray,
    wind: FloatArray,
    sxy: FloatArray,
    dz: FloatArray,
    est_c: bool,
    est_w: bool,
    jac: bool,
) -> tuple[FloatArray, FloatArray | None]:
    """Predicted arrival times (N, K) and their Jacobian (N, K, P) w.r.t. (x, y, t0[, c][, wx, wy])."""
    dx = sxy[..., 0] - pos[:, 0, None]
    dy = sxy[..., 1] - pos[:, 1, None]
    d = np.sqrt(dx * dx + dy * dy + dz * dz)
    d = np.maximum(d, 1e-3)
    ux = dx / d
    uy = dy / d
    wx = wind[:, 0, None]
    wy = wind[:, 1, None]
    wu = wx * ux + wy * uy
    v = c[:, None] + wu
    tt = d / v
    t = t0[:, None] + tt
    if not jac:
        return t, None
    inv_v = 1.0 / v
    inv_v2 = inv_v * inv_v
    cols = [
        -ux * inv_v + (wx - wu * ux) * inv_v2,
        -uy * inv_v + (wy - wu * uy) * inv_v2,
        np.ones_like(t),
    ]
    if est_c:
        cols.append(-d * inv_v2)
    if est_w:
        cols.append(-dx * inv_v2)
        cols.append(-dy * inv_v2)
    return t, np.stack(cols, axis=-1)


def _normal(J: FloatArray, w: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
    """A = J^T W J and g = J^T W r for weights (N, K)."""
    n, _, p = J.shape
    A = np.empty((n, p, p))
    g = np.empty((n, p))
    for i in range(p):  # at most 6 parameters; each product is vectorised over events
        wi = J[..., i] * w
        g[:, i] = np.sum(wi * r, axis=1)
        for j in range(i, p):
            A[:, i, j] = A[:, j, i] = np.sum(wi * J[..., j], axis=1)
    return A, g


def _closed_form_start(
    sxy: FloatArray, t: FloatArray, mask: BoolArray, c: FloatArray
) -> tuple[FloatArray, FloatArray, BoolArray]:
    """Spherical-interpolation closed form (linear in x, y and the range to the first sensor).

    Returns the position (N, 2), emission time (N,) and whether the solve was possible.
    """
    n = len(t)
    tm = np.where(mask, t, np.inf)
    ref = np.argmin(tm, axis=1)
    rows = np.arange(n)
    sref = sxy[rows, ref]
    tref = t[rows, ref]
    sp = sxy - sref[:, None, :]
    delta = c[:, None] * (t - tref[:, None])
    m = mask.copy()
    m[rows, ref] = False
    # 2 s'.x + 2 delta r0 = |s'|^2 - delta^2
    M = np.stack([2 * sp[..., 0], 2 * sp[..., 1], 2 * delta], axis=-1)
    b = np.sum(sp * sp, axis=-1) - delta * delta
    A, g = _normal(M, m.astype(np.float64), b)
    det = np.linalg.det(A)
    scale = np.einsum("nii->n", A) ** 3 + 1e-300
    ok = (m.sum(axis=1) >= 3) & (np.abs(det) > 1e-12 * scale)
    A[~ok] = np.eye(3)
    g[~ok] = 0.0
    sol = np.linalg.solve(A, g[..., None])[..., 0]
    xp = sol[:, :2]
    pos = sref + xp
    t0 = tref - np.hypot(xp[:, 0], xp[:, 1]) / c
    return pos, t0, ok & np.all(np.isfinite(sol), axis=1)


def nanmedian_rows(a: FloatArray, axis: int = 1) -> FloatArray:
    """Row medians ignoring NaN (NaN for an all-NaN row, without a warning)."""
    assert axis == 1
    srt = np.sort(a, axis=1)  # NaN sort last
    cnt = np.sum(~np.isnan(a), axis=1)
    r = np.arange(a.shape[0])
    lo = srt[r, np.maximum((cnt - 1) // 2, 0)]
    hi = srt[r, np.maximum(cnt // 2, 0).clip(max=max(a.shape[1] - 1, 0))]
    return np.where(cnt > 0, 0.5 * (lo + hi), np.nan)


def _soft_l1(z2: FloatArray) -> FloatArray:
    return 2.0 * (np.sqrt(1.0 + z2) - 1.0)


def _start_cost(
    pos: FloatArray,
    sxy: FloatArray,
    dz: FloatArray,
    t: FloatArray,
    sig: FloatArray,
    mask: BoolArray,
    c: FloatArray,
    scale: float,
) -> tuple[FloatArray, FloatArray]:
    """Emission time (weighted median of the implied ones) and soft-L1 cost of a start position."""
    dx = sxy[..., 0] - pos[:, 0, None]
    dy = sxy[..., 1] - pos[:, 1, None]
    implied = t - np.sqrt(dx * dx + dy * dy + dz * dz) / c[:, None]
    # median of the implied emission times over the detections (masked ones sorted last)
    srt = np.sort(np.where(mask, implied, np.inf), axis=1)
    cnt = mask.sum(axis=1)
    t0 = srt[np.arange(len(t)), np.maximum((cnt - 1) // 2, 0)]
    t0 = np.where(np.isfinite(t0), t0, 0.0)
    z2 = ((implied - t0[:, None]) / (sig * scale)) ** 2
    cost = np.sum(np.where(mask, _soft_l1(z2), 0.0), axis=1) * scale**2
    return t0, np.where(np.isfinite(cost), cost, np.inf)


def solve_events(
    sensor_xy_m: FloatArray,
    arrival_s: FloatArray,
    mask: BoolArray,
    timing_sigma_s: FloatArray,
    c_mps: FloatArray,
    wind_mps: FloatArray | None = None,
    dz_m: FloatArray | None = None,
    *,
    options: SolverOptions | None = None,
    start_xy_m: FloatArray | None = None,
    c_sigma_mps: ArrayLike | None = None,
    wind_sigma_mps: ArrayLike | None = None,
    start_only: bool = False,
) -> SolveResult:
    """Locate N events at once from padded arrays of arrival times.

    Parameters
    ----------
    sensor_xy_m
        (N, K, 2) sensor positions in each event's frame (metres).
    arrival_s
        (N, K) arrival times in seconds relative to any per-event reference (keep it small).
    mask
        (N, K) which slots hold a detection.
    timing_sigma_s
        (N, K) timing standard deviation of each detection (s).
    c_mps, wind_mps
        (N,) told speed of sound and (N, 2) told wind (east, north), the priors when estimated.
    dz_m
        (N, K) sensor height above the source (m); default 0.
    options
        Solver options.
    start_xy_m
        (N, 2) optional starting positions (e.g. from association); closed-form starts are also tried.
    c_sigma_mps, wind_sigma_mps
        (N,) prior standard deviations of the speed of sound and of each wind component around the
        told values (the weather's stated uncertainty); default the options' scalars. The estimate
        is then the maximum a posteriori one, and the covariance carries the prior's information.
    start_only
        Start from ``start_xy_m`` alone (to find the mode of the likelihood nearest to it, e.g. the
        mirror image of a solution across a near-linear array).

    Returns
    -------
    SolveResult
    """
    opt = options or SolverOptions()
    n, k = arrival_s.shape
    mask = np.asarray(mask, bool) & np.isfinite(arrival_s)
    t_obs = np.where(mask, arrival_s, 0.0)
    sig = np.where(mask, timing_sigma_s, 1.0)
    dz = np.zeros((n, k)) if dz_m is None else np.asarray(dz_m, np.float64)
    c_told = np.asarray(c_mps, np.float64) * np.ones(n)
    w_told = np.zeros((n, 2)) if wind_mps is None else np.asarray(wind_mps, np.float64) * np.ones((n, 2))
    est_c, est_w = opt.estimate_c, opt.estimate_wind
    n_par = 3 + int(est_c) + 2 * int(est_w)
    prior_prec = np.zeros((n, n_par))
    if est_c:
        sc = opt.c_prior_sigma_mps if c_sigma_mps is None else c_sigma_mps
        prior_prec[:, 3] = 1.0 / np.broadcast_to(np.asarray(sc, np.float64), n) ** 2
    if est_w:
        sw = opt.wind_prior_sigma_mps if wind_sigma_mps is None else wind_sigma_mps
        prior_prec[:, -2:] = (1.0 / np.broadcast_to(np.asarray(sw, np.float64), n) ** 2)[:, None]
    rng = np.random.default_rng(opt.seed)
    n_obs = mask.sum(axis=1)

    # ---- start: closed form on all sensors; where that fits badly (echoes, wrong associations),
    # also on random 4-sensor subsets and the given start, keeping the best robust fit
    first = np.argmin(np.where(mask, t_obs, np.inf), axis=1)
    rows = np.arange(n)
    pos, _, ok_all = _closed_form_start(sensor_xy_m, t_obs, mask, c_told)
    pos = np.where(ok_all[:, None] & np.isfinite(pos), pos, sensor_xy_m[rows, first] + 1.0)
    t0, cost0 = _start_cost(pos, sensor_xy_m, dz, t_obs, sig, mask, c_told, opt.soft_l1_scale)
    if start_only and start_xy_m is not None:
        pos = np.asarray(start_xy_m, np.float64).copy()
        t0, cost0 = _start_cost(pos, sensor_xy_m, dz, t_obs, sig, mask, c_told, opt.soft_l1_scale)
    bad = np.flatnonzero(cost0 > 4.0 * np.maximum(n_obs, 1))  # robust RMS above ~2 sigma
    if start_only:
        bad = bad[:0]
    if len(bad) and (opt.n_subsets > 0 or start_xy_m is not None):
        m_b, sxy_b, t_b, sig_b, dz_b, c_b = (
            mask[bad], sensor_xy_m[bad], t_obs[bad], sig[bad], dz[bad], c_told[bad],
        )  # fmt: skip
        best_p, best_t0, best_c = pos[bad], t0[bad], cost0[bad]
        tries = [None] * opt.n_subsets + ([start_xy_m[bad]] if start_xy_m is not None else [])
        for given in tries:  # a fixed handful of tries, each vectorised over the events
            if given is None:
                key = np.where(m_b, rng.random(m_b.shape), np.inf)
                kth = np.partition(key, min(3, k - 1), axis=1)[:, min(3, k - 1), None]
                p_s, _, ok_s = _closed_form_start(sxy_b, t_b, m_b & (key <= kth), c_b)
            else:
                p_s, ok_s = np.asarray(given, np.float64), np.ones(len(bad), bool)
            ok_s &= np.all(np.isfinite(p_s), axis=1)
            p_s = np.where(ok_s[:, None], p_s, best_p)
            t_s, c_s = _start_cost(p_s, sxy_b, dz_b, t_b, sig_b, m_b, c_b, opt.soft_l1_scale)
            better = ok_s & (c_s < best_c)
            best_p = np.where(better[:, None], p_s, best_p)
            best_t0 = np.where(better, t_s, best_t0)
            best_c = np.where(better, c_s, best_c)
        pos[bad], t0[bad] = best_p, best_t0
    c = c_told.copy()
    wind = w_told.copy()

    def unpack(
        theta: FloatArray, idx: IntArray | None = None
    ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        p = theta[:, :2]
        tz = theta[:, 2]
        cc = theta[:, 3] if est_c else (c_told if idx is None else c_told[idx])
        ww = theta[:, -2:] if est_w else (w_told if idx is None else w_told[idx])
        return p, tz, cc, ww

    theta = np.concatenate(
        [pos, t0[:, None]] + ([c[:, None]] if est_c else []) + ([wind] if est_w else []), axis=1
    )
    prior_mean = np.concatenate(
        [np.zeros((n, 3))] + ([c_told[:, None]] if est_c else []) + ([w_told] if est_w else []), 1
    )
    inlier = mask.copy()

    def cost_and_weights(th: FloatArray, use: BoolArray, robust: bool) -> tuple[FloatArray, FloatArray]:
        p, tz, cc, ww = unpack(th)
        tp, _ = predict_arrivals(p, tz, cc, ww, sensor_xy_m, dz, est_c, est_w, jac=False)
        z = np.where(use, (t_obs - tp) / sig, 0.0)
        if robust:
            z2 = (z / opt.soft_l1_scale) ** 2
            cst = np.sum(np.where(use, _soft_l1(z2), 0.0), axis=1) * opt.soft_l1_scale**2
        else:
            cst = np.sum(z * z, axis=1)
        dp = th - prior_mean
        cst = cst + np.sum(prior_prec * dp * dp, axis=1)
        return cst, z

    def run(th: FloatArray, use: BoolArray, robust: bool, iters: int) -> FloatArray:
        lam = np.full(n, 1e-3)
        cst, _ = cost_and_weights(th, use, robust)
        active = np.ones(n, bool)
        for _ in range(iters):
            if not active.any():
                break
            idx = np.flatnonzero(active)
            p, tz, cc, ww = unpack(th[idx], idx)
            tp, J = predict_arrivals(p, tz, cc, ww, sensor_xy_m[idx], dz[idx], est_c, est_w, jac=True)
            assert J is not None
            u = use[idx]
            res = np.where(u, t_obs[idx] - tp, 0.0)
            s2 = sig[idx] ** 2
            w = np.where(u, 1.0 / s2, 0.0)
            if robust:
                z2 = res * res / s2 / opt.soft_l1_scale**2
                w = w / np.sqrt(1.0 + z2)
            A, g = _normal(J, w, res)
            dp = th[idx] - prior_mean[idx]
            pp = prior_prec[idx]
            A = A + pp[:, :, None] * np.eye(n_par)
            g = g - pp * dp
            diag = np.einsum("nii->ni", A)
            A_lm = A + np.einsum("ni,ij->nij", lam[idx, None] * diag + 1e-12, np.eye(n_par))
            step = np.linalg.solve(A_lm, g[..., None])[..., 0]
            trial = th[idx] + step
            sub_use = use[idx]
            p2, tz2, cc2, ww2 = unpack(trial, idx)
            tp2, _ = predict_arrivals(p2, tz2, cc2, ww2, sensor_xy_m[idx], dz[idx], est_c, est_w, False)
            z = np.where(sub_use, (t_obs[idx] - tp2) / sig[idx], 0.0)
            if robust:
                c2 = (
                    np.sum(np.where(sub_use, _soft_l1((z / opt.soft_l1_scale) ** 2), 0.0), axis=1)
                    * opt.soft_l1_scale**2
                )
            else:
                c2 = np.sum(z * z, axis=1)
            dp2 = trial - prior_mean[idx]
            c2 = c2 + np.sum(prior_prec[idx] * dp2 * dp2, axis=1)
            better = np.isfinite(c2) & (c2 <= cst[idx])
            acc = idx[better]
            th[acc] = trial[better]
            cst[acc] = c2[better]
            lam[idx] = np.where(better, np.maximum(lam[idx] / 5.0, 1e-9), lam[idx] * 8.0)
            small = (np.abs(step[:, 0]) < 1e-3) & (np.abs(step[:, 1]) < 1e-3)
            done = (better & small) | (lam[idx] > 1e8)
            active[idx[done]] = False
        return th

    if opt.loss == "soft_l1":
        theta = run(theta, inlier, True, opt.max_iter)
        _, z = cost_and_weights(theta, inlier, False)
        az = np.where(inlier, np.abs(z), np.nan)
        med = nanmedian_rows(np.where(n_obs[:, None] > 0, az, 0.0), axis=1)
        scale = np.maximum(1.0, 1.4826 * np.nan_to_num(med))
        inlier = inlier & (np.abs(z) <= opt.outlier_sigma * scale[:, None])
    theta = run(theta, inlier, False, opt.max_iter)

    # ---- covariance from the Fisher information at the solution
    p, tz, cc, ww = unpack(theta)
    tp, J = predict_arrivals(p, tz, cc, ww, sensor_xy_m, dz, est_c, est_w, jac=True)
    assert J is not None
    res = np.where(mask, t_obs - tp, np.nan)
    w = np.where(inlier, 1.0 / sig**2, 0.0)
    A, _ = _normal(J, w, np.zeros_like(tp))
    A = A + prior_prec[:, :, None] * np.eye(n_par)
    n_used = inlier.sum(axis=1)
    ok = n_used >= max(opt.min_sensors, 3)
    A[~ok] = np.eye(n_par)
    cov_full = np.linalg.inv(A)
    chi2 = np.sum(np.where(inlier, (res / sig) ** 2, 0.0), axis=1)
    dof = np.maximum(n_used - 3, 1)
    inflate = np.maximum(1.0, chi2 / dof)
    cov = cov_full[:, :2, :2] * inflate[:, None, None]
    rms = np.sqrt(np.sum(np.where(inlier, res * res, 0.0), axis=1) / np.maximum(n_used, 1)) * 1e3
    ok &= np.all(np.isfinite(theta), axis=1) & np.all(np.isfinite(cov.reshape(n, 4)), axis=1)
    return SolveResult(
        xy_m=p.copy(),
        t0_s=tz.copy(),
        c_mps=np.asarray(cc, np.float64).copy(),
        wind_mps=np.asarray(ww, np.float64).copy(),
        cov_m2=cov,
        cov_theta=cov_full * inflate[:, None, None],
        inlier=inlier,
        residual_s=res,
        rms_ms=rms,
        n_used=n_used.astype(np.intp),
        ok=ok,
        chi2=chi2,
    )


def cramer_rao_bound(
    source_xy_m: FloatArray,
    sensor_xy_m: FloatArray,
    mask: BoolArray,
    timing_sigma_s: FloatArray,
    c_mps: ArrayLike,
    wind_mps: FloatArray | None = None,
    dz_m: FloatArray | None = None,
    *,
    estimate_c: bool = False,
    estimate_wind: bool = False,
    c_prior_sigma_mps: float = 6.0,
    wind_prior_sigma_mps: float = 5.0,
) -> FloatArray:
    """Cramér-Rao bound on the position (N, 2, 2) in m² for N geometries.

    Rows ``H_i = [d t_i / d(x, y), 1 (, d t_i / d c)(, d t_i / d w)]`` weighted by ``1 / sigma_i^2``,
    plus the priors' information on the propagation unknowns when they are estimated; the position
    block of the inverse.
    """
    n, k = mask.shape
    c = np.asarray(c_mps, np.float64) * np.ones(n)
    wind = np.zeros((n, 2)) if wind_mps is None else np.asarray(wind_mps, np.float64) * np.ones((n, 2))
    dz = np.zeros((n, k)) if dz_m is None else dz_m
    _, J = predict_arrivals(
        np.asarray(source_xy_m, np.float64), np.zeros(n), c, wind, sensor_xy_m, dz,
        estimate_c, estimate_wind, jac=True,
    )  # fmt: skip
    assert J is not None
    w = np.where(mask, 1.0 / np.asarray(timing_sigma_s) ** 2, 0.0)
    A, _ = _normal(J, w, np.zeros((n, k)))
    n_par = A.shape[1]
    prior = np.zeros(n_par)
    if estimate_c:
        prior[3] = 1.0 / c_prior_sigma_mps**2
    if estimate_wind:
        prior[-2:] = 1.0 / wind_prior_sigma_mps**2
    A = A + np.eye(n_par) * prior
    few = mask.sum(axis=1) < 3
    A[few] = np.eye(n_par)
    out = np.asarray(np.linalg.inv(A)[:, :2, :2])
    out[few] = np.nan  # fewer than 3 sensors: no bound
    return out


def error_ellipse(
    cov_m2: FloatArray, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Error ellipse of 2x2 covariances (x east, y north).

    Returns
    -------
    semi_major_m, semi_minor_m, orientation_deg
        Semi-axes at the given confidence (2 d.o.f. chi-square) and the azimuth of the major axis,
        degrees clockwise from north in [0, 180).
    """
    a = cov_m2[..., 0, 0]
    b = cov_m2[..., 0, 1]
    d = cov_m2[..., 1, 1]
    half_tr = 0.5 * (a + d)
    disc = np.sqrt(np.maximum(0.25 * (a - d) ** 2 + b * b, 0.0))
    lam1 = half_tr + disc
    lam2 = np.maximum(half_tr - disc, 0.0)
    k2 = -2.0 * math.log(1.0 - confidence)  # chi-square quantile, 2 d.o.f.
    theta = 0.5 * np.arctan2(2 * b, a - d)  # from the x (east) axis, counter-clockwise
    az = np.mod(90.0 - np.degrees(theta), 180.0)
    return np.sqrt(k2 * lam1), np.sqrt(k2 * lam2), az
