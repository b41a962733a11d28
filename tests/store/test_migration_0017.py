"""Migration 0017 (an incident's second fix as columns), down and up, on SQLite and PostGIS."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident, second_fix, second_fix_text
from truceline.services.ingest import ingest_incidents
from truceline.store import db as db_module
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import IncidentRow

from ..conftest import register_folder

T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def _incident(rid: str, narrative: str) -> Incident:
    return Incident(
        id=rid,
        observed_at=dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC),
        lon=36.95,
        lat=48.6,
        uncertainty_m=40.0,
        kind="explosion",
        source_type="acoustic",
        narrative=narrative,
    )


def test_second_fix_reads_what_it_writes() -> None:
    text = "acoustic impact located by 9 sensors; " + second_fix_text(-3.1234567, 48.7654321, 0.2)
    assert second_fix(text + "; detections a b") == (-3.123457, 48.765432, 0.2)
    assert second_fix("acoustic impact located by 9 sensors; detections a b") is None
    assert second_fix("AMBIGUOUS, but no fix stated") is None


def test_second_fix_stored_and_migrated(db_url: str, small: Agreement, small_dir: Path) -> None:
    """Ingest fills the columns from the narrative; after 0017 is undone and redone, they come
    back from the stored narratives, and the ledger still verifies (it compares them with the
    narrative, which the record's content hash covers)."""
    narrative = "acoustic impact; " + second_fix_text(36.9612, 48.5901, 0.314) + "; detections x"
    incidents = [_incident("amb", narrative), _incident("one", "acoustic impact; detections y")]
    want = {"amb": (True, 36.9612, 48.5901, 0.314), "one": (False, None, None, None)}
    db = Database(db_url)
    q = select(
        IncidentRow.report_id,
        IncidentRow.ambiguous,
        IncidentRow.alt_lon,
        IncidentRow.alt_lat,
        IncidentRow.alt_weight,
    )
    try:
        db.write(lambda s: register_folder(s, small_dir, now=T0))
        db.write(
            lambda s: ingest_incidents(
                s, small, incidents, [0, 1], source="t", submitted_by="m1", now=T0
            )
        )
        with db.read() as s:
            assert {r[0]: tuple(r[1:]) for r in s.execute(q)} == want
            assert ledger.verify(s).ok
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_module.__file__).with_name("migrations")))
        for step, rev in ((command.downgrade, "0013"), (command.upgrade, "head")):
            with db.write_engine.begin() as conn:
                cfg.attributes["connection"] = conn
                step(cfg, rev)
        with db.read() as s:
            assert {r[0]: tuple(r[1:]) for r in s.execute(q)} == want
            assert ledger.verify(s).ok
        # an edit of the columns away from the narrative is found
        with db.write_engine.begin() as conn:
            conn.execute(
                IncidentRow.__table__.update()
                .where(IncidentRow.report_id == "amb")
                .values(alt_lat=48.6101)
            )
        with db.read() as s:
            v = ledger.verify(s)
            assert not v.ok and any("alt_lat" in p.message for p in v.problems)
    finally:
        db.dispose()
