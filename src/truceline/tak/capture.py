"""A file of CoT events (a capture from a TAK network) stored through the listener's own path.

``truceline import --format cot FILE``: the file holds XML events one after another (as a TAK
server or a packet capture records them, with or without an XML declaration before each, with
whitespace between). Each event is split, parsed and judged as the listener does
(:class:`~truceline.tak.cot.EventSplitter`, :func:`~truceline.tak.cot.parse_event`,
:func:`~truceline.tak.cot.disposition`, :func:`~truceline.tak.cot.incident_record`), except that a
capture's events are judged by their own times (``live=False``: an event that went stale before
the import is not outdated), and stored by :func:`~truceline.services.submissions.submit_markers`:
a marker is its uid, re-sends are duplicates, moves are revisions. The devices' own position
reports (PLI: ``a-f-G...`` with a ``__group``) are kept as patrol tracks
(:func:`~truceline.services.patrols.store_positions`).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.errors import ValidationError
from truceline.io.incidents_io import Reject
from truceline.services.auth import Principal
from truceline.services.patrols import PatrolPosition, PositionsStored, store_positions
from truceline.services.submissions import SubmissionResult, Verdict, submit_markers
from truceline.tak import cot

__all__ = ["CaptureResult", "import_capture"]

#: Larger than any event a TAK client sends; a capture is read whole, so no connection limit.
_MAX_EVENT_BYTES = 1 << 20


@dataclass(slots=True)
class CaptureResult:
    """What became of a capture's events (``rejects``: row = the event's 1-based position)."""

    events: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # type family (a-f, t-x, ...) -> n
    rejects: list[Reject] = field(default_factory=list)
    stored: SubmissionResult | None = None
    positions: PositionsStored | None = None  # the devices' own position reports (PLI)

    def count(self, verdict: Verdict) -> int:
        return 0 if self.stored is None else self.stored.count(verdict)

    @property
    def findings(self) -> int:
        return 0 if self.stored is None else sum(r.findings for r in self.stored.results)


def import_capture(
    session: Session,
    agreement: Agreement,
    path: str | Path,
    *,
    principal: Principal,
    now: dt.datetime,
    source_type: str = "patrol",
) -> CaptureResult:
    """Read ``path`` (CoT events one after another) and store its reports; see the module doc."""
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: file not found")
    data = path.read_bytes()
    if not data.strip():
        raise ValidationError(f"{path}: the file is empty")
    if b"</event>" not in data:
        raise ValidationError(
            f"{path}: no CoT event (<event ...>...</event>) in the file",
            field="format",
            fix="give a file of Cursor-on-Target XML events, or another --format",
        )
    out = CaptureResult()
    splitter = cot.EventSplitter(_MAX_EVENT_BYTES, len(data) + 1)
    records: list[dict[str, Any]] = []
    versions: list[float] = []
    rows: list[int] = []
    patrol: list[PatrolPosition] = []
    for item in [*splitter.feed(data), *splitter.finish()]:
        out.events += 1
        row = out.events
        if isinstance(item, cot.Oversize):
            out.rejects.append(Reject(row, "", "event", item.reason))
            continue
        if isinstance(item, cot.Truncated):  # cut off by the next event: its neighbours still land
            out.rejects.append(Reject(row, f"cot:{item.uid}" if item.uid else "", "event", item.reason))
            continue
        # a declaration (``<?xml ...?>``) before each event, as captures often have, is fine
        try:
            ev = cot.parse_event(item)
        except cot.CotError as exc:
            out.rejects.append(Reject(row, "", exc.field or "event", exc.message))
            continue
        what = cot.disposition(ev)
        if what == "position":
            try:
                patrol.append(PatrolPosition(**cot.position_record(ev, now=now, live=False)))
            except cot.CotError as exc:
                out.rejects.append(Reject(row, f"pli:{ev.uid}", exc.field or "event", exc.message))
            continue
        if what != "incident":
            out.ignored[ev.type[:3]] += 1  # a-f: devices' own positions, t-x: pings, ...
            continue
        try:
            rec = cot.incident_record(ev, source_type=source_type, now=now, live=False)
            version = cot.marker_version(ev)
        except cot.CotError as exc:
            out.rejects.append(Reject(row, f"cot:{ev.uid}", exc.field or "event", exc.message))
            continue
        records.append(rec)
        versions.append(version)
        rows.append(row)
    if records:
        res = submit_markers(
            session,
            agreement,
            records,
            versions,
            principal=principal,
            now=now,
            source=f"cot:{path.name}",
        )
        for r in res.results:
            r.index = rows[r.index]
            if r.status == Verdict.rejected:
                out.rejects.append(Reject(r.index, r.id, r.field or "", r.reason or "rejected"))
        out.stored = res
    if patrol:
        out.positions = store_positions(
            session, agreement.id, patrol, submitted_by=principal.subject, now=now
        )
    out.rejects.sort(key=lambda r: r.row)
    return out
