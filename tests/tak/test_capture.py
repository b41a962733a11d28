"""``truceline import --format cot``: a capture of CoT events through the listener's path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.services.patrols import track
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import IncidentRevisionRow, IncidentRow, LedgerEntryRow

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "examples" / "samples" / "tak-capture.cot"
AGREEMENT = ROOT / "examples" / "ukraine-2024"


def _import(db: Path, rejects: Path | None = None) -> str:
    args = ["import", str(SAMPLE), "--format", "cot", "-a", str(AGREEMENT), "--db", str(db)]
    if rejects is not None:
        args += ["--rejects", str(rejects)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res.output


def test_a_capture_is_one_incident_per_marker_a_move_a_revision_and_idempotent(
    tmp_path: Path,
) -> None:
    db = tmp_path / "t.db"
    out = _import(db, tmp_path / "rejects.csv")
    # 19 events: 3 markers sent 4 times (one moved after two sends), 4 position reports of the
    # patrol (PLI), a ping, a helicopter with nothing said, a marker without a position fix
    assert "19 events, 3 accepted, 1 revised, 8 duplicates, 2 rejected" in out
    assert "not reports: t-x* 1" in out
    assert "Patrol positions (PLI): 4 stored, 0 already stored" in out
    rejects = (tmp_path / "rejects.csv").read_text()
    assert "cot:SMM-MARK-4,type," in rejects and "cot:SMM-MARK-5,ce," in rejects
    database = Database(str(db))
    try:
        with database.read() as s:
            rows = {r.report_id: r for r in s.execute(select(IncidentRow)).scalars()}
            assert set(rows) == {"cot:SMM-MARK-1", "cot:SMM-MARK-2", "cot:SMM-MARK-3"}
            moved = rows["cot:SMM-MARK-1"]
            assert moved.revision == 2 and moved.lon == 37.7401 and moved.uncertainty_m == 15.0
            (old,) = s.execute(select(IncidentRevisionRow)).scalars()
            assert old.incident_pk == moved.pk and old.record["lon"] == 37.7321
            entries = s.execute(select(func.count()).select_from(LedgerEntryRow)).scalar()
            # the patrol's own position reports are its track (not incidents)
            ag = moved.agreement_id
            t0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
            path = track(s, ag, "ANDROID-5f2c", t0, t0 + dt.timedelta(days=1))
            assert [round(p.lon, 4) for p in path] == [37.6508, 37.6528, 37.6548, 37.6568]
            assert {(p.callsign, p.group_name, p.uncertainty_m) for p in path} == {
                ("SMM PATROL 12", "Cyan", 4.8)
            }
            assert ledger.verify(s).ok
        again = _import(db)
        assert "0 accepted, 0 revised, 12 duplicates, 2 rejected" in again
        assert "Patrol positions (PLI): 0 stored, 4 already stored" in again
        with database.read() as s:
            assert s.execute(select(func.count()).select_from(LedgerEntryRow)).scalar() == entries
    finally:
        database.dispose()


def test_a_file_without_events_says_so(tmp_path: Path) -> None:
    f = tmp_path / "x.cot"
    f.write_text("id,lon,lat\n1,2,3\n")
    res = CliRunner().invoke(
        app, ["import", str(f), "--format", "cot", "-a", str(AGREEMENT), "--db", str(tmp_path / "d.db")]
    )
    assert res.exit_code != 0 and "no CoT event" in res.output
