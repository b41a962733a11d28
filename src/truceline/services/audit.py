"""The audit trail: every change to a record, with who, when, before and after."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.store import ledger
from truceline.store.models import AuditRow

__all__ = ["Actor", "history", "record_change"]


class Actor(Protocol):
    """Who made a change, as the trail records it (a :class:`~truceline.services.auth.Principal`).

    The trail needs only the name and the role, so it does not depend on how callers are
    authenticated (and :mod:`truceline.services.auth`, which audits token changes, can use it).
    """

    @property
    def subject(self) -> str: ...

    @property
    def role(self) -> StrEnum: ...


def record_change(
    session: Session,
    *,
    actor: Actor,
    entity: str,
    entity_id: str | int,
    action: str,
    now: dt.datetime,
    before: dict[str, object] | None,
    after: dict[str, object] | None,
    comment: str = "",
    sealed: dict[str, object] | None = None,
) -> AuditRow:
    """Append one audit row and its ledger entry (flushes; the caller commits with the change
    itself). ``sealed``: more state the ledger entry keeps and the audit log does not show (a
    token's secret hash), so that ``ledger verify`` can check it."""
    row = AuditRow(
        at=now,
        actor=actor.subject,
        role=actor.role.value,
        entity=entity,
        entity_id=str(entity_id),
        action=action,
        comment=comment,
        before=before,
        after=after,
    )
    session.add(row)
    session.flush()
    ledger.append(session, [("audit", f"audit:{row.pk}", ledger.audit_content(row, sealed))], now=now)
    return row


def history(session: Session, entity: str, entity_id: str | int) -> list[AuditRow]:
    """The changes of one record, oldest first."""
    q = (
        select(AuditRow)
        .where(AuditRow.entity == entity, AuditRow.entity_id == str(entity_id))
        .order_by(AuditRow.pk)
    )
    return list(session.execute(q).scalars())
