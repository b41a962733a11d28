"""Fusion's final pass at a day's close: the server fuses each closed day again by itself (once
the longest reporting delay has passed since the day's end), so that the day's links are one
batch's whatever the order of arrival; idempotent, audited, and again when a late report comes.
The reports are the hand-made hour of ``tests/cli/test_relink.py`` (not the simulator's)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import select

from truceline.api import build_context, create_app, relink_closed
from truceline.context import SYSTEM
from truceline.core.incidents import Incident
from truceline.services.events import RELINK_ENTITY, relink_closed_days
from truceline.services.ingest import ingest_incidents
from truceline.settings import load_settings
from truceline.store import ledger
from truceline.store.models import AuditRow

from ..cli.test_relink import DAY, UKR, _import, _mix, _state, _write


class _Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _streamed(db: str, rows: list[dict[str, Any]], arrive: np.ndarray) -> Any:
    """A server's context on ``db`` that received ``rows`` through the ingest service in the
    order they arrived, one batch per 10 minutes, each at its arrival time; its clock after."""
    clock = _Clock(DAY)
    ctx = build_context(load_settings(db=db, agreements=[Path(UKR)], relink_minutes=0), clock=clock)
    ctx.db.upgrade()
    from truceline.context import register_folders

    register_folders(ctx, [Path(UKR)])
    slot = np.floor(arrive / 600.0)
    for s in np.unique(slot):
        k = np.flatnonzero(slot == s)
        clock.now = DAY + dt.timedelta(seconds=float(arrive[k].max()))
        incs = [Incident.model_validate(rows[i]) for i in k]
        ctx.db.write(
            lambda ses, incs=incs, k=k: ingest_incidents(
                ses, ctx.agreement(ses, None), incs, [int(i) + 1 for i in k], source="stream",
                submitted_by="test", now=clock.now,
            )
        )  # fmt: skip
    return ctx, clock


def _passes(ctx: Any) -> list[tuple[str, str]]:
    with ctx.db.read() as s:
        rows = s.execute(
            select(AuditRow.entity_id, AuditRow.action)
            .where(AuditRow.entity == RELINK_ENTITY)
            .order_by(AuditRow.pk)
        ).all()
    return [(str(a), str(b)) for a, b in rows]


def test_a_closed_day_is_fused_again_once_and_again_after_a_late_report(tmp_path: Path) -> None:
    rows, arrive = _mix()
    one = tmp_path / "one.db"
    _import(_write(rows, tmp_path / "all.csv"), one)
    want = _state(one)
    db = tmp_path / "stream.db"
    ctx, clock = _streamed(str(db), rows, arrive)
    try:
        assert _state(db) != want, "the order of arrival changes this mix's links"
        # the day is not closed until its end and the longest delay (30 min) have passed
        clock.now = DAY + dt.timedelta(days=1, minutes=29)
        assert relink_closed(ctx) == []
        assert _state(db) != want and _passes(ctx) == []
        clock.now = DAY + dt.timedelta(days=1, minutes=31)
        done = relink_closed(ctx)
        assert [(d.day, d.reports) for _, d in done] == [(DAY.date(), len(rows))]
        assert _state(db) == want
        ag = f"{done[0][0]}/{DAY.date().isoformat()}"
        assert _passes(ctx) == [(ag, "relink")]
        # idempotent: nothing arrived since, nothing is fused again
        clock.now += dt.timedelta(hours=1)
        assert relink_closed(ctx) == []
        assert _passes(ctx) == [(ag, "relink")]
        with ctx.db.read() as s:
            assert ledger.verify(s).ok
        # a complaint about that day filed hours later brings the day back for another pass
        late = {**rows[0], "id": "late-complaint", "source_type": "party_complaint"}
        clock.now += dt.timedelta(hours=2)
        ctx.db.write(
            lambda s: ingest_incidents(
                s, ctx.agreement(s, None), [Incident.model_validate(late)], [1], source="late",
                submitted_by="test", now=clock.now,
            )
        )  # fmt: skip
        clock.now += dt.timedelta(minutes=1)
        again = relink_closed(ctx)
        assert [(d.day, d.reports) for _, d in again] == [(DAY.date(), len(rows) + 1)]
        assert _passes(ctx) == [(ag, "relink"), (ag, "relink")]
        # older days are not looked at past ``days_back``
        with ctx.db.read() as s:
            far = DAY + dt.timedelta(days=30)
            got = relink_closed_days(s, ctx.agreement(s, None).id, now=far, actor=SYSTEM)
            assert got == []
    finally:
        ctx.close()


def test_the_server_makes_the_pass_by_itself(db_url: str) -> None:
    """On SQLite and PostgreSQL (where the pass takes a transaction lock on the agreement)."""
    rows, arrive = _mix(n_events=12)
    ctx, clock = _streamed(db_url, rows, arrive)
    ctx.close()
    clock.now = DAY + dt.timedelta(days=1, hours=1)
    settings = load_settings(db=db_url, agreements=[Path(UKR)], relink_minutes=0.002)  # 0.12 s
    ctx = build_context(settings, clock=clock)
    try:
        with TestClient(create_app(ctx)):  # runs the server's start-up and background tasks
            deadline = time.monotonic() + 30.0
            while time.monotonic() < deadline and not _passes(ctx):
                time.sleep(0.1)
        assert [a for _, a in _passes(ctx)] == ["relink"]
        with ctx.db.read() as s:
            row = s.execute(select(AuditRow).where(AuditRow.entity == RELINK_ENTITY)).scalar_one()
            assert row.actor == "system" and row.after is not None
            assert row.after["reports"] == len(rows)
    finally:
        ctx.close()
