"""Scenarios: zones replaced by id, and the agreement's checks run again on the new terms."""

from __future__ import annotations

import pytest
import shapely

from truceline.core.agreement import Agreement, Sector, Zone
from truceline.core.planner.scenario import apply_scenario

# -- scenarios ---------------------------------------------------------------------------------


def test_apply_scenario_replaces_zones_and_revalidates(base: Agreement) -> None:
    wide = Zone(id="buffer", type="band", bands={"N": (0.0, 20.0), "S": (0.0, 20.0)}, buffer=True)
    ag = apply_scenario(base, zones=[wide])
    assert ag.versions[0].zones[0].bands["N"] == (0.0, 20.0)
    assert base.versions[0].zones[0].bands["N"] == (0.0, 15.0)
    far = Sector(id="far", geometry=shapely.box(30.0, 40.0, 31.0, 41.0))
    from truceline.errors import AgreementError

    with pytest.raises(AgreementError, match="does not touch the line"):
        apply_scenario(base, sectors=[far])
