"""Monitors' observations through TAK (issue 16): the remarks (or ``<__truceline>``) carry the time
window, the direction arc and the distance range; ``import --format cot`` stores each observation at
its sector's centroid, as the SMM import does (checked with pyproj directly)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyproj import Geod
from sqlalchemy import select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.store.db import Database
from truceline.store.models import IncidentRow

ROOT = Path(__file__).parents[2]
AGREEMENT = ROOT / "examples" / "ukraine-2024"
G = Geod(ellps="WGS84")
OBS = (37.7560, 48.4010)  # the observation post (the event's point)


def _event(uid: str, detail: str, typ: str = "b-m-p-s-m") -> str:
    return (
        f'<event version="2.0" uid="{uid}" type="{typ}" how="h-g-i-g-o" '
        'time="2025-03-01T21:40:00Z" start="2025-03-01T21:40:00Z" stale="2025-03-01T21:45:00Z">'
        f'<point lat="{OBS[1]}" lon="{OBS[0]}" hae="0" ce="10" le="9999999"/>'
        f'<detail><contact callsign="OP07"/>{detail}</detail></event>\n'
    )


def test_observations_in_tak_remarks_and_extension(tmp_path: Path) -> None:
    cot = tmp_path / "obs.cot"
    cot.write_text(
        _event(
            "OP07-1",
            "<remarks>three undetermined explosions; bearing: SE; distance_min_km: 3; "
            "distance_max_km: 5; observed_from: 2025-03-01T21:00:00+02:00; "
            "observed_to: 2025-03-01T23:30:00+02:00</remarks>",
        )
        + _event(
            "OP07-2",
            '<__truceline kind="small_arms_fire" bearing_from_deg="270" bearing_to_deg="0" '
            'distance_min_km="1" distance_max_km="2"/><remarks>bursts</remarks>',
        )
        + _event(
            "OP07-3", "<remarks>explosion; bearing=N; distance_min_km=3; distance_max_km=80</remarks>"
        )
    )
    db = tmp_path / "t.db"
    rejects = tmp_path / "rejects.csv"
    res = CliRunner().invoke(
        app,
        ["import", str(cot), "--format", "cot", "-a", str(AGREEMENT), "--db", str(db),
         "--rejects", str(rejects)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "2 accepted" in res.output and "1 rejected" in res.output, res.output
    assert "cot:OP07-3,distance_max_km," in rejects.read_text()
    database = Database(str(db))
    try:
        with database.read() as s:
            rows = {r.report_id: r for r in s.execute(select(IncidentRow)).scalars()}
    finally:
        database.dispose()
    se, wn = rows["cot:OP07-1"], rows["cot:OP07-2"]
    for row, (a0, a1), (d0, d1) in ((se, (123.75, 146.25), (3, 5)), (wn, (270.0, 360.0), (1, 2))):
        az, _, dist = G.inv(OBS[0], OBS[1], row.lon, row.lat)
        assert a0 <= az % 360.0 <= a1 and d0 * 1000 <= dist <= d1 * 1000, (row.report_id, az, dist)
        assert row.uncertainty_m > 100.0  # the sector's spread, not the device's 10 m
    assert (se.kind, wn.kind) == ("explosion", "small_arms_fire")
    # the window's middle (22:15 EET); without a window, the event's start
    assert se.observed_at.replace(tzinfo=dt.UTC) == dt.datetime(2025, 3, 1, 20, 15, tzinfo=dt.UTC)
    assert wn.observed_at.replace(tzinfo=dt.UTC) == dt.datetime(2025, 3, 1, 21, 40, tzinfo=dt.UTC)
