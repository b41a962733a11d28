"""Submitting incidents (one or a batch) with a verdict per record: accepted, duplicate or rejected.

Idempotent by the reporter's id: resending an accepted report (a retry after a lost
acknowledgement) answers ``duplicate`` and stores nothing; the same id with other content is
rejected (reports are immutable; corrections get a new id), unless the source versions its
sendings (ACLED, TAK markers): then a newer one is ``revised`` (a new revision of the incident).

:func:`submit_markers` is the path of TAK markers (the listener and ``import --format cot``): a
marker is its uid, re-sent about once a minute with a fresh start time; a re-send whose content
is otherwise unchanged keeps the stored time, so it is a duplicate and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.io.incidents_io import Reject, incidents_from_records
from truceline.io.smm import observation_records
from truceline.services.auth import Principal
from truceline.services.ingest import ingest_incidents
from truceline.store.models import IncidentRevisionRow, IncidentRow
from truceline.store.record_text import content_hash

__all__ = [
    "RecordResult",
    "SubmissionResult",
    "Verdict",
    "submit_incident",
    "submit_markers",
    "submit_observations",
    "submit_records",
]


class Verdict(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"
    revised = "revised"  # a new revision of a stored report (a newer version from its source)
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
    versions: Sequence[float | None] | None = None,
) -> SubmissionResult:
    """Validate each record, adjudicate and store the good ones, and say what happened to each.

    ``versions``: one per record, the source's ordering of its sendings (see the module doc).
    """
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
        versions=None if versions is None else [versions[k] for k in read.rows],
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
    for rid in res.revised:
        k = row_of[rid]
        pk = res.pks[rid]
        verdict[k] = RecordResult(k, rid, Verdict.revised, pk=pk, findings=res.findings_by_pk.get(pk, 0))
    return SubmissionResult(res.batch_id, [verdict[k] for k in sorted(verdict)])


def submit_observations(
    session: Session,
    agreement: Agreement,
    observations: Sequence[Any],
    *,
    principal: Principal,
    now: dt.datetime,
    source: str = "api",
) -> SubmissionResult:
    """Monitors' observations as they write them (the fields of :mod:`truceline.io.smm`: the
    observer's position, a time window, a direction arc, a distance range), each stored as
    ``import --format smm`` stores it: an incident at its arc-and-range sector's centroid with a
    1-sigma error covering the sector, at the window's middle. Results are in input order."""
    objs = [o if isinstance(o, dict) else {} for o in observations]
    parsed = observation_records(objs)
    good = [(row - 1, rec) for row, rec in parsed if not isinstance(rec, Reject)]
    res = submit_records(
        session, agreement, [rec for _, rec in good], principal=principal, now=now, source=source
    )
    out: dict[int, RecordResult] = {}
    for r in res.results:
        r.index = good[r.index][0]
        out[r.index] = r
    for row, rec in parsed:
        if isinstance(rec, Reject):
            why = rec.reason if isinstance(observations[row - 1], dict) else "not a JSON object"
            out[row - 1] = RecordResult(row - 1, rec.id, Verdict.rejected, field=rec.field, reason=why)
    return SubmissionResult(res.batch_id, [out[k] for k in sorted(out)])


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t


def _same_but_time(rec: dict[str, Any], observed_at: Any, digest: str) -> bool:
    """Whether ``rec`` with ``observed_at`` instead of its own has the content hash ``digest``."""
    try:
        inc = Incident.model_validate({**rec, "observed_at": observed_at})
    except ValueError:
        return False  # the record is invalid: submit_records says why
    return content_hash(inc) == digest


def submit_markers(
    session: Session,
    agreement: Agreement,
    records: Sequence[dict[str, Any]],
    versions: Sequence[float],
    *,
    principal: Principal,
    now: dt.datetime,
    source: str = "cot",
) -> SubmissionResult:
    """TAK markers (:func:`truceline.tak.cot.incident_record`), ``versions`` their starts (s).

    A marker's sendings in one call are taken in the order of their versions; a sending whose
    content, time apart, equals the marker's last one (stored, or earlier in the call) is a
    duplicate. The others are stored in rounds (the first distinct content of each marker, then
    the second, ...), so each move or edit becomes its own revision. Results are in input order.
    """
    order = sorted(range(len(records)), key=lambda k: versions[k])
    ids = sorted({str(r.get("id", "")) for r in records})
    last: dict[str, tuple[Any, str]] = {}  # id -> (observed_at, content hash) of its last content
    stored_version: dict[str, float] = {}
    earlier: dict[str, list[tuple[Any, str]]] = {}  # id -> its earlier revisions (time, hash)
    if ids:
        q = select(
            IncidentRow.report_id,
            IncidentRow.observed_at,
            IncidentRow.content_hash,
            IncidentRow.version,
            IncidentRow.pk,
            IncidentRow.revision,
        ).where(IncidentRow.agreement_id == agreement.id, IncidentRow.report_id.in_(ids))
        revised: dict[int, str] = {}
        for rid, t, h, v, pk, n in session.execute(q):
            last[rid] = (_utc(t), h)
            if v is not None:
                stored_version[rid] = v
            if n > 1:
                revised[pk] = rid
        if revised:
            q2 = select(
                IncidentRevisionRow.incident_pk,
                IncidentRevisionRow.record,
                IncidentRevisionRow.content_hash,
            ).where(IncidentRevisionRow.incident_pk.in_(sorted(revised)))
            for pk, rec, h in session.execute(q2):
                earlier.setdefault(revised[pk], []).append((rec["observed_at"], h))
    rounds: list[list[int]] = []
    depth: dict[str, int] = {}
    out: dict[int, RecordResult] = {}
    recs = [dict(r) for r in records]
    for k in order:
        rid = str(recs[k].get("id", ""))
        if rid in last and _same_but_time(recs[k], last[rid][0], last[rid][1]):
            out[k] = RecordResult(
                k, rid, Verdict.duplicate, reason="a re-send of the marker: nothing changed"
            )
            continue
        if versions[k] < stored_version.get(rid, -math.inf) and any(
            _same_but_time(recs[k], t, h) for t, h in earlier.get(rid, ())
        ):  # an older sending of an earlier revision (a capture imported again)
            out[k] = RecordResult(
                k, rid, Verdict.duplicate, reason="an earlier revision of the marker, already kept"
            )
            continue
        try:
            inc = Incident.model_validate(recs[k])
            last[rid] = (inc.observed_at, content_hash(inc))
        except ValueError:
            pass
        d = depth.get(rid, 0)
        depth[rid] = d + 1
        if d == len(rounds):
            rounds.append([])
        rounds[d].append(k)
    batch_id = 0
    for ks in rounds:
        res = submit_records(
            session,
            agreement,
            [recs[k] for k in ks],
            principal=principal,
            now=now,
            source=source,
            versions=[versions[k] for k in ks],
        )
        batch_id = batch_id or res.batch_id
        for k, r in zip(ks, res.results, strict=True):
            r.index = k
            out[k] = r
    missing = sorted({r.id for r in out.values() if r.status == Verdict.duplicate and r.pk is None})
    if missing:  # the duplicates found here: the pk of the marker's incident, in one query
        q2 = select(IncidentRow.report_id, IncidentRow.pk).where(
            IncidentRow.agreement_id == agreement.id, IncidentRow.report_id.in_(missing)
        )
        pk_of: dict[str, int] = {rid: pk for rid, pk in session.execute(q2)}
        for r in out.values():
            if r.status == Verdict.duplicate and r.pk is None:
                r.pk = pk_of.get(r.id)
    return SubmissionResult(batch_id, [out[k] for k in sorted(out)])


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
