"""Independent exact reference: geodesic distance from a point to a polyline via GeographicLib."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from truceline.core.geodesy import GEOD


def reference_distance_m(lon: float, lat: float, line: np.ndarray, window_m: float = 400_000.0) -> float:
    """Minimise Geod.inv over each geodesic segment (grid search, then bounded refinement)."""
    _, _, dv = GEOD.inv(np.full(len(line), lon), np.full(len(line), lat), line[:, 0], line[:, 1])
    best = np.inf
    for i in range(len(line) - 1):
        if min(dv[i], dv[i + 1]) > window_m + 50_000:  # segment cannot hold the minimum
            continue
        lo1, la1, lo2, la2 = line[i, 0], line[i, 1], line[i + 1, 0], line[i + 1, 1]
        az, _, length = GEOD.inv(lo1, la1, lo2, la2)

        def f(s: float, lo1: float = lo1, la1: float = la1, az: float = az) -> float:
            x, y, _ = GEOD.fwd(lo1, la1, az, s)
            return float(GEOD.inv(lon, lat, x, y)[2])

        grid = np.linspace(0.0, length, 33)
        vals = [f(s) for s in grid]
        j = int(np.argmin(vals))
        lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
        r = minimize_scalar(f, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        best = min(best, float(r.fun), vals[j])
    return best
