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
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Date, bindparam, func, or_, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement, Rule, RuleType
from truceline.core.incidents import IncidentBatch
from truceline.core.rules import judge_rules
from truceline.store import ledger
from truceline.store.columns import read_columns
from truceline.store.db import bulk_insert, one_of
from truceline.store.ledger import finding_text, new_salts, numbers_texts
from truceline.store.models import FindingRow, IncidentRow

__all__ = ["CapRecount", "cap_rules", "counted_by_caps", "recount_caps"]

_CHUNK = 500  # ids per IN list (SQLite binds at most 32,766 parameters)
_CAP = RuleType.count_cap.value
_I = IncidentRow
#: What a recount reads of each report: pk, event, hash and the columns of an IncidentBatch.
#: A report of no event stands for itself (event -pk).
_READ = (
    _I.pk, func.coalesce(_I.event_id, -_I.pk), _I.content_hash, _I.report_id, _I.observed_at,
    _I.lon, _I.lat, _I.uncertainty_m, _I.kind, func.coalesce(_I.weapon_class, ""), _I.count,
    func.coalesce(_I.party, ""), _I.origin_lon, _I.origin_lat, _I.origin_uncertainty_m,
    _I.bearing_deg, _I.source_type,
)  # fmt: skip
_FIELDS = [
    ("pk", "i8"), ("event", "i8"), ("content_hash", "str"), ("id", "str"), ("observed_at", "ts"),
    ("lon", "f8"), ("lat", "f8"), ("uncertainty_m", "f8"), ("kind", "str"), ("weapon_class", "str"),
    ("count", "i8"), ("party", "str"), ("origin_lon", "f8"), ("origin_lat", "f8"),
    ("origin_uncertainty_m", "f8"), ("bearing_deg", "f8"), ("source_type", "str"),
]  # fmt: skip


@dataclass(frozen=True)
class CapRecount:
    """What a recount did: the days it judged, the reports it read, the findings it added."""

    days: tuple[dt.date, ...] = ()
    reports: int = 0
    events: int = 0
    new_findings: tuple[int, ...] = ()
    new_finding_incidents: tuple[int, ...] = ()  # the report each new finding is on


def cap_rules(agreement: Agreement) -> list[Rule]:
    """The count-cap rules of every version of the agreement."""
    return [r for v in agreement.versions for r in v.rules if r.type == RuleType.count_cap]


def counted_by_caps(
    agreement: Agreement, batch: IncidentBatch, zones: NDArray[np.str_]
) -> NDArray[np.bool_]:
    """Which new reports can change a day's count: a cap rule counts their kind or weapon class
    and they are more likely in that rule's zone than not (``zones``: the ";"-joined zone ids the
    rule engine gave each report). A report more likely outside is still counted, at the next
    recount of its day."""
    out = np.zeros(len(batch), bool)
    rules = cap_rules(agreement)
    if not rules:
        return out
    # Only reports of a counted kind or weapon class can count: usually none of a small batch.
    kinds, weapons = _counted(rules)
    maybe = np.isin(batch.kind, kinds) | np.isin(batch.weapon_class, weapons)
    if not maybe.any():
        return out
    padded = np.char.add(np.char.add(";", zones.astype(str)), ";")
    for r in rules:  # a handful of rules, not incidents
        out |= _counts(r, batch) & (np.char.find(padded, f";{r.zone};") >= 0)
    return out


def _counts(rule: Rule, batch: IncidentBatch) -> NDArray[np.bool_]:
    """Which reports the cap rule counts (by kind or weapon class), wherever they are."""
    return np.isin(batch.kind, [k.value for k in rule.kinds]) | np.isin(
        batch.weapon_class, [w for w in rule.weapon_classes if w]
    )


def _counted(rules: Sequence[Rule]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The kinds and the weapon classes some cap rule counts."""
    kinds = tuple(sorted({k.value for r in rules for k in r.kinds}))
    weapons = tuple(sorted({w for r in rules for w in r.weapon_classes if w}))
    return kinds, weapons


def _may_exceed(rules: Sequence[Rule], batch: IncidentBatch) -> bool:
    """Whether some cap can be over on some day, without placing any report in a zone.

    A cap finds a violation only where the expected count in its zone exceeds the cap, and that
    count is at most the sum of the counts of every event the rule counts that day (anywhere):
    below that bound the rule engine need not run. On a mission's usual day, far below the caps,
    this is what makes a recount cheap.
    """
    _, day = np.unique(batch.day, return_inverse=True)
    for r in rules:  # a handful of rules, not incidents
        counts = _counts(r, batch)
        if (
            counts.any()
            and (np.bincount(day[counts], weights=batch.count[counts]) > float(r.max_count or 0)).any()
        ):
            return True
    return False


@functools.cache
def _day_statement(kinds: tuple[str, ...], weapons: tuple[str, ...]) -> Any:
    """A day's reports of the counted kinds and weapon classes; the agreement and the day are
    given at each run (built and compiled once per set of counted things: a recount runs on
    ingest, and compiling the statement cost more than running it)."""
    return (
        select(*_READ)
        .where(
            _I.agreement_id == bindparam("ag", ""),
            _I.day == bindparam("day", dt.date(2000, 1, 1), type_=Date),
            or_(_I.kind.in_(kinds), _I.weapon_class.in_(weapons)),
            _I.withdrawn_at.is_(None),  # withdrawn by its source: counts no more
        )
        .order_by(_I.pk)
    )


@functools.cache
def _held_statement(dialect: str) -> Any:
    """The count-cap findings (incident, rule) already on the given reports (``pks``)."""
    return select(FindingRow.incident_pk, FindingRow.rule_id).where(
        one_of(FindingRow.incident_pk, "pks", dialect), FindingRow.rule_type == _CAP
    )


def recount_caps(
    session: Session, agreement: Agreement, days: Iterable[dt.date], *, now: dt.datetime
) -> CapRecount:
    """Judge the count caps of ``days`` over every report stored for them; add what is new.

    The caller owns the transaction; nothing here commits.
    """
    rules = cap_rules(agreement)
    judged = tuple(sorted(set(days)))
    if not rules or not judged:
        return CapRecount()
    q = _day_statement(*_counted(rules))
    blocks = [read_columns(session, q, _FIELDS, {"ag": agreement.id, "day": d}) for d in judged]
    c = {k: np.concatenate([b[k] for b in blocks]) for k, _ in _FIELDS}
    pk, event = c.pop("pk"), c.pop("event")
    if pk.size == 0:  # nothing counted on these days (or only reports no cap counts)
        return CapRecount(days=judged)
    report_hash = dict(zip(pk.tolist(), c.pop("content_hash").tolist(), strict=True))
    # One report stands for each fused event (the best located); the event counts the most any gave.
    order = np.lexsort((pk, c["uncertainty_m"], event))
    ev_sorted = event[order]
    starts = np.flatnonzero(np.r_[True, ev_sorted[1:] != ev_sorted[:-1]])
    rep = order[starts]
    count = np.maximum.reduceat(c.pop("count")[order], starts)
    batch = IncidentBatch(**{k: v[rep] for k, v in c.items()}, count=count)
    result = CapRecount(days=judged, reports=int(pk.size), events=int(rep.size))
    if not _may_exceed(rules, batch):
        return result
    f = judge_rules(agreement, batch, (RuleType.count_cap,))
    caps = np.flatnonzero(f.rule_type == _CAP)
    if caps.size == 0:
        return result
    # An event that already has a finding of the rule (on any of its reports) keeps just that one.
    held: set[tuple[int, str]] = set()
    ev_of = dict(zip(pk.tolist(), event.tolist(), strict=True))
    pk_list = pk.tolist()
    conn = session.connection()
    held_q = _held_statement(conn.dialect.name)
    step = max(len(pk_list), 1) if conn.dialect.name == "postgresql" else _CHUNK  # one array
    for k in range(0, len(pk_list), step):
        held.update((ev_of[p], r) for p, r in conn.execute(held_q, {"pks": pk_list[k : k + step]}))
    rep_pk, rep_event = pk[rep][f.incident[caps]].tolist(), event[rep][f.incident[caps]].tolist()
    frows = [
        {
            "incident_pk": p,
            "rule_id": rid,
            "rule_type": _CAP,
            "responsible": resp,
            "probability": prob,
            "explanation": ex,
            "numbers": nums,
            "created_at": now,
            "ledger_salt": salt,
        }
        for p, e, rid, resp, prob, ex, nums, salt in zip(
            rep_pk,
            rep_event,
            f.rule_id[caps].tolist(),
            f.responsible[caps].tolist(),
            f.probability[caps].tolist(),
            f.explanation[caps].tolist(),
            map(numbers_texts(f).__getitem__, caps.tolist()),
            new_salts(int(caps.size)),
            strict=True,
        )
        if (e, rid) not in held
    ]
    if not frows:
        return result
    fpks = bulk_insert(session.connection(), FindingRow.__table__, frows, new_pks="pk")
    ledger.append(
        session,
        [
            (
                "finding",
                f"finding:{fpk}",
                finding_text({**fr, "pk": fpk}, report_hash[fr["incident_pk"]], agreement.id),
            )
            for fr, fpk in zip(frows, fpks, strict=True)
        ],
        now=now,
    )
    incidents = tuple(int(fr["incident_pk"]) for fr in frows)
    return CapRecount(result.days, result.reports, result.events, tuple(fpks), incidents)
