"""Submitting incidents (one or a batch) with a verdict per record: accepted, duplicate or rejected.

Idempotent by the reporter's id: resending an accepted report (a retry after a lost
acknowledgement) answers ``duplicate`` and stores nothing; the same id with other content is
rejected (reports are immutable; corrections get a new id).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.io.incidents_io import incidents_from_records
from truceline.services.auth import Principal
from truceline.services.ingest import ingest_incidents

__all__ = ["RecordResult", "SubmissionResult", "Verdict", "submit_incident", "submit_records"]


class Verdict(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"
    rejected = "rejected"


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 3x (one per record)
class RecordResult:
    """What became of one submitted record (``index`` is its 0-based position in the request)."""

    index: int
    id: str
    status: Verdict
    pk: int | None = None
    field: str | None = None
    reason: str | None = None
    findings: int = 0


@dataclass(slots=True)
class SubmissionResult:
    batch_id: int
    results: list[RecordResult] = field(default_factory=list)

    def count(self, verdict: Verdict) -> int:
        return sum(1 for r in self.results if r.status == verdict)


def submit_records(
    session: Session,
    agreement: Agreement,
    records: Sequence[Any],
    *,
    principal: Principal,
    now: dt.datetime,
    source: str = "api",
) -> SubmissionResult:
    """Validate each record, adjudicate and store the good ones, and say what happened to each."""
    raw = [
        (k, dict(r) if isinstance(r, dict) else {"__not_a_mapping__": r}) for k, r in enumerate(records)
    ]
    read = incidents_from_records((k, r) for k, r in raw if "__not_a_mapping__" not in r)
    verdict: dict[int, RecordResult] = {}
    for k, r in raw:
        if "__not_a_mapping__" in r:
            verdict[k] = RecordResult(
                k,
                "",
                Verdict.rejected,
                field="",
                reason="not a JSON object; send one object per incident",
            )
    for k in read.duplicates:
        rid = str(raw[k][1].get("id", ""))
        verdict[k] = RecordResult(
            k, rid, Verdict.duplicate, reason="repeats an earlier record of this request"
        )
    res = ingest_incidents(
        session,
        agreement,
        read.incidents,
        read.rows,
        source=source,
        earlier_rejects=read.rejects,
        submitted_by=principal.subject,
        now=now,
    )
    for rej in res.rejects:
        verdict[rej.row] = RecordResult(
            rej.row, rej.id, Verdict.rejected, field=rej.field, reason=rej.reason
        )
    row_of = dict(zip((i.id for i in read.incidents), read.rows, strict=True))
    for rid in res.duplicates:
        k = row_of[rid]
        verdict[k] = RecordResult(
            k, rid, Verdict.duplicate, pk=res.pks.get(rid), reason="already stored (same id and content)"
        )
    for rid in res.accepted:
        k = row_of[rid]
        pk = res.pks[rid]
        verdict[k] = RecordResult(
            k, rid, Verdict.accepted, pk=pk, findings=res.findings_by_pk.get(pk, 0)
        )
    return SubmissionResult(res.batch_id, [verdict[k] for k in sorted(verdict)])


def submit_incident(
    session: Session,
    agreement: Agreement,
    incident: Incident,
    *,
    principal: Principal,
    now: dt.datetime,
    source: str = "api",
) -> tuple[int, RecordResult]:
    """One already validated incident; returns the batch id and its verdict."""
    res = ingest_incidents(
        session, agreement, [incident], [0], source=source, submitted_by=principal.subject, now=now
    )
    if res.accepted:
        pk = res.pks[incident.id]
        return res.batch_id, RecordResult(
            0, incident.id, Verdict.accepted, pk=pk, findings=res.findings_by_pk.get(pk, 0)
        )
    if res.duplicates:
        return res.batch_id, RecordResult(
            0,
            incident.id,
            Verdict.duplicate,
            pk=res.pks.get(incident.id),
            reason="already stored (same id and content)",
        )
    rej = res.rejects[0]
    return res.batch_id, RecordResult(
        0, incident.id, Verdict.rejected, field=rej.field, reason=rej.reason
    )
