"""Daily count caps judged over the stored day, one count per fused event.

A count cap ("at most 40 APCs per party per day in the 15-35 km band") is about a whole day, but
reports reach the server one at a time or in batches: the rule engine alone sees only the batch in
hand, and it would count every duplicate report of one vehicle. After each ingest,
:func:`recount_caps` takes the days the new reports touch, reads every stored report of those days
that a cap rule counts, keeps one report per fused event (the best located; the event counts the
largest number any of its reports gave), and runs the rule engine over them. Each event found over
a cap that has no finding of that rule yet gets one, appended to the ledger like any other finding.

Findings already made are never changed here: a finding is evidence under review, and a later
report that lowers a day's count does not withdraw it (an analyst does, through the review).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement, Rule, RuleType
from truceline.core.incidents import Incident, IncidentBatch
from truceline.core.rules import judge_rules
from truceline.store import ledger
from truceline.store.db import bulk_insert
from truceline.store.ledger import finding_content
from truceline.store.models import FindingRow, IncidentRow

__all__ = ["CapRecount", "cap_rules", "counted_by_caps", "recount_caps"]

_CHUNK = 500  # ids per IN list (SQLite binds at most 32,766 parameters)
_CAP = RuleType.count_cap.value
_I = IncidentRow
#: What a recount reads of each report (the columns of an IncidentBatch, and pk, event, hash).
_READ = (
    _I.pk, _I.event_id, _I.report_id, _I.content_hash, _I.observed_at, _I.lon, _I.lat,
    _I.uncertainty_m, _I.kind, _I.weapon_class, _I.count, _I.party, _I.origin_lon, _I.origin_lat,
    _I.origin_uncertainty_m, _I.bearing_deg, _I.source_type,
)  # fmt: skip


@dataclass(frozen=True)
class CapRecount:
    """What a recount did: the days it judged, the reports it read, the findings it added."""

    days: tuple[dt.date, ...] = ()
    reports: int = 0
    events: int = 0
    new_findings: tuple[int, ...] = ()


def cap_rules(agreement: Agreement) -> list[Rule]:
    """The count-cap rules of every version of the agreement."""
    return [r for v in agreement.versions for r in v.rules if r.type == RuleType.count_cap]


def counted_by_caps(
    agreement: Agreement, incidents: Sequence[Incident], zones: Sequence[str]
) -> list[bool]:
    """Whether a new report can change a day's count: a cap rule counts its kind or weapon class
    and it is more likely in that rule's zone than not (``zones``: the ";"-joined zone ids the
    rule engine gave each report). A report more likely outside is still counted, at the next
    recount of its day."""
    rules = cap_rules(agreement)
    return [
        any(
            (i.kind in r.kinds or (i.weapon_class or "") in r.weapon_classes) and r.zone in z.split(";")
            for r in rules
        )
        for i, z in zip(incidents, zones, strict=True)
    ]


def _counted(rules: Sequence[Rule]) -> ColumnElement[bool]:
    """SQL: a report that some cap rule counts (by kind or weapon class)."""
    kinds = sorted({k.value for r in rules for k in r.kinds})
    weapons = sorted({w for r in rules for w in r.weapon_classes if w})
    return or_(IncidentRow.kind.in_(kinds), IncidentRow.weapon_class.in_(weapons))


def recount_caps(
    session: Session, agreement: Agreement, new_pks: Sequence[int], *, now: dt.datetime
) -> CapRecount:
    """Judge the count caps of the days that ``new_pks`` (just stored) fall on; add what is new.

    The caller owns the transaction; nothing here commits.
    """
    rules = cap_rules(agreement)
    if not rules or not new_pks:
        return CapRecount()
    counted = _counted(rules)
    days: set[dt.date] = set()
    pks = list(new_pks)
    for k in range(0, len(pks), _CHUNK):
        q = select(_I.day).where(_I.pk.in_(pks[k : k + _CHUNK]), counted).distinct()
        days.update(d for (d,) in session.execute(q))
    if not days:
        return CapRecount()
    rows = session.execute(
        select(*_READ)
        .where(_I.agreement_id == agreement.id, _I.day.in_(sorted(days)), counted)
        .order_by(_I.pk)
    ).all()
    cols = list(zip(*rows, strict=True))
    pk = np.array(cols[0], np.int64)
    # One report stands for each fused event (a report of no event stands for itself).
    event = np.array([-p if e is None else e for p, e in zip(cols[0], cols[1], strict=True)], np.int64)
    unc = np.array(cols[7], np.float64)
    count = np.array(cols[10], np.int64)
    order = np.lexsort((pk, unc, event))  # by event, then the best located first
    ev_sorted = event[order]
    starts = np.flatnonzero(np.r_[True, ev_sorted[1:] != ev_sorted[:-1]])
    rep = order[starts]
    ev_count = np.maximum.reduceat(count[order], starts)

    def col(i: int, fill: float = np.nan) -> np.ndarray:
        return np.array([fill if v is None else v for v in cols[i]], np.float64)[rep]

    observed = [t if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None) for t in cols[4]]
    batch = IncidentBatch(
        id=np.array(cols[2], str)[rep],
        observed_at=np.array(observed, "datetime64[us]")[rep],
        lon=col(5),
        lat=col(6),
        uncertainty_m=unc[rep],
        kind=np.array(cols[8], str)[rep],
        weapon_class=np.array([v or "" for v in cols[9]], str)[rep],
        count=ev_count,
        party=np.array([v or "" for v in cols[11]], str)[rep],
        origin_lon=col(12),
        origin_lat=col(13),
        origin_uncertainty_m=col(14),
        bearing_deg=col(15),
        source_type=np.array(cols[16], str)[rep],
    )
    f = judge_rules(agreement, batch, (RuleType.count_cap,))
    caps = np.flatnonzero(f.rule_type == _CAP)
    result = CapRecount(days=tuple(sorted(days)), reports=len(rows), events=int(rep.size))
    if caps.size == 0:
        return result
    # An event that already has a finding of the rule (on any of its reports) keeps just that one.
    held: set[tuple[int, str]] = set()
    ev_of = dict(zip(pk.tolist(), event.tolist(), strict=True))
    pk_list = pk.tolist()
    for k in range(0, len(pk_list), _CHUNK):
        q = select(FindingRow.incident_pk, FindingRow.rule_id).where(
            FindingRow.incident_pk.in_(pk_list[k : k + _CHUNK]), FindingRow.rule_type == _CAP
        )
        held.update((ev_of[p], r) for p, r in session.execute(q))
    rep_pk, rep_event = pk[rep][f.incident[caps]].tolist(), event[rep][f.incident[caps]].tolist()
    frows = [
        {
            "incident_pk": p,
            "rule_id": rid,
            "rule_type": _CAP,
            "responsible": resp,
            "probability": prob,
            "explanation": ex,
            "created_at": now,
        }
        for p, e, rid, resp, prob, ex in zip(
            rep_pk,
            rep_event,
            f.rule_id[caps].tolist(),
            f.responsible[caps].tolist(),
            f.probability[caps].tolist(),
            f.explanation[caps].tolist(),
            strict=True,
        )
        if (e, rid) not in held
    ]
    if not frows:
        return result
    fpks = bulk_insert(session.connection(), FindingRow.__table__, frows, new_pks="pk")
    report_hash = dict(zip(cols[0], cols[3], strict=True))
    ledger.append(
        session,
        [
            (
                "finding",
                f"finding:{fpk}",
                finding_content({**fr, "pk": fpk}, report_hash[fr["incident_pk"]], agreement.id),
            )
            for fr, fpk in zip(frows, fpks, strict=True)
        ],
        now=now,
    )
    return CapRecount(result.days, result.reports, result.events, tuple(fpks))
