"""Acoustic localisation (sound ranging): sensor networks, association and batched location.

Model (``../shared/brief/technical.md``): a detection at sensor ``i`` arrives at
``t_i = t0 + d_i / (c + w . u_i) + n_i`` with ``d_i`` the 3-D distance from the source to the sensor,
``u_i`` the unit vector of propagation, ``c = 331.3 + 0.606 T`` m/s the speed of sound at ``T`` deg C,
``w`` the wind (east, north; m/s) and ``n_i ~ N(0, sigma_i^2)``.

Everything is computed in local azimuthal-equidistant planes (metres, x east, y north) centred on
*frames*: tiles of the network about 50 km wide, so that a 1,300 km network stays exact to well under a
metre; positions are returned in WGS84 lon/lat.

The hot paths are vectorised over events: association builds and scores hypotheses for all seeds at
once, and :func:`solve_events` runs one batched Levenberg-Marquardt over all events (robust soft-L1
IRLS, outlier rejection, then plain maximum likelihood on the inliers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from truceline.core.arrays import BoolArray, FloatArray, IntArray
from truceline.core.geodesy import LocalFrame
from truceline.errors import ValidationError

__all__ = [
    "SIGNALS",
    "AcousticError",
    "AssociationOptions",
    "LocatedEvents",
    "LocationResult",
    "SensorNetwork",
    "SolveResult",
    "SolverOptions",
    "Unassigned",
    "Weather",
    "associate",
    "cramer_rao_bound",
    "error_ellipse",
    "locate_detections",
    "solve_events",
    "speed_of_sound_mps",
    "wind_vector_mps",
]


SIGNALS: Final = ("unknown", "muzzle_blast", "impact")
"""Signal codes: index into this tuple (0 unknown, 1 muzzle blast, 2 impact)."""

# chi-square quantile, 2 d.o.f., 95 %: scales a 1-sigma ellipse to the 95 % ellipse
_CHI2_2D_95: Final = 5.991464547107979


class AcousticError(ValidationError):
    """Input to the acoustic pipeline that cannot be used (message names the field and the fix)."""


# --------------------------------------------------------------------------------------------------
# Propagation
# --------------------------------------------------------------------------------------------------


def speed_of_sound_mps(temperature_c: ArrayLike) -> FloatArray:
    """Speed of sound in air, ``c(T) = 331.3 + 0.606 T`` m/s (``T`` in deg C)."""
    return 331.3 + 0.606 * np.asarray(temperature_c, dtype=np.float64)


def wind_vector_mps(speed_mps: ArrayLike, from_deg: ArrayLike) -> FloatArray:
    """Wind vector (east, north) in m/s from a speed and the direction it blows *from* (deg).

    Returns
    -------
    ndarray, shape (..., 2)
    """
    speed = np.asarray(speed_mps, dtype=np.float64)
    az = np.radians(np.asarray(from_deg, dtype=np.float64))
    return np.stack([-speed * np.sin(az), -speed * np.cos(az)], axis=-1)


@dataclass(frozen=True)
class Weather:
    """Temperature and wind by time, interpolated linearly (held constant beyond the ends).

    Parameters
    ----------
    time_s
        POSIX seconds, increasing.
    temperature_c, wind_speed_mps, wind_from_deg
        Values at ``time_s``.
    """

    time_s: FloatArray
    temperature_c: FloatArray
    wind_speed_mps: FloatArray
    wind_from_deg: FloatArray

    @classmethod
    def constant(
        cls, temperature_c: float = 15.0, wind_speed_mps: float = 0.0, wind_from_deg: float = 0.0
    ) -> Weather:
        """Weather that does not change."""
        one = np.ones(1)
        return cls(np.zeros(1), one * temperature_c, one * wind_speed_mps, one * wind_from_deg)

    def __post_init__(self) -> None:
        n = len(self.time_s)
        if n == 0 or any(
            len(a) != n for a in (self.temperature_c, self.wind_speed_mps, self.wind_from_deg)
        ):
            raise AcousticError("weather: give at least one row, every column the same length")
        if n > 1 and np.any(np.diff(self.time_s) <= 0):
            raise AcousticError("weather: times must be strictly increasing; sort the rows")

    def at(self, time_s: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Speed of sound (m/s) and wind vector (east, north; m/s) at the given times."""
        t = np.asarray(time_s, dtype=np.float64)
        temp = np.interp(t, self.time_s, self.temperature_c)
        w = wind_vector_mps(self.wind_speed_mps, self.wind_from_deg)
        wind = np.stack([np.interp(t, self.time_s, w[:, 0]), np.interp(t, self.time_s, w[:, 1])], -1)
        return speed_of_sound_mps(temp), wind


# --------------------------------------------------------------------------------------------------
# The sensor network
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SensorNetwork:
    """Acoustic sensors, with their coordinates in every frame.

    Build with :meth:`build`. ``xy_m[f, i]`` is sensor ``i`` in frame ``f``; ``frame_of_sensor[i]``
    is the frame that holds sensor ``i`` (events are solved in the frame of their first arrival).
    """

    sensor_id: NDArray[np.str_]
    lon: FloatArray
    lat: FloatArray
    elevation_m: FloatArray
    timing_sigma_ms: FloatArray
    frames: tuple[LocalFrame, ...]
    frame_of_sensor: IntArray
    xy_m: FloatArray
    trees: tuple[cKDTree, ...] = field(repr=False)

    @classmethod
    def build(
        cls,
        sensor_id: ArrayLike,
        lon: ArrayLike,
        lat: ArrayLike,
        *,
        elevation_m: ArrayLike | None = None,
        timing_sigma_ms: ArrayLike | None = None,
        frame_size_km: float = 50.0,
    ) -> SensorNetwork:
        """Build a network from WGS84 positions.

        Parameters
        ----------
        sensor_id, lon, lat
            One entry per sensor; ids must be unique.
        elevation_m, timing_sigma_ms
            Defaults 0 m and 5 ms.
        frame_size_km
            Width of the square tiles that become local frames.
        """
        ids = np.asarray(sensor_id).astype(str)
        lon_a = np.asarray(lon, np.float64)
        lat_a = np.asarray(lat, np.float64)
        n = len(ids)
        if n < 3:
            raise AcousticError(f"sensors: a network needs at least 3 sensors, got {n}")
        if len(np.unique(ids)) != n:
            raise AcousticError("sensors: sensor_id values must be unique")
        if not (np.all(np.isfinite(lon_a)) and np.all(np.isfinite(lat_a))):
            raise AcousticError("sensors: every sensor needs a finite lon and lat")
        elev = np.zeros(n) if elevation_m is None else np.asarray(elevation_m, np.float64)
        sig = np.full(n, 5.0) if timing_sigma_ms is None else np.asarray(timing_sigma_ms, np.float64)
        if np.any(~np.isfinite(sig) | (sig <= 0)):
            raise AcousticError("sensors: timing_sigma_ms must be a positive number of milliseconds")
        elev = np.where(np.isfinite(elev), elev, 0.0)
        glob = LocalFrame.centred_on(lon_a, lat_a)
        gx, gy = glob.to_xy(lon_a, lat_a)
        size = frame_size_km * 1000.0
        cells = np.stack([np.floor(gx / size), np.floor(gy / size)], axis=1)
        _, frame_of = np.unique(cells, axis=0, return_inverse=True)
        frame_of = frame_of.ravel().astype(np.intp)
        n_frames = int(frame_of.max()) + 1
        cnt = np.bincount(frame_of, minlength=n_frames)
        cx = np.bincount(frame_of, gx, n_frames) / cnt
        cy = np.bincount(frame_of, gy, n_frames) / cnt
        clon, clat = glob.to_lonlat(cx, cy)
        frames = tuple(LocalFrame.centred(float(a), float(b)) for a, b in zip(clon, clat, strict=True))
        xy = np.empty((n_frames, n, 2))
        for f, fr in enumerate(frames):  # one pass per frame (a handful), vectorised inside
            xy[f, :, 0], xy[f, :, 1] = fr.to_xy(lon_a, lat_a)
        trees = tuple(cKDTree(xy[f]) for f in range(n_frames))
        return cls(ids, lon_a, lat_a, elev, sig, frames, frame_of, xy, trees)

    @property
    def n_sensors(self) -> int:
        """Number of sensors."""
        return len(self.sensor_id)

    def index_of(self, sensor_id: ArrayLike) -> IntArray:
        """Positions of the given ids in the network (-1 for an unknown id)."""
        ids = np.asarray(sensor_id).astype(str)
        order = np.argsort(self.sensor_id)
        sorted_ids = self.sensor_id[order]
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(order) - 1)
        found = sorted_ids[pos] == ids
        return np.where(found, order[pos], -1).astype(np.intp)


# --------------------------------------------------------------------------------------------------
# Batched maximum-likelihood solver
# --------------------------------------------------------------------------------------------------


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
    when that exceeds 1; ``cov_theta`` is the whole (P, P) matrix over (x, y, t0[, c][, wx, wy]).
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


def _predict(
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


def _nanmedian_rows(a: FloatArray, axis: int = 1) -> FloatArray:
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
    prior_prec = np.zeros(n_par)
    if est_c:
        prior_prec[3] = 1.0 / opt.c_prior_sigma_mps**2
    if est_w:
        prior_prec[-2:] = 1.0 / opt.wind_prior_sigma_mps**2
    rng = np.random.default_rng(opt.seed)
    n_obs = mask.sum(axis=1)

    # ---- start: closed form on all sensors; where that fits badly (echoes, wrong associations),
    # also on random 4-sensor subsets and the given start, keeping the best robust fit
    first = np.argmin(np.where(mask, t_obs, np.inf), axis=1)
    rows = np.arange(n)
    pos, _, ok_all = _closed_form_start(sensor_xy_m, t_obs, mask, c_told)
    pos = np.where(ok_all[:, None] & np.isfinite(pos), pos, sensor_xy_m[rows, first] + 1.0)
    t0, cost0 = _start_cost(pos, sensor_xy_m, dz, t_obs, sig, mask, c_told, opt.soft_l1_scale)
    bad = np.flatnonzero(cost0 > 4.0 * np.maximum(n_obs, 1))  # robust RMS above ~2 sigma
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
        tp, _ = _predict(p, tz, cc, ww, sensor_xy_m, dz, est_c, est_w, jac=False)
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
            tp, J = _predict(p, tz, cc, ww, sensor_xy_m[idx], dz[idx], est_c, est_w, jac=True)
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
            A = A + np.eye(n_par) * prior_prec
            g = g - prior_prec * dp
            diag = np.einsum("nii->ni", A)
            A_lm = A + np.einsum("ni,ij->nij", lam[idx, None] * diag + 1e-12, np.eye(n_par))
            step = np.linalg.solve(A_lm, g[..., None])[..., 0]
            trial = th[idx] + step
            sub_use = use[idx]
            p2, tz2, cc2, ww2 = unpack(trial, idx)
            tp2, _ = _predict(p2, tz2, cc2, ww2, sensor_xy_m[idx], dz[idx], est_c, est_w, False)
            z = np.where(sub_use, (t_obs[idx] - tp2) / sig[idx], 0.0)
            if robust:
                c2 = (
                    np.sum(np.where(sub_use, _soft_l1((z / opt.soft_l1_scale) ** 2), 0.0), axis=1)
                    * opt.soft_l1_scale**2
                )
            else:
                c2 = np.sum(z * z, axis=1)
            dp2 = trial - prior_mean[idx]
            c2 = c2 + np.sum(prior_prec * dp2 * dp2, axis=1)
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
        med = _nanmedian_rows(np.where(n_obs[:, None] > 0, az, 0.0), axis=1)
        scale = np.maximum(1.0, 1.4826 * np.nan_to_num(med))
        inlier = inlier & (np.abs(z) <= opt.outlier_sigma * scale[:, None])
    theta = run(theta, inlier, False, opt.max_iter)

    # ---- covariance from the Fisher information at the solution
    p, tz, cc, ww = unpack(theta)
    tp, J = _predict(p, tz, cc, ww, sensor_xy_m, dz, est_c, est_w, jac=True)
    assert J is not None
    res = np.where(mask, t_obs - tp, np.nan)
    w = np.where(inlier, 1.0 / sig**2, 0.0)
    A, _ = _normal(J, w, np.zeros_like(tp))
    A = A + np.eye(n_par) * prior_prec
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
    _, J = _predict(
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


# --------------------------------------------------------------------------------------------------
# Association
# --------------------------------------------------------------------------------------------------


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
    tol_s, tol_rel
        Scoring tolerance: ``tol_s + tol_rel * |d_k - d_seed| / c`` (covers a wrong speed of sound).
    extend_tol_s
        Base tolerance when an accepted event, fitted with the speed of sound free, gathers the
        detections it predicts at the other sensors in range.
    min_sensors
        Detections needed to accept an event.
    max_range_m
        Range beyond which sensors are not expected to hear an event.
    c_slack
        Relative uncertainty of the told speed of sound, for the time windows.
    max_rounds
        Rounds of hypothesis generation and conflict resolution.
    hearing_quantile
        Events regather detections only at sensors within the distance at which this network hears
        events: this quantile of the distances of the first solve's inliers, plus 3 % (capped by
        ``max_range_m``; ``None`` for ``max_range_m``). Beyond it a detection near the predicted
        time is far likelier another event's arrival or a false detection.
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
    """

    n_neighbours: int = 4
    max_candidates: int = 12
    n_score: int = 14
    tol_s: float = 0.06
    tol_rel: float = 0.01
    extend_tol_s: float = 0.02
    min_sensors: int = 5
    max_range_m: float = 25_000.0
    c_slack: float = 0.08
    max_rounds: int = 6
    hearing_quantile: float | None = 0.99
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


@dataclass(frozen=True)
class _Index:
    """Detections sorted by (sensor, time), searchable with one float key."""

    keys: FloatArray
    det: IntArray
    stride: float
    t_base: float

    @classmethod
    def build(
        cls, det: IntArray, sensor: IntArray, t: FloatArray, stride: float, t_base: float
    ) -> _Index:
        keys = sensor[det] * stride + (t[det] - t_base)
        o = np.argsort(keys, kind="stable")
        return cls(keys[o], det[o], stride, t_base)

    def key(self, sensor: IntArray, t: FloatArray) -> FloatArray:
        return sensor * self.stride + (t - self.t_base)

    def two_nearest(
        self, sensor: IntArray, t_pred: FloatArray, tol: FloatArray, sensor_ok: BoolArray
    ) -> tuple[tuple[IntArray, FloatArray], tuple[IntArray, FloatArray]]:
        """The nearest detection at ``sensor`` before and after ``t_pred`` within ``tol`` (-1)."""
        if len(self.keys) == 0:
            none = (np.full(np.shape(t_pred), -1, np.intp), np.full(np.shape(t_pred), np.inf))
            return none, none
        kq = self.key(np.where(sensor_ok, sensor, 0), t_pred)
        pos = np.searchsorted(self.keys, kq)
        out = []
        for p in (pos - 1, pos):  # the one before and the one after
            pc = np.clip(p, 0, len(self.keys) - 1)
            d = np.abs(self.keys[pc] - kq)
            good = sensor_ok & (p >= 0) & (p < len(self.keys)) & (d <= tol)
            out.append((np.where(good, self.det[pc], -1), np.where(good, d, np.inf)))
        return out[0], out[1]

    def nearest(
        self, sensor: IntArray, t_pred: FloatArray, tol: FloatArray, sensor_ok: BoolArray
    ) -> tuple[IntArray, FloatArray]:
        """Nearest detection at ``sensor`` to ``t_pred`` within ``tol`` (-1 when none)."""
        if len(self.keys) == 0:
            return np.full(np.shape(t_pred), -1, np.intp), np.full(np.shape(t_pred), np.inf)
        kq = self.key(np.where(sensor_ok, sensor, 0), t_pred)
        pos = np.searchsorted(self.keys, kq)
        lo = np.clip(pos - 1, 0, len(self.keys) - 1)
        hi = np.clip(pos, 0, len(self.keys) - 1)
        dlo = np.abs(self.keys[lo] - kq)
        dhi = np.abs(self.keys[hi] - kq)
        pick = np.where(dlo <= dhi, lo, hi)
        dist = np.minimum(dlo, dhi)
        good = sensor_ok & (dist <= tol)
        return np.where(good, self.det[pick], -1), np.where(good, dist, np.inf)


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
    index: _Index,
    nb: IntArray,
    score_tbl: IntArray,
    opt: AssociationOptions,
) -> _Hyp:
    """Best 3-sensor hypothesis per seed, scored against the sensors near the seed."""
    xy = net.xy_m[frame]
    m_c = opt.max_candidates
    s0 = det_sensor[seeds]
    ts = det_t[seeds]
    cs = det_c[seeds]
    len(seeds)
    nbs = nb[s0]  # (S, Kn)
    nb_ok = nbs >= 0
    nbs_c = np.where(nb_ok, nbs, 0)
    dist = np.linalg.norm(xy[nbs_c] - xy[s0][:, None, :], axis=-1)
    c_lo = cs * (1.0 - opt.c_slack)
    eps = 0.02
    lo = np.searchsorted(index.keys, index.key(nbs_c, ts[:, None] - eps))
    hi = np.searchsorted(index.keys, index.key(nbs_c, ts[:, None] + dist / c_lo[:, None] + eps))
    cand = lo[..., None] + np.arange(m_c)
    cvalid = (cand < hi[..., None]) & nb_ok[..., None]
    cand = np.clip(cand, 0, max(len(index.det) - 1, 0))
    cdet = index.det[cand] if len(index.det) else np.zeros_like(cand)
    ct = det_t[cdet]
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
    da = cs[:, None, None] * (ct[:, a] - ts[:, None, None])  # (S, P, M)
    db = cs[:, None, None] * (ct[:, b] - ts[:, None, None])
    da4 = da[..., :, None]
    db4 = db[..., None, :]
    ba = (np.sum(sa * sa, -1)[..., None, None] - da4**2) / 2.0
    bb = (np.sum(sb * sb, -1)[..., None, None] - db4**2) / 2.0
    # x = inv @ (b - r0 * delta) = p + r0 q
    i00, i01 = inv[..., 0, 0][..., None, None], inv[..., 0, 1][..., None, None]
    i10, i11 = inv[..., 1, 0][..., None, None], inv[..., 1, 1][..., None, None]
    px = i00 * ba + i01 * bb
    py = i10 * ba + i11 * bb
    qx = -(i00 * da4 + i01 * db4)
    qy = -(i10 * da4 + i11 * db4)
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
    valid = (
        cvalid[:, a][..., :, None] & cvalid[:, b][..., None, :] & geo_ok[..., None, None] & (disc >= 0)
    )
    roots = np.stack([np.where(np.isfinite(r1), r1, rlin), r2], axis=-1)  # (S, P, M, M, 2)
    rv = valid[..., None] & np.isfinite(roots) & (roots >= 0) & (roots <= opt.max_range_m)
    hs = np.nonzero(rv)
    if len(hs[0]) == 0:
        e = np.zeros(0, np.intp)
        return _Hyp(e, np.zeros((0, 1), np.intp), e, np.zeros(0))
    si, pi, mi, mj, _ri = hs
    r0 = roots[hs]
    hx = px[si, pi, mi, mj] + r0 * qx[si, pi, mi, mj] + xy[s0[si], 0]
    hy = py[si, pi, mi, mj] + r0 * qy[si, pi, mi, mj] + xy[s0[si], 1]
    ht0 = ts[si] - r0 / cs[si]
    # score against the sensors near the seed
    sc = score_tbl[s0[si]]  # (H, S)
    sc_ok = sc >= 0
    scc = np.where(sc_ok, sc, 0)
    dk = np.hypot(xy[scc, 0] - hx[:, None], xy[scc, 1] - hy[:, None])
    sc_ok &= dk <= opt.max_range_m
    tp = ht0[:, None] + dk / cs[si, None]
    tol = opt.tol_s + opt.tol_rel * np.abs(dk - r0[:, None]) / cs[si, None]
    md, mdist = index.nearest(scc, tp, tol, sc_ok)
    # the seed itself and its two hypothesis detections are always in
    count = (md >= 0).sum(axis=1)
    z = np.where(md >= 0, mdist / tol, 0.0)
    cost = np.sum(z * z, axis=1)
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
    frame, sxy, t_rel, sig, dz, mask, t_ref = _gather(net, dets, det_sensor, det_time_s)
    seed_c = det_c_mps[np.where(mask, dets, 0)[:, 0]]
    res = solve_events(
        sxy, t_rel, mask, sig, seed_c, None, dz,
        options=SolverOptions(estimate_c=True, n_subsets=0, max_iter=10, min_sensors=3),
    )  # fmt: skip
    pool = avail.copy()
    pool[dets[dets >= 0]] = True
    index = _Index.build(np.flatnonzero(pool), det_sensor, det_time_s, stride, t_base)
    k_max = min(64, net.n_sensors)
    owner = np.full(len(det_sensor), -1, np.intp)
    best = np.full(len(det_sensor), np.inf)
    found = np.full((n_ev, k_max), -1, np.intp)
    score = np.full((n_ev, k_max), np.inf)
    for f in range(len(net.frames)):  # frames, not events
        ev = np.flatnonzero(frame == f)
        if len(ev) == 0:
            continue
        dist, sens = net.trees[f].query(res.xy_m[ev], k=k_max, distance_upper_bound=opt.max_range_m)
        ok = np.isfinite(dist)
        sens = np.where(ok, sens, 0)
        tp, J = _predict(
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
    return _pad_groups(owner, n_ev, det_time_s) if len(sel) else dets


def associate(
    net: SensorNetwork,
    det_sensor: IntArray,
    det_time_s: FloatArray,
    det_c_mps: FloatArray,
    *,
    options: AssociationOptions | None = None,
    available: BoolArray | None = None,
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
    options
        Association options.
    available
        Detections that may be used (default all).

    Returns
    -------
    ndarray of int
        Event number of each detection, -1 when it joined no event.
    """
    opt = options or AssociationOptions()
    n_det = len(det_sensor)
    event = np.full(n_det, -1, np.intp)
    if n_det == 0:
        return event
    avail = np.ones(n_det, bool) if available is None else available.copy()
    t_base = float(np.min(det_time_s))
    stride = float(np.max(det_time_s) - t_base) + 1e4
    n_frames = len(net.frames)
    nb_tables = [_neighbour_tables(net, f, opt.n_neighbours, opt.max_range_m) for f in range(n_frames)]
    nb_wide = [_neighbour_tables(net, f, opt.n_neighbours + 2, opt.max_range_m) for f in range(n_frames)]
    sc_tables = [_score_tables(net, f, opt.n_score, opt.max_range_m) for f in range(n_frames)]
    det_frame = net.frame_of_sensor[det_sensor]
    n_events = 0

    def run_round(seeds_all: IntArray, wide: bool) -> tuple[_Hyp, BoolArray]:
        index = _Index.build(np.flatnonzero(avail), det_sensor, det_time_s, stride, t_base)
        hyps: list[_Hyp] = []
        for f in range(n_frames):  # a handful of frames; vectorised inside
            seeds = seeds_all[det_frame[seeds_all] == f]
            for lo in range(0, len(seeds), 2000):  # chunks bound the memory
                hyps.append(
                    _hypotheses(
                        net, f, seeds[lo : lo + 2000], det_sensor, det_time_s, det_c_mps, index,
                        nb_wide[f] if wide else nb_tables[f], sc_tables[f], opt,
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
        return h, _resolve(h, n_det, opt.min_sensors)

    seeds_all = np.flatnonzero(avail)
    final = max(opt.max_rounds - 1, 0)
    rnd = 0
    while True:
        wide = rnd >= final
        if len(seeds_all) == 0:
            if wide:
                break
            rnd = final  # nothing left to retry: go to the final sweep with wider neighbourhoods
            seeds_all = np.flatnonzero(avail)
            continue
        h, acc = run_round(seeds_all, wide)
        ids = n_events + np.arange(int(acc.sum()))
        d = _extend(net, h.dets[acc], det_sensor, det_time_s, det_c_mps, avail, stride, t_base, opt)
        rows, cols = np.nonzero(d >= 0)
        event[d[rows, cols]] = ids[rows]
        avail[d[rows, cols]] = False
        n_events += len(ids)
        if wide:
            break
        rnd += 1
        # next round: the seeds whose good hypothesis lost a conflict; the last round sweeps all
        lost = (~acc) & (h.count >= opt.min_sensors)
        seeds_all = np.unique(h.seed[lost])
        seeds_all = seeds_all[avail[seeds_all]]
        if rnd >= final:
            seeds_all = np.flatnonzero(avail)
    return event


# --------------------------------------------------------------------------------------------------
# The pipeline: associate, locate, regather, relocate
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocatedEvents:
    """Located events (E of them); positions WGS84, covariances in the local plane (x east, y north)."""

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

    def __len__(self) -> int:
        return len(self.emitted_at_s)

    @classmethod
    def empty(cls) -> LocatedEvents:
        """No events."""
        z = np.zeros(0)
        zi = np.zeros(0, np.intp)
        return cls(z, z, z, np.zeros((0, 2)), zi, np.zeros((0, 2, 2)), z, z, z, zi, z, z, zi, [])


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


def _pad_groups(event: IntArray, n_events: int, order_key: FloatArray) -> IntArray:
    """(E, K) detection indices per event (sorted by ``order_key``), -1 padded."""
    sel = np.flatnonzero(event >= 0)
    if n_events == 0 or len(sel) == 0:
        return np.full((n_events, 1), -1, np.intp)
    o = sel[np.lexsort((order_key[sel], event[sel]))]
    ev = event[o]
    counts = np.bincount(ev, minlength=n_events)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(o)) - start[ev]
    out = np.full((n_events, max(int(counts.max()), 1)), -1, np.intp)
    out[ev, pos] = o
    return out


def _gather(
    net: SensorNetwork,
    groups: IntArray,
    det_sensor: IntArray,
    det_time_s: FloatArray,
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray, BoolArray, FloatArray]:
    mask = groups >= 0
    g = np.where(mask, groups, 0)
    sens = det_sensor[g]
    t_abs = det_time_s[g]
    t_ref = np.min(np.where(mask, t_abs, np.inf), axis=1)
    t_ref = np.where(np.isfinite(t_ref), t_ref, 0.0)
    first = sens[np.arange(len(g)), np.argmin(np.where(mask, t_abs, np.inf), axis=1)]
    frame = net.frame_of_sensor[first]
    sxy = net.xy_m[frame[:, None], sens]
    elev = net.elevation_m[sens]
    src_elev = _nanmedian_rows(np.where(mask, elev, np.nan), axis=1) if mask.any() else np.zeros(len(g))
    dz = elev - np.nan_to_num(src_elev)[:, None]
    sig = net.timing_sigma_ms[sens] * 1e-3
    return frame, sxy, np.where(mask, t_abs - t_ref[:, None], 0.0), sig, dz, mask, t_ref


def dist_ok(dist: FloatArray) -> FloatArray:
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
    from scipy.stats import binom

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
    p = binom.cdf(n_used, n_range, p_d)
    return np.asarray(alive & (n_range >= 8) & (p < opt.ghost_p_value), bool)


def _hearing_range(
    res: SolveResult, groups: IntArray, alive: BoolArray, net: SensorNetwork, frame: IntArray,
    det_sensor: IntArray, opt: AssociationOptions,
) -> float:  # fmt: skip
    """Distance within which this network hears events (see ``AssociationOptions.hearing_quantile``)."""
    if opt.hearing_quantile is None:
        return opt.max_range_m
    use = res.inlier & (groups >= 0) & alive[:, None]
    rows, cols = np.nonzero(use)
    if len(rows) < 200:  # too few to measure
        return opt.max_range_m
    s = det_sensor[groups[rows, cols]]
    d = np.hypot(*(net.xy_m[frame[rows], s] - res.xy_m[rows]).T)
    return float(min(opt.max_range_m, 1.03 * np.quantile(d, opt.hearing_quantile)))


def _shared_propagation(
    res: SolveResult, t_ref: FloatArray, alive: BoolArray, opt: AssociationOptions
) -> tuple[FloatArray, FloatArray, FloatArray] | None:
    """Median speed of sound and wind of the well-determined events, per time window.

    Returns window centres (s), speeds (m/s) and winds (east, north; m/s), or None when no window
    has enough events.
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
    cs, ws, ts = [], [], []
    for k in keep:  # time windows (a few per hour), not events
        m = b == k
        ts.append(float(np.median(t[m])))
        cs.append(float(np.median(res.c_mps[good][m])))
        ws.append(np.median(res.wind_mps[good][m], axis=0))
    return np.array(ts), np.array(cs), np.array(ws)


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
) -> LocationResult:
    """Associate detections into events and locate them; explain every detection left out.

    Parameters
    ----------
    net
        The sensor network.
    det_sensor, det_time_s
        Sensor index and arrival time (POSIX seconds) of each detection.
    weather
        Told weather (default 15 deg C, no wind).
    det_signal
        Signal code per detection (see :data:`SIGNALS`).
    det_amplitude_db
        Amplitude per detection (NaN when unknown); helps give each detection to the right one of
        two events whose arrivals coincide at a sensor.
    association, solver
        Options; by default the speed of sound and the wind are estimated (with priors).
    echo_window_s
        A later arrival this soon after an event's direct arrival at the same sensor is called an echo.
    """
    a_opt = association or AssociationOptions()
    s_opt = solver or SolverOptions(estimate_c=True, estimate_wind=True)
    wx = weather or Weather.constant()
    det_sensor = np.asarray(det_sensor, np.intp)
    det_time_s = np.asarray(det_time_s, np.float64)
    n_det = len(det_sensor)
    sig_code = np.zeros(n_det, np.intp) if det_signal is None else np.asarray(det_signal, np.intp)
    amp = None if det_amplitude_db is None else np.asarray(det_amplitude_db, np.float64)
    det_c, _ = wx.at(det_time_s)
    event = associate(net, det_sensor, det_time_s, det_c, options=a_opt)
    n_ev = int(event.max()) + 1 if n_det and event.max() >= 0 else 0

    prop: tuple[FloatArray, FloatArray, FloatArray] | None = None  # network propagation estimate

    def solve(groups: IntArray) -> tuple[SolveResult, IntArray, FloatArray, IntArray]:
        frame, sxy, t_rel, sig, dz, mask, t_ref = _gather(net, groups, det_sensor, det_time_s)
        c_e, w_e = wx.at(t_ref)
        opt = s_opt
        if prop is not None:
            # the atmosphere is shared: every event starts from (and is held near) what the
            # well-determined events around its time say about the speed of sound and the wind
            t_b, c_b, w_b = prop
            c_e = np.interp(t_ref, t_b, c_b)
            w_e = np.stack([np.interp(t_ref, t_b, w_b[:, 0]), np.interp(t_ref, t_b, w_b[:, 1])], 1)
            opt = replace(s_opt, c_prior_sigma_mps=a_opt.shared_c_sigma_mps,
                          wind_prior_sigma_mps=a_opt.shared_wind_sigma_mps)  # fmt: skip
        res = solve_events(sxy, t_rel, mask, sig, c_e, w_e, dz, options=opt)
        return res, frame, t_ref, groups

    index = _Index.build(
        np.arange(n_det), det_sensor, det_time_s,
        float(det_time_s.max() - det_time_s.min()) + 1e4 if n_det else 1e4,
        float(det_time_s.min()) if n_det else 0.0,
    )  # fmt: skip

    def regather(
        res: SolveResult, frame: IntArray, t_ref: FloatArray, groups: IntArray, alive: BoolArray,
        range_m: float,
    ) -> IntArray:  # fmt: skip
        """Each event claims at most one detection at every sensor within ``range_m``: of the two
        detections either side of its predicted arrival (within the window), the one under which
        the pair (event, detection) is likeliest, decided for all events at once by a greedy
        assignment (mutual best rounds), so that a detection taken by a better-fitting event
        leaves its slot's other candidate to the event that lost it."""
        k_max = min(64, net.n_sensors)
        e_rows: list[IntArray] = []
        e_slot: list[IntArray] = []
        e_det: list[IntArray] = []
        e_score: list[FloatArray] = []
        for f in range(len(net.frames)):  # frames, not events
            ev = np.flatnonzero(alive & (frame == f))
            if len(ev) == 0:
                continue
            dist, sens = net.trees[f].query(res.xy_m[ev], k=k_max, distance_upper_bound=range_m)
            sens = np.atleast_2d(sens)
            ok = np.isfinite(np.atleast_2d(dist))
            sens = np.where(ok, sens, 0)
            sxy = net.xy_m[f][sens]
            g = groups[ev]
            gm = g >= 0
            gg = np.where(gm, g, 0)
            src_elev = _nanmedian_rows(np.where(gm, net.elevation_m[det_sensor[gg]], np.nan), 1)
            dz = net.elevation_m[sens] - src_elev[:, None]
            tp, J = _predict(
                res.xy_m[ev], res.t0_s[ev] + t_ref[ev], res.c_mps[ev], res.wind_mps[ev], sxy, dz,
                s_opt.estimate_c, s_opt.estimate_wind, jac=True,
            )  # fmt: skip
            assert J is not None
            var_pred = np.einsum("nki,nij,nkj->nk", J, res.cov_theta[ev], J)
            sig = net.timing_sigma_ms[sens] * 1e-3
            var = sig**2 + np.maximum(var_pred, 0.0)
            tol = np.maximum(a_opt.regather_floor_s, a_opt.regather_sigma * np.sqrt(var))
            level = None
            if amp is not None:
                d_used = np.hypot(*(net.xy_m[f][det_sensor[gg]] - res.xy_m[ev, None, :]).T)
                level = _nanmedian_rows(
                    np.where(gm, amp[gg] + 20.0 * np.log10(np.maximum(d_used.T, 1.0)), np.nan), 1
                )
            ev_sig = np.zeros(len(ev), np.intp)
            if det_signal is not None:
                sg = np.where(gm, sig_code[gg], 0)
                n_mb = np.sum(sg == 1, axis=1)
                n_im = np.sum(sg == 2, axis=1)
                ev_sig = np.where(n_mb > n_im, 1, np.where(n_im > n_mb, 2, 0))
            for md, mdist in index.two_nearest(sens, tp, tol, ok):  # below and above the prediction
                hit = md >= 0
                # minus twice the Gaussian log-likelihood of the arrival (and of its amplitude,
                # under spherical spreading from the event's source level, when amplitudes are given)
                score = mdist**2 / var + np.log(var)
                if level is not None and amp is not None:
                    a_pred = level[:, None] - 20.0 * np.log10(np.maximum(dist_ok(dist), 1.0))
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

    groups = _pad_groups(event, n_ev, det_time_s)
    res, frame, t_ref, groups = solve(groups)
    alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
    hear_m = _hearing_range(res, groups, alive, net, frame, det_sensor, a_opt)
    if a_opt.share_propagation and (s_opt.estimate_c or s_opt.estimate_wind):
        prop = _shared_propagation(res, t_ref, alive, a_opt)
    if prop is not None and a_opt.second_pass_tol_rel is not None:
        # a second association of what the first left out, with the speed of sound the events
        # measured and wider windows: far events under a wrong told temperature and a wind
        left = event < 0
        if left.sum() >= a_opt.min_sensors:
            c2 = np.interp(det_time_s, prop[0], prop[1])
            ev2 = associate(
                net, det_sensor, det_time_s, c2, available=left,
                options=replace(a_opt, tol_rel=a_opt.second_pass_tol_rel, max_rounds=3),
            )  # fmt: skip
            if (ev2 >= 0).any():
                event = np.where(ev2 >= 0, ev2 + n_ev, event)
                n_ev += int(ev2.max()) + 1
                groups = _pad_groups(event, n_ev, det_time_s)
                res, frame, t_ref, groups = solve(groups)
                alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
    active = np.bincount(det_sensor, minlength=net.n_sensors) > 0  # sensors that were recording

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
            groups = _pad_groups(merged, n_ev, det_time_s)
            res, frame, t_ref, groups = solve(groups)
            alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
            ghost = _ghosts(res, frame, groups, det_sensor, alive, net, hear_m, active, a_opt)
        return res, frame, t_ref, groups, alive & ~ghost, True

    previous: IntArray | None = event
    ghosts_tested = False
    for _ in range(a_opt.regather_rounds):  # a few rounds, each vectorised over all events
        new_event = regather(res, frame, t_ref, groups, alive, hear_m)
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
        groups = _pad_groups(new_event, n_ev, det_time_s)
        res, frame, t_ref, groups = solve(groups)
        alive = res.ok & ~_duplicates(res, frame, t_ref, groups, net)
    if not ghosts_tested:
        res, frame, t_ref, groups, alive, _ = drop_ghosts(res, frame, t_ref, groups, alive)
    res2, frame2, t_ref2, groups2 = res, frame, t_ref, groups
    used = np.zeros(groups2.shape, bool)
    used[:] = res2.inlier & (groups2 >= 0)
    keep = alive & (res2.n_used >= max(a_opt.min_sensors - 1, s_opt.min_sensors))
    final_event = np.full(n_det, -1, np.intp)
    new_ids = np.cumsum(keep) - 1
    rows, cols = np.nonzero(used & keep[:, None])
    final_event[groups2[rows, cols]] = new_ids[rows]

    ev_idx = np.flatnonzero(keep)
    lon = np.empty(len(ev_idx))
    lat = np.empty(len(ev_idx))
    for f in range(len(net.frames)):
        m = frame2[ev_idx] == f
        if m.any():
            lon[m], lat[m] = net.frames[f].to_lonlat(res2.xy_m[ev_idx[m], 0], res2.xy_m[ev_idx[m], 1])
    cov = res2.cov_m2[ev_idx]
    smaj, smin, orient = error_ellipse(cov)
    dets = [groups2[i][used[i]] for i in ev_idx]  # output assembly only
    # signal: most common known code among the used detections
    sg = np.where(used, sig_code[np.where(groups2 >= 0, groups2, 0)], -1)[ev_idx]
    counts = np.stack([(sg == s).sum(axis=1) for s in range(len(SIGNALS))], axis=1)
    counts[:, 0] = 0
    signal = np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), 0)
    events = LocatedEvents(
        emitted_at_s=res2.t0_s[ev_idx] + t_ref2[ev_idx],
        lon=lon,
        lat=lat,
        xy_m=res2.xy_m[ev_idx],
        frame=frame2[ev_idx],
        cov_m2=cov,
        semi_major_m=smaj,
        semi_minor_m=smin,
        orientation_deg=orient,
        n_sensors=res2.n_used[ev_idx],
        residual_rms_ms=res2.rms_ms[ev_idx],
        c_mps=res2.c_mps[ev_idx],
        signal=signal.astype(np.intp),
        detections=dets,
    )
    unassigned = _explain(
        net, final_event, new_event, event, keep, new_ids, det_sensor, det_time_s, echo_window_s,
        a_opt.min_sensors,
    )  # fmt: skip
    return LocationResult(events, unassigned, final_event)


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
