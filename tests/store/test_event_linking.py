"""Linking reports into fused events one submission at a time: the shortcuts that skip fusion (no
stored report within reach; no pair that passes every gate) change no link."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import load_agreement
from truceline.services import events
from truceline.store.db import make_engine, session_factory, upgrade
from truceline.store.models import IncidentRow
from truceline.store.service import ingest_incidents, register_agreement

from ..conftest import EXAMPLES


def _events_after_single_submissions(db: Path, reports: list, submitters: list[str]) -> list[tuple]:
    ag = load_agreement(EXAMPLES / "ukraine-2024")
    engine = make_engine(str(db))
    upgrade(engine)
    session = session_factory(engine)
    with session() as s:
        register_agreement(s, ag, EXAMPLES / "ukraine-2024")
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
    monkeypatch.setattr(events, "_may_pair", lambda cand, is_new: True)
    monkeypatch.setattr(events.fusion, "linkable", lambda *args, **kwargs: True)
    slow = _events_after_single_submissions(tmp_path / "slow.db", reports, submitters)
    assert fast == slow
