"""The group-commit intake of single submissions: what arrives together is stored in one transaction,
each request answered after the commit with the answer a one-at-a-time store would give."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from truceline.context import SYSTEM
from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.errors import NotFoundError
from truceline.io.agreement_files import files_of_folder
from truceline.services import ingest as service
from truceline.services import intake as intake_mod
from truceline.services.agreement_store import AgreementCache, register_agreement
from truceline.services.auth import Principal, Role
from truceline.services.intake import Intake
from truceline.services.submissions import Verdict
from truceline.store.db import Database
from truceline.store.models import FindingRow, IncidentRow

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
WHO = Principal("monitor-1", Role.monitor)


def _incident(i: int, **extra: object) -> Incident:
    fields: dict[str, object] = {
        "id": f"r{i}",
        "observed_at": dt.datetime(2025, 3, 1, 10, i % 60, tzinfo=dt.UTC),
        "lon": 36.95 + 0.01 * (i % 7) if i % 2 else 36.0,  # odd: in the buffer zone; even: far behind
        "lat": 48.6,
        "uncertainty_m": 50,
        "kind": "armed_personnel",
        "source_type": "patrol",
    }
    return Incident.model_validate({**fields, **extra})


def _together(intake: Intake, reports: list[Incident], agreement: str | None = None) -> list:  # type: ignore[type-arg]
    """Submit ``reports`` as requests that all arrive before the writer looks: one batch."""
    items = [intake_mod._Item(agreement, r, WHO, intake_mod.Future()) for r in reports]
    for it in items:
        intake._queue.put(it)
    intake._ensure_started()
    return [it.future.result(timeout=60) for it in items]


@pytest.fixture
def served(tmp_path: Path, small: Agreement, small_dir: Path):  # type: ignore[no-untyped-def]
    db = Database(str(tmp_path / "intake.db"))
    db.upgrade()
    cache = AgreementCache()
    db.write(
        lambda s: register_agreement(
            s, files_of_folder(small_dir), source=str(small_dir), actor=SYSTEM, now=NOW, cache=cache
        )
    )
    intake = Intake(db, cache, lambda: NOW)
    yield db, intake
    intake.close()
    db.dispose()


def test_concurrent_submissions_are_each_stored_once_with_their_findings(served) -> None:  # type: ignore[no-untyped-def]
    db, intake = served
    reports = [_incident(i) for i in range(40)]
    answers = _together(intake, reports[:20] + reports[:5])  # repeats within one batch
    with ThreadPoolExecutor(8) as pool:  # and requests arriving as they come
        answers += list(pool.map(lambda r: intake.submit(None, r, WHO), reports[20:] + reports[5:10]))
    answers = answers[:20] + answers[25:45] + answers[20:25] + answers[45:]
    verdicts = [r.status for _, r in answers]
    assert verdicts.count(Verdict.accepted) == 40
    assert verdicts.count(Verdict.duplicate) == 10
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(IncidentRow)).scalar_one() == 40
        stored = dict(
            s.execute(
                select(IncidentRow.pk, func.count(FindingRow.pk))
                .outerjoin(FindingRow, FindingRow.incident_pk == IncidentRow.pk)
                .group_by(IncidentRow.pk)
            ).all()
        )
    for _, r in answers[:40]:  # each acknowledgement counts the findings its report got
        assert r.findings == stored[r.pk]
        assert (r.findings > 0) == (int(r.id[1:]) % 2 == 1), r.id


def test_an_unknown_agreement_fails_only_its_own_requests(served) -> None:  # type: ignore[no-untyped-def]
    _, intake = served
    with pytest.raises(NotFoundError):
        intake.submit("no-such-agreement", _incident(5), WHO)
    assert intake.submit(None, _incident(6), WHO)[1].status == Verdict.accepted


def test_a_report_the_rule_engine_cannot_take_fails_alone(served, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """When a batch fails as a whole, its reports are stored one at a time."""
    _, intake = served
    real = service.adjudicate
    calls: list[int] = []

    def fussy(agreement, incidents, rows):  # type: ignore[no-untyped-def]
        calls.append(len(incidents))
        if len(incidents) > 1:
            raise RuntimeError("batch too hard")
        return real(agreement, incidents, rows)

    monkeypatch.setattr(service, "adjudicate", fussy)
    answers = _together(intake, [_incident(i) for i in range(20, 30)])
    assert calls[0] == 10, "the ten arrived as one batch"
    assert all(r.status == Verdict.accepted for _, r in answers)
