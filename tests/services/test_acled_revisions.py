"""ACLED's weekly updates: a revised row is a new revision of its incident, not a conflict.

Samples (synthetic, in ACLED's real column layouts) in ``tests/io/samples``: a week's rows, the
next week's file with one row revised (later ``timestamp``, fatalities, notes and position
changed), and a legacy (pre-2016) upper-case file.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.errors import ValidationError
from truceline.io.formats import read_incident_file
from truceline.io.incidents_io import read_incidents
from truceline.services.auth import Principal, Role
from truceline.services.exchange import import_incidents
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import FindingRow, IncidentRevisionRow, IncidentRow

from ..conftest import register_folder

SAMPLES = Path(__file__).parents[1] / "io" / "samples"
ADMIN = Principal(subject="analyst-1", role=Role.admin)
WEEK1, WEEK2 = dt.datetime(2025, 3, 5, tzinfo=dt.UTC), dt.datetime(2025, 3, 12, tzinfo=dt.UTC)


def _import(db: Database, ag: Agreement, name: str, now: dt.datetime):  # type: ignore[no-untyped-def]
    return db.write(lambda s: import_incidents(s, ag, SAMPLES / name, "acled", principal=ADMIN, now=now))


def test_a_revised_row_is_one_incident_with_two_revisions(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    db = Database(str(tmp_path / "t.db"))
    db.upgrade()
    db.write(lambda s: register_folder(s, small_dir))
    first = _import(db, small, "acled-week1.csv", WEEK1)
    assert len(first.stored.accepted) == 3 and not first.stored.rejects
    again = _import(db, small, "acled-week1.csv", WEEK1 + dt.timedelta(hours=1))
    assert len(again.stored.duplicates) == 3 and not again.stored.revised
    second = _import(db, small, "acled-week2.csv", WEEK2)
    assert second.stored.revised == ["RUR1001"] and len(second.stored.duplicates) == 2
    assert not second.stored.rejects
    with db.read() as s:
        rows = {r.report_id: r for r in s.execute(select(IncidentRow)).scalars()}
        assert len(rows) == 3
        inc = rows["RUR1001"]
        assert inc.revision == 2 and inc.lat == 48.61 and "two killed" in inc.narrative
        assert inc.version == 1741600000.0
        (old,) = s.execute(select(IncidentRevisionRow)).scalars()
        assert old.revision == 1 and old.record["lat"] == 48.6 and old.version == 1741000000.0
        # findings recomputed on the new content: the old ones withdrawn, kept in the revision
        now_findings = s.execute(select(FindingRow).where(FindingRow.incident_pk == inc.pk)).scalars()
        assert {f["pk"] for f in old.findings}.isdisjoint({f.pk for f in now_findings})
        v = ledger.verify(s)
        assert v.ok, v.problems
    # an older file after the newer one changes nothing
    late = _import(db, small, "acled-week1.csv", WEEK2 + dt.timedelta(hours=1))
    assert not late.stored.revised and not late.stored.accepted
    assert len(late.stored.duplicates) == 3  # RUR1001's first content: kept as revision 1


def test_history_shows_the_revision(tmp_path: Path, small_dir: Path) -> None:
    from ..api.conftest import make_api

    api = make_api(str(tmp_path / "t.db"), small_dir)
    try:
        with api.client:
            for name, now in (("acled-week1.csv", WEEK1), ("acled-week2.csv", WEEK2)):
                api.ctx.db.write(
                    lambda s, name=name, now=now: import_incidents(
                        s, api.ctx.agreement(s, None), SAMPLES / name, "acled", principal=ADMIN, now=now
                    )
                )
            with api.ctx.db.read() as s:
                q = select(IncidentRow.pk).where(IncidentRow.report_id == "RUR1001")
                pk = s.execute(q).scalar_one()
            got = api.get(f"/incidents/{pk}/history", role="analyst")
            assert got.status_code == 200, got.text
            revise = [a for a in got.json() if a["action"] == "revise"]
            assert len(revise) == 1
            assert revise[0]["before"]["lat"] == 48.6 and revise[0]["after"]["lat"] == 48.61
            assert revise[0]["before"]["revision"] == 1 and revise[0]["after"]["revision"] == 2
            one = api.get(f"/incidents/{pk}", role="analyst").json()
            assert one["lat"] == 48.61
    finally:
        api.ctx.close()


def test_an_interception_is_not_an_attack_by_the_interceptor() -> None:
    res = read_incident_file(SAMPLES / "acled-week1.csv", "acled", parties={"Alpha": "A", "Bravo": "B"})
    by_id = {i.id: i for i in res.read.incidents}
    shot_down = by_id["RUR1002"]  # actor1 Alpha (air defence) shot down a drone of actor2 Bravo
    assert shot_down.kind == "projectile" and shot_down.party == "B"
    assert "interception: by Alpha" in shot_down.narrative
    unknown = by_id["RUR1003"]  # the launcher is not known: no party, never the interceptor
    assert unknown.party is None
    assert res.report is not None
    assert any("Disrupted weapons use without actor2" in line for line in res.report.lines())
    assert res.versions == {1: 1741000000.0, 2: 1741000000.0, 3: 1741000000.0}


def test_the_legacy_upper_case_layout_is_read() -> None:
    res = read_incident_file(SAMPLES / "acled-legacy.csv", "acled", parties={"Bravo": "B"})
    by_id = {i.id: i for i in res.read.incidents}
    assert by_id["RUR1"].kind == "small_arms_fire" and by_id["RUR1"].party == "B"
    assert by_id["RUR1"].observed_at.date() == dt.date(2015, 2, 14)
    assert by_id["RUR2"].kind == "explosion" and by_id["RUR2"].uncertainty_m == 5000.0
    (rej,) = res.read.rejects  # a protest has no Truceline kind: said, not guessed
    assert rej.id == "RUR3" and rej.field == "event_type" and "Riots/Protests" in rej.reason
    assert res.report is not None and res.report.legacy_layout


@pytest.mark.parametrize("name", ["acled-week1.csv", "acled-legacy.csv"])
def test_the_generic_csv_path_points_at_the_acled_import(name: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as err:
        read_incidents(SAMPLES / name)
    assert "ACLED" in err.value.message and "--format acled" in (err.value.fix or "")
    res = CliRunner().invoke(
        app,
        [
            "classify",
            str(Path(__file__).parents[2] / "examples" / "ukraine-2024"),
            str(SAMPLES / name),
            "-o",
            str(tmp_path / "o.csv"),
        ],
    )
    assert res.exit_code != 0 and "--format acled" in res.output
