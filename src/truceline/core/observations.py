"""Monitors' observations as they write them: "heard 3 explosions 3-5 km south-east".

An observer at a known position hears or sees something in a *direction* (a compass point, a range
of points, or degrees) at a *distance* estimated as a range. What was observed lies somewhere in
the annular sector between the two bearings and the two distances. Truceline stores an incident as
a point with a circular 1-sigma error, so the sector becomes:

- the point: the sector's centroid (area-weighted: a uniform density over the sector);
- the error: ``max(sigma_major, reach / 2)``, where ``sigma_major`` is the standard deviation of
  the uniform sector along its longer axis and ``reach`` the largest distance from the centroid to
  the sector's edge, so the whole sector lies within two sigma of the point.

Bearings: a 16-point compass name stands for its sector of +-11.25 deg (``SE``: 123.75..146.25);
a range of points ("from west to north": ``W to N``) goes clockwise from the first to the last,
each end widened by 11.25 deg; degrees get the error the observer gives. The sector is computed
in the observer's local plane (east, north; exact to better than 0.1 % within 50 km) and placed on
the WGS84 ellipsoid by a geodesic from the observer. Everything is vectorised over observations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from truceline.core.geodesy import GEOD

__all__ = [
    "COMPASS_POINTS",
    "HALF_POINT_DEG",
    "MAX_OBSERVED_KM",
    "ArcPositions",
    "arc_positions",
    "compass_arc",
]

#: The 16 points, clockwise from north; point ``k`` is at ``22.5 * k`` deg.
COMPASS_POINTS: tuple[str, ...] = (
    "N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE",
    "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW",
)  # fmt: skip
#: Half the width of a 16-point compass sector (deg).
HALF_POINT_DEG = 11.25
#: The farthest distance an observation may give (km): sound and sight carry no further.
MAX_OBSERVED_KM = 50.0
_WORDS = {"north": "N", "south": "S", "east": "E", "west": "W"}
_N_ANGLES, _N_RADII = 33, 17


def _point(text: str) -> float | None:
    """A compass point's azimuth (deg): ``SE``, ``se``, ``south-east``, ``South East``."""
    t = text.strip().lower()
    for word, letter in _WORDS.items():
        t = t.replace(word, letter)
    t = "".join(ch for ch in t if ch not in " -_").upper()
    return COMPASS_POINTS.index(t) * 22.5 if t in COMPASS_POINTS else None


def compass_arc(text: str, error_deg: float | None = None) -> tuple[float, float] | None:
    """The arc ``(from, to)`` (deg, clockwise, ``to`` may exceed 360) a written direction stands
    for, or ``None`` when it is not one.

    ``SE``; ``W to N`` / ``W..N`` / ``W-N`` (clockwise from the first point to the last); degrees
    ``135`` (+-``error_deg``, default 5) or a range ``270 to 360``.
    """
    t = text.strip()
    if not t:
        return None
    err = 5.0 if error_deg is None else float(error_deg)
    one = _point(t)
    if one is not None:
        return one - HALF_POINT_DEG, one + HALF_POINT_DEG
    try:
        deg = float(t)
    except ValueError:
        pass
    else:
        if 0.0 <= deg <= 360.0 and np.isfinite(deg):
            return deg - err, deg + err
        return None
    low = t.lower()
    for sep in (" to ", "..", "\u2013", "\u2014", "-"):
        if sep in low:
            a, _, b = low.partition(sep)
            break
    else:
        return None
    pa, pb = _point(a), _point(b)
    if pa is not None and pb is not None:
        end = pb if pb > pa else pb + 360.0
        return pa - HALF_POINT_DEG, end + HALF_POINT_DEG
    try:
        da, db = float(a), float(b)
    except ValueError:
        return None
    if not (0.0 <= da <= 360.0 and 0.0 <= db <= 360.0):
        return None
    return da, (db if db > da else db + 360.0)


@dataclass(frozen=True, slots=True)
class ArcPositions:
    """Per observation: the sector's centroid, its 1-sigma error and its reach (see module doc)."""

    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    sigma_m: NDArray[np.float64]
    reach_m: NDArray[np.float64]


def arc_positions(
    lon: ArrayLike,
    lat: ArrayLike,
    az_from: ArrayLike,
    az_to: ArrayLike,
    dist_min_km: ArrayLike,
    dist_max_km: ArrayLike,
) -> ArcPositions:
    """The centroid and error of each observation's sector (arrays of one length; azimuths in
    deg, clockwise, ``az_to >= az_from``; distances in km, ``0 <= min <= max``)."""
    lon0, lat0 = np.asarray(lon, float), np.asarray(lat, float)
    a0 = np.radians(np.asarray(az_from, float))[:, None]
    a1 = np.radians(np.asarray(az_to, float))[:, None]
    r0 = np.asarray(dist_min_km, float)[:, None]
    r1 = np.asarray(dist_max_km, float)[:, None]
    # a grid of equal-area cells: angles evenly, radii evenly in r^2 (a uniform density)
    u = (np.arange(_N_ANGLES) + 0.5) / _N_ANGLES
    v = (np.arange(_N_RADII) + 0.5) / _N_RADII
    theta = (a0 + (a1 - a0) * u)[:, :, None]  # (n, A, 1)
    rad = np.sqrt(r0**2 + (r1**2 - r0**2) * v)[:, None, :]  # (n, 1, R)
    x = (rad * np.sin(theta)).reshape(len(lon0), -1)  # east, km
    y = (rad * np.cos(theta)).reshape(len(lon0), -1)  # north, km
    cx, cy = x.mean(axis=1), y.mean(axis=1)
    dx, dy = x - cx[:, None], y - cy[:, None]
    sxx, syy, sxy = (dx * dx).mean(axis=1), (dy * dy).mean(axis=1), (dx * dy).mean(axis=1)
    major = 0.5 * (sxx + syy) + np.sqrt(0.25 * (sxx - syy) ** 2 + sxy**2)
    # the reach: to the sector's corners and the middle of its outer edge (its farthest points)
    ends = np.concatenate([a0, a1, 0.5 * (a0 + a1)], axis=1)  # (n, 3)
    ex = np.concatenate([r0 * np.sin(ends), r1 * np.sin(ends)], axis=1)
    ey = np.concatenate([r0 * np.cos(ends), r1 * np.cos(ends)], axis=1)
    reach = np.hypot(ex - cx[:, None], ey - cy[:, None]).max(axis=1)
    reach = np.maximum(reach, np.hypot(dx, dy).max(axis=1))
    sigma_km = np.maximum(np.sqrt(major), reach / 2.0)
    az = np.degrees(np.arctan2(cx, cy))
    elon, elat, _ = GEOD.fwd(lon0, lat0, az, np.hypot(cx, cy) * 1000.0)
    return ArcPositions(
        np.asarray(elon, float), np.asarray(elat, float), sigma_km * 1000.0, reach * 1000.0
    )
