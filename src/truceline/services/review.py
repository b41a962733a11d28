"""The review workflow: an analyst verifies, rejects or sends back an incident and its findings,
and releases verified findings to the parties; the queue of incidents awaiting review, most
serious first.

Every change writes an audit row (who, when, before, after) in the same transaction; the
decision itself is also appended to the tamper-evident ledger (:mod:`truceline.store.ledger`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from truceline.core.agreement import RuleType
from truceline.core.incidents import Kind
from truceline.core.probability import VIOLATION_P, icd203_term
from truceline.core.times import utc_isoformat
from truceline.errors import ConflictError, NotFoundError, ValidationError
from truceline.services.audit import record_change
from truceline.services.auth import Principal, Scope
from truceline.services.scope import incident_clauses, live_incident_clauses
from truceline.store import ledger
from truceline.store.models import FindingRow, IncidentRow

__all__ = ["STATUSES", "Action", "ReviewOutcome", "review", "review_queue"]


class Action(StrEnum):
    verify = "verify"
    reject = "reject"
    send_back = "send_back"
    release = "release"


#: The status an action leaves an incident and its findings in.
_STATUS = {Action.verify: "verified", Action.reject: "rejected", Action.send_back: "sent_back"}
#: An incident's review statuses (``new``: not reviewed yet; a finding not reviewed yet is ``open``).
STATUSES = ("new", "verified", "rejected", "sent_back")
#: Rule types whose likely violations are reviewed first.
SERIOUS_RULE_TYPES = (RuleType.fire_across.value, RuleType.withdrawal.value)
SERIOUS_P = 0.8


def _incident_status(current: str, status: str, every: Sequence[FindingRow], *, partial: bool) -> str:
    """The incident's status after a decision on all (``partial`` False) or some of its findings."""
    if not partial:
        return status
    decided = {f.status for f in every}
    if "open" in decided:
        return current  # still awaiting review of the others
    for strongest in ("verified", "sent_back", "rejected"):
        if strongest in decided:
            return strongest
    return status


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    incident: IncidentRow
    findings: list[FindingRow]
    changes: int


def _finding_state(f: FindingRow) -> dict[str, object]:
    return {"status": f.status, "released_at": f.released_at.isoformat() if f.released_at else None}


def review(
    session: Session,
    incident_pk: int,
    action: Action,
    *,
    comment: str = "",
    finding_pks: Sequence[int] | None = None,
    actor: Principal,
    now: dt.datetime,
) -> ReviewOutcome:
    """Apply ``action`` to an incident and its findings (all, or those in ``finding_pks``).

    ``verify``, ``reject``, ``send_back`` set the status of the selected findings and of the
    incident; ``release`` releases selected verified findings to the parties. ``reject`` and
    ``send_back`` need a comment (the reason, shown to the reporter).

    Acting on some of an incident's findings (the panel's per-finding buttons) leaves the incident
    awaiting review while any of its findings is still open; once none is, the incident takes the
    strongest decision among them: verified if one is, else sent back if one is, else rejected.
    """
    incident = session.get(IncidentRow, incident_pk)
    if incident is None:
        raise NotFoundError(f"no incident {incident_pk}", field="pk", value=incident_pk)
    if action in (Action.reject, Action.send_back) and not comment.strip():
        raise ValidationError(
            f"{action.value} needs a comment",
            field="comment",
            fix="say why, for the reporter and the record",
        )
    findings = list(
        session.execute(
            select(FindingRow).where(FindingRow.incident_pk == incident_pk).order_by(FindingRow.pk)
        ).scalars()
    )
    every = findings
    if finding_pks is not None:
        wanted = set(finding_pks)
        unknown = wanted - {f.pk for f in findings}
        if unknown:
            raise ValidationError(
                f"finding(s) {sorted(unknown)} do not belong to incident {incident_pk}",
                field="findings",
                value=sorted(unknown),
                fix="use the pks listed with the incident",
            )
        findings = [f for f in findings if f.pk in wanted]
    changes = 0
    if action == Action.release:
        if not findings:
            raise ConflictError(
                f"incident {incident_pk} has no findings to release",
                field="findings",
                fix="release applies to findings; verify the incident instead",
            )
        not_verified = [f.pk for f in findings if f.status != "verified"]
        if not_verified:
            raise ConflictError(
                f"finding(s) {not_verified} are not verified",
                field="findings",
                value=not_verified,
                fix="verify them first, then release",
            )
        for f in findings:
            if f.released_at is None:
                before = _finding_state(f)
                f.released_at = now
                record_change(
                    session,
                    actor=actor,
                    entity="finding",
                    entity_id=f.pk,
                    action="release",
                    now=now,
                    before=before,
                    after=_finding_state(f),
                    comment=comment,
                )
                changes += 1
    else:
        status = _STATUS[action]
        for f in findings:
            if f.status == status:
                continue
            before = _finding_state(f)
            f.status = status
            if status != "verified":
                f.released_at = None  # a withdrawn finding is no longer released
            record_change(
                session,
                actor=actor,
                entity="finding",
                entity_id=f.pk,
                action=action.value,
                now=now,
                before=before,
                after=_finding_state(f),
                comment=comment,
            )
            changes += 1
        new_status = _incident_status(incident.status, status, every, partial=len(findings) < len(every))
        if incident.status != new_status:
            before_i: dict[str, object] = {"status": incident.status}
            incident.status = new_status
            record_change(
                session,
                actor=actor,
                entity="incident",
                entity_id=incident.pk,
                action=action.value,
                now=now,
                before=before_i,
                after={"status": new_status},
                comment=comment,
            )
            changes += 1
    if changes == 0:
        state = "released" if action == Action.release else incident.status
        raise ConflictError(
            f"incident {incident_pk} is already {state}; nothing changed",
            field="action",
            value=action.value,
            fix="reload the incident and its history",
        )
    session.flush()
    # The decision goes into the ledger with the state it leaves behind, so that `ledger verify`
    # can tell a status changed in the database without a decision.
    ledger.append(
        session,
        [
            (
                "review",
                f"incident:{incident.pk}",
                {
                    "action": action.value,
                    "comment": comment,
                    "actor": actor.subject,
                    "role": actor.role.value,
                    "incident": incident.pk,
                    "report_id": incident.report_id,
                    "status_after": {
                        f"incident:{incident.pk}": incident.status,
                        **{f"finding:{f.pk}": f.status for f in findings},
                    },
                    # the time of release (False: not released); entries before times were kept say True
                    "released_after": {
                        f"finding:{f.pk}": ledger.stored_time(f.released_at) if f.released_at else False
                        for f in findings
                    },
                },
            )
        ],
        now=now,
    )
    return ReviewOutcome(incident, findings, changes)


def review_queue(
    session: Session, agreement_id: str, *, scope: Scope, limit: int = 100
) -> dict[str, Any]:
    """Incidents awaiting review, most serious first and, within a tier, oldest first.

    Tiers: 1 a likely (P >= 0.8) fire-across or withdrawal violation, a civilian casualty or fire
    at the monitors;
    2 another finding with P >= 0.5; 3 findings below that; 4 a report without findings. Age is the
    time since the report was received (then since it was observed).
    """
    F, inc = FindingRow, IncidentRow
    serious = case((and_(F.probability >= SERIOUS_P, F.rule_type.in_(SERIOUS_RULE_TYPES)), 1), else_=0)
    agg = (
        select(
            F.incident_pk.label("ipk"),
            func.max(serious).label("serious"),
            func.max(F.probability).label("max_p"),
            func.count().label("n"),
        )
        .group_by(F.incident_pk)
        .subquery()
    )
    tier = case(
        (
            or_(
                agg.c.serious == 1,
                inc.kind.in_([Kind.civilian_casualty.value, Kind.threat_to_monitors.value]),
            ),
            1,
        ),
        (agg.c.max_p >= VIOLATION_P, 2),
        (agg.c.n > 0, 3),
        else_=4,
    ).label("tier")
    conds = [
        inc.agreement_id == agreement_id,
        inc.status == "new",
        *live_incident_clauses(),
        *incident_clauses(scope),
    ]
    base = select(inc.pk, tier).outerjoin(agg, agg.c.ipk == inc.pk).where(*conds).subquery()
    tiers = {
        int(t): int(n)
        for t, n in session.execute(select(base.c.tier, func.count()).group_by(base.c.tier))
    }
    q = (
        select(inc, tier, agg.c.max_p, agg.c.n)
        .outerjoin(agg, agg.c.ipk == inc.pk)
        .where(*conds)
        .order_by(tier, inc.received_at, inc.observed_at, inc.pk)
        .limit(limit)
    )
    rows = session.execute(q).all()
    pks = [r[0].pk for r in rows]
    top: dict[int, FindingRow] = {}
    if pks:
        for f in session.execute(
            select(F).where(F.incident_pk.in_(pks)).order_by(F.incident_pk, F.probability.desc(), F.pk)
        ).scalars():
            top.setdefault(f.incident_pk, f)
    items = []
    for i, t, max_p, n in rows:
        best = top.get(i.pk)
        items.append(
            {
                "pk": i.pk,
                "report_id": i.report_id,
                "observed_at": utc_isoformat(i.observed_at),
                "received_at": utc_isoformat(i.received_at),
                "kind": i.kind,
                "weapon_class": i.weapon_class,
                "sector": i.sector,
                "source_type": i.source_type,
                "tier": int(t),
                "n_findings": int(n or 0),
                "max_probability": None if max_p is None else float(max_p),
                "top_rule": best.rule_id if best else None,
                "top_responsible": best.responsible if best else None,
                "likelihood": str(icd203_term(max_p)) if max_p is not None else None,
            }
        )
    return {"total": sum(tiers.values()), "by_tier": tiers, "items": items}
