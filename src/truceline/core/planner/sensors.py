"""The acoustic sensors a line needs for a localisation accuracy, and the gaps a layout leaves.

The accuracy is the 95 % error ellipse's semi-major axis from the Cramér-Rao bound of
:mod:`truceline.core.acoustic`: a straight-line template gives the spacing along each row
(:func:`sensor_spacing_km`), the rows are laid along the real line (:func:`line_layout`), and the
accuracy is computed along the line for the planned or a given layout (:func:`coverage`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import cKDTree

from truceline.core.acoustic import cramer_rao_bound, error_ellipse, speed_of_sound_mps
from truceline.core.agreement import CompiledVersion
from truceline.core.arrays import BoolArray, FloatArray
from truceline.core.geodesy import GEOD, LineIndex, ecef, offset_region
from truceline.core.planner._line import line_parts, side_of
from truceline.core.planner.scenario import PlannerError

__all__ = [
    "CoverageGap",
    "SensorParameters",
    "SensorPlan",
    "accuracy_at",
    "coverage",
    "line_layout",
    "sensor_plan",
    "sensor_spacing_km",
]


class SensorParameters(BaseModel):
    """What the acoustic network must achieve and the kit it is built from.

    Accuracy is the semi-major axis of the 95 % error ellipse from the Cramér-Rao bound, for sources
    anywhere from the line out to ``depth_km`` on either side, with the speed of sound and the wind
    estimated with the position unless ``estimate_weather`` is false.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    target_accuracy_m: float = Field(default=25.0, gt=0)
    depth_km: float = Field(default=10.0, ge=0, description="sources this far from the line count")
    rows_km: tuple[float, ...] = Field(
        default=(-8.0, -2.0, 2.0, 8.0), description="sensor rows, km from the line (+ left, - right)"
    )
    detection_range_km: float = Field(default=15.0, gt=0)
    min_sensors: int = Field(default=4, ge=3, description="sensors that must hear a source")
    timing_sigma_ms: float = Field(default=5.0, gt=0)
    temperature_c: float = 15.0
    estimate_weather: bool = True
    sample_step_km: float = Field(default=1.0, gt=0, description="line sampling for coverage")
    min_covered_fraction: float = Field(
        default=0.98, gt=0, le=1, description="share of the line the planned layout must cover"
    )


@dataclass(frozen=True, slots=True)
class CoverageGap:
    """A stretch of line where some source within ``depth_km`` is not located well enough."""

    start_km: float
    end_km: float
    worst_accuracy_m: float  # inf where too few sensors hear a source
    lon: float  # the stretch's middle on the line
    lat: float

    @property
    def length_km(self) -> float:
        return self.end_km - self.start_km


@dataclass(frozen=True, slots=True)
class SensorPlan:
    """Sensors needed along one line, and the coverage of the planned (or a given) layout.

    The spacing comes from a straight-line template (:func:`sensor_spacing_km`), then is tightened
    in steps of 0.25 km (down to half) until the layout laid along the real line covers
    ``min_covered_fraction`` of it: bends and ends cost sensors.
    """

    parameters: SensorParameters
    template_spacing_km: float
    template_accuracy_m: float
    spacing_km: float
    layout_lon: FloatArray  # the planned layout
    layout_lat: FloatArray
    chainage_km: FloatArray  # line samples where the evaluated layout's accuracy was computed
    accuracy_m: FloatArray  # worst accuracy across depth at each sample (inf: not covered)
    gaps: tuple[CoverageGap, ...]
    given_layout: bool = False  # True: accuracy and gaps are those of the given layout

    @property
    def n_sensors(self) -> int:
        return int(self.layout_lon.size)

    @property
    def covered_fraction(self) -> float:
        if self.accuracy_m.size == 0:
            return 0.0
        return float(np.mean(self.accuracy_m <= self.parameters.target_accuracy_m))

    @property
    def gap_km(self) -> float:
        return float(sum(g.length_km for g in self.gaps))


def _accuracy_m(
    src_xy: FloatArray, sens_xy: FloatArray, mask: BoolArray, p: SensorParameters
) -> FloatArray:
    """95 % semi-major axis (m) of the bound for each source; inf with too few sensors in range."""
    n = src_xy.shape[0]
    if n == 0:
        return np.zeros(0)
    enough = mask.sum(axis=1) >= p.min_sensors
    out = np.full(n, np.inf)
    if not enough.any():
        return out
    rows = np.flatnonzero(enough)
    semi = _bound_semi_major(src_xy[rows], sens_xy[rows], mask[rows], p)
    out[rows] = np.where(np.isfinite(semi), semi, np.inf)
    return out


def _bound_semi_major(
    src_xy: FloatArray, sens_xy: FloatArray, mask: BoolArray, p: SensorParameters
) -> FloatArray:
    """95 % semi-major axis from the bound; a geometry that cannot fix a position gives inf.

    The batched inverse fails as a whole if one geometry is singular (e.g. every sensor in range on
    one straight row with the weather unknown): such batches are halved until the culprits are alone.
    """
    try:
        cov = cramer_rao_bound(
            src_xy,
            sens_xy,
            mask,
            np.full(mask.shape, p.timing_sigma_ms / 1000.0),
            float(speed_of_sound_mps(p.temperature_c)),
            estimate_c=p.estimate_weather,
            estimate_wind=p.estimate_weather,
        )
    except np.linalg.LinAlgError:
        n = src_xy.shape[0]
        if n == 1:
            return np.array([np.inf])
        h = n // 2
        return np.concatenate(
            [
                _bound_semi_major(src_xy[:h], sens_xy[:h], mask[:h], p),
                _bound_semi_major(src_xy[h:], sens_xy[h:], mask[h:], p),
            ]
        )
    semi, _, _ = error_ellipse(cov, 0.95)
    return np.asarray(semi, dtype=np.float64)


def _template_accuracy(spacing_km: float, p: SensorParameters) -> float:
    """Worst accuracy (m) over one period of an infinite straight line with rows at ``spacing_km``."""
    s = spacing_km * 1000.0
    r = p.detection_range_km * 1000.0
    n_side = math.ceil((r + p.depth_km * 1000.0) / s) + 1
    xs = np.arange(-n_side, n_side + 1) * s
    rows = np.asarray(p.rows_km, dtype=np.float64) * 1000.0
    sens = np.column_stack([np.tile(xs, rows.size), np.repeat(rows, xs.size)])
    # Sources over one period along the line and across the monitored depth on both sides.
    sx = np.linspace(0.0, s, 7)[:-1]
    sy = np.linspace(-p.depth_km, p.depth_km, 2 * max(int(p.depth_km), 1) + 1) * 1000.0
    src = np.column_stack([np.repeat(sx, sy.size), np.tile(sy, sx.size)])
    d = np.hypot(sens[None, :, 0] - src[:, None, 0], sens[None, :, 1] - src[:, None, 1])
    mask = d <= r
    acc = _accuracy_m(src, np.broadcast_to(sens, (src.shape[0], *sens.shape)).copy(), mask, p)
    return float(acc.max())


def sensor_spacing_km(p: SensorParameters, *, step_km: float = 0.25) -> tuple[float, float]:
    """Widest spacing along each row that meets the target on a straight line, and its accuracy (m).

    Candidates run from ``step_km`` to the detection range; the answer is the widest spacing such
    that it and every closer one meet the target. Raises :class:`PlannerError` if none does.
    """
    if not p.rows_km:
        raise PlannerError("sensor rows_km is empty; give at least one row, e.g. [-2, 2]")
    best: tuple[float, float] | None = None
    for s in np.arange(step_km, p.detection_range_km + step_km / 2, step_km):  # candidates, not data
        acc = _template_accuracy(float(s), p)
        if acc > p.target_accuracy_m:
            break
        best = (float(s), acc)
    if best is None:
        dense = _template_accuracy(step_km, p)
        raise PlannerError(
            f"no sensor spacing meets {p.target_accuracy_m:g} m (even {step_km:g} km gives "
            f"{dense:.1f} m); raise target_accuracy_m, add rows_km or lower depth_km"
        )
    return best


def _points_along(
    idx: LineIndex, chainage_m: FloatArray, offset_m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Points at ``chainage_m`` along the line, moved ``offset_m`` across it (+ left, - right)."""
    seg = np.clip(np.searchsorted(idx.chainage_at_vertex, chainage_m, side="right") - 1, 0, None)
    ok = np.flatnonzero(idx.segment_ok)
    # Snap to a valid segment (the last vertex of a part starts no segment).
    seg = ok[np.clip(np.searchsorted(ok, seg, side="right") - 1, 0, ok.size - 1)]
    az, _, _ = GEOD.inv(idx.lon[seg], idx.lat[seg], idx.lon[seg + 1], idx.lat[seg + 1])
    along = np.clip(chainage_m - idx.chainage_at_vertex[seg], 0.0, idx.segment_length_m[seg])
    lon, lat, back = GEOD.fwd(idx.lon[seg], idx.lat[seg], az, along)
    heading = np.asarray(back) + 180.0
    normal = np.where(offset_m >= 0, heading - 90.0, heading + 90.0)  # left of travel: az - 90
    olon, olat, _ = GEOD.fwd(lon, lat, normal, np.abs(offset_m))
    return np.asarray(olon, np.float64), np.asarray(olat, np.float64)


def _row_curves(cv: CompiledVersion, offset_m: float) -> list[tuple[FloatArray, FloatArray]]:
    """The curves at exactly ``|offset_m|`` from the line on one side (+ left), as lon/lat runs.

    Taken from the outline of the geodesic offset region (every vertex of which lies at the offset
    or on the line): the runs of outline vertices at the offset on the right side. On the inside of
    a bend the curve is the true parallel curve (no crowding); round the outside it follows the arc.
    """
    sign = 1 if offset_m > 0 else -1
    d = abs(offset_m)
    region = offset_region(cv.line, d, sign)
    out: list[tuple[FloatArray, FloatArray]] = []
    rings = [r for poly in shapely.get_parts(region) for r in (poly.exterior, *poly.interiors)]
    for ring in rings:  # a few rings per region
        xy = shapely.get_coordinates(ring)[:-1]
        side, dist = side_of(cv, xy[:, 0], xy[:, 1]), cv.line.distance_m(xy[:, 0], xy[:, 1])
        ok = (side == sign) & (np.abs(dist - d) <= 1e-3 * d + 1.0)
        if not ok.any():
            continue
        if ok.all():
            xy = np.vstack([xy, xy[:1]])
            out.append((xy[:, 0], xy[:, 1]))
            continue
        shift = int(np.flatnonzero(~ok)[0])  # start the ring at a vertex off the curve
        xy, ok = np.roll(xy, -shift, axis=0), np.roll(ok, -shift)
        edges = np.diff(np.r_[0, ok.astype(np.int8), 0])
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            if b - a >= 2:
                out.append((xy[a:b, 0], xy[a:b, 1]))
    return out


def _along(lon: FloatArray, lat: FloatArray, step_m: float) -> tuple[FloatArray, FloatArray]:
    """Points every ``step_m`` along a polyline (geodesic between its vertices), from its start."""
    az, _, seg = GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    seg = np.asarray(seg, dtype=np.float64)
    cum = np.r_[0.0, np.cumsum(seg)]
    at = np.arange(0.0, cum[-1] + 1e-6, step_m)
    k = np.clip(np.searchsorted(cum, at, side="right") - 1, 0, seg.size - 1)
    plon, plat, _ = GEOD.fwd(lon[k], lat[k], np.asarray(az)[k], at - cum[k])
    return np.asarray(plon, np.float64), np.asarray(plat, np.float64)


def line_layout(
    cv: CompiledVersion,
    spacing_km: float,
    rows_km: Sequence[float],
    *,
    curves: dict[float, list[tuple[FloatArray, FloatArray]]] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Sensor positions: one row per offset from the line, a sensor every ``spacing_km`` along it.

    Each row is the curve at its offset from the line (geodesic, see :func:`_row_curves`), so rows
    keep their spacing round bends; sensors outside the area of application are dropped.
    ``curves`` caches the row curves between calls on the same line.
    """
    lons: list[FloatArray] = []
    lats: list[FloatArray] = []
    for off in rows_km:  # a few rows
        if off == 0:
            idx = LineIndex(line_parts(cv.version.line), max_segment_m=1000.0)
            lo, la = _points_along(
                idx, np.arange(0.0, idx.length_m + 1.0, spacing_km * 1000.0), np.zeros(1)
            )
            lons.append(lo)
            lats.append(la)
            continue
        if curves is not None and off in curves:
            row = curves[off]
        else:
            row = _row_curves(cv, off * 1000.0)
            if curves is not None:
                curves[off] = row
        for clon, clat in row:
            lo, la = _along(clon, clat, spacing_km * 1000.0)
            lons.append(lo)
            lats.append(la)
    if not lons:
        return np.zeros(0), np.zeros(0)
    lon, lat = np.concatenate(lons), np.concatenate(lats)
    keep = shapely.contains_xy(cv.area, lon, lat)
    return lon[keep], lat[keep]


def _aeqd_xy(
    lon0: float, lat0: float, lon: FloatArray, lat: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Azimuthal equidistant plane (m; x east, y north) about ``lon0, lat0`` on the ellipsoid.

    The geodesic distance and azimuth from the centre, as PROJ's ``aeqd`` defines it; one vectorised
    :meth:`pyproj.Geod.inv` instead of a Transformer per frame.
    """
    az, _, dist = GEOD.inv(np.full(lon.size, lon0), np.full(lon.size, lat0), lon, lat)
    a = np.radians(np.asarray(az, np.float64))
    d = np.asarray(dist, np.float64)
    return d * np.sin(a), d * np.cos(a)


def coverage(
    cv: CompiledVersion,
    sensor_lon: ArrayLike,
    sensor_lat: ArrayLike,
    p: SensorParameters,
    *,
    block_km: float = 50.0,
    max_sensors: int = 48,
) -> tuple[FloatArray, FloatArray, tuple[CoverageGap, ...]]:
    """Accuracy along the line for a sensor layout, and the stretches where it misses the target.

    The line is sampled every ``sample_step_km``; at each sample, sources on the line and at half and
    full ``depth_km`` on both sides are bounded with the ``max_sensors`` nearest sensors within the
    detection range, in an azimuthal-equidistant plane per ``block_km`` of line.

    Returns
    -------
    chainage_km, accuracy_m, gaps
        Samples, the worst accuracy across depth at each (inf: fewer than ``min_sensors`` in range),
        and the gaps (runs of samples over the target).
    """
    slon = np.asarray(sensor_lon, dtype=np.float64)
    slat = np.asarray(sensor_lat, dtype=np.float64)
    idx = LineIndex(line_parts(cv.version.line), max_segment_m=1000.0)
    step = p.sample_step_km * 1000.0
    ch = np.arange(0.0, idx.length_m + step / 2, step)
    ch[-1] = min(ch[-1], idx.length_m)
    d = p.depth_km * 1000.0
    offsets = np.unique(np.array([-d, -d / 2, 0.0, d / 2, d]))
    c = np.tile(ch, offsets.size)
    off = np.repeat(offsets, ch.size)
    qlon, qlat = _points_along(idx, c, off)
    # A source moved across the line that came nearer another stretch (inside a bend) or crossed it
    # belongs to that stretch's own samples: it does not count here.
    side, dist = side_of(cv, qlon, qlat), cv.line.distance_m(qlon, qlat)
    valid = (off == 0) | ((side == np.sign(off)) & (dist >= 0.9 * np.abs(off)))
    acc = np.full(c.size, np.inf)
    if slon.size >= p.min_sensors:
        tree = cKDTree(ecef(slon, slat))
        k = min(max_sensors, slon.size)
        # Chord and arc differ by < 1 m at detection ranges: the tree's radius is the range.
        dist, nb = tree.query(ecef(qlon, qlat), k=k, distance_upper_bound=p.detection_range_km * 1e3)
        dist = np.asarray(dist).reshape(c.size, k)
        nb = np.asarray(nb).reshape(c.size, k)
        mask = np.isfinite(dist)
        nb = np.where(mask, nb, 0)
        block = np.floor(c / (block_km * 1000.0)).astype(np.intp)
        for b in np.unique(block):  # blocks of line (tens), each one vectorised bound
            rows = np.flatnonzero(block == b)
            mid = rows[np.argmin(np.abs(c[rows] - c[rows].mean()))]
            used = np.unique(nb[rows][mask[rows]])
            if used.size == 0:
                continue
            ux, uy = _aeqd_xy(float(qlon[mid]), float(qlat[mid]), slon[used], slat[used])
            pos = np.clip(np.searchsorted(used, nb[rows]), 0, used.size - 1)
            sxy = np.stack([ux[pos], uy[pos]], -1)
            qx, qy = _aeqd_xy(float(qlon[mid]), float(qlat[mid]), qlon[rows], qlat[rows])
            acc[rows] = _accuracy_m(np.column_stack([qx, qy]), sxy, mask[rows], p)
    acc = np.where(valid, acc, -np.inf)
    worst = acc.reshape(offsets.size, ch.size).max(axis=0)
    return ch / 1000.0, worst, _gaps(idx, ch, worst, p.target_accuracy_m)


def accuracy_at(
    sensor_lon: ArrayLike,
    sensor_lat: ArrayLike,
    lon: ArrayLike,
    lat: ArrayLike,
    p: SensorParameters,
    *,
    cell_deg: float = 0.5,
    max_sensors: int = 48,
) -> FloatArray:
    """The accuracy (95 % semi-major axis of the bound, m) a sensor layout gives a source at each
    point (inf where fewer than ``min_sensors`` are within ``detection_range_km``).

    As :func:`coverage` does along the line, for any points (a history's incidents): the
    ``max_sensors`` nearest sensors in range, in an azimuthal-equidistant plane about the middle of
    each ``cell_deg`` cell of longitude and latitude (vectorised per cell: tens to hundreds), so a
    point's accuracy does not depend on the points computed with it (blocks of a sweep agree).
    """
    slon = np.asarray(sensor_lon, dtype=np.float64)
    slat = np.asarray(sensor_lat, dtype=np.float64)
    qlon = np.asarray(lon, dtype=np.float64)
    qlat = np.asarray(lat, dtype=np.float64)
    acc = np.full(qlon.size, np.inf)
    if slon.size < p.min_sensors or qlon.size == 0:
        return acc
    tree = cKDTree(ecef(slon, slat))
    k = min(max_sensors, slon.size)
    dist, nb = tree.query(ecef(qlon, qlat), k=k, distance_upper_bound=p.detection_range_km * 1e3)
    dist = np.asarray(dist).reshape(qlon.size, k)
    nb = np.asarray(nb).reshape(qlon.size, k)
    mask = np.isfinite(dist)
    nb = np.where(mask, nb, 0)
    heard = mask.sum(axis=1) >= p.min_sensors
    cx, cy = np.floor(qlon / cell_deg).astype(np.int64), np.floor(qlat / cell_deg).astype(np.int64)
    cell = cx * 100_000 + cy
    cells, inverse = np.unique(np.where(heard, cell, np.iinfo(np.int64).min), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(cells.size + 1))
    for c in range(cells.size):  # cells of the map (tens to hundreds), each one vectorised bound
        rows = order[bounds[c] : bounds[c + 1]]
        if not heard[rows[0]]:
            continue
        # the cell's middle: a point's result does not depend on the others computed with it
        r0 = rows[0]
        lon0, lat0 = (float(cx[r0]) + 0.5) * cell_deg, (float(cy[r0]) + 0.5) * cell_deg
        used = np.unique(nb[rows][mask[rows]])
        ux, uy = _aeqd_xy(lon0, lat0, slon[used], slat[used])
        pos = np.clip(np.searchsorted(used, nb[rows]), 0, used.size - 1)
        sxy = np.stack([ux[pos], uy[pos]], -1)
        qx, qy = _aeqd_xy(lon0, lat0, qlon[rows], qlat[rows])
        acc[rows] = _accuracy_m(np.column_stack([qx, qy]), sxy, mask[rows], p)
    return acc


def _gaps(
    idx: LineIndex, ch_m: FloatArray, worst: FloatArray, target_m: float
) -> tuple[CoverageGap, ...]:
    bad = ~(worst <= target_m)
    if not bad.any():
        return ()
    edges = np.diff(np.r_[0, bad.astype(np.int8), 0])
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    half = np.r_[np.diff(ch_m), 0.0] / 2.0
    lo = np.maximum(ch_m[starts] - np.r_[0.0, half][starts], 0.0)
    hi = np.minimum(ch_m[ends] + half[ends], idx.length_m)
    mlon, mlat = _points_along(idx, 0.5 * (lo + hi), np.zeros(starts.size))
    run_id = np.cumsum(edges[:-1] == 1) - 1
    run_max = np.full(starts.size, -np.inf)
    np.maximum.at(run_max, run_id[bad], worst[bad])
    return tuple(
        CoverageGap(
            float(lo[k] / 1000.0),
            float(hi[k] / 1000.0),
            float(run_max[k]),
            float(mlon[k]),
            float(mlat[k]),
        )
        for k in range(starts.size)
    )


def sensor_plan(
    cv: CompiledVersion,
    p: SensorParameters,
    *,
    spacing: tuple[float, float] | None = None,
    layout: tuple[ArrayLike, ArrayLike] | None = None,
) -> SensorPlan:
    """Sensors needed along the line for the target, and the coverage gaps of a layout.

    ``spacing`` is the template's ``(spacing_km, accuracy_m)`` (computed when not given). Without
    ``layout`` the gaps are those of the planned layout; with it, those of the given sensors.
    """
    s0, acc0 = spacing if spacing is not None else sensor_spacing_km(p)
    curves: dict[float, list[tuple[FloatArray, FloatArray]]] = {}
    s_km = s0
    while True:  # a few tightening steps, each one vectorised layout and bound
        lon, lat = line_layout(cv, s_km, p.rows_km, curves=curves)
        ch, worst, gaps = coverage(cv, lon, lat, p)
        covered = float(np.mean(worst <= p.target_accuracy_m)) if worst.size else 0.0
        if covered >= p.min_covered_fraction or s_km - 0.25 < s0 / 2:
            break
        s_km -= 0.25
    if layout is not None:
        ch, worst, gaps = coverage(
            cv, np.asarray(layout[0], np.float64), np.asarray(layout[1], np.float64), p
        )
    return SensorPlan(p, s0, acc0, s_km, lon, lat, ch, worst, gaps, given_layout=layout is not None)
