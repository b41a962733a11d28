"""The force a mission needs to man a line: posts, patrols and personnel per sector."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from truceline.core.agreement import CompiledVersion
from truceline.core.arrays import FloatArray
from truceline.core.geodesy import LineIndex
from truceline.core.planner._line import line_parts

__all__ = [
    "DENSITY_PRESETS",
    "ForceParameters",
    "ForcePlan",
    "SectorForce",
    "force_plan",
    "sector_line_km",
]


#: Troops per km of line fielded by published missions (approx.; see ``docs/planner.md``).
DENSITY_PRESETS: dict[str, float] = {
    "osce-smm": 1.5,  # OSCE SMM to Ukraine: ~700 monitors, unarmed, ~500 km contact line
    "unficyp": 4.5,  # UN in Cyprus: ~800 troops on a ~180 km buffer zone
    "undof": 15.0,  # UN on the Golan: ~1,100-1,250 troops on an ~80 km area of separation
    "unifil": 77.0,  # UN in Lebanon: ~10,000 troops on the ~120-130 km Blue Line
}


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


def sector_line_km(
    cv: CompiledVersion, *, step_m: float = 250.0
) -> tuple[NDArray[np.str_], FloatArray, FloatArray]:
    """Km of the line in each sector (sector ids, km, km outside the sector's own polygon).

    The line is cut into geodesic pieces of at most ``step_m``; each piece goes to the sector holding
    its midpoint, or, outside every sector, to the sector before it along the line (the first sector
    for pieces before any). Without sectors, one pseudo-sector ``"line"`` holds the whole line.
    """
    idx = LineIndex(line_parts(cv.version.line), max_segment_m=step_m)
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
