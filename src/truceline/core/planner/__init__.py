"""The planner: compare candidate ceasefire lines, size the mission, replay the history.

A :class:`Scenario` is the agreement with some of its terms replaced (another line, other zone widths,
other sectors). :func:`compare_scenarios` measures each one the same way, geodesically on WGS84:

- the line's length; the area each party holds (the side polygons inside the area of application) and
  the area that changes hands against the first scenario;
- the buffer zone's area per side; the settlements and people inside the buffer zone, inside each
  withdrawal band, and in the places that change hands;
- the force a mission needs per sector (:class:`ForceParameters`) and the acoustic sensors it needs for
  a localisation accuracy, from the Cramér-Rao bound of :mod:`truceline.core.acoustic`, with the
  stretches of line a sensor layout leaves uncovered (:class:`SensorParameters`).

:func:`replay` runs a stored incident history under another scenario through the same rule engine
(:func:`truceline.core.rules.classify`) and counts the violations that appear or disappear; only the
incidents the change can reach are classified again (:func:`replay_findings`).

Everything works on arrays (settlements, line samples, sensors, incidents); the only Python loops run
over scenarios, sides, zones, sectors, candidate spacings and blocks of line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy.spatial import cKDTree

from truceline.core.acoustic import cramer_rao_bound, error_ellipse, speed_of_sound_mps
from truceline.core.agreement import Agreement, CompiledVersion, RuleType, Sector, Zone
from truceline.core.arrays import BoolArray, FloatArray
from truceline.core.geodesy import GEOD, LineIndex, ecef, geodesic_area_km2, offset_region
from truceline.core.incidents import IncidentBatch
from truceline.core.rules import Findings, classify
from truceline.errors import ValidationError

__all__ = [
    "DENSITY_PRESETS",
    "Comparison",
    "CoverageGap",
    "ForceParameters",
    "ForcePlan",
    "PlaceCount",
    "PlannerError",
    "ReplayFindings",
    "ReplayResult",
    "RuleReplay",
    "Scenario",
    "ScenarioMetrics",
    "SectorForce",
    "SensorParameters",
    "SensorPlan",
    "Settlements",
    "TerritoryChange",
    "WithdrawalBand",
    "apply_scenario",
    "classify_by_days",
    "compare_findings",
    "compare_scenarios",
    "coverage",
    "force_plan",
    "line_layout",
    "replay",
    "replay_findings",
    "sector_line_km",
    "sensor_plan",
    "sensor_spacing_km",
]


#: Troops per km of line fielded by published missions (approx.; see ``docs/planner.md``).
DENSITY_PRESETS: dict[str, float] = {
    "osce-smm": 1.5,  # OSCE SMM to Ukraine: ~700 monitors, unarmed, ~500 km contact line
    "unficyp": 4.5,  # UN in Cyprus: ~800 troops on a ~180 km buffer zone
    "undof": 15.0,  # UN on the Golan: ~1,100-1,250 troops on an ~80 km area of separation
    "unifil": 77.0,  # UN in Lebanon: ~10,000 troops on the ~120-130 km Blue Line
}

_NAMES_SHOWN = 12


class PlannerError(ValidationError):
    """A scenario or planning parameter that cannot be used (the message names it and the fix)."""


# -- scenarios -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    """A candidate: the agreement with the scenario's line, zones and sectors in place of its own."""

    id: str
    name: str
    description: str
    agreement: Agreement


def apply_scenario(
    base: Agreement,
    *,
    line: Any = None,
    zones: Sequence[Zone] = (),
    sectors: Sequence[Sector] | None = None,
) -> Agreement:
    """The agreement with another line, zones replaced by id, and/or other sectors; validated again.

    The line replaces the line of every version that kept the agreement's original line (amendments
    that moved the line keep theirs). A zone replaces the zone with its id in every version, or is
    added when no version has that id.
    """
    line0 = base.versions[0].line
    by_id = {z.id: z for z in zones}
    versions = []
    for v in base.versions:
        new_zones = tuple(by_id.get(z.id, z) for z in v.zones)
        have = {z.id for z in v.zones}
        new_zones += tuple(z for z in zones if z.id not in have)
        new_line = line if (line is not None and v.line.equals(line0)) else v.line
        versions.append(v.model_copy(update={"line": new_line, "zones": new_zones}))
    data = {name: getattr(base, name) for name in type(base).model_fields}
    data["versions"] = tuple(versions)
    if sectors is not None:
        data["sectors"] = tuple(sectors)
    # Built anew (not model_copy) so that the agreement's cross-checks run on the new terms.
    return Agreement(**data)


# -- settlements -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settlements:
    """Populated places as columns (WGS84 lon/lat, population in persons)."""

    name: NDArray[np.str_]
    lon: FloatArray
    lat: FloatArray
    population: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.lon.size)

    @classmethod
    def from_columns(
        cls, name: ArrayLike, lon: ArrayLike, lat: ArrayLike, population: ArrayLike
    ) -> Settlements:
        return cls(
            np.asarray(name, dtype=str),
            np.asarray(lon, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(population, dtype=np.int64),
        )

    def take(self, idx: NDArray[np.intp] | BoolArray) -> Settlements:
        return Settlements(self.name[idx], self.lon[idx], self.lat[idx], self.population[idx])


@dataclass(frozen=True, slots=True)
class PlaceCount:
    """How many settlements and people a selection holds; the largest places by name."""

    count: int
    population: int
    largest: tuple[tuple[str, int], ...] = ()
    index: tuple[int, ...] = ()  # of the largest, into the settlements counted

    @classmethod
    def of(cls, places: Settlements, mask: BoolArray) -> PlaceCount:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return cls(0, 0)
        top = idx[np.argsort(-places.population[idx], kind="stable")[:_NAMES_SHOWN]]
        return cls(
            int(idx.size),
            int(places.population[idx].sum()),
            tuple((str(places.name[i]), int(places.population[i])) for i in top),
            tuple(int(i) for i in top),
        )


# -- force -----------------------------------------------------------------------------------------


class ForceParameters(BaseModel):
    """How a mission mans a line (every figure user-set; defaults documented in docs/planner.md).

    The density model gives the force published missions fielded per km of line; the task model gives
    what the posts and patrols chosen here need around the clock. The plan takes the larger.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    troops_per_km: float = Field(default=DENSITY_PRESETS["undof"], ge=0)
    op_spacing_km: float = Field(default=10.0, gt=0, description="km of line between two posts")
    op_crew: int = Field(default=4, ge=1, description="persons on duty at a post at any time")
    patrol_cycle_h: float = Field(default=24.0, gt=0, description="every km visited once per cycle")
    patrol_speed_kmh: float = Field(default=10.0, gt=0, description="average, stops included")
    patrol_crew: int = Field(default=8, ge=1, description="persons in a patrol (two vehicles)")
    rotation_factor: float = Field(
        default=3.0, ge=1, description="persons per position manned around the clock (shifts)"
    )


@dataclass(frozen=True, slots=True)
class SectorForce:
    """Force for one sector: its share of the line, posts, patrols and personnel."""

    sector: str
    nation: str
    line_km: float
    outside_km: float  # km of that share lying outside the sector's polygon (given to it by order)
    observation_posts: int
    patrols_on_duty: int
    personnel_tasks: int
    personnel_density: int

    @property
    def personnel(self) -> int:
        return max(self.personnel_tasks, self.personnel_density)


@dataclass(frozen=True, slots=True)
class ForcePlan:
    parameters: ForceParameters
    sectors: tuple[SectorForce, ...]

    @property
    def line_km(self) -> float:
        return float(sum(s.line_km for s in self.sectors))

    @property
    def personnel(self) -> int:
        return sum(s.personnel for s in self.sectors)

    @property
    def observation_posts(self) -> int:
        return sum(s.observation_posts for s in self.sectors)

    @property
    def patrols_on_duty(self) -> int:
        return sum(s.patrols_on_duty for s in self.sectors)


def _line_parts(line: Any) -> list[FloatArray]:
    return [shapely.get_coordinates(g) for g in getattr(line, "geoms", [line])]


def sector_line_km(
    cv: CompiledVersion, *, step_m: float = 250.0
) -> tuple[NDArray[np.str_], FloatArray, FloatArray]:
    """Km of the line in each sector (sector ids, km, km outside the sector's own polygon).

    The line is cut into geodesic pieces of at most ``step_m``; each piece goes to the sector holding
    its midpoint, or, outside every sector, to the sector before it along the line (the first sector
    for pieces before any). Without sectors, one pseudo-sector ``"line"`` holds the whole line.
    """
    idx = LineIndex(_line_parts(cv.version.line), max_segment_m=step_m)
    seg = np.flatnonzero(idx.segment_ok)
    length_km = idx.segment_length_m[seg] / 1000.0
    sectors = cv.agreement.sectors
    if not sectors:
        return np.array(["line"]), np.array([length_km.sum()]), np.zeros(1)
    # Midpoints of pieces at most step_m long: the lon/lat mean is within centimetres of the curve.
    mlon = 0.5 * (idx.lon[seg] + idx.lon[seg + 1])
    mlat = 0.5 * (idx.lat[seg] + idx.lat[seg + 1])
    owner = np.full(seg.size, -1, dtype=np.intp)
    for k, s in enumerate(sectors):  # a handful of sectors, each one vectorised call
        owner[(owner < 0) & shapely.contains_xy(s.geometry, mlon, mlat)] = k
    inside = owner >= 0
    if inside.any():
        pos = np.where(inside, np.arange(owner.size), -1)
        np.maximum.accumulate(pos, out=pos)
        first = int(np.flatnonzero(inside)[0])
        filled = np.where(pos >= 0, owner[np.maximum(pos, 0)], owner[first])
    else:
        filled = np.zeros(owner.size, dtype=np.intp)
    km = np.bincount(filled, weights=length_km, minlength=len(sectors)).astype(np.float64)
    out_km = np.bincount(filled, weights=length_km * ~inside, minlength=len(sectors)).astype(np.float64)
    return np.array([s.id for s in sectors]), km, out_km


def force_plan(cv: CompiledVersion, params: ForceParameters) -> ForcePlan:
    """Posts, patrols and personnel per sector for the line of ``cv``."""
    ids, km, out_km = sector_line_km(cv)
    nations = {s.id: s.nation for s in cv.agreement.sectors}
    ops = np.where(km > 0, np.ceil(km / params.op_spacing_km), 0).astype(np.int64)
    # A patrol covers speed x cycle km of line per cycle; enough patrols on the road at once.
    patrols = np.ceil(km / (params.patrol_speed_kmh * params.patrol_cycle_h)).astype(np.int64)
    on_duty = ops * params.op_crew + patrols * params.patrol_crew
    tasks = np.ceil(on_duty * params.rotation_factor - 1e-9).astype(np.int64)
    density = np.ceil(km * params.troops_per_km - 1e-9).astype(np.int64)
    rows = tuple(
        SectorForce(
            sector=str(ids[k]),
            nation=nations.get(str(ids[k]), ""),
            line_km=float(km[k]),
            outside_km=float(out_km[k]),
            observation_posts=int(ops[k]),
            patrols_on_duty=int(patrols[k]),
            personnel_tasks=int(tasks[k]),
            personnel_density=int(density[k]),
        )
        for k in range(ids.size)
    )
    return ForcePlan(params, rows)


# -- acoustic sensors ------------------------------------------------------------------------------


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
        side, dist = _side(cv, xy[:, 0], xy[:, 1]), cv.line.distance_m(xy[:, 0], xy[:, 1])
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
            idx = LineIndex(_line_parts(cv.version.line), max_segment_m=1000.0)
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
    idx = LineIndex(_line_parts(cv.version.line), max_segment_m=1000.0)
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
    side, dist = _side(cv, qlon, qlat), cv.line.distance_m(qlon, qlat)
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


# -- territory, zones, settlements -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TerritoryChange:
    """Land one party holds in the first scenario and the other holds in this one."""

    from_party: str
    to_party: str
    area_km2: float
    places: PlaceCount
    geometry: Any = field(repr=False, default=None)


@dataclass(frozen=True, slots=True)
class WithdrawalBand:
    """The strip within ``distance_km`` of the line on a party's side (its weapons must leave it)."""

    party: str
    distance_km: float
    rule_ids: tuple[str, ...]
    places: PlaceCount


@dataclass(frozen=True, slots=True)
class ScenarioMetrics:
    """Everything :func:`compare_scenarios` measures for one scenario."""

    scenario: Scenario
    line_length_km: float
    area_km2: dict[str, float]
    changes: tuple[TerritoryChange, ...]
    buffer_zone: str | None
    buffer_km2: dict[str, float]
    in_buffer: dict[str, PlaceCount]
    withdrawal: tuple[WithdrawalBand, ...]
    force: ForcePlan
    sensors: SensorPlan | None

    @property
    def changed_km2(self) -> float:
        return float(sum(c.area_km2 for c in self.changes))


@dataclass(frozen=True, slots=True)
class Comparison:
    """The scenarios' metrics; ``places`` are the settlements counted (inside the area)."""

    scenarios: tuple[ScenarioMetrics, ...]
    places: Settlements
    min_population: int

    @property
    def reference(self) -> ScenarioMetrics:
        return self.scenarios[0]


def _side(cv: CompiledVersion, lon: FloatArray, lat: FloatArray) -> NDArray[np.int8]:
    """Side of each point (+1 left, -1 right, 0 outside the area), from the side polygons.

    The polygons define the land each party holds (their areas are the areas reported), so people
    and sensors are placed with the same test; far from the line, past a sharp bend, the sign of
    the nearest segment can disagree with them.
    """
    left = shapely.contains_xy(cv.side_polygon(1), lon, lat)
    right = shapely.contains_xy(cv.side_polygon(-1), lon, lat)
    return np.where(left, 1, np.where(right, -1, 0)).astype(np.int8)


def _buffer_zone(cv: CompiledVersion) -> Zone | None:
    for z in cv.version.zones:
        if z.buffer:
            return z
    return None


def _zone_mask(
    cv: CompiledVersion,
    zone: Zone,
    lon: FloatArray,
    lat: FloatArray,
    side: NDArray[np.int8],
    dist_m: FloatArray,
) -> dict[int, BoolArray]:
    """Points inside the zone per side, by geodesic distance for bands (exact, no polygon)."""
    out: dict[int, BoolArray] = {}
    for s in (1, -1):
        party = cv.agreement.party_on_side(s)
        if zone.type == "band":
            if party not in zone.bands:
                out[s] = np.zeros(lon.size, dtype=bool)
                continue
            lo, hi = zone.bands[party]
            d = cv.reference[s].distance_m(lon, lat) if s in cv.reference else dist_m
            out[s] = (side == s) & (d >= lo * 1000.0) & (d < hi * 1000.0)
        else:
            out[s] = (side == s) & shapely.contains_xy(zone.geometry, lon, lat)
    return out


def _withdrawal_bands(
    cv: CompiledVersion, places: Settlements, side: NDArray[np.int8], dist_m: FloatArray
) -> tuple[WithdrawalBand, ...]:
    bands: dict[tuple[int, float], list[str]] = {}
    for r in cv.version.rules:
        if r.type != RuleType.withdrawal:
            continue
        for s in (1, -1):
            km = r.distance_km.get(cv.agreement.party_on_side(s))
            if km is not None:
                bands.setdefault((s, float(km)), []).append(r.id)
    out = []
    for (s, km), rules in sorted(bands.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        party = cv.agreement.party_on_side(s)
        d = cv.reference[s].distance_m(places.lon, places.lat) if s in cv.reference else dist_m
        mask = (side == s) & (d < km * 1000.0)
        out.append(WithdrawalBand(party, km, tuple(rules), PlaceCount.of(places, mask)))
    return tuple(out)


def compare_scenarios(
    scenarios: Sequence[Scenario],
    settlements: Settlements,
    *,
    force: ForceParameters | None = None,
    sensors: SensorParameters | None = None,
    layout: tuple[ArrayLike, ArrayLike] | None = None,
    version: int = -1,
    min_population: int = 0,
) -> Comparison:
    """Measure every scenario; changes of territory are against the first.

    Parameters
    ----------
    settlements
        Populated places (only those inside the area of application are counted).
    force, sensors
        Planning parameters; ``sensors=None`` skips the acoustic plan.
    layout
        Sensor lon/lat whose coverage gaps are reported instead of those of the planned layout.
    version
        Which version of each agreement (default: the last, every amendment in force); its
        withdrawal rules count whatever their start date.
    """
    if not scenarios:
        raise PlannerError("no scenario to compare; name at least one")
    force = force or ForceParameters()
    spacing = sensor_spacing_km(sensors) if sensors is not None else None
    ref_cv: CompiledVersion | None = None
    ref_side: NDArray[np.int8] | None = None
    results = []
    places = settlements
    for sc in scenarios:  # a handful of scenarios
        ag = sc.agreement
        cv = ag.compiled(version % len(ag.versions))
        if ref_cv is None:
            inside = shapely.contains_xy(cv.area, settlements.lon, settlements.lat)
            places = settlements.take(inside)
        side, dist_m = _side(cv, places.lon, places.lat), cv.line.distance_m(places.lon, places.lat)
        areas = {ag.party_on_side(s): geodesic_area_km2(cv.side_polygon(s)) for s in (1, -1)}
        changes: list[TerritoryChange] = []
        if ref_cv is not None and ref_side is not None:
            for s in (1, -1):  # land now on side s that was on the other side before
                geom = shapely.intersection(cv.side_polygon(s), ref_cv.side_polygon(-s))
                geom = _polygonal(geom)
                moved = (side == s) & (ref_side == -s)
                changes.append(
                    TerritoryChange(
                        ref_cv.agreement.party_on_side(-s),
                        ag.party_on_side(s),
                        geodesic_area_km2(geom),
                        PlaceCount.of(places, moved),
                        geom,
                    )
                )
        bz = _buffer_zone(cv)
        buffer_km2: dict[str, float] = {}
        in_buffer: dict[str, PlaceCount] = {}
        if bz is not None:
            masks = _zone_mask(cv, bz, places.lon, places.lat, side, dist_m)
            for s, a in cv.zone_area_km2(bz).items():
                buffer_km2[ag.party_on_side(s)] = a
                in_buffer[ag.party_on_side(s)] = PlaceCount.of(places, masks[s])
        plan = sensor_plan(cv, sensors, spacing=spacing, layout=layout) if sensors is not None else None
        results.append(
            ScenarioMetrics(
                scenario=sc,
                line_length_km=cv.line_length_km,
                area_km2=areas,
                changes=tuple(changes),
                buffer_zone=bz.id if bz is not None else None,
                buffer_km2=buffer_km2,
                in_buffer=in_buffer,
                withdrawal=_withdrawal_bands(cv, places, side, dist_m),
                force=force_plan(cv, force),
                sensors=plan,
            )
        )
        if ref_cv is None:
            ref_cv, ref_side = cv, side
    return Comparison(tuple(results), places, min_population)


def _polygonal(geom: Any) -> Any:
    geom = shapely.make_valid(geom)
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


# -- replay ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleReplay:
    """Violations of one rule before and after."""

    rule_id: str
    before: int
    after: int
    kept: int
    new: int
    cleared: int


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How a history's violations change from one scenario to another.

    A violation is a finding with probability >= ``threshold``; it is the same violation when the
    same incident breaks the same rule.
    """

    n_incidents: int
    threshold: float
    before: int
    after: int
    kept: int
    new: int
    cleared: int
    incidents_before: int
    incidents_after: int
    by_rule: tuple[RuleReplay, ...]
    after_by_party: dict[str, int]
    before_by_party: dict[str, int]


def compare_findings(
    before: Findings, after: Findings, n_incidents: int, *, threshold: float = 0.5
) -> ReplayResult:
    """Violations kept, new and cleared between two sets of findings on the same incidents."""
    b = before.probability >= threshold
    a = after.probability >= threshold
    rules, code = np.unique(np.concatenate([before.rule_id[b], after.rule_id[a]]), return_inverse=True)
    nr = max(rules.size, 1)
    kb = before.incident[b].astype(np.int64) * nr + code[: int(b.sum())]
    ka = after.incident[a].astype(np.int64) * nr + code[int(b.sum()) :]
    kb, ka = np.unique(kb), np.unique(ka)
    kept_b = np.isin(kb, ka, assume_unique=True)
    kept_a = np.isin(ka, kb, assume_unique=True)

    def per_rule(keys: NDArray[np.int64], mask: BoolArray | None = None) -> NDArray[np.int64]:
        k = keys if mask is None else keys[mask]
        return np.bincount((k % nr).astype(np.intp), minlength=rules.size)

    nb, na = per_rule(kb), per_rule(ka)
    nk, nn, nc = per_rule(ka, kept_a), per_rule(ka, ~kept_a), per_rule(kb, ~kept_b)
    by_rule = tuple(
        RuleReplay(str(rules[i]), int(nb[i]), int(na[i]), int(nk[i]), int(nn[i]), int(nc[i]))
        for i in range(rules.size)
    )

    def by_party(f: Findings, m: BoolArray) -> dict[str, int]:
        p, n = np.unique(f.responsible[m], return_counts=True)
        return {str(k): int(v) for k, v in zip(p, n, strict=True)}

    return ReplayResult(
        n_incidents=n_incidents,
        threshold=threshold,
        before=int(kb.size),
        after=int(ka.size),
        kept=int(kept_a.sum()),
        new=int((~kept_a).sum()),
        cleared=int((~kept_b).sum()),
        incidents_before=int(np.unique(before.incident[b]).size),
        incidents_after=int(np.unique(after.incident[a]).size),
        by_rule=by_rule,
        after_by_party=by_party(after, a),
        before_by_party=by_party(before, b),
    )


def replay(
    batch: IncidentBatch,
    to: Agreement,
    before: Findings | Agreement,
    *,
    stored_under: Agreement | None = None,
    threshold: float = 0.5,
) -> ReplayResult:
    """Run ``batch`` under the agreement ``to`` and compare with the findings it had before.

    ``before`` is either the stored findings (``incident`` indexing ``batch``) or the agreement to
    classify the batch under as well. With stored findings and ``stored_under`` (the agreement they
    were made under), only the incidents the change can reach are classified again
    (:func:`replay_findings`).
    """
    if isinstance(before, Agreement):
        stored = classify_by_days(before, batch)
        after = replay_findings(batch, before, to, stored).findings
        return compare_findings(stored, after, len(batch), threshold=threshold)
    if stored_under is not None:
        after = replay_findings(batch, stored_under, to, before).findings
    else:
        after = classify_by_days(to, batch)
    return compare_findings(before, after, len(batch), threshold=threshold)


@dataclass(frozen=True, slots=True)
class ReplayFindings:
    """Findings of a batch under the new agreement and which incidents were classified again."""

    findings: Findings
    reclassified: BoolArray


def _segments(line: Any) -> NDArray[np.float64]:
    """Segments of a (multi)line as rows ``(x0, y0, x1, y1)``, each with its ends in sorted order."""
    segs = []
    for part in _line_parts(line):
        segs.append(np.column_stack([part[:-1], part[1:]]))
    s = np.vstack(segs)
    flip = (s[:, 0] > s[:, 2]) | ((s[:, 0] == s[:, 2]) & (s[:, 1] > s[:, 3]))
    s[flip] = s[flip][:, [2, 3, 0, 1]]
    return s


def _differing_segments(a: Any, b: Any) -> list[FloatArray]:
    """The segments of either line that the other does not have, vertex for vertex (as parts)."""
    sa, sb = _segments(a), _segments(b)
    ka = {tuple(r) for r in sa.tolist()}  # line vertices (thousands): not a hot path
    kb = {tuple(r) for r in sb.tolist()}
    only = [r for r in sa.tolist() if tuple(r) not in kb] + [
        r for r in sb.tolist() if tuple(r) not in ka
    ]
    return [np.array([[r[0], r[1]], [r[2], r[3]]]) for r in only]


def _reach_m(sigma_m: FloatArray) -> FloatArray:
    """How far from a point the rules may look: sigma points, Monte Carlo draws (8 sigma), + 1 km."""
    return 8.0 * np.nan_to_num(sigma_m, nan=1000.0) + 1000.0


def classify_by_days(ag: Agreement, batch: IncidentBatch, *, max_rows: int = 200_000) -> Findings:
    """The findings of :func:`~truceline.core.rules.classify`, computed a block of whole days at a time.

    The rules judge each incident on its own except the daily count caps, so blocks of whole days
    give the same findings as one call, in bounded memory (``max_rows`` incidents a block, or one
    day if a day holds more).
    """
    n = len(batch)
    if n <= max_rows:
        return classify(ag, batch).findings if n else Findings.empty()
    day = batch.day.astype(np.int64)
    order = np.argsort(day, kind="stable")
    d = day[order]
    # Where each day starts in that order, and the end: blocks are cut only there.
    bounds = np.r_[np.flatnonzero(np.r_[True, d[1:] != d[:-1]]), n]
    parts: list[Findings] = []
    lo = 0
    while lo < n:  # blocks of days (tens), each one vectorised classification
        hi = int(bounds[np.searchsorted(bounds, lo + max_rows, side="right") - 1])
        if hi <= lo:  # one day holds more than max_rows: that day alone
            hi = int(bounds[np.searchsorted(bounds, lo, side="right")])
        idx = order[lo:hi]
        f = classify(ag, batch.take(idx)).findings
        parts.append(Findings(idx[f.incident], f.rule_id, f.rule_type, f.responsible,
                              f.probability, f.explanation))  # fmt: skip
        lo = hi
    return Findings.concat(parts)


def replay_findings(
    batch: IncidentBatch,
    before: Agreement,
    after: Agreement,
    stored: Findings,
    *,
    max_rows: int = 200_000,
) -> ReplayFindings:
    """Findings of ``batch`` under ``after``, reusing ``stored`` (made under ``before``) where they hold.

    An incident keeps its stored findings when nothing the rules look at differs between the two:
    every point it carries (its position, its origin) lies nearer the line's common part than the
    two lines' differing segments by more than twice its reach (8 sigma + 1 km; a crater bearing
    adds the weapon's range), so its distance, side, foot and neighbourhood on the line are the same
    under both; and it lies beyond every changed zone band by that reach. Everything else, and every
    count-cap candidate on a day with a changed incident (caps count a day's incidents together), is
    classified again by :func:`~truceline.core.rules.classify` under ``after`` (whole days at a
    time, :func:`classify_by_days`). Without an area of application of its own (the default area
    follows the line) the whole batch is classified again; so it is when a sample shows that most
    of it lies within reach (sorting would then cost more than it saves).
    """
    n = len(batch)
    redo = np.zeros(n, dtype=bool)
    same_shape = len(before.versions) == len(after.versions) and all(
        va.effective_from == vb.effective_from and va.rules == vb.rules
        for va, vb in zip(before.versions, after.versions, strict=True)
    )
    vidx = after.version_index_at(batch.day) if n else np.zeros(0, np.intp)
    if not same_shape or before.area is None or after.area is None:
        redo[:] = True
    elif n > 4 * _SAMPLE and _reached_share(batch, vidx, before, after) > _WORTH:
        redo[:] = True  # most of it is within reach: classifying it all costs less than sorting
    else:
        for v in np.unique(vidx):  # agreement versions (a handful)
            rows = np.flatnonzero(vidx == v)
            redo[rows] = _reached(batch, rows, before, after, int(v))
    if redo.any() and not redo.all():
        caps = [r for v in after.versions for r in v.rules if r.type == RuleType.count_cap]
        if caps:
            kinds = {k.value for r in caps for k in r.kinds}
            classes = {w for r in caps for w in r.weapon_classes}
            cand = np.isin(batch.kind, sorted(kinds)) | np.isin(batch.weapon_class, sorted(classes))
            redo |= cand & np.isin(batch.day, np.unique(batch.day[redo]))
    if redo.all():
        return ReplayFindings(classify_by_days(after, batch, max_rows=max_rows), redo)
    rows = np.flatnonzero(redo)
    new = classify_by_days(after, batch.take(rows), max_rows=max_rows)
    moved = Findings(rows[new.incident], new.rule_id, new.rule_type, new.responsible,
                     new.probability, new.explanation)  # fmt: skip
    keep = ~redo[stored.incident]
    kept = Findings(*(getattr(stored, f)[keep] for f in Findings.__dataclass_fields__))
    return ReplayFindings(Findings.concat([kept, moved]), redo)


_SAMPLE = 20_000  # incidents screened first, to see whether screening all of them pays
_WORTH = 0.5  # above this share within reach, the whole batch is classified again


def _reached_share(
    batch: IncidentBatch, vidx: NDArray[np.intp], before: Agreement, after: Agreement
) -> float:
    """Share of the incidents within reach of the change, estimated on a fixed random sample."""
    pick = np.sort(np.random.default_rng(0).choice(len(batch), size=_SAMPLE, replace=False))
    hit = np.zeros(pick.size, dtype=bool)
    for v in np.unique(vidx[pick]):  # agreement versions (a handful)
        sel = np.flatnonzero(vidx[pick] == v)
        hit[sel] = _reached(batch, pick[sel], before, after, int(v))
    return float(hit.mean())


def _reached(
    batch: IncidentBatch, rows: NDArray[np.intp], before: Agreement, after: Agreement, v: int
) -> BoolArray:
    """Which incidents of one version the change between the two agreements can reach."""
    va, vb = before.versions[v], after.versions[v]
    if set(va.reference_lines) != set(vb.reference_lines) or any(
        not g.equals(vb.reference_lines[k]) for k, g in va.reference_lines.items()
    ):
        return np.ones(rows.size, dtype=bool)
    za = {z.id: z for z in va.zones}
    zb = {z.id: z for z in vb.zones}
    changed = [k for k in set(za) | set(zb) if za.get(k) != zb.get(k)]
    if any(z.type == "polygon" for k in changed for z in (za.get(k), zb.get(k)) if z is not None):
        return np.ones(rows.size, dtype=bool)
    edge_m = 1000.0 * max(
        (hi for k in changed for z in (za.get(k), zb.get(k)) if z is not None
         for _, hi in z.bands.values()),
        default=-np.inf,
    )  # fmt: skip
    line = _VertexBounds(_line_parts(va.line))
    parts = _differing_segments(va.line, vb.line)
    diff = _VertexBounds(parts) if parts else None
    lon, lat = batch.lon[rows], batch.lat[rows]
    reach = _reach_m(batch.uncertainty_m[rows])
    bearing = np.isfinite(batch.bearing_deg[rows]) & ~np.isfinite(batch.origin_lon[rows])
    if bearing.any():
        far = {w.id: (w.max_range_km or 20.0) for w in after.weapon_classes}
        rng_km = np.array([far.get(w, 20.0) for w in batch.weapon_class[rows][bearing].tolist()])
        reach[bearing] += 1000.0 * np.maximum(rng_km, 20.0)
    lo, hi = line.bounds_m(lon, lat)
    out = lo < edge_m + reach
    if diff is not None:
        out |= diff.bounds_m(lon, lat)[0] <= hi + 2.0 * reach + 1.0
        has_o = np.flatnonzero(np.isfinite(batch.origin_lon[rows]))
        if has_o.size:
            r = rows[has_o]
            olon, olat = batch.origin_lon[r], batch.origin_lat[r]
            oreach = _reach_m(batch.origin_uncertainty_m[r])
            _, ohi = line.bounds_m(olon, olat)
            out[has_o] |= diff.bounds_m(olon, olat)[0] <= ohi + 2.0 * oreach + 1.0
    return out


class _VertexBounds:
    """Bounds on the geodesic distance (m) from points to a line, from its vertices alone.

    The line is densified along its geodesics (vertices ``step_m`` apart) and the vertices put in a
    KD-tree in ECEF. With ``c`` the chord to the nearest vertex, the distance ``d`` to the line obeys
    ``c - step_m / 2 <= d <= arc(c)`` (the foot is within half a step of a vertex; an arc is longer
    than its chord, by ``c^3 / 24 R^2`` at most). Cheaper than an exact query for millions of points.
    """

    def __init__(self, parts: Sequence[FloatArray], step_m: float = 500.0) -> None:
        idx = LineIndex(parts, max_segment_m=step_m)
        self.step_m = float(idx.segment_length_m.max()) if idx.lon.size > 1 else step_m
        self.tree = cKDTree(idx.xyz)

    def bounds_m(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        chord, _ = self.tree.query(ecef(lon, lat))
        chord = np.asarray(chord, dtype=np.float64)
        r_min = 6_335_000.0  # the smallest radius of curvature on WGS84 (meridional, at the equator)
        upper = chord + chord**3 / (24.0 * r_min**2) + 1.0
        return np.maximum(chord - self.step_m / 2.0 - 1.0, 0.0), upper
