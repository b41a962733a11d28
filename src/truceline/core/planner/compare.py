"""Compare candidate lines: every scenario measured the same way, changes of territory against the first.

For each scenario: the line's length, the land each party holds and the land changing hands
(:mod:`.territory`), the buffer zone and the withdrawal bands with the people in them, the force a
mission needs (:mod:`.force`) and, when asked, the acoustic sensors (:mod:`.sensors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from truceline.core.agreement import CompiledVersion
from truceline.core.planner._line import side_of
from truceline.core.planner.force import ForceParameters, ForcePlan, force_plan
from truceline.core.planner.scenario import PlannerError, Scenario
from truceline.core.planner.sensors import SensorParameters, SensorPlan, sensor_plan, sensor_spacing_km
from truceline.core.planner.settlements import PlaceCount, Settlements
from truceline.core.planner.territory import (
    TerritoryChange,
    WithdrawalBand,
    area_held_km2,
    buffer_areas,
    buffer_zone,
    held_polygons,
    holder_of,
    territory_changes,
    withdrawal_bands,
)

__all__ = ["Comparison", "ScenarioMetrics", "compare_scenarios"]


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
    #: Where the land figures (held, changing hands) come from: ``"map"`` (the scenario's control
    #: map) or ``"line"`` (the sides of its line).
    land_from: str = "line"

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
    ref_held: dict[int, Any] | None = None
    results = []
    places = settlements
    for sc in scenarios:  # a handful of scenarios
        ag = sc.agreement
        cv = ag.compiled(version % len(ag.versions))
        if ref_cv is None:
            inside = shapely.contains_xy(cv.area, settlements.lon, settlements.lat)
            places = settlements.take(inside)
        side, dist_m = side_of(cv, places.lon, places.lat), cv.line.distance_m(places.lon, places.lat)
        # The land figures: the scenario's control map when it has one, else the sides of its line.
        held = held_polygons(cv, sc.territory)
        holder = side if sc.territory is None else holder_of(held, places.lon, places.lat)
        changes: tuple[TerritoryChange, ...] = ()
        if ref_cv is not None and ref_side is not None and ref_held is not None:
            changes = territory_changes(cv, ref_cv, places, holder, ref_side, held, ref_held)
        bz = buffer_zone(cv)
        buffer_km2, in_buffer = (
            buffer_areas(cv, bz, places, side, dist_m) if bz is not None else ({}, {})
        )
        plan = sensor_plan(cv, sensors, spacing=spacing, layout=layout) if sensors is not None else None
        results.append(
            ScenarioMetrics(
                scenario=sc,
                line_length_km=cv.line_length_km,
                area_km2=area_held_km2(cv, held),
                changes=changes,
                buffer_zone=bz.id if bz is not None else None,
                buffer_km2=buffer_km2,
                in_buffer=in_buffer,
                withdrawal=withdrawal_bands(cv, places, side, dist_m),
                force=force_plan(cv, force),
                sensors=plan,
                land_from="line" if sc.territory is None else "map",
            )
        )
        if ref_cv is None:
            ref_cv, ref_side, ref_held = cv, holder, held
    return Comparison(tuple(results), places, min_population)
