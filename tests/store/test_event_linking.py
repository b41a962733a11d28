"""Linking reports into fused events one submission at a time: the shortcuts that skip fusion (no
stored report within reach; no pair that passes every gate) change no link."""

from __future__ import annotations

import datetime as dt
import itertools
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


def _groups(db: Database) -> list[tuple[str, ...]]:
    with db.read() as s:
        rows = s.execute(select(IncidentRow.report_id, IncidentRow.event_id)).all()
        n_events = s.execute(select(EventRow.pk)).all()
    groups: dict[int, list[str]] = {}
    for rid, ev in rows:
        if ev is not None:
            groups.setdefault(ev, []).append(rid)
    assert len(n_events) == len(groups)  # no event is left empty
    return sorted(tuple(sorted(g)) for g in groups.values())


#: Every order of the two cameras and the patrol; six of the 24 with the acoustic fix too.
ORDERS = [*itertools.permutations(range(3)), *list(itertools.permutations(range(4)))[1::4]]


@pytest.mark.parametrize("order", ORDERS)
def test_links_do_not_depend_on_the_order_of_arrival(
    tmp_path: Path, small_dir: Path, order: tuple[int, ...]
) -> None:
    """A patrol hears an explosion between two a camera network saw 600 m apart, one of them
    also located acoustically. Arriving after one camera report alone, the patrol's would link to
    it; when the other reports arrive, the stored links are weighed again and remade or undone
    (in the ledger too, which still verifies). Every order of arrival, one report per batch,
    gives the links of one batch."""
    from truceline.store import ledger

    ag = load_agreement(small_dir)
    t = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
    frame_lon = 36.95

    def rep(rid: str, source: str, east_m: float, dt_s: float, unc: float) -> Incident:
        return Incident(
            id=rid, observed_at=t + dt.timedelta(seconds=dt_s), time_precision="second",
            lon=frame_lon + east_m / 73_600.0, lat=48.6, uncertainty_m=unc, kind="explosion",
            source_type=source,
        )  # fmt: skip

    reps = [
        rep("cam1", "camera", 0.0, 0.0, 50.0),
        rep("pat", "patrol", 300.0, 3.0, 500.0),
        rep("cam2", "camera", 600.0, 5.0, 50.0),
        rep("ac1", "acoustic", 10.0, 0.0, 10.0),
    ]

    def run(name: str, batches: list[list[int]]) -> list[tuple[str, ...]]:
        db = Database(str(tmp_path / f"{name}.db"))
        db.upgrade()
        db.write(lambda s: register_folder(s, small_dir))
        for k, b in enumerate(batches):
            db.write(
                lambda s, b=b, k=k: ingest_incidents(
                    s, ag, [reps[i] for i in b], b, source="api", submitted_by="net",
                    now=t + dt.timedelta(minutes=k),
                )
            )  # fmt: skip
        out = _groups(db)
        with db.read() as s:
            v = ledger.verify(s)
        assert v.ok, v.problems
        db.dispose()
        return out

    batch = run("batch", [sorted(order)])
    if len(order) == 4:
        assert ("ac1", "cam1") in batch or ("ac1", "cam1", "pat") in batch
    assert run("stream", [[i] for i in order]) == batch
