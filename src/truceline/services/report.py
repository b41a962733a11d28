"""Build a day's report from the store and render it (``truceline report`` and the API)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.probability import VIOLATION_P
from truceline.core.rules import FindingNumbers
from truceline.errors import ValidationError
from truceline.report.daily import (
    DayAttachment,
    DayFinding,
    DayReport,
    LedgerDay,
    LedgerHead,
    LedgerSummary,
    render_daily_html,
)
from truceline.services.events import day_event_counts, day_expected_events
from truceline.services.scope import live_incident_clauses
from truceline.store import ledger
from truceline.store.db import make_engine, session_factory, upgrade
from truceline.store.models import (
    AttachmentRow,
    FindingRow,
    IncidentRow,
    IngestBatchRow,
    LedgerEntryRow,
    LedgerRootRow,
    RejectRow,
)

__all__ = ["REPORT_FORMATS", "build_day_report", "write_daily_report"]

#: What ``truceline report --format`` writes.
REPORT_FORMATS = ("html", "pdf")

TREND_DAYS = 14
_CHUNK = 500  # findings per ledger lookup (SQLite binds at most 32,766 parameters)


def build_day_report(
    session: Session, agreement: Agreement, day: dt.date, *, released_only: bool = False
) -> DayReport:
    """Everything the daily report shows, read from the store.

    ``released_only``: the published edition, for the parties and the public: only findings
    released to the parties (in the day's tables and in the trend); the others are counted as
    withheld. Otherwise the internal draft with every finding.
    """
    ag_id = agreement.id
    released = [FindingRow.released_at.is_not(None)] if released_only else []
    live = live_incident_clauses()  # withdrawn by their source: not counted (and no findings)
    inc_q = (
        select(IncidentRow.kind, func.count())
        .where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day, *live)
        .group_by(IncidentRow.kind)
    )
    by_kind = {k: int(n) for k, n in session.execute(inc_q)}
    of_day = [IncidentRow.agreement_id == ag_id, IncidentRow.day == day, *live]
    n_events, _, n_explosions = day_event_counts(session, of_day).get(day, (0, 0, 0))
    # the distinct events expected among them (the possible duplicates' probabilities)
    n_expected = day_expected_events(session, of_day, {day: n_events}).get(day, float(n_events))
    apart = session.execute(
        select(
            func.count().filter(IncidentRow.in_area.is_(false())),
            func.count().filter(IncidentRow.in_force.is_(false())),
        ).where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day, *live)
    ).one()
    withdrawn = session.execute(
        select(func.count()).where(
            IncidentRow.agreement_id == ag_id,
            IncidentRow.day == day,
            IncidentRow.withdrawn_at.is_not(None),
        )
    ).scalar_one()
    rows = session.execute(
        select(FindingRow, IncidentRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day, *released)
        .order_by(IncidentRow.observed_at, FindingRow.rule_id)
    ).all()
    withheld = 0
    if released_only:
        all_findings = session.execute(
            select(func.count())
            .select_from(FindingRow)
            .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
            .where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day)
        ).scalar_one()
        withheld = int(all_findings) - len(rows)
    refs = _ledger_refs(session, [f.pk for f, _ in rows])
    # The published edition shows what a liaison may see: the finding, never the raw report's own id
    # or its source (they can name patrols and posts).
    findings = [
        DayFinding(
            ledger_ref=refs.get(f.pk),
            incident_id=f"finding {f.pk}" if released_only else i.report_id,
            observed_at=i.observed_at,
            lon=i.lon,
            lat=i.lat,
            kind=i.kind,
            weapon_class=i.weapon_class,
            source_type="" if released_only else i.source_type,
            sector=i.sector,
            side_party=i.side_party,
            distance_km=i.distance_km,
            rule_id=f.rule_id,
            rule_type=f.rule_type,
            responsible=f.responsible,
            probability=f.probability,
            explanation=f.explanation,
            numbers=FindingNumbers.from_json(f.numbers),
            alt_lon=i.alt_lon if i.ambiguous else None,
            alt_lat=i.alt_lat if i.ambiguous else None,
            alt_weight=i.alt_weight if i.ambiguous else None,
        )
        for f, i in rows
    ]
    first = day - dt.timedelta(days=TREND_DAYS - 1)
    trend_rows = session.execute(
        select(IncidentRow.day, FindingRow.responsible, func.count())
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(
            IncidentRow.agreement_id == ag_id,
            IncidentRow.day >= first,
            IncidentRow.day <= day,
            FindingRow.probability >= VIOLATION_P,
            *released,
        )
        .group_by(IncidentRow.day, FindingRow.responsible)
    ).all()
    per_day: dict[dt.date, Counter[str]] = {
        first + dt.timedelta(days=k): Counter() for k in range(TREND_DAYS)
    }
    for d, party, n in trend_rows:
        per_day.setdefault(d, Counter())[party] += int(n)
    rejected = session.execute(
        select(func.count())
        .select_from(RejectRow)
        .join(IngestBatchRow, RejectRow.batch_id == IngestBatchRow.id)
        .where(IngestBatchRow.agreement_id == ag_id, func.date(RejectRow.received_at) == day)
    ).scalar_one()
    return DayReport(
        agreement=agreement,
        day=day,
        n_incidents=sum(by_kind.values()),
        incidents_by_kind=by_kind,
        n_events=n_events,
        n_explosions=n_explosions,
        n_events_expected=n_expected,
        findings=findings,
        trend=[(d, dict(c)) for d, c in sorted(per_day.items())],
        rejected=int(rejected),
        generated_at=dt.datetime.now(dt.UTC),
        ledger=_ledger_summary(session, day, [f.pk for f, _ in rows]),
        edition="published" if released_only else "internal",
        withheld=withheld,
        outside_area=int(apart[0]),
        not_in_force=int(apart[1]),
        withdrawn=int(withdrawn),
        attachments=_day_attachments(session, ag_id, day, released_only=released_only),
    )


def _day_attachments(
    session: Session, ag_id: str, day: dt.date, *, released_only: bool
) -> tuple[DayAttachment, ...]:
    """The evidence files of the day's incidents, with their filing's ledger entry; the published
    edition: released ones, named by their number (not the report's own id, nor the file's name)."""
    q = (
        select(AttachmentRow, IncidentRow.report_id)
        .join(IncidentRow, AttachmentRow.incident_pk == IncidentRow.pk)
        .where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day)
        .order_by(IncidentRow.observed_at, AttachmentRow.pk)
    )
    if released_only:
        q = q.where(AttachmentRow.released.is_(True))
    rows = session.execute(q).all()
    refs: dict[str, str] = {}
    if rows:
        names = [f"attachment:{a.pk}" for a, _ in rows]
        for e in session.execute(
            select(LedgerEntryRow)
            .where(LedgerEntryRow.ref.in_(names), LedgerEntryRow.kind == "attachment")
            .order_by(LedgerEntryRow.seq)
        ).scalars():
            refs.setdefault(e.ref, f"#{e.seq} {e.entry_hash[:16]}")
    return tuple(
        DayAttachment(
            incident_id=f"attachment {a.pk}" if released_only else rid,
            filename="" if released_only else a.filename,
            media_type=a.media_type,
            size_bytes=a.size_bytes,
            sha256=a.sha256,
            served_sha256=a.released_sha256,
            filed_at=a.filed_at,
            consistent=a.consistent,
            consistency=a.consistency,
            released=bool(a.released),
            ledger_ref=refs.get(f"attachment:{a.pk}"),
        )
        for a, rid in rows
    )


def _ledger_entries(session: Session, finding_pks: list[int]) -> dict[int, LedgerEntryRow]:
    """The ledger entry that recorded each finding (``finding:<pk>``), where there is one."""
    out: dict[int, LedgerEntryRow] = {}
    for k in range(0, len(finding_pks), _CHUNK):
        refs = [f"finding:{pk}" for pk in finding_pks[k : k + _CHUNK]]
        q = select(LedgerEntryRow).where(LedgerEntryRow.ref.in_(refs)).order_by(LedgerEntryRow.seq)
        for e in session.execute(q).scalars():
            out.setdefault(int(e.ref.split(":", 1)[1]), e)
    return out


def _ledger_refs(session: Session, finding_pks: list[int]) -> dict[int, str]:
    """Each finding's entry as printed: ``#<seq> <first 16 hex of its hash>``."""
    return {
        pk: f"#{e.seq} {e.entry_hash[:16]}" for pk, e in _ledger_entries(session, finding_pks).items()
    }


def _ledger_summary(session: Session, day: dt.date, finding_pks: list[int]) -> LedgerSummary:
    entries = _ledger_entries(session, finding_pks)
    by_day: dict[dt.date, list[int]] = {}
    for e in entries.values():
        by_day.setdefault(e.day, []).append(e.seq)
    roots = {
        r.day: r
        for r in session.execute(
            select(LedgerRootRow).where(LedgerRootRow.day.in_([day, *by_day]))
        ).scalars()
    }
    own = roots.get(day)
    covering = {  # days not closed yet: their newest checkpoint, where it covers the findings
        d: cp[1]
        for d, seqs in by_day.items()
        if d not in roots
        and (cp := ledger.latest_checkpoint(session, d)) is not None
        and int(cp[1].get("last_seq", 0)) >= max(seqs)
    }
    head = ledger.latest_head(session)
    recorded = session.execute(
        select(func.count()).select_from(LedgerEntryRow).where(LedgerEntryRow.day == day)
    ).scalar_one()
    return LedgerSummary(
        recorded=int(recorded),
        public_key=ledger.mission_key(session),
        root=own.root if own else None,
        n_entries=own.n_entries if own else None,
        days=tuple(
            LedgerDay(
                day=d,
                n_findings=len(seqs),
                first_seq=min(seqs),
                last_seq=max(seqs),
                root=roots[d].root if d in roots else covering[d]["root"] if d in covering else None,
                n_entries=roots[d].n_entries
                if d in roots
                else int(covering[d]["n_entries"])
                if d in covering
                else None,
                checkpoint=d not in roots and d in covering,
            )
            for d, seqs in sorted(by_day.items())
        ),
        missing=len(finding_pks) - len(entries),
        latest=LedgerHead(**head) if head is not None else None,
    )


def write_daily_report(
    db: str,
    agreement: Agreement,
    day: dt.date,
    output: Path,
    *,
    fmt: str = "html",
    released_only: bool = False,
) -> DayReport:
    """Write the day's report to ``output`` as ``fmt``: ``html`` or ``pdf`` (the same page, typeset)."""
    if fmt not in REPORT_FORMATS:
        raise ValidationError(
            f"unknown report format {fmt!r} (html or pdf)",
            field="format",
            value=fmt,
            fix="use html or pdf",
        )
    engine = make_engine(db)
    upgrade(engine)
    with session_factory(engine)() as session:
        report = build_day_report(session, agreement, day, released_only=released_only)
    html = render_daily_html(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pdf":
        from truceline.report.pdf import html_to_pdf

        output.write_bytes(html_to_pdf(html, created=report.generated_at))
    else:
        output.write_text(html, encoding="utf-8")
    return report
