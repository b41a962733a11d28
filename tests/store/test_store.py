"""The embedded store: migrations, idempotent ingest, nothing lost."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.services.ingest import ingest_incidents
from truceline.store.db import make_engine, session_factory, upgrade
from truceline.store.models import FindingRow, IncidentRow

from ..conftest import register_folder


def incident(i: int, lon: float = 36.9, kind: str = "armed_personnel") -> Incident:
    return Incident(
        id=f"r{i}",
        observed_at=dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC),
        lon=lon,
        lat=48.5,
        uncertainty_m=100,
        kind=kind,
        source_type="patrol",
    )


@pytest.fixture()
def session_maker(db_url: str, small: Agreement, small_dir: Path):  # type: ignore[no-untyped-def]
    """On each database: a SQLite file and a PostGIS database (tests/pg.py)."""
    engine = make_engine(db_url)
    upgrade(engine)
    sm = session_factory(engine)
    with sm() as s, s.begin():
        register_folder(s, small_dir)
    yield sm
    engine.dispose()


def test_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(str(tmp_path / "w.db"))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 30), min_size=1, max_size=25), st.lists(st.integers(0, 30), max_size=25))
def test_ingest_idempotent(session_maker, small: Agreement, first: list[int], second: list[int]) -> None:  # type: ignore[no-untyped-def]
    with session_maker() as s, s.begin():
        s.execute(FindingRow.__table__.delete())
        s.execute(IncidentRow.__table__.delete())
    for ids in (first, second, first):
        uniq = sorted(set(ids))
        with session_maker() as s, s.begin():
            ingest_incidents(s, small, [incident(i, 36.0 + i * 0.05) for i in uniq], uniq, source="t")
    with session_maker() as s:
        n = s.execute(select(func.count()).select_from(IncidentRow)).scalar_one()
    assert n == len(set(first) | set(second))


def test_changed_content_same_id_is_rejected(session_maker, small: Agreement) -> None:  # type: ignore[no-untyped-def]
    with session_maker() as s, s.begin():
        r1 = ingest_incidents(s, small, [incident(1)], [1], source="t")
    with session_maker() as s, s.begin():
        r2 = ingest_incidents(s, small, [incident(1, lon=37.0), incident(2)], [1, 2], source="t")
    assert r1.accepted == ["r1"]
    assert r2.accepted == ["r2"]
    assert r2.rejects[0].id == "r1" and "new id" in r2.rejects[0].reason


def test_findings_stored_with_incident(session_maker, small: Agreement) -> None:  # type: ignore[no-untyped-def]
    with session_maker() as s, s.begin():
        res = ingest_incidents(s, small, [incident(1, lon=36.65)], [1], source="t")
    with session_maker() as s:
        rows = s.execute(select(FindingRow.rule_id, IncidentRow.report_id).join(IncidentRow)).all()
    assert res.findings == len(rows)
