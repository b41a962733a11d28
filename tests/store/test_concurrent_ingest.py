"""Two batches submitted at the same moment (two server workers, two clients) end as if one had
come after the other: every report stored once, one unbroken ledger, and the reports of one event
linked across the two batches as a one-after-the-other ingest links them."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import load_agreement
from truceline.services.auth import Principal, Role
from truceline.services.submissions import SubmissionResult, Verdict, submit_records
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import IncidentRow

from ..conftest import EXAMPLES, register_folder

AGREEMENT = EXAMPLES / "ukraine-2024"
NOW = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def _fresh(db_url: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    """Another fresh database of the same kind as ``db_url``."""
    if "://" not in db_url:
        return str(tmp_path / f"{name}.db")
    return str(request.getfixturevalue("pg_cluster").new_database())


def _ingest(
    url: str, batches: list[tuple[str, list[dict[str, Any]]]], *, at_once: bool
) -> dict[str, Any]:
    """Submit the batches (device, records) at once, or one after the other in order."""
    ag = load_agreement(AGREEMENT)
    db = Database(url)
    db.upgrade()
    db.write(lambda s: register_folder(s, AGREEMENT))
    who = [Principal(subject=device, role=Role.monitor) for device, _ in batches]
    results: list[SubmissionResult | None] = [None] * len(batches)
    errors: list[BaseException] = []
    start = threading.Barrier(len(batches))

    def submit(k: int) -> None:
        try:
            if at_once:
                start.wait()
            results[k] = db.write(
                lambda s: submit_records(s, ag, batches[k][1], principal=who[k], now=NOW)
            )
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    if at_once:
        threads = [threading.Thread(target=submit, args=(k,)) for k in range(len(batches))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for k in range(len(batches)):
            submit(k)
    assert not errors, errors
    with db.read() as s:
        rows = s.execute(select(IncidentRow.report_id, IncidentRow.event_id)).all()
        stored = s.execute(select(func.count()).select_from(IncidentRow)).scalar_one()
        check = ledger.verify(s)
    db.dispose()
    groups: dict[int, list[str]] = {}
    for rid, ev in rows:
        if ev is not None:
            groups.setdefault(ev, []).append(rid)
    return {
        "groups": sorted(tuple(sorted(g)) for g in groups.values()),
        "stored": stored,
        "accepted": sum(r.count(Verdict.accepted) for r in results if r is not None),
        "ledger_ok": check.ok,
        "problems": check.problems,
    }


def test_batches_submitted_at_once_end_as_one_after_the_other(
    db_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ag = load_agreement(AGREEMENT)
    start = ag.versions[-1].effective_from + dt.timedelta(days=3)
    sim = simulate(ag, SimulationConfig(days=1, seed=11, start=start, events_per_day=400))
    records = [r.model_dump(mode="json") for r in sim.reports]
    # every other report to each device: the reports of one event are split between the batches
    batches = [("gateway-a", records[0::2]), ("gateway-b", records[1::2])]
    together = _ingest(db_url, batches, at_once=True)
    assert together["ledger_ok"], together["problems"]
    assert together["stored"] == together["accepted"] == len(records)
    linked = sum(len(g) for g in together["groups"])
    assert linked >= 20, "the simulation makes duplicate reports to link"
    a_then_b = _ingest(_fresh(db_url, request, tmp_path, "ab"), batches, at_once=False)
    b_then_a = _ingest(_fresh(db_url, request, tmp_path, "ba"), batches[::-1], at_once=False)
    assert together["groups"] in (a_then_b["groups"], b_then_a["groups"])
