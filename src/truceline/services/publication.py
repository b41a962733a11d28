"""Publishing daily reports: an analyst freezes a day's report; the public reads that copy."""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.errors import ConflictError, NotFoundError, ValidationError
from truceline.report.daily import render_daily_html
from truceline.services.audit import record_change
from truceline.services.auth import Permission, Principal
from truceline.services.report import build_day_report
from truceline.store import ledger
from truceline.store.models import PublishedReportRow

__all__ = ["draft_report", "get_published", "list_published", "publish_report"]


#: Days a report can be about (the trend looks back two weeks; dates must stay representable).
FIRST_DAY, LAST_DAY = dt.date(1900, 1, 1), dt.date(2999, 12, 31)


def _check_day(day: dt.date) -> None:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValidationError(
            f"no report can be made for {day}",
            field="day",
            value=day.isoformat(),
            fix=f"give a day between {FIRST_DAY} and {LAST_DAY}",
        )


def draft_report(
    session: Session, agreement: Agreement, day: dt.date, *, released_only: bool = False
) -> str:
    """The day's report as it stands now (HTML): the internal draft with every finding, or with
    ``released_only`` the edition that publishing would freeze (released findings only)."""
    _check_day(day)
    return render_daily_html(build_day_report(session, agreement, day, released_only=released_only))


def publish_report(
    session: Session, agreement: Agreement, day: dt.date, *, actor: Principal, now: dt.datetime
) -> PublishedReportRow:
    """Freeze the day's report; publishing a day twice is a conflict (published copies are final).

    The published edition holds only the findings released to the parties (the review workflow's
    ``release``); it says how many of the day's findings it leaves out.
    """
    existing = _find(session, agreement.id, day)
    if existing is not None:
        raise ConflictError(
            f"the report of {day} was published at {existing.published_at:%Y-%m-%d %H:%M} UTC",
            field="day",
            value=day.isoformat(),
            fix="published reports are final; read it with GET",
        )
    _check_day(day)
    report = build_day_report(session, agreement, day, released_only=True)
    html = render_daily_html(report)
    row = PublishedReportRow(
        agreement_id=agreement.id,
        day=day,
        html=html,
        sha256=hashlib.sha256(html.encode("utf-8")).hexdigest(),
        published_at=now,
        published_by=actor.subject,
    )
    session.add(row)
    session.flush()
    ledger.append(
        session,
        [
            (
                "publication",
                f"report:{agreement.id}/{day}",
                {
                    "agreement": agreement.id,
                    "day": day.isoformat(),
                    "sha256": row.sha256,
                    "published_by": actor.subject,
                    "published_at": ledger.stored_time(now),
                    "report": row.pk,
                    # the counts it leads with, the expected distinct events among them included
                    "figures": report.figures(),
                },
            )
        ],
        now=now,
    )
    record_change(
        session,
        actor=actor,
        entity="report",
        entity_id=f"{agreement.id}/{day}",
        action="publish",
        now=now,
        before=None,
        after={"sha256": row.sha256, "day": day.isoformat()},
    )
    return row


def _find(session: Session, agreement_id: str, day: dt.date) -> PublishedReportRow | None:
    return session.execute(
        select(PublishedReportRow).where(
            PublishedReportRow.agreement_id == agreement_id, PublishedReportRow.day == day
        )
    ).scalar_one_or_none()


def get_published(session: Session, agreement_id: str, day: dt.date) -> PublishedReportRow:
    row = _find(session, agreement_id, day)
    if row is None:
        raise NotFoundError(
            f"no published report for {day}",
            field="day",
            value=day.isoformat(),
            fix="list published days with GET /api/v1/reports",
        )
    return row


def list_published(session: Session, agreement_id: str, who: Principal) -> list[dict[str, object]]:
    """Published days with their digests (not the HTML). Who published (a token's id and name) is
    audit information: ``published_by`` is None for a caller who may not read the audit log."""
    R = PublishedReportRow
    q = select(R.day, R.sha256, R.published_at, R.published_by).where(R.agreement_id == agreement_id)
    show = who.can(Permission.audit_read)
    return [
        {"day": d, "sha256": h, "published_at": at, "published_by": by if show else None}
        for d, h, at, by in session.execute(q.order_by(R.day))
    ]
