"""Build a day's report from the store and render it (``truceline report`` and the API)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.report.daily import DayFinding, DayReport, render_daily_html
from truceline.store.db import make_engine, session_factory, upgrade
from truceline.store.models import FindingRow, IncidentRow, IngestBatchRow, RejectRow

__all__ = ["build_day_report", "write_daily_report"]

TREND_DAYS = 14


def build_day_report(session: Session, agreement: Agreement, day: dt.date) -> DayReport:
    """Everything the daily report shows, read from the store."""
    ag_id = agreement.id
    inc_q = (
        select(IncidentRow.kind, func.count())
        .where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day)
        .group_by(IncidentRow.kind)
    )
    by_kind = {k: int(n) for k, n in session.execute(inc_q)}
    rows = session.execute(
        select(FindingRow, IncidentRow)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(IncidentRow.agreement_id == ag_id, IncidentRow.day == day)
        .order_by(IncidentRow.observed_at, FindingRow.rule_id)
    ).all()
    findings = [
        DayFinding(
            incident_id=i.report_id,
            observed_at=i.observed_at,
            lon=i.lon,
            lat=i.lat,
            kind=i.kind,
            weapon_class=i.weapon_class,
            source_type=i.source_type,
            sector=i.sector,
            side_party=i.side_party,
            distance_km=i.distance_km,
            rule_id=f.rule_id,
            rule_type=f.rule_type,
            responsible=f.responsible,
            probability=f.probability,
            explanation=f.explanation,
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
            FindingRow.probability >= 0.5,
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
        findings=findings,
        trend=[(d, dict(c)) for d, c in sorted(per_day.items())],
        rejected=int(rejected),
        generated_at=dt.datetime.now(dt.UTC),
    )


def write_daily_report(db: str, agreement: Agreement, day: dt.date, output: Path) -> DayReport:
    engine = make_engine(db)
    upgrade(engine)
    with session_factory(engine)() as session:
        report = build_day_report(session, agreement, day)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_daily_html(report), encoding="utf-8")
    return report
