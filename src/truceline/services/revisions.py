"""Revisions: a stored report that its source sends again, changed and newer, replaces its content.

ACLED revises published rows (same ``event_id_cnty``, later ``timestamp``); a TAK marker is moved
or edited under the same ``uid`` (a later ``start``). :func:`truceline.services.ingest.ingest_incidents`
hands such reports here (a *version*, the source's own ordering in seconds, tells the newer); each
becomes a new revision of its incident:

- the earlier content, the adjudication and the findings it had are kept in
  ``incident_revisions`` (:class:`~truceline.store.models.IncidentRevisionRow`);
- the incident row takes the new content, is adjudicated again, and its findings are recomputed
  (the earlier ones are withdrawn: deleted from ``findings``, kept in the revision row and
  audited); count caps are recounted on the days before and after;
- the change is audited (``incident`` ``revise``, before and after: ``GET /incidents/{pk}/history``)
  and appended to the ledger as a ``report`` entry of the incident (its new content hash, the
  revision number, the previous hash and the withdrawn findings), followed by the new findings.

The incident keeps its pk, review status and fused event. The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement, RuleType
from truceline.core.incidents import Incident, second_fix
from truceline.core.rules import Findings
from truceline.core.times import as_utc
from truceline.io.incidents_io import Reject
from truceline.ledger_verify import canonical_json
from truceline.services.adjudication import adjudicate
from truceline.services.caps import counted_by_caps, recount_caps
from truceline.store import ledger
from truceline.store.db import bulk_insert
from truceline.store.incidents import finding_rows
from truceline.store.ledger import finding_text
from truceline.store.models import AuditRow, FindingRow, IncidentRevisionRow, IncidentRow
from truceline.store.record_text import hash_text

__all__ = [
    "Revision",
    "RevisionResult",
    "Withdrawal",
    "WithdrawalResult",
    "revise_incidents",
    "withdraw_incidents",
]

#: Columns of the incident that a revision replaces (the report as submitted).
_RECORD_COLUMNS = (
    "observed_at", "time_precision", "lon", "lat", "uncertainty_m", "kind", "weapon_class",
    "count", "party", "origin_lon", "origin_lat", "origin_uncertainty_m", "bearing_deg",
    "source_type", "reliability", "credibility", "narrative",
)  # fmt: skip
_ADJUDICATION_COLUMNS = (
    "side_party", "distance_km", "p_side", "zones", "sector", "in_force", "in_area",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Revision:
    """A report to store as a new revision of the stored incident ``pk``."""

    pk: int
    incident: Incident
    row: int
    version: float
    submitted_by: str


@dataclass(slots=True)
class RevisionResult:
    revised: list[str] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    findings_by_pk: dict[int, int] = field(default_factory=dict)


def _second_fix_values(narrative: str) -> dict[str, Any]:
    """The second-fix columns of a revised report: those its narrative states (or none)."""
    fix = second_fix(narrative)
    if fix is None:
        return {"ambiguous": False, "alt_lon": None, "alt_lat": None, "alt_weight": None}
    return {"ambiguous": True, "alt_lon": fix[0], "alt_lat": fix[1], "alt_weight": fix[2]}


def _jsonable(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return as_utc(v).isoformat().replace("+00:00", "Z")
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def _content(row: IncidentRow) -> dict[str, Any]:
    return {c: _jsonable(getattr(row, c)) for c in _RECORD_COLUMNS}


def _finding_dict(f: FindingRow) -> dict[str, Any]:
    return {
        "pk": f.pk,
        "rule_id": f.rule_id,
        "rule_type": f.rule_type,
        "responsible": f.responsible,
        "probability": f.probability,
        "status": f.status,
        "released_at": _jsonable(f.released_at),
        "explanation": f.explanation,
    }


def revise_incidents(
    session: Session,
    agreement: Agreement,
    revisions: Sequence[Revision],
    *,
    batch_id: int,
    now: dt.datetime,
) -> RevisionResult:
    """Store each revision (see the module doc); a revision the agreement refuses is a reject."""
    out = RevisionResult()
    if not revisions:
        return out
    adj = adjudicate(agreement, [r.incident for r in revisions], [r.row for r in revisions])
    out.rejects.extend(adj.rejects)
    if not adj.incidents:
        return out
    by_row = {r.row: r for r in revisions}
    todo = [by_row[row] for row in adj.rows]
    cls = adj.classification
    pks = [r.pk for r in todo]
    rows = {
        r.pk: r for r in session.execute(select(IncidentRow).where(IncidentRow.pk.in_(pks))).scalars()
    }
    old_findings: dict[int, list[FindingRow]] = {pk: [] for pk in pks}
    for old in session.execute(
        select(FindingRow).where(FindingRow.incident_pk.in_(pks)).order_by(FindingRow.pk)
    ).scalars():
        old_findings[old.incident_pk].append(old)
    days: set[dt.date] = set()
    # Count caps are judged over whole days by recount_caps below, as ingest does.
    f = cls.findings
    if (f.rule_type == RuleType.count_cap.value).any():
        keep = f.rule_type != RuleType.count_cap.value
        f = Findings(**{k.name: getattr(f, k.name)[keep] for k in fields(Findings)})
    items: list[tuple[str, str, dict[str, object] | ledger.CanonicalJSON]] = []
    kept: list[IncidentRevisionRow] = []  # the earlier contents, in the ledger once flushed
    audits: list[AuditRow] = []  # each also a ledger entry, once flushed (its pk)
    new_frows: list[dict[str, Any]] = []
    withdrawn: dict[int, list[int]] = {}
    hashes: dict[int, str] = {}
    side, dist = cls.party_side.tolist(), cls.distance_km.tolist()
    p_side, zones, sector = cls.p_side.tolist(), cls.zones.tolist(), cls.sector.tolist()
    in_force, in_area = cls.in_force.tolist(), cls.in_area.tolist()
    for i, rev in enumerate(todo):
        row = rows[rev.pk]
        inc = rev.incident
        content_hash, text = hash_text(inc)
        hashes[rev.pk] = content_hash
        before = _content(row)
        old_adj = {c: getattr(row, c) for c in _ADJUDICATION_COLUMNS}
        olds = old_findings[rev.pk]
        kept.append(
            IncidentRevisionRow(
                incident_pk=row.pk,
                revision=row.revision,
                content_hash=row.content_hash,
                version=row.version,
                record=before,
                adjudication=old_adj,
                findings=[_finding_dict(x) for x in olds],
                batch_id=row.batch_id,
                received_at=row.received_at,
                submitted_by=row.submitted_by,
                superseded_at=now,
                superseded_by_batch=batch_id,
            )
        )
        days.add(row.day)
        new_values: dict[str, Any] = {
            "observed_at": inc.observed_at,
            "day": inc.observed_at.date(),
            "time_precision": inc.time_precision.value,
            "lon": inc.lon,
            "lat": inc.lat,
            "uncertainty_m": inc.uncertainty_m,
            "kind": inc.kind.value,
            "weapon_class": inc.weapon_class,
            "count": inc.count,
            "party": inc.party,
            "origin_lon": inc.origin_lon,
            "origin_lat": inc.origin_lat,
            "origin_uncertainty_m": inc.origin_uncertainty_m,
            "bearing_deg": inc.bearing_deg,
            "source_type": inc.source_type.value,
            "reliability": inc.reliability,
            "credibility": inc.credibility,
            "narrative": inc.narrative,
            **_second_fix_values(inc.narrative),
            "side_party": side[i],
            "distance_km": dist[i],
            "p_side": p_side[i],
            "zones": zones[i],
            "sector": sector[i],
            "in_force": in_force[i],
            "in_area": in_area[i],
            "content_hash": content_hash,
            "batch_id": batch_id,
            "received_at": now,
            "submitted_by": rev.submitted_by,
            "revision": row.revision + 1,
            "version": rev.version,
            "withdrawn_at": None,  # a newer sending after a withdrawal: the source stands by it again
        }
        days.add(inc.observed_at.date())
        withdrawn[rev.pk] = [x.pk for x in olds]
        for x in olds:
            audits.append(
                AuditRow(
                    at=now,
                    actor=rev.submitted_by,
                    role="source",
                    entity="finding",
                    entity_id=str(x.pk),
                    action="withdraw",
                    comment=f"incident {row.pk} revised to revision {row.revision + 1}",
                    before=_finding_dict(x),
                    after=None,
                )
            )
        audits.append(
            AuditRow(
                at=now,
                actor=rev.submitted_by,
                role="source",
                entity="incident",
                entity_id=str(row.pk),
                action="revise",
                comment=f"revision {row.revision + 1} of {row.report_id} "
                f"(version {rev.version:.0f} replaces {row.version or 0:.0f}); "
                f"{len(olds)} finding(s) withdrawn and recomputed",
                before={**before, **old_adj, "revision": row.revision},
                after={
                    **{c: _jsonable(new_values[c]) for c in _RECORD_COLUMNS},
                    **{c: new_values[c] for c in _ADJUDICATION_COLUMNS},
                    "revision": row.revision + 1,
                },
            )
        )
        items.append(
            (
                "report",
                f"incident:{row.pk}",
                ledger.CanonicalJSON(
                    canonical_json(
                        {
                            "agreement": agreement.id,
                            "batch": batch_id,
                            "content_hash": content_hash,
                            "incident": row.pk,
                            "previous_hash": row.content_hash,
                            "received_at": now.isoformat(),
                            "record": "__RECORD__",
                            "revision": row.revision + 1,
                            "submitted_by": rev.submitted_by,
                            "version": rev.version,
                            "withdrawn_at": None,
                            "withdrawn_findings": withdrawn[rev.pk],
                            # what the store derived from it, as ingest records it
                            "distance_km": dist[i] if math.isfinite(dist[i]) else None,
                            "p_side": p_side[i] if math.isfinite(p_side[i]) else None,
                            "sector": sector[i],
                            "side_party": side[i],
                            "in_force": bool(in_force[i]),
                            "in_area": bool(in_area[i]),
                            "zones": zones[i],
                        }
                    ).replace('"__RECORD__"', text)
                ),
            )
        )
        session.execute(update(IncidentRow).where(IncidentRow.pk == row.pk).values(**new_values))
        out.revised.append(inc.id)
    session.flush()
    all_old = [pk for pks_ in withdrawn.values() for pk in pks_]
    if all_old:
        session.execute(delete(FindingRow).where(FindingRow.pk.in_(all_old)))
    pk_at = [r.pk for r in todo]
    new_frows = finding_rows(f, pk_at, now)
    conn = session.connection()
    fpks = bulk_insert(conn, FindingRow.__table__, new_frows, new_pks="pk")
    items += [
        (
            "finding",
            f"finding:{fpk}",
            finding_text({**fr, "pk": fpk}, hashes[fr["incident_pk"]], agreement.id),
        )
        for fr, fpk in zip(new_frows, fpks, strict=True)
    ]
    session.add_all(kept)
    session.add_all(audits)
    session.flush()
    items += [("audit", f"audit:{a.pk}", ledger.audit_content(a)) for a in audits]
    ledger.record_rows(session, "incident_revisions", [r.pk for r in kept], now=now)
    ledger.append(session, items, now=now)
    # Caps are recounted when the new content counts towards one (an earlier count-cap finding
    # withdrawn with a content that no longer counts is not re-judged: see the report of issue 16).
    if counted_by_caps(agreement, adj.batch, cls.zones).any():
        recount_caps(session, agreement, sorted(days), now=now)
    out.findings_by_pk = dict(Counter(int(r["incident_pk"]) for r in new_frows))
    for pk in np.unique(pk_at).tolist():
        out.findings_by_pk.setdefault(int(pk), 0)
    return out


# -- withdrawals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """The source withdrew its report ``report_id`` at ``at`` (ACLED's deletions list); ``row``:
    where the file said so."""

    row: int
    report_id: str
    at: dt.datetime


@dataclass(slots=True)
class WithdrawalResult:
    withdrawn: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # withdrawn before: nothing changes
    not_stored: list[str] = field(default_factory=list)  # the list covers more than we hold
    rejects: list[Reject] = field(default_factory=list)
    findings_withdrawn: int = 0


def _incident_of(row: IncidentRow) -> Incident:
    return Incident.model_validate({"id": row.report_id, **_content(row)})


def withdraw_incidents(
    session: Session,
    agreement: Agreement,
    withdrawals: Sequence[Withdrawal],
    *,
    submitted_by: str,
    now: dt.datetime,
) -> WithdrawalResult:
    """Withdraw the stored reports the source deleted: each is kept but counts no more.

    Per report: its content, adjudication and findings are kept as a revision
    (``incident_revisions``); its findings are withdrawn (deleted from ``findings``, each audited);
    the incident row gets ``withdrawn_at`` (the source's time), the next revision number and the
    deletion's time as its version; the change is audited (``incident`` ``withdraw``) and appended
    to the ledger as a ``report`` entry of the incident (same content hash, ``withdrawn_at``, the
    withdrawn findings). Lists, counts, maps and reports leave withdrawn reports out. A report
    withdrawn already is left as it is; an id not stored is counted, not an error (ACLED's list
    covers every country). A deletion older than the stored revision (the source sent a newer
    content after deleting) is a reject. A count-cap finding the day's other reports hold stays
    (a lower count withdraws no finding, as in :mod:`truceline.services.caps`: an analyst
    does). The caller owns the transaction.
    """
    out = WithdrawalResult()
    if not withdrawals:
        return out
    ids = list(dict.fromkeys(w.report_id for w in withdrawals))
    rows: dict[str, IncidentRow] = {}
    for k in range(0, len(ids), 500):
        q = select(IncidentRow).where(
            IncidentRow.agreement_id == agreement.id, IncidentRow.report_id.in_(ids[k : k + 500])
        )
        rows.update({r.report_id: r for r in session.execute(q).scalars()})
    todo: dict[str, Withdrawal] = {}
    for w in withdrawals:
        row = rows.get(w.report_id)
        stamp = w.at.timestamp()
        if row is None:
            out.not_stored.append(w.report_id)
        elif row.withdrawn_at is not None or w.report_id in todo:
            out.already.append(w.report_id)
        elif row.version is not None and row.version > stamp:
            out.rejects.append(
                Reject(
                    w.row,
                    w.report_id,
                    "deleted_timestamp",
                    f"the deletion ({stamp:.0f}) is older than the stored revision (version "
                    f"{row.version:.0f}): the source sent the report again after deleting it; kept",
                )
            )
        else:
            todo[w.report_id] = w
    if not todo:
        return out
    pks = [rows[r].pk for r in todo]
    old_findings: dict[int, list[FindingRow]] = {pk: [] for pk in pks}
    for old in session.execute(
        select(FindingRow).where(FindingRow.incident_pk.in_(pks)).order_by(FindingRow.pk)
    ).scalars():
        old_findings[old.incident_pk].append(old)
    items: list[tuple[str, str, dict[str, object] | ledger.CanonicalJSON]] = []
    kept: list[IncidentRevisionRow] = []  # the earlier contents, in the ledger once flushed
    audits: list[AuditRow] = []
    gone: list[int] = []
    for rid, w in todo.items():
        row = rows[rid]
        olds = old_findings[row.pk]
        before = _content(row)
        adj = {c: getattr(row, c) for c in _ADJUDICATION_COLUMNS}
        kept.append(
            IncidentRevisionRow(
                incident_pk=row.pk,
                revision=row.revision,
                content_hash=row.content_hash,
                version=row.version,
                record=before,
                adjudication=adj,
                findings=[_finding_dict(x) for x in olds],
                batch_id=row.batch_id,
                received_at=row.received_at,
                submitted_by=row.submitted_by,
                superseded_at=now,
                superseded_by_batch=None,
            )
        )
        gone.extend(x.pk for x in olds)
        at = as_utc(w.at)
        for x in olds:
            audits.append(
                AuditRow(
                    at=now,
                    actor=submitted_by,
                    role="source",
                    entity="finding",
                    entity_id=str(x.pk),
                    action="withdraw",
                    comment=f"incident {row.pk} ({rid}) withdrawn by its source",
                    before=_finding_dict(x),
                    after=None,
                )
            )
        audits.append(
            AuditRow(
                at=now,
                actor=submitted_by,
                role="source",
                entity="incident",
                entity_id=str(row.pk),
                action="withdraw",
                comment=f"{rid} withdrawn by its source at {_jsonable(at)} (revision "
                f"{row.revision + 1}); {len(olds)} finding(s) withdrawn",
                before={"withdrawn_at": None, "revision": row.revision},
                after={"withdrawn_at": _jsonable(at), "revision": row.revision + 1},
            )
        )
        _, text = hash_text(_incident_of(row))
        items.append(
            (
                "report",
                f"incident:{row.pk}",
                ledger.CanonicalJSON(
                    canonical_json(
                        {
                            "agreement": agreement.id,
                            "batch": row.batch_id,
                            "content_hash": row.content_hash,
                            "incident": row.pk,
                            "previous_hash": row.content_hash,
                            "received_at": _jsonable(row.received_at),
                            "record": "__RECORD__",
                            "revision": row.revision + 1,
                            "submitted_by": row.submitted_by,
                            "version": w.at.timestamp(),
                            "withdrawn_at": _jsonable(at),
                            "withdrawn_findings": [x.pk for x in olds],
                            "distance_km": row.distance_km if math.isfinite(row.distance_km) else None,
                            "p_side": row.p_side if math.isfinite(row.p_side) else None,
                            "sector": row.sector,
                            "side_party": row.side_party,
                            "in_force": True if row.in_force is None else bool(row.in_force),
                            "in_area": True if row.in_area is None else bool(row.in_area),
                            "zones": row.zones,
                        }
                    ).replace('"__RECORD__"', text)
                ),
            )
        )
        session.execute(
            update(IncidentRow)
            .where(IncidentRow.pk == row.pk)
            .values(withdrawn_at=at, revision=row.revision + 1, version=w.at.timestamp())
        )
        out.withdrawn.append(rid)
        out.findings_withdrawn += len(olds)
    session.flush()
    if gone:
        session.execute(delete(FindingRow).where(FindingRow.pk.in_(gone)))
    session.add_all(kept)
    session.add_all(audits)
    session.flush()
    items += [("audit", f"audit:{a.pk}", ledger.audit_content(a)) for a in audits]
    ledger.record_rows(session, "incident_revisions", [r.pk for r in kept], now=now)
    ledger.append(session, items, now=now)
    return out
