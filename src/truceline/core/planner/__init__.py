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

The modules, one per family (each imports only those above it in this list):

- :mod:`.scenario`: :class:`Scenario`, :func:`apply_scenario`, :class:`PlannerError`;
- :mod:`.settlements`: :class:`Settlements` and the :class:`PlaceCount` of a selection;
- :mod:`.force`: posts, patrols and personnel per sector;
- :mod:`.sensors`: acoustic sensor spacing, layout along the line, coverage and its gaps;
- :mod:`.territory`: land held and changing hands, the buffer zone and the withdrawal bands;
- :mod:`.compare`: :func:`compare_scenarios`, which measures a scenario with all of the above;
- :mod:`.replay`: the history under another scenario.
"""

from __future__ import annotations

from truceline.core.planner.compare import Comparison, ScenarioMetrics, compare_scenarios
from truceline.core.planner.force import (
    DENSITY_PRESETS,
    ForceParameters,
    ForcePlan,
    SectorForce,
    force_plan,
    sector_line_km,
)
from truceline.core.planner.replay import (
    ReplayFindings,
    ReplayResult,
    RuleReplay,
    classify_by_days,
    compare_findings,
    merge_replays,
    replay,
    replay_findings,
)
from truceline.core.planner.scenario import PlannerError, Scenario, apply_scenario
from truceline.core.planner.sensors import (
    CoverageGap,
    SensorParameters,
    SensorPlan,
    accuracy_at,
    coverage,
    line_layout,
    sensor_plan,
    sensor_spacing_km,
)
from truceline.core.planner.settlements import PlaceCount, Settlements
from truceline.core.planner.territory import TerritoryChange, WithdrawalBand

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
    "accuracy_at",
    "apply_scenario",
    "classify_by_days",
    "compare_findings",
    "compare_scenarios",
    "coverage",
    "force_plan",
    "line_layout",
    "merge_replays",
    "replay",
    "replay_findings",
    "sector_line_km",
    "sensor_plan",
    "sensor_spacing_km",
]
