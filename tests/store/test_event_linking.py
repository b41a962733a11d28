"""Linking reports into fused events one submission at a time: the shortcuts that skip fusion (no
stored report within reach; no pair that passes every gate) change no link."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from truceline.core.incidents import Incident
from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import load_agreement
from truceline.services import events
from truceline.services.ingest import ingest_incidents
from truceline.store.db import Database, make_engine, session_factory, upgrade
from truceline.store.models import EventRow, IncidentRow

from ..conftest import EXAMPLES, register_folder


def _events_after_single_submissions(db: Path, reports: list, submitters: list[str]) -> list[tuple]:
    ag = load_agreement(EXAMPLES / "ukraine-2024")
    engine = make_engine(str(db))
    upgrade(engine)
    session = session_factory(engine)
    with session() as s:
        register_folder(s, EXAMPLES / "ukraine-2024")
        s.commit()
    for k, r in enumerate(reports):
        with session() as s:
            ingest_incidents(s, ag, [r], [k], source="api", submitted_by=submitters[k])
            s.commit()
    with session() as s:
        rows = s.execute(select(IncidentRow.report_id, IncidentRow.event_id)).all()
    engine.dispose()
    groups: dict[int, list[str]] = {}
    for rid, ev in rows:
        if ev is not None:
            groups.setdefault(ev, []).append(rid)
    return sorted(tuple(sorted(g)) for g in groups.values())


def test_skipping_fusion_changes_no_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ag = load_agreement(EXAMPLES / "ukraine-2024")
    start = ag.versions[-1].effective_from + dt.timedelta(days=3)
    sim = simulate(ag, SimulationConfig(days=1, seed=5, start=start, events_per_day=600))
    reports = sorted(sim.reports, key=lambda r: r.observed_at)
    submitters = [f"tok-{k % 3}" for k in range(len(reports))]
    fast = _events_after_single_submissions(tmp_path / "fast.db", reports, submitters)
    assert sum(len(g) for g in fast) >= 20, "the simulation makes duplicate reports to link"
    monkeypatch.setattr(events, "_may_pair", lambda cand, var_m2, is_new: True)
    monkeypatch.setattr(events.fusion.Candidates, "touch", lambda self, which: True)
    slow = _events_after_single_submissions(tmp_path / "slow.db", reports, submitters)
    assert fast == slow


def test_reports_either_side_of_the_antimeridian_are_linked(db_url: str, small_dir: Path) -> None:
    """Two sources report one explosion 100 m apart, at 179.9995 E and 179.9995 W."""
    ag = load_agreement(small_dir)
    db = Database(db_url)
    db.upgrade()
    db.write(lambda s: register_folder(s, small_dir))
    t = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)

    def blast(rid: str, lon: float, source: str, dt_s: float) -> Incident:
        return Incident(
            id=rid, observed_at=t + dt.timedelta(seconds=dt_s), time_precision="second",
            lon=lon, lat=-17.0, uncertainty_m=50.0, kind="explosion", source_type=source,
        )  # fmt: skip

    pair = [blast("east", 179.9995, "patrol", 0), blast("west", -179.9995, "camera", 10)]
    for k, inc in enumerate(pair):  # one at a time: the second finds the first across 180 deg
        db.write(lambda s, inc=inc, k=k: ingest_incidents(s, ag, [inc], [k], source="api", now=t))
    with db.read() as s:
        rows = dict(s.execute(select(IncidentRow.report_id, IncidentRow.event_id)).all())
        event = s.get(EventRow, rows["east"]) if rows["east"] is not None else None
    db.dispose()
    assert rows["east"] is not None and rows["east"] == rows["west"]
    assert event is not None and event.n_reports == 2
    assert abs(abs(event.lon) - 180.0) < 0.001 and abs(event.lat + 17.0) < 0.001
