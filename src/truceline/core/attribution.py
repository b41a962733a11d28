"""Attribution: which side fired, with a calibrated probability.

The launch point of fire comes from a located muzzle blast, from an impact paired with a muzzle blast
(:func:`pair_impacts`: distance within the weapon's range, flight time consistent), or from a crater
bearing (:func:`bearing_sector_probability`: a sector between the weapon's minimum and maximum range).
The probability that it lies on each side of the line comes from the location distribution
(:func:`side_probability`):

- where the error ellipse sits on one straight stretch of the line, the Gaussian shortcut
  ``P(left) = Phi(s / sqrt(n^T Sigma n + sigma_line^2))`` with ``s`` the signed geodesic distance
  (positive on the left) and ``n`` the unit normal of the line towards the left;
- where it spans a bend or an end of the line, Monte Carlo over the location distribution. Which case
  applies is decided from sigma points on the 3-sigma ellipse: their signed distances, from their own
  feet on the line, must follow the linear model ``s + n . delta``; a sigma point whose foot is an end
  of the line, or whose distance departs from the linear model, sends the event to Monte Carlo.

Each probability comes with an interval (90 % by default): the spread of ``P`` when the covariance
scale is itself estimated (``scale_dof`` degrees of freedom, e.g. sensors minus unknowns), and for
Monte Carlo also the sampling error (Wilson). Between 0.2 and 0.8 no party is named
(``"undetermined"``); the stated probability carries its ICD 203 term.

Sides are numbered as walking the line in its digitised order: ``+1`` left, ``-1`` right. Everything
is vectorised over events; covariances are 2x2 in metres (x east, y north) at each event.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtri

from truceline.core.agreement import CompiledVersion
from truceline.core.arrays import BoolArray, FloatArray, IntArray
from truceline.core.geodesy import GEOD, pad_lat_deg, pad_lon_deg
from truceline.core.probability import icd203_term, normal_cdf

__all__ = [
    "ATTRIBUTION_BAND",
    "UNDETERMINED",
    "Attribution",
    "PairingOptions",
    "Pairs",
    "SideProbability",
    "attribute",
    "attribute_located",
    "bearing_sector_probability",
    "combine_pairs",
    "equivalent_sigma_m",
    "pair_impacts",
    "prepare_draws",
    "side_probability",
]


UNDETERMINED: Final = "undetermined"
#: Attribution between these probabilities names no party (technical brief).
ATTRIBUTION_BAND: Final = (0.2, 0.8)
#: Half-width of a crater bearing read on a 16-point compass (deg).
COMPASS_16_HALF_WIDTH_DEG: Final = 11.25

_SIGMA_K: Final = 3.0  # sigma points on the 3-sigma ellipse
_N_SIGMA_POINTS: Final = 12
_FAR_K: Final = 6.0  # beyond 6 sigma of the line along every direction, the shortcut is exact enough


@dataclass(frozen=True)
class SideProbability:
    """Probability that each point lies on the left side of the line (N points).

    Attributes
    ----------
    p_left, p_left_low, p_left_high
        The probability and its interval.
    signed_distance_m
        Geodesic distance to the line, positive on the left (the median over samples for a sector).
    sigma_across_m
        Standard deviation across the line, ``sqrt(n^T Sigma n + sigma_line^2)`` (NaN for a sector).
    monte_carlo
        Whether the probability came from Monte Carlo (bend, end, sector) rather than the shortcut.
    """

    p_left: FloatArray
    p_left_low: FloatArray
    p_left_high: FloatArray
    signed_distance_m: FloatArray
    sigma_across_m: FloatArray
    monte_carlo: BoolArray

    def __len__(self) -> int:
        return len(self.p_left)

    @classmethod
    def empty(cls, n: int = 0) -> SideProbability:
        """``n`` points with nothing known (NaN)."""
        nan = np.full(n, np.nan)
        return cls(nan, nan.copy(), nan.copy(), nan.copy(), nan.copy(), np.zeros(n, bool))

    def take(self, idx: ArrayLike) -> SideProbability:
        """A subset (or reordering) of the points."""
        i = np.asarray(idx, np.intp)
        return SideProbability(
            self.p_left[i], self.p_left_low[i], self.p_left_high[i], self.signed_distance_m[i],
            self.sigma_across_m[i], self.monte_carlo[i],
        )  # fmt: skip


def _offset(
    lon: FloatArray, lat: FloatArray, dx_m: FloatArray, dy_m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Points displaced by (east, north) metres along geodesics (exact at these distances)."""
    az = np.degrees(np.arctan2(dx_m, dy_m))
    lo, la, _ = GEOD.fwd(lon, lat, az, np.hypot(dx_m, dy_m))
    return np.asarray(lo, np.float64), np.asarray(la, np.float64)


def _offset_local(
    lon: FloatArray, lat: FloatArray, dx_m: FloatArray, dy_m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Points displaced by (east, north) metres with the local radii of curvature.

    For Monte Carlo draws a few kilometres from their centre: the second-order error (~d^2/R, about
    1 m at 3 km) is far below the spread being sampled, and it is 20x cheaper than geodesics.
    """
    phi = np.radians(lat)
    s2 = np.sin(phi) ** 2
    e2 = 6.69437999014e-3
    n_rad = 6378137.0 / np.sqrt(1.0 - e2 * s2)
    m_rad = n_rad * (1.0 - e2) / (1.0 - e2 * s2)
    return lon + np.degrees(dx_m / (n_rad * np.cos(phi))), lat + np.degrees(dy_m / m_rad)


def _signed(cv: CompiledVersion, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, BoolArray]:
    """Signed distance (m, + left; NaN outside the area) and whether the foot is an end of the line."""
    side, near = cv.locate(lon, lat)
    s = near.distance_m * side
    return np.where(side == 0, np.nan, s), near.at_end


def _left_normal(
    cv: CompiledVersion, lon: FloatArray, lat: FloatArray, side: NDArray[np.int8], near_dist: FloatArray,
    foot_lon: FloatArray, foot_lat: FloatArray, chainage_m: FloatArray,
) -> FloatArray:  # fmt: skip
    """Unit vector (east, north) at each point along which the signed distance grows (to the left).

    Off the line it is the direction away from the foot (times the side); on the line, the normal of
    the segment holding the foot.
    """
    az_to_foot, _, _ = GEOD.inv(lon, lat, foot_lon, foot_lat)
    a = np.radians(np.asarray(az_to_foot, np.float64))
    n_off = -side[:, None] * np.stack([np.sin(a), np.cos(a)], axis=1)
    line = cv.line
    seg = np.clip(np.searchsorted(line.chainage_at_vertex, chainage_m, side="right") - 1, 0,
                  len(line.lon) - 2)  # fmt: skip
    seg = np.where(line.segment_ok[seg], seg, np.maximum(seg - 1, 0))
    az_seg, _, _ = GEOD.inv(line.lon[seg], line.lat[seg], line.lon[seg + 1], line.lat[seg + 1])
    b = np.radians(np.asarray(az_seg, np.float64) - 90.0)  # left of the direction of travel
    n_on = np.stack([np.sin(b), np.cos(b)], axis=1)
    off = (near_dist > 0.5) & (side != 0)
    return np.where(off[:, None], n_off, n_on)


def _scale_factors(scale_dof: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Factors on the standard deviation at the ends of its confidence interval (1 for infinite dof)."""
    alpha = 1.0 - confidence
    dof = np.where(np.isfinite(scale_dof) & (scale_dof > 0), scale_dof, np.inf)
    fin = np.isfinite(dof)
    lo = np.ones(len(dof))
    hi = np.ones(len(dof))
    if fin.any():
        d = dof[fin]
        from scipy.stats import chi2  # (scipy.stats costs ~0.5 s to import: only when needed)

        lo[fin] = np.sqrt(d / chi2.ppf(1.0 - alpha / 2.0, d))
        hi[fin] = np.sqrt(d / chi2.ppf(alpha / 2.0, d))
    return lo, hi


@lru_cache(maxsize=16)
def _sobol(n: int, dim: int, seed: int) -> FloatArray:
    """``n`` (rounded up to a power of two) scrambled Sobol points in the unit cube ``[0, 1)^dim``.

    Quasi-random draws: the integration error shrinks about as ``1 / n`` rather than
    ``1 / sqrt(n)``, and every event uses the same points, so its probability does not depend on
    the batch it comes in (the same evidence gives the same probability) while events that share
    a geometry do not share a random error.
    """
    k = max(math.ceil(math.log2(max(n, 2))), 1)
    from scipy.stats import qmc  # (imported when first needed)

    pts = np.asarray(qmc.Sobol(d=dim, scramble=True, seed=seed).random_base2(k), np.float64)
    pts.setflags(write=False)
    return pts


def prepare_draws(
    *,
    side_samples: int = 1024,
    bearing_samples: int = 512,
    side_seed: int = 0,
    bearing_seed: int = 12345,
) -> None:
    """Compute the quasi-random draws of :func:`side_probability` and
    :func:`bearing_sector_probability` ahead of time (they are built once per size and seed)."""
    _sobol(side_samples, 3, side_seed)
    _sobol(bearing_samples, 4, bearing_seed)


def _wilson(k: FloatArray, n: FloatArray, confidence: float) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval of a binomial proportion."""
    z = float(ndtri(0.5 + confidence / 2.0))
    n_ = np.maximum(n, 1.0)
    p = k / n_
    den = 1.0 + z * z / n_
    centre = (p + z * z / (2.0 * n_)) / den
    half = z * np.sqrt(p * (1.0 - p) / n_ + z * z / (4.0 * n_ * n_)) / den
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def side_probability(
    cv: CompiledVersion,
    lon: ArrayLike,
    lat: ArrayLike,
    cov_m2: ArrayLike,
    *,
    sigma_line_m: float = 0.0,
    scale_dof: ArrayLike | None = None,
    confidence: float = 0.9,
    n_samples: int = 1024,
    linear_tol: float = 0.02,
    seed: int = 0,
) -> SideProbability:
    """Probability that each located point lies on the left side of the line.

    Parameters
    ----------
    cv
        The agreement version in force.
    lon, lat
        Estimated positions (WGS84 deg), shape (N,).
    cov_m2
        Their 2x2 covariances (m², x east, y north), shape (N, 2, 2); ``np.eye(2) * sigma**2`` for a
        circular uncertainty.
    sigma_line_m
        Standard deviation of the line's own position (digitisation), added across the line.
    scale_dof
        Degrees of freedom of the covariance's scale (e.g. sensors minus unknowns); infinite or None
        when the covariance is known.
    confidence
        Level of the interval.
    n_samples
        Monte Carlo samples per event near a bend or an end.
    linear_tol
        Largest departure from the linear model at a sigma point, in units of ``sigma_across_m``,
        before Monte Carlo is used.
    seed
        Seed of the Monte Carlo draws (the same evidence gives the same probability).
    """
    lon_a = np.atleast_1d(np.asarray(lon, np.float64))
    lat_a = np.atleast_1d(np.asarray(lat, np.float64))
    n = len(lon_a)
    cov = np.asarray(cov_m2, np.float64).reshape(n, 2, 2)
    dof = (
        np.full(n, np.inf)
        if scale_dof is None
        else np.broadcast_to(np.asarray(scale_dof, np.float64), (n,)).copy()
    )
    out = SideProbability.empty(n)
    good = np.isfinite(lon_a) & np.isfinite(lat_a) & np.all(np.isfinite(cov.reshape(n, 4)), axis=1)
    if not good.any():
        return out
    g = np.flatnonzero(good)
    lo_, la_, cv_ = lon_a[g], lat_a[g], cov[g]
    side, near = cv.locate(lo_, la_)
    s = near.distance_m * side
    nrm = _left_normal(cv, lo_, la_, side, near.distance_m, near.foot_lon, near.foot_lat,
                       near.chainage_m)  # fmt: skip
    var_n = np.einsum("ni,nij,nj->n", nrm, cv_, nrm)
    sig_n = np.sqrt(np.maximum(var_n, 0.0) + sigma_line_m**2)
    f_lo, f_hi = _scale_factors(dof[g], confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sig_n > 0, s / sig_n, np.sign(s) * np.inf)
    p = normal_cdf(z)
    # the probability moves monotonically with the scale: its ends at the scale's interval ends
    p_a = normal_cdf(z / f_lo)
    p_b = normal_cdf(z / f_hi)
    p_lo, p_hi = np.minimum(p_a, p_b), np.maximum(p_a, p_b)
    p = np.where(side == 0, np.nan, p)

    # which events need Monte Carlo: sigma points off the linear model, at an end, or outside
    a, b, d = cv_[:, 0, 0], cv_[:, 0, 1], cv_[:, 1, 1]
    lam_max = 0.5 * (a + d) + np.sqrt(np.maximum(0.25 * (a - d) ** 2 + b * b, 0.0))
    reach = _FAR_K * np.sqrt(np.maximum(lam_max, 0.0) + sigma_line_m**2)
    mc = near.at_end | (side == 0)
    check = np.flatnonzero(~mc & (np.abs(s) < reach))
    if len(check):
        L = np.linalg.cholesky(cv_[check] + np.eye(2) * 1e-9)
        ang = 2.0 * np.pi * np.arange(_N_SIGMA_POINTS) / _N_SIGMA_POINTS
        u = np.stack([np.cos(ang), np.sin(ang)], axis=1)  # (J, 2)
        delta = _SIGMA_K * np.einsum("nij,kj->nki", L, u)  # (C, J, 2)
        plon, plat = _offset(
            np.repeat(lo_[check], _N_SIGMA_POINTS), np.repeat(la_[check], _N_SIGMA_POINTS),
            delta[..., 0].ravel(), delta[..., 1].ravel(),
        )  # fmt: skip
        s_j, end_j = _signed(cv, plon, plat)
        s_j = s_j.reshape(len(check), _N_SIGMA_POINTS)
        lin = s[check, None] + np.einsum("nki,ni->nk", delta, nrm[check])
        off = np.abs(s_j - lin) > linear_tol * sig_n[check, None]
        bad = np.any(off | ~np.isfinite(s_j), axis=1) | np.any(
            end_j.reshape(len(check), _N_SIGMA_POINTS), axis=1
        )
        mc[check[bad]] = True
    m_idx = np.flatnonzero(mc)
    if len(m_idx):
        pm, pml, pmh = _monte_carlo(
            cv, lo_[m_idx], la_[m_idx], cv_[m_idx], sigma_line_m, f_lo[m_idx], f_hi[m_idx],
            n_samples, confidence, seed,
        )  # fmt: skip
        p[m_idx], p_lo[m_idx], p_hi[m_idx] = pm, pml, pmh
    out.p_left[g] = p
    out.p_left_low[g] = np.where(np.isfinite(p), p_lo, np.nan)
    out.p_left_high[g] = np.where(np.isfinite(p), p_hi, np.nan)
    out.signed_distance_m[g] = np.where(side == 0, np.nan, s)
    out.sigma_across_m[g] = sig_n
    out.monte_carlo[g] = mc
    return out


def _monte_carlo(
    cv: CompiledVersion, lon: FloatArray, lat: FloatArray, cov: FloatArray, sigma_line_m: float,
    f_lo: FloatArray, f_hi: FloatArray, m: int, confidence: float, seed: int,
) -> tuple[FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """P(left) by quasi-Monte Carlo over the location distribution at three scales (the same
    points at each scale)."""
    n = len(lon)
    z = ndtri(np.clip(_sobol(m, 3, seed), 1e-12, 1.0 - 1e-12))
    m = len(z)
    zs = z[:, :2]
    zl = z[:, 2] * sigma_line_m
    L = np.linalg.cholesky(cov + np.eye(2) * 1e-9)
    base = np.matmul(zs[None, :, :], np.swapaxes(L, 1, 2))  # (n, m, 2): L @ z for every draw
    est: list[FloatArray] = []
    los: list[FloatArray] = []
    his: list[FloatArray] = []
    for f in (np.ones(n), f_lo, f_hi):  # three scales, each vectorised over events and samples
        if len(est) and np.all(f == 1.0):
            est.append(est[0])
            los.append(los[0])
            his.append(his[0])
            continue
        dxy = base * f[:, None, None]
        if sigma_line_m == 0.0:
            # Only the side of each draw matters: the side polygons answer that far faster. An
            # event whose draws' box (``_offset_local`` is monotone in each offset; 1e-7 deg spare
            # for rounding) lies in grid cells wholly on one side has that side for every draw.
            b0 = _offset_local(lon, lat, dxy[..., 0].min(axis=1), dxy[..., 1].min(axis=1))
            b1 = _offset_local(lon, lat, dxy[..., 0].max(axis=1), dxy[..., 1].max(axis=1))
            one = cv.side_of_boxes(b0[0] - 1e-7, b0[1] - 1e-7, b1[0] + 1e-7, b1[1] + 1e-7)
            side = np.repeat(one[:, None].astype(np.float64), m, axis=1)
            todo = np.flatnonzero(one == 0)
            if len(todo):
                plon, plat = _offset_local(lon[todo, None], lat[todo, None], dxy[todo, :, 0],
                                           dxy[todo, :, 1])  # fmt: skip
                side[todo] = cv.side_of(plon.ravel(), plat.ravel()).reshape(len(todo), m)
            s = np.where(side == 0, np.nan, side)
        else:
            plon, plat = _offset_local(lon[:, None], lat[:, None], dxy[..., 0], dxy[..., 1])
            plon, plat = plon.ravel(), plat.ravel()
            s, _ = _signed(cv, plon, plat)
            s = s.reshape(n, m) + zl[None, :] * f[:, None]
        inside = np.isfinite(s)
        k = np.sum(inside & (s > 0), axis=1).astype(np.float64)
        tot = inside.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            est.append(np.where(tot > 0, k / tot, np.nan))
        lo, hi = _wilson(k, tot, confidence)
        los.append(lo)
        his.append(hi)
    p = est[0]
    return p, np.minimum.reduce(los), np.maximum.reduce(his)


def bearing_sector_probability(
    cv: CompiledVersion,
    lon: ArrayLike,
    lat: ArrayLike,
    bearing_deg: ArrayLike,
    min_range_km: ArrayLike,
    max_range_km: ArrayLike,
    *,
    half_width_deg: float = COMPASS_16_HALF_WIDTH_DEG,
    cov_m2: ArrayLike | None = None,
    confidence: float = 0.9,
    n_samples: int = 512,
    median_samples: int = 64,
    seed: int = 12345,
) -> SideProbability:
    """P(the launch point is on the left) from an impact and a bearing towards the firing point.

    The launch point is uniform in azimuth over ``bearing +- half_width_deg`` and uniform in range
    between the weapon's minimum and maximum range (km), from the impact (itself uncertain by
    ``cov_m2`` when given); quasi-Monte Carlo (Sobol points, the same for every event), vectorised
    over events and samples. The interval is a binomial (Wilson) bound on the integration error.
    ``signed_distance_m`` is the median signed distance of the draws, from the first
    ``median_samples`` of them (an evenly spread subset; it only describes the sector).
    """
    lon_a = np.atleast_1d(np.asarray(lon, np.float64))
    lat_a = np.atleast_1d(np.asarray(lat, np.float64))
    n = len(lon_a)
    brg = np.broadcast_to(np.asarray(bearing_deg, np.float64), (n,))
    r_lo = np.broadcast_to(np.asarray(min_range_km, np.float64), (n,)) * 1000.0
    r_hi = np.broadcast_to(np.asarray(max_range_km, np.float64), (n,)) * 1000.0
    out = SideProbability.empty(n)
    good = np.flatnonzero(
        np.isfinite(lon_a) & np.isfinite(lat_a) & np.isfinite(brg) & (r_hi > r_lo) & (r_lo >= 0)
    )
    if len(good) == 0:
        return out
    u = _sobol(n_samples, 4, seed)
    m = len(u)
    k = len(good)
    cov = None if cov_m2 is None else np.asarray(cov_m2, np.float64).reshape(n, 2, 2)[good]

    def draws(rows: IntArray, width: int) -> tuple[FloatArray, FloatArray]:
        """Launch points of the first ``width`` draws of rows ``rows`` (of ``good``), (R, width).

        Element by element the same whatever rows and width are asked (one geodesic each)."""
        uu = u[:width]
        gr = good[rows]
        az = brg[gr, None] + half_width_deg * (2.0 * uu[None, :, 0] - 1.0)
        dist = r_lo[gr, None] + (r_hi - r_lo)[gr, None] * uu[None, :, 1]
        lo0 = np.repeat(lon_a[gr], width)
        la0 = np.repeat(lat_a[gr], width)
        if cov is not None:
            L = np.linalg.cholesky(cov[rows] + np.eye(2) * 1e-9)
            e = np.einsum("nij,kj->nki", L, ndtri(np.clip(uu[:, 2:], 1e-12, 1.0 - 1e-12)))
            lo0, la0 = _offset(lo0, la0, e[..., 0].ravel(), e[..., 1].ravel())
        olon, olat, _ = GEOD.fwd(lo0, la0, az.ravel(), dist.ravel())
        return (
            np.asarray(olon, np.float64).reshape(rows.size, width),
            np.asarray(olat, np.float64).reshape(rows.size, width),
        )

    # A sector whose bounding box lies in grid cells wholly on one side has every draw counted on
    # that side (exactly what drawing them gives): P is 0 or 1 without drawing.
    one = np.zeros(k, np.int8)
    if cov is None:
        one = cv.side_of_boxes(*_sector_box(lon_a[good], lat_a[good], brg[good], r_lo[good],
                                            r_hi[good], half_width_deg))  # fmt: skip
    kk = np.where(one > 0, float(m), 0.0)
    tot = np.where(one != 0, float(m), 0.0)
    todo = np.flatnonzero(one == 0)
    if len(todo):
        olon, olat = draws(todo, m)
        # Only the side of each draw enters P: the side polygons answer that (they agree with the
        # nearest-point side except within centimetres of the line) far faster than distances.
        side = cv.side_of(olon.ravel(), olat.ravel()).reshape(len(todo), m)
        kk[todo] = np.sum(side > 0, axis=1)
        tot[todo] = np.sum(side != 0, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(tot > 0, kk / tot, np.nan)
    lo, hi = _wilson(kk, tot, confidence)
    out.p_left[good] = p
    out.p_left_low[good] = np.where(tot > 0, lo, np.nan)
    out.p_left_high[good] = np.where(tot > 0, hi, np.nan)
    out.signed_distance_m[good] = _median_signed(cv, draws, k, min(median_samples, m), m)
    out.monte_carlo[good] = True
    return out


#: Boundary points per arc of a sector in :func:`_sector_box` (the arcs' sagitta between them is
#: added to the margin).
_BOX_ARC_POINTS: Final = 9


def _sector_box(
    lon: FloatArray, lat: FloatArray, bearing_deg: FloatArray, r_lo_m: FloatArray, r_hi_m: FloatArray,
    half_width_deg: float,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:  # fmt: skip
    """A lon/lat box (deg) holding every point of each sector, with a generous margin.

    The sector is ``bearing +- half_width_deg`` between ``r_lo_m`` and ``r_hi_m`` along geodesics
    from (lon, lat). A coordinate has no extremum inside the sector (its gradient in range and
    azimuth never vanishes there), so the box of points on the sector's outline bounds it; the
    outline is sampled (both arcs at ``_BOX_ARC_POINTS`` azimuths, both radial edges at three
    ranges) and the box widened by twice the arcs' sagitta between samples, 1 % of the far range
    (curvature of the edges in lon/lat, far below it at these ranges) and 100 m, turned into
    degrees that span at least that much anywhere in the box (:func:`pad_lat_deg`,
    :func:`pad_lon_deg`). Boxes near a pole or across the antimeridian come back NaN (not proven).
    """
    j = np.linspace(-1.0, 1.0, _BOX_ARC_POINTS)
    az_arc = bearing_deg[:, None] + half_width_deg * j[None, :]
    edges = bearing_deg[:, None] + half_width_deg * np.array([[-1.0, 1.0]])
    az = np.concatenate([az_arc, az_arc, edges], axis=1)
    nb = _BOX_ARC_POINTS
    r_mid = 0.5 * (r_lo_m + r_hi_m)
    dist = np.concatenate([np.repeat(r_lo_m[:, None], nb, 1), np.repeat(r_hi_m[:, None], nb, 1),
                           np.repeat(r_mid[:, None], 2, 1)], axis=1)  # fmt: skip
    q = az.shape[1]
    blon, blat, _ = GEOD.fwd(np.repeat(lon, q), np.repeat(lat, q), az.ravel(), dist.ravel())
    blon = np.asarray(blon, np.float64).reshape(-1, q)
    blat = np.asarray(blat, np.float64).reshape(-1, q)
    step = math.radians(2.0 * half_width_deg / (nb - 1))
    margin_m = 2.0 * r_hi_m * (1.0 - math.cos(step / 2.0)) + 0.01 * r_hi_m + 100.0
    dlat = pad_lat_deg(margin_m)
    la0, la1 = blat.min(axis=1) - dlat, blat.max(axis=1) + dlat
    far = np.maximum(np.abs(la0), np.abs(la1))  # the box's edge farthest from the equator
    with np.errstate(divide="ignore", invalid="ignore"):
        dlon = pad_lon_deg(margin_m, far)
    lo0, lo1 = blon.min(axis=1) - dlon, blon.max(axis=1) + dlon
    bad = (far > 80.0) | (lo1 - lo0 > 90.0) | (np.abs(blon) > 179.0).any(axis=1)
    nan = np.where(bad, np.nan, 0.0)
    return lo0 + nan, la0 + nan, lo1 + nan, la1 + nan


def _median_signed(
    cv: CompiledVersion,
    draws: Callable[[IntArray, int], tuple[FloatArray, FloatArray]],
    k: int,
    m: int,
    m_all: int,
) -> FloatArray:
    """Median signed distance (m) of each of ``k`` rows' draws inside the area, from its first ``m``.

    ``draws(rows, width)`` gives the first ``width`` draws of those rows. The first ``2^j`` points
    of a Sobol sequence are themselves evenly spread over the sector, so a few dozen give the median
    to within a small part of the sector's depth; rows whose first ``m`` draws all fall outside the
    area use all ``m_all`` of theirs.
    """
    out = np.full(k, np.nan)
    rows = np.arange(k)
    for width in (m, m_all):
        if rows.size == 0:
            break
        lon, lat = draws(rows, width)
        s, _ = _signed(cv, lon.ravel(), lat.ravel())
        s = s.reshape(rows.size, width)
        tot = np.isfinite(s).sum(axis=1)
        srt = np.sort(np.where(np.isfinite(s), s, np.inf), axis=1)
        mid = srt[np.arange(rows.size), np.maximum((tot - 1) // 2, 0)]
        out[rows] = np.where(tot > 0, mid, np.nan)
        rows = rows[tot == 0]
        if width == m_all:
            break
    return out


# --------------------------------------------------------------------------------------------------
# Pairing impacts with muzzle blasts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairingOptions:
    """Gates and priors of :func:`pair_impacts`.

    Attributes
    ----------
    min_range_km, max_range_km
        The weapons' range: a muzzle blast farther from (or nearer to) the impact cannot have fired it.
    min_speed_mps, max_speed_mps
        Mean speed of the projectile over its flight (range / flight time): the flight time is
        consistent when the implied speed lies between them (tube artillery and rockets fly at a
        few hundred m/s on average; the gates are also the prior, so keep them realistic).
    p_located
        Prior probability that the muzzle blast of an impact was located at all (the rest of the
        weight goes to "fired from somewhere unknown", which names no side).
    """

    min_range_km: float = 0.5
    max_range_km: float = 40.0
    min_speed_mps: float = 200.0
    max_speed_mps: float = 700.0
    p_located: float = 0.9


@dataclass(frozen=True)
class Pairs:
    """Candidate (impact, muzzle blast) pairs and the posterior weight of each.

    ``weight`` sums, per impact, to ``1 - weight_none[impact]``; ``best`` is each impact's most
    likely blast (-1 when none passed the gates).
    """

    impact: IntArray
    blast: IntArray
    weight: FloatArray
    weight_none: FloatArray
    best: IntArray


def pair_impacts(
    lon: ArrayLike,
    lat: ArrayLike,
    time_s: ArrayLike,
    signal: ArrayLike,
    *,
    options: PairingOptions | None = None,
) -> Pairs:
    """Pair each impact with the muzzle blasts that could have fired it.

    A blast is a candidate for an impact when it came before it, its distance lies within the range
    gates and the implied mean speed within the speed gates. Weights follow a probabilistic data
    association model: the true blast lies uniformly in range and azimuth around the impact, with a
    mean speed uniform between the gates, so its density in (position, time) is
    ``1 / (2 pi (R_max - R_min) (v_max - v_min) dt^2)``; unrelated blasts arrive with the density
    ``lambda`` measured around the impact (blasts in the gate's time window over the gate's area);
    the weight of candidate ``k`` is ``p_located f_k / lambda`` and that of "none" is
    ``1 - p_located``, normalised per impact.

    Parameters
    ----------
    lon, lat, time_s, signal
        Located events: WGS84 position, emission time (POSIX s) and signal code (1 muzzle blast,
        2 impact; others are ignored).
    options
        Gates and priors.
    """
    opt = options or PairingOptions()
    lo = np.asarray(lon, np.float64)
    la = np.asarray(lat, np.float64)
    t = np.asarray(time_s, np.float64)
    sg = np.asarray(signal, np.intp)
    n = len(lo)
    blasts = np.flatnonzero(sg == 1)
    impacts = np.flatnonzero(sg == 2)
    best = np.full(n, -1, np.intp)
    w_none = np.where(sg == 2, 1.0, np.nan)
    e_i = np.zeros(0, np.intp)
    if len(blasts) == 0 or len(impacts) == 0:
        return Pairs(e_i, e_i.copy(), np.zeros(0), w_none, best)
    r_lo, r_hi = opt.min_range_km * 1e3, opt.max_range_km * 1e3
    v_lo, v_hi = opt.min_speed_mps, opt.max_speed_mps
    ob = blasts[np.argsort(t[blasts], kind="stable")]
    tb = t[ob]
    # blasts that can have fired each impact lie in this window of emission times
    w0 = np.searchsorted(tb, t[impacts] - r_hi / v_lo, side="left")
    w1 = np.searchsorted(tb, t[impacts] - r_lo / v_hi, side="right")
    cnt = np.maximum(w1 - w0, 0)
    imp = np.repeat(impacts, cnt)
    offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    bl = ob[np.repeat(w0, cnt) + offs]
    _, _, d = GEOD.inv(lo[imp], la[imp], lo[bl], la[bl])
    d = np.asarray(d, np.float64)
    dt = t[imp] - t[bl]
    with np.errstate(divide="ignore", invalid="ignore"):
        v = d / dt
    ok = (dt > 0) & (d >= r_lo) & (d <= r_hi) & (v >= v_lo) & (v <= v_hi)
    # background density of blasts around each impact: those within the range over the window
    within = (d <= r_hi) & (dt > 0)
    n_bg = np.bincount(np.searchsorted(impacts, imp[within]), minlength=len(impacts))
    window_s = r_hi / v_lo - r_lo / v_hi
    lam = np.maximum(n_bg, 1.0) / (math.pi * r_hi**2 * window_s)
    imp, bl, dt = imp[ok], bl[ok], dt[ok]
    k_imp = np.searchsorted(impacts, imp)
    f = 1.0 / (2.0 * math.pi * (r_hi - r_lo) * (v_hi - v_lo) * dt**2)
    w = opt.p_located * f / lam[k_imp]
    tot = np.bincount(k_imp, w, minlength=len(impacts)) + (1.0 - opt.p_located)
    w = w / tot[k_imp]
    w_none[impacts] = (1.0 - opt.p_located) / tot
    if len(w):
        order = np.lexsort((-w, k_imp))
        first = order[np.r_[True, k_imp[order][1:] != k_imp[order][:-1]]]
        best[imp[first]] = bl[first]
    return Pairs(imp.astype(np.intp), bl.astype(np.intp), w, w_none, best)


def combine_pairs(pairs: Pairs, p_left: FloatArray, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """P(left) of each impact: its candidates' P(left), weighted, and "unknown origin" at 0.5.

    ``p_left`` holds the (low, central, high) values of every event as a (3, n) array; returns the
    three values per event (NaN for events that are not impacts).
    """
    out = np.full((3, n), np.nan)
    imp = np.flatnonzero(np.isfinite(pairs.weight_none))
    if len(imp) == 0:
        return out[0], out[1], out[2]
    for r in range(3):  # low, central, high: three vectorised sums
        val = np.nan_to_num(p_left[r][pairs.blast], nan=0.5)
        acc = np.bincount(pairs.impact, pairs.weight * val, minlength=n)
        out[r, imp] = acc[imp] + 0.5 * pairs.weight_none[imp]
    return out[1], out[0], out[2]


# --------------------------------------------------------------------------------------------------
# Attribution of located events
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attribution:
    """Who fired each event: P(left party), its interval, how the launch point was found.

    ``method`` is ``"muzzle_blast"`` (the event is a located firing point), ``"paired_impact"``
    (an impact whose launch point comes from the muzzle blasts paired with it; ``launch`` is the
    most likely one), ``"bearing_sector"`` or ``"none"`` (no launch point: P is NaN).
    """

    p_left: FloatArray
    p_left_low: FloatArray
    p_left_high: FloatArray
    method: NDArray[np.str_]
    launch: IntArray
    left: str
    right: str

    def __len__(self) -> int:
        return len(self.p_left)

    def p_party(self, party: str) -> FloatArray:
        """P(``party`` fired) per event (NaN where no launch point is known)."""
        if party == self.left:
            return self.p_left
        if party == self.right:
            return 1.0 - self.p_left
        raise KeyError(f"unknown party {party!r}; the parties are {self.left} and {self.right}")

    @property
    def responsible(self) -> NDArray[np.str_]:
        """The party named (``"undetermined"`` between 0.2 and 0.8, ``""`` with no launch point)."""
        p = self.p_left
        who = np.where(
            p > ATTRIBUTION_BAND[1],
            self.left,
            np.where(p < ATTRIBUTION_BAND[0], self.right, UNDETERMINED),
        )
        return np.where(np.isfinite(p), who, "").astype(str)

    @property
    def probability(self) -> FloatArray:
        """The stated probability: that of the more likely party."""
        return np.where(self.p_left >= 0.5, self.p_left, 1.0 - self.p_left)

    @property
    def interval(self) -> tuple[FloatArray, FloatArray]:
        """Interval of the stated probability."""
        left = self.p_left >= 0.5
        return (
            np.where(left, self.p_left_low, 1.0 - self.p_left_high),
            np.where(left, self.p_left_high, 1.0 - self.p_left_low),
        )

    @property
    def likelihood(self) -> NDArray[np.str_]:
        """ICD 203 term of the stated probability (``""`` with no launch point)."""
        p = self.probability
        return np.where(np.isfinite(p), icd203_term(np.nan_to_num(p)), "").astype(str)


def attribute(
    cv: CompiledVersion,
    lon: ArrayLike,
    lat: ArrayLike,
    cov_m2: ArrayLike,
    time_s: ArrayLike,
    signal: ArrayLike,
    *,
    scale_dof: ArrayLike | None = None,
    sigma_line_m: float = 0.0,
    pairing: PairingOptions | None = None,
    confidence: float = 0.9,
) -> tuple[Attribution, SideProbability, Pairs]:
    """Attribute located acoustic events under one agreement version.

    Returns the attribution, the side probability of every event's own position, and the pairs;
    see :func:`attribute_located`.
    """
    sp = side_probability(
        cv, lon, lat, cov_m2, sigma_line_m=sigma_line_m, scale_dof=scale_dof, confidence=confidence
    )
    ag = cv.agreement
    attr, pairs = attribute_located(
        sp, lon, lat, time_s, signal, left=ag.left, right=ag.right, pairing=pairing
    )
    return attr, sp, pairs


def attribute_located(
    side: SideProbability,
    lon: ArrayLike,
    lat: ArrayLike,
    time_s: ArrayLike,
    signal: ArrayLike,
    *,
    left: str,
    right: str,
    pairing: PairingOptions | None = None,
) -> tuple[Attribution, Pairs]:
    """Attribute located events from the side probability of their own positions.

    Muzzle blasts are launch points themselves; impacts take the weighted side probabilities of the
    muzzle blasts paired with them (:func:`pair_impacts`); events of unknown signal, and impacts with
    no candidate blast, are not attributed (NaN, method ``"none"``).
    """
    sg = np.asarray(signal, np.intp)
    n = len(sg)
    pairs = pair_impacts(lon, lat, time_s, sg, options=pairing)
    blast = sg == 1
    vals = np.stack([
        np.where(blast, side.p_left_low, np.nan), np.where(blast, side.p_left, np.nan),
        np.where(blast, side.p_left_high, np.nan),
    ])  # fmt: skip
    pc, plo, phi = combine_pairs(pairs, vals, n)
    impact = sg == 2
    method = np.where(blast, "muzzle_blast", np.where(impact & (pairs.best >= 0), "paired_impact",
                                                      "none"))  # fmt: skip
    none = method == "none"
    p = np.where(none, np.nan, np.where(blast, side.p_left, pc))
    p_lo = np.where(none, np.nan, np.where(blast, side.p_left_low, plo))
    p_hi = np.where(none, np.nan, np.where(blast, side.p_left_high, phi))
    return Attribution(p, p_lo, p_hi, method.astype(str), pairs.best, left, right), pairs


def equivalent_sigma_m(
    cv: CompiledVersion,
    lon: ArrayLike,
    lat: ArrayLike,
    p_left: ArrayLike,
    *,
    max_sigma_m: float = 100_000.0,
    iterations: int = 14,
) -> FloatArray:
    """The circular standard deviation at a point that gives it the probability ``p_left``.

    Lets a probability computed from a full covariance or a mixture of launch points travel as an
    incident's origin and ``origin_uncertainty_m``: :func:`side_probability` of the point with
    ``sigma**2 * I`` (default options, as the rule engine calls it) returns ``p_left`` again. Exact
    through the Gaussian shortcut; near bends and ends, bisection on ``log(sigma)`` over the same
    Monte Carlo draws. Where ``p_left`` cannot be reached (it names the other side than the point, or
    lies beyond what any sigma gives near a corner), the nearest reachable sigma; NaN where
    ``p_left`` is NaN; 0 where it is 0 or 1.
    """
    lo_ = np.atleast_1d(np.asarray(lon, np.float64))
    la_ = np.atleast_1d(np.asarray(lat, np.float64))
    p = np.atleast_1d(np.asarray(p_left, np.float64))
    n = len(p)
    eye = np.eye(2)
    s = side_probability(cv, lo_, la_, np.zeros((n, 2, 2))).signed_distance_m
    with np.errstate(divide="ignore", invalid="ignore"):
        sig = s / ndtri(np.clip(p, 1e-15, 1.0 - 1e-15))
    sig = np.where(np.isfinite(sig) & (sig > 0), np.minimum(sig, max_sigma_m), max_sigma_m)
    sig = np.where((p <= 1e-15) | (p >= 1.0 - 1e-15), 0.0, sig)
    sig = np.where(np.isfinite(p) & np.isfinite(s), sig, np.nan)
    todo = np.flatnonzero(np.isfinite(sig) & (sig > 0))
    if len(todo) == 0:
        return sig
    got = side_probability(cv, lo_[todo], la_[todo], np.einsum("n,ij->nij", sig[todo] ** 2, eye))
    todo = todo[got.monte_carlo | (np.abs(got.p_left - p[todo]) > 1e-6)]
    if len(todo) == 0:
        return sig
    # bisection in log(sigma) from a twentieth of the shortcut's answer: P moves from the point's
    # own side towards the far field's share as sigma grows
    a = np.log(np.maximum(sig[todo] / 20.0, 0.01))
    b = np.full(len(todo), math.log(max_sigma_m))
    sign = np.sign(s[todo])
    for _ in range(iterations):  # a fixed number of vectorised steps
        mid = 0.5 * (a + b)
        sm = np.exp(mid)
        pm = side_probability(cv, lo_[todo], la_[todo], np.einsum("n,ij->nij", sm**2, eye)).p_left
        grow = sign * (pm - p[todo]) > 0  # still too sure of the point's side: widen
        a = np.where(grow, mid, a)
        b = np.where(grow, b, mid)
    sig[todo] = np.exp(0.5 * (a + b))
    return sig
