"""Force per sector against line lengths measured with :class:`pyproj.Geod` directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from truceline.core.agreement import Agreement
from truceline.core.planner.force import ForceParameters, force_plan

from .conftest import BASE, G

# -- force -------------------------------------------------------------------------------------


def test_force_per_sector(base: Agreement) -> None:
    p = ForceParameters(troops_per_km=4.5, op_spacing_km=10, op_crew=4, patrol_cycle_h=12,
                        patrol_speed_kmh=10, patrol_crew=8, rotation_factor=3)  # fmt: skip
    plan = force_plan(base.compiled(0), p)
    line = shapely.LineString(BASE)
    for row in plan.sectors:
        poly = next(s.geometry for s in base.sectors if s.id == row.sector)
        pieces = shapely.get_parts(shapely.intersection(line, poly))
        km = sum(G.line_length(*np.asarray(q.coords).T) for q in pieces) / 1000.0
        assert row.line_km - row.outside_km == pytest.approx(km, abs=0.3)
        assert row.observation_posts == math.ceil(row.line_km / 10)
        assert row.patrols_on_duty == math.ceil(row.line_km / 120)
        assert row.personnel_tasks == math.ceil(
            (row.observation_posts * 4 + row.patrols_on_duty * 8) * 3
        )
        assert row.personnel_density == math.ceil(row.line_km * 4.5)
        assert row.personnel == max(row.personnel_tasks, row.personnel_density)
    # The line east of the last sector (37.2-38 E) is counted in the sector before it.
    east = next(r for r in plan.sectors if r.sector == "east")
    tail = G.line_length([37.2, 38.0], [48.0, 48.0]) / 1000.0
    assert east.outside_km == pytest.approx(tail, abs=0.3)
    assert plan.line_km == pytest.approx(G.line_length(*np.asarray(BASE).T) / 1000.0, abs=0.01)
    dense = force_plan(base.compiled(0), p.model_copy(update={"troops_per_km": 77.0}))
    assert dense.personnel == sum(math.ceil(r.line_km * 77.0) for r in dense.sectors)
