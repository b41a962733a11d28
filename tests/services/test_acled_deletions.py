"""ACLED's deletions list: the reports it names are withdrawn (kept, audited, in the ledger as a
revision, their findings withdrawn) and lists, counts, maps and reports leave them out.

Samples: ``examples/samples`` (hand-written in ACLED's layouts: the API's JSON answer for events and
for deletions, and the CSV exports), read through the CLI and the API.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select, text, update
from typer.testing import CliRunner

from truceline.cli import app
from truceline.services import queries
from truceline.services.auth import Principal, Role
from truceline.services.selection import Selection, feature_columns
from truceline.store import db as db_module
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import AuditRow, FindingRow, IncidentRevisionRow, IncidentRow

ROOT = Path(__file__).parents[2]
SAMPLES = ROOT / "examples" / "samples"
UKRAINE = ROOT / "examples" / "ukraine-2024"
ACTORS = [
    "--actor",
    "Military Forces of Russia (2000-)=RU",
    "--actor",
    "Military Forces of Ukraine (2019-)=UA",
]
ADMIN = Principal(subject="analyst-1", role=Role.admin)


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def _import(db: Path, name: str, fmt: str, *extra: str) -> str:
    return _cli("import", str(SAMPLES / name), "-a", str(UKRAINE), "-f", fmt, "--db", str(db), *extra)


def test_deletions_withdraw_a_report_through_the_cli(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    out = _import(db_path, "acled-events.json", "acled", *ACTORS)
    assert "2 accepted" in out and "1 findings" in out
    out = _import(db_path, "acled-deletions.json", "acled-deletions")
    assert "1 withdrawn" in out and "1 not stored here" in out and "1 findings withdrawn" in out
    again = _import(db_path, "acled-deletions.json", "acled-deletions")
    assert "0 withdrawn, 1 already withdrawn" in again
    db = Database(str(db_path))
    try:
        with db.read() as s:
            row = s.execute(select(IncidentRow).where(IncidentRow.report_id == "UKR900201")).scalar_one()
            # kept, with the deletion's time (ACLED's deleted_timestamp 1742860800)
            assert row.withdrawn_at is not None
            assert row.withdrawn_at.replace(tzinfo=dt.UTC) == dt.datetime(2025, 3, 25, tzinfo=dt.UTC)
            assert row.revision == 2 and row.version == 1742860800.0
            assert not s.execute(select(FindingRow).where(FindingRow.incident_pk == row.pk)).all()
            (rev,) = s.execute(select(IncidentRevisionRow)).scalars()
            assert rev.revision == 1 and [f["rule_id"] for f in rev.findings] == ["buffer-ban"]
            actions = {
                (a.entity, a.action)
                for a in s.execute(select(AuditRow).where(AuditRow.action == "withdraw")).scalars()
            }
            assert actions == {("incident", "withdraw"), ("finding", "withdraw")}
            # lists, counts and maps leave it out; it is found by asking for withdrawn reports
            flt = queries.IncidentFilter(agreement_id="ukraine-2024")
            scope = ADMIN.scope
            live = queries.list_incidents(s, flt, scope=scope, cursor=None, limit=10).items
            assert [r.report_id for r in live] == ["UKR900202"]
            flt = queries.IncidentFilter(agreement_id="ukraine-2024", withdrawn=True)
            gone = queries.list_incidents(s, flt, scope=scope, cursor=None, limit=10).items
            assert [r.report_id for r in gone] == ["UKR900201"]
            day = dt.date(2025, 3, 20)
            stats = queries.daily_statistics(s, "ukraine-2024", day, day, scope=scope)
            assert stats[0]["incidents"] == 1 and stats[0]["findings"] == 0
            cols = feature_columns(s, Selection(agreement_id="ukraine-2024"), scope=scope)
            assert "UKR900201" not in json.dumps(cols, default=str)
            v = ledger.verify(s)
            assert v.ok, v.problems
    finally:
        db.dispose()
    # the daily report counts it no more: one report that day, no finding
    report = tmp_path / "r.html"
    _cli("report", "-a", str(UKRAINE), "--db", str(db_path), "--date", "2025-03-20", "-o", str(report))
    html = report.read_text()
    assert "buffer-ban" not in html and "fortification" not in html.lower()
    # a withdrawal no entry records is found by the ledger's check
    engine_db = Database(str(db_path))
    try:
        engine_db.write(
            lambda s: s.execute(
                update(IncidentRow)
                .where(IncidentRow.report_id == "UKR900202")
                .values(withdrawn_at=dt.datetime(2025, 3, 26, tzinfo=dt.UTC))
            )
        )
        with engine_db.read() as s:
            v = ledger.verify(s)
        assert not v.ok and "withdrawn_at" in str(v.problems[0])
    finally:
        engine_db.dispose()


def test_csv_deletions_and_the_migration_keeps_them(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    _import(db_path, "acled-events.csv", "acled", *ACTORS)
    out = _import(db_path, "acled-deletions.csv", "acled-deletions")
    assert "1 withdrawn" in out
    db = Database(str(db_path))
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_module.__file__).with_name("migrations")))
        for step, rev in ((command.downgrade, "0010"), (command.upgrade, "head")):
            with db.write_engine.begin() as conn:
                cfg.attributes["connection"] = conn
                step(cfg, rev)
        with db.read() as s:
            got = s.execute(text("select report_id from incidents where withdrawn_at is not null"))
            assert [r for (r,) in got] == ["UKR900101"]  # back from the ledger
            assert ledger.verify(s).ok
    finally:
        db.dispose()


def test_bad_deletion_rows_are_rejected_alone_and_republication_reinstates(tmp_path: Path) -> None:
    db_path = tmp_path / "t.db"
    _import(db_path, "acled-events.csv", "acled", *ACTORS)
    bad = tmp_path / "deleted.csv"
    bad.write_text(
        "event_id_cnty,deleted_timestamp\nUKR900103,yesterday\nUKR900102,1741305600\n,1741305600\n"
        "UKR900101,1700000000\n"
    )
    res = CliRunner().invoke(
        app, ["import", str(bad), "-a", str(UKRAINE), "-f", "acled-deletions", "--db", str(db_path)]
    )
    assert res.exit_code == 0, res.output
    assert "1 withdrawn" in res.output and "3 rejected" in res.output
    assert "deleted_timestamp" in res.output and "Unix seconds" in res.output
    assert "older than the stored revision" in res.output  # UKR900101 was sent after 1700000000
    # ACLED publishes UKR900102 again, later than its deletion: it stands again
    again = tmp_path / "again.csv"
    lines = (SAMPLES / "acled-events.csv").read_text().splitlines()
    row = next(x for x in lines if x.startswith("UKR900102"))
    row = row.replace("near Kramatorsk", "north of Kramatorsk")[: -len("1741046400")]
    again.write_text(lines[0] + "\n" + row + "1741400000\n")
    out = _cli("import", str(again), "-a", str(UKRAINE), "-f", "acled", "--db", str(db_path), *ACTORS)
    assert "1 revised" in out
    db = Database(str(db_path))
    try:
        with db.read() as s:
            r = s.execute(select(IncidentRow).where(IncidentRow.report_id == "UKR900102")).scalar_one()
            assert r.withdrawn_at is None and r.revision == 3
            assert ledger.verify(s).ok
    finally:
        db.dispose()


def test_the_api_applies_a_deletions_list(tmp_path: Path) -> None:
    from truceline.services.exchange import import_incidents

    from ..api.conftest import make_api

    api = make_api(str(tmp_path / "t.db"), UKRAINE)
    try:
        with api.client:
            api.ctx.db.write(
                lambda s: import_incidents(
                    s,
                    api.ctx.agreement(s, None),
                    SAMPLES / "acled-events.json",
                    "acled",
                    principal=ADMIN,
                    now=dt.datetime(2025, 3, 21, tzinfo=dt.UTC),
                    actors={"Military Forces of Russia (2000-)": "RU"},
                )
            )
            body = json.loads((SAMPLES / "acled-deletions.json").read_text())
            body["data"].append({"event_id_cnty": "UKR900202", "deleted_timestamp": None})
            assert api.post("/incidents/withdrawals", json=body, role="monitor").status_code == 403
            got = api.post("/incidents/withdrawals", json=body, role="analyst")
            assert got.status_code == 200, got.text
            out = got.json()
            assert out["withdrawn"] == ["UKR900201"] and out["not_stored"] == 1
            assert out["findings_withdrawn"] == 1
            (rej,) = out["rejected"]
            assert rej["id"] == "UKR900202" and rej["field"] == "deleted_timestamp"
            items = api.get("/incidents", role="analyst").json()["items"]
            assert [i["report_id"] for i in items] == ["UKR900202"]
            (w,) = api.get("/incidents?withdrawn=true", role="analyst").json()["items"]
            one = api.get(f"/incidents/{w['pk']}", role="analyst").json()
            assert one["withdrawn_at"].startswith("2025-03-25") and one["findings"] == []
            hist = api.get(f"/incidents/{w['pk']}/history", role="analyst").json()
            assert any(a["action"] == "withdraw" for a in hist)
    finally:
        api.ctx.close()
