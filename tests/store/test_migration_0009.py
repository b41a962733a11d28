"""Migration 0009 (``in_force``, ``in_area`` on incidents), down and up, on SQLite and PostGIS."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import select

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.services.ingest import ingest_incidents
from truceline.store import db as db_module
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import FindingRow, IncidentRow

from ..conftest import register_folder
from ..core.test_rules import point_at

T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def _incident(rid: str, lon: float, lat: float, day: dt.date) -> Incident:
    return Incident(
        id=rid,
        observed_at=dt.datetime.combine(day, dt.time(10), dt.UTC),
        lon=lon,
        lat=lat,
        uncertainty_m=0,
        kind="movement_restriction",
        source_type="patrol",
    )


def test_labels_stored_and_migrated(db_url: str, small: Agreement, small_dir: Path) -> None:
    """New rows are labelled by ingest; after 0009 is undone and redone, both labels come back
    from the ledger's report entries; the findings and the ledger survive both steps."""
    p = point_at(small, 2.0, -1)
    incidents = [
        _incident("in", *p, dt.date(2025, 3, 1)),
        _incident("early", *p, dt.date(2024, 12, 1)),
        _incident("far", -75.0, 40.0, dt.date(2025, 3, 1)),
    ]
    db = Database(db_url)
    try:
        db.write(lambda s: register_folder(s, small_dir, now=T0))
        db.write(
            lambda s: ingest_incidents(
                s, small, incidents, [0, 1, 2], source="t", submitted_by="m1", now=T0
            )
        )
        q = select(IncidentRow.report_id, IncidentRow.in_force, IncidentRow.in_area)
        with db.read() as s:
            assert {r: (f, a) for r, f, a in s.execute(q)} == {
                "in": (True, True),
                "early": (False, True),
                "far": (True, False),
            }
            assert s.execute(select(FindingRow.rule_id)).scalars().all() == ["fom"]
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_module.__file__).with_name("migrations")))
        for step, rev in ((command.downgrade, "0008"), (command.upgrade, "head")):
            with db.write_engine.begin() as conn:
                cfg.attributes["connection"] = conn
                step(cfg, rev)
        with db.read() as s:
            # the labels come back from the ledger, which records them since 0009
            assert {r: (f, a) for r, f, a in s.execute(q)} == {
                "in": (True, True),
                "early": (False, True),
                "far": (True, False),
            }
            assert s.execute(select(FindingRow.rule_id)).scalars().all() == ["fom"]
            assert ledger.verify(s).ok
    finally:
        db.dispose()
