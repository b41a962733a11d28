"""The daily report from the store: the findings' stored numbers reach the tables."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import text

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.report.daily import DayReport, render_daily_html
from truceline.services.ingest import ingest_incidents
from truceline.services.report import build_day_report
from truceline.store.db import Database

from ..conftest import register_folder
from ..core.test_rules import point_at

DAY = dt.date(2025, 3, 1)
T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def _report(db: Database, agreement: Agreement) -> DayReport:
    with db.read() as s:
        return build_day_report(s, agreement, DAY)


def _weapons(report: DayReport) -> str:
    m = re.search(r'<section id="weapons">(.*?)</section>', render_daily_html(report), re.S)
    assert m
    return m.group(1)


def test_the_report_shows_the_stored_numbers(db_url: str, small: Agreement, small_dir: Path) -> None:
    lon, lat = point_at(small, 18.4, -1)  # A's side: the artillery limit is 25 km
    hw = Incident(
        id="hw1",
        observed_at=dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC),
        lon=lon,
        lat=lat,
        uncertainty_m=0,
        kind="heavy_weapon",
        weapon_class="art100",
        source_type="patrol",
    )
    db = Database(db_url)
    try:
        db.write(lambda s: register_folder(s, small_dir))
        db.write(lambda s: ingest_incidents(s, small, [hw], [0], source="t", submitted_by="m", now=T0))
        (f,) = _report(db, small).findings
        assert f.rule_id == "wd-art" and f.numbers is not None
        assert (f.numbers.limit_km, f.numbers.side_party, f.numbers.distance_of) == (
            25.0,
            "A",
            "incident",
        )
        weapons = _weapons(_report(db, small))
        assert '<td class="n">18.4 km</td><td class="n">25 km</td><td>Alpha</td>' in weapons
        # A finding recorded before findings carried numbers: its explanation instead.
        with db.write_engine.begin() as conn:
            conn.execute(text("update findings set numbers = null"))
        report = _report(db, small)
        (old,) = report.findings
        assert old.numbers is None
        weapons = _weapons(report)
        assert f'<td colspan="3" class="expl">{old.explanation}</td>' in weapons
    finally:
        db.dispose()
