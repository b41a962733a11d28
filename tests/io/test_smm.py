"""OSCE SMM observations (``import --format smm``): an arc and a distance range become a point at
the sector's centroid with an error covering the sector; the window gives time and precision.

The expected positions are computed independently here: points drawn uniformly over the sector
(rejection sampling in the observer's plane), each placed by its own geodesic, then averaged.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod
from sqlalchemy import select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.observations import compass_arc
from truceline.io.formats import read_incident_file
from truceline.store.db import Database
from truceline.store.models import IncidentRow

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "examples" / "samples" / "smm-observations.csv"
GEOD = Geod(ellps="WGS84")
HEADER = (
    "id,observer_lon,observer_lat,observed_from,observed_to,bearing,bearing_error_deg,"
    "distance_min_km,distance_max_km,count,kind,weapon,party,threat_to_monitors,source_type,narrative"
)


def _sector_points(lon: float, lat: float, a0: float, a1: float, d0: float, d1: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(-d1, d1, 400_000), rng.uniform(-d1, d1, 400_000)
    r, az = np.hypot(x, y), np.degrees(np.arctan2(x, y)) % 360.0
    inside = (r >= d0) & (r <= d1) & (((az - a0) % 360.0) <= (a1 - a0))
    plon, plat, _ = GEOD.fwd(
        np.full(inside.sum(), lon), np.full(inside.sum(), lat), az[inside], r[inside] * 1000.0
    )
    return np.column_stack([plon, plat])


@pytest.mark.parametrize(
    ("row", "arc", "dist"),
    [
        (1, (123.75, 146.25), (3.0, 5.0)),  # SE, 3-5 km
        (2, (258.75, 371.25), (1.0, 2.0)),  # from W to N, 1-2 km
        (3, (35.0, 55.0), (0.3, 0.8)),  # 045 +- 10 deg
    ],
)
def test_the_sample_lands_at_the_sectors_centroid(
    row: int, arc: tuple[float, float], dist: tuple[float, float]
) -> None:
    res = read_incident_file(SAMPLE, "smm")
    assert not res.read.rejects
    inc = res.read.incidents[row - 1]
    obs = [(37.756, 48.401), (37.756, 48.401), (37.63, 48.30)][row - 1]
    pts = _sector_points(*obs, *arc, *dist)
    want_lon, want_lat = pts.mean(axis=0)
    _, _, err = GEOD.inv(inc.lon, inc.lat, want_lon, want_lat)
    assert err < 0.01 * dist[1] * 1000.0, err  # within 1 % of the range
    # the whole sector lies within two sigma of the point
    _, _, reach = GEOD.inv(np.full(len(pts), inc.lon), np.full(len(pts), inc.lat), pts[:, 0], pts[:, 1])
    assert reach.max() <= 2.0 * inc.uncertainty_m + 1.0
    assert inc.uncertainty_m < reach.max()  # and the error is not inflated past the sector


def test_time_window_kind_and_party() -> None:
    by_id = {i.id: i for i in read_incident_file(SAMPLE, "smm").read.incidents}
    night = by_id["SMM-20250301-OP07-1"]
    # 21:00-23:30 EET = 19:00-21:30 UTC: the middle, and a precision that holds 2.5 h
    assert night.observed_at == dt.datetime(2025, 3, 1, 20, 15, tzinfo=dt.UTC)
    assert night.time_precision == "day" and night.kind == "explosion" and night.count == 3
    assert "between 2025-03-01T19:00:00+00:00 and 2025-03-01T21:30:00+00:00" in night.narrative
    assert by_id["SMM-20250301-OP07-2"].time_precision == "hour"
    fire = by_id["SMM-20250302-P12-1"]
    assert fire.kind == "threat_to_monitors" and fire.weapon_class == "mortar"
    assert fire.time_precision == "second" and fire.party is None
    assert "fired at or near" in fire.narrative and "2 x explosion 0.3-0.8 km 045" in fire.narrative


def test_bad_rows_are_rejected_alone(tmp_path: Path) -> None:
    f = tmp_path / "obs.csv"
    good = (
        "ok,37.7,48.4,2025-03-01T21:00:00+02:00,2025-03-01T21:05:00+02:00,SE,,1,2,1,explosion,,,false,,"
    )
    f.write_text(
        "\n".join(
            [
                HEADER,
                good,
                "naive,37.7,48.4,2025-03-01T21:00:00,2025-03-01T21:05:00,SE,,1,2,1,explosion,,,,,",
                "dir,37.7,48.4,2025-03-01T21:00:00Z,2025-03-01T21:05:00Z,up,,1,2,1,explosion,,,,,",
                "long,37.7,48.4,2025-03-01T00:00:00Z,2025-03-03T00:00:00Z,SE,,1,2,1,explosion,,,,,",
                "far,37.7,48.4,2025-03-01T21:00:00Z,2025-03-01T21:05:00Z,SE,,1,80,1,explosion,,,,,",
                "what,37.7,48.4,2025-03-01T21:00:00Z,2025-03-01T21:05:00Z,SE,,1,2,1,thunder,,,,,",
            ]
        )
        + "\n"
    )
    res = read_incident_file(f, "smm")
    assert [i.id for i in res.read.incidents] == ["ok"]
    why = {r.id: (r.field, r.reason) for r in res.read.rejects}
    assert why["naive"][0] == "observed_from" and "UTC offset" in why["naive"][1]
    assert why["dir"][0] == "bearing" and why["long"][0] == "observed_to"
    assert why["far"][0] == "distance_max_km" and why["what"][0] == "kind"


def test_compass_words_and_ranges() -> None:
    assert compass_arc("south-east") == compass_arc("SE") == (123.75, 146.25)
    assert compass_arc("north-north-east") == (11.25, 33.75)
    assert compass_arc("W-N") == compass_arc("W to N") == (258.75, 371.25)
    assert compass_arc("270 to 360") == (270.0, 360.0)
    assert compass_arc("90", 2.0) == (88.0, 92.0)
    assert compass_arc("up") is None


def test_import_through_the_cli(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    args = ["import", str(SAMPLE), "-f", "smm", "-a", str(ROOT / "examples" / "ukraine-2024")]
    res = CliRunner().invoke(app, [*args, "--db", str(db_path)])
    assert res.exit_code == 0, res.output
    assert "3 accepted" in res.output
    db = Database(str(db_path))
    try:
        with db.read() as s:
            rows = {r.report_id: r for r in s.execute(select(IncidentRow)).scalars()}
        threat = rows["SMM-20250302-P12-1"]
        # stored on the side it landed, but no party is blamed for the ground the monitors stood on
        assert threat.kind == "threat_to_monitors" and threat.party is None
    finally:
        db.dispose()
    out = CliRunner().invoke(
        app, ["export", "incidents", "-o", str(tmp_path / "x.csv"), "-f", "smm", "--db", str(db_path)]
    )
    assert out.exit_code != 0 and "read, not written" in out.output
