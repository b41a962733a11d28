"""An independent, slow, exact reference: geodesic distance from a point to a polyline (GeographicLib).

Shared by the geodesy tests and ``benchmarks/classify.py``. It uses only ``pyproj.Geod`` (GeographicLib)
and SciPy, nothing of Truceline's own geometry: each segment of the line is parametrised by the
distance along its geodesic (``Geod.fwd``) and the distance to the point (``Geod.inv``) is minimised by
a grid search and a bounded scalar refinement.
"""

from __future__ import annotations

import itertools

import numpy as np
from pyproj import Geod
from scipy.optimize import minimize_scalar

__all__ = ["reference_distance_m"]

_GEOD = Geod(ellps="WGS84")


def reference_distance_m(
    lon: float, lat: float, line: np.ndarray, *, window_m: float | None = None, grid: int = 65
) -> float:
    """Metres from (lon, lat) to the polyline ``line`` (an (n, 2) array of lon, lat).

    ``window_m``: skip segments whose both ends are farther than this plus 50 km (a speed-up for long
    lines when the point is known to be within ``window_m``); ``grid``: samples per segment before
    the refinement.
    """
    dv = _GEOD.inv(np.full(len(line), lon), np.full(len(line), lat), line[:, 0], line[:, 1])[2]
    best = np.inf
    for i, ((lo1, la1), (lo2, la2)) in enumerate(itertools.pairwise(line)):
        if window_m is not None and min(dv[i], dv[i + 1]) > window_m + 50_000:
            continue
        az, _, length = _GEOD.inv(lo1, la1, lo2, la2)

        def f(s: float, lo1: float = lo1, la1: float = la1, az: float = az) -> float:
            x, y, _ = _GEOD.fwd(lo1, la1, az, s)
            return float(_GEOD.inv(lon, lat, x, y)[2])

        samples = np.linspace(0.0, length, grid)
        vals = [f(s) for s in samples]
        j = int(np.argmin(vals))
        lo, hi = samples[max(j - 1, 0)], samples[min(j + 1, grid - 1)]
        res = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        best = min(best, float(res.fun), vals[j])
    return float(best)
