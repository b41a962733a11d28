"""Ingest: the one way a report enters the store (adjudicated, fused, counted, in the ledger).

The caller owns the transaction (a CLI command or an API request): these functions add and flush,
never commit.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from sqlalchemy import Connection, insert, update
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement, RuleType
from truceline.core.incidents import Incident, second_fix
from truceline.core.rules import Findings
from truceline.io.incidents_io import Reject
from truceline.ledger_verify import canonical_json, json_text
from truceline.services.adjudication import adjudicate
from truceline.services.caps import CapRecount, counted_by_caps, recount_caps
from truceline.services.events import ReportColumns, epoch_seconds, link_events
from truceline.services.revisions import Revision, revise_incidents
from truceline.store import ledger
from truceline.store.db import bulk_insert
from truceline.store.incidents import earlier_revisions, finding_rows, stored_reports
from truceline.store.ledger import finding_text
from truceline.store.models import (
    FindingRow,
    IncidentRow,
    IngestBatchRow,
    RejectRow,
)
from truceline.store.record_text import hash_text

__all__ = ["IngestResult", "ingest_incidents"]

_CHUNK = 500

#: The incident columns ingest writes, in the order of its row tuples.
_INCIDENT_COLUMNS = (
    "agreement_id", "batch_id", "report_id", "content_hash", "observed_at", "day", "time_precision",
    "lon", "lat", "uncertainty_m", "kind", "weapon_class", "count", "party", "origin_lon",
    "origin_lat", "origin_uncertainty_m", "bearing_deg", "source_type", "reliability",
    "credibility", "narrative", "side_party", "distance_km", "p_side", "zones", "sector",
    "in_force", "in_area", "received_at", "submitted_by", "version", "ambiguous", "alt_lon",
    "alt_lat", "alt_weight",
)  # fmt: skip
_NO_SECOND_FIX = (False, None, None, None)


# Statements built once (building and caching a statement per call costs more than running it).
_BT = IngestBatchRow.__table__
_NEW_BATCH = insert(_BT).returning(_BT.c.id)


def _second_fix_columns(narrative: str) -> tuple[bool, float | None, float | None, float | None]:
    """``ambiguous``, ``alt_lon``, ``alt_lat``, ``alt_weight`` of a report: the second fix its
    narrative states (:func:`~truceline.core.incidents.second_fix`), or none."""
    fix = second_fix(narrative)
    return _NO_SECOND_FIX if fix is None else (True, *fix)


def _storable(value: str, limit: int | None = None) -> str:
    """A rejected record's text as every database can keep it: NUL (which PostgreSQL refuses)
    shown as U+FFFD, cut to the column's length with an ellipsis. The caller's answer keeps the
    text as sent; only the stored copy is cut."""
    value = value.replace("\x00", "\ufffd")
    if limit is not None and len(value) > limit:
        value = value[: limit - 1] + "\u2026"
    return value


@dataclass(slots=True)
class IngestResult:
    batch_id: int
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    revised: list[str] = field(default_factory=list)  # new revisions of stored reports
    rejects: list[Reject] = field(default_factory=list)
    findings: int = 0
    pks: dict[str, int] = field(default_factory=dict)  # report id -> pk (accepted and duplicates)
    findings_by_pk: dict[int, int] = field(default_factory=dict)


def ingest_incidents(
    session: Session,
    agreement: Agreement,
    incidents: Sequence[Incident],
    rows: Sequence[int],
    *,
    source: str,
    earlier_rejects: Sequence[Reject] = (),
    earlier_duplicates: Sequence[str] = (),
    on_progress: Callable[[int, int], None] | None = None,
    submitted_by: str | Sequence[str] = "",
    now: dt.datetime | None = None,
    versions: Sequence[float | None] | None = None,
) -> IngestResult:
    """Adjudicate and store a batch; a report id already stored is a duplicate, never a second row.

    A re-sent report with the same id and content counts as a duplicate. The same id with
    different content becomes a new revision of the stored incident when the source versions its
    sendings (``versions``, one per incident, seconds: ACLED's ``timestamp``, a CoT event's start)
    and this one is newer than the stored one (:mod:`truceline.services.revisions`); otherwise it
    is rejected (reports without a version are immutable; corrections get a new id).
    ``on_progress(done, total)`` is called as rows are stored (for progress bars).
    ``submitted_by`` names the caller (an API token's subject), one for all or one per incident;
    ``now`` is the time of receipt.
    """
    now = now or dt.datetime.now(dt.UTC)
    conn = session.connection()  # Core statements: this runs once per request on the server
    result = IngestResult(batch_id=0, rejects=list(earlier_rejects))
    result.duplicates.extend(earlier_duplicates)

    hash_texts = [hash_text(i) for i in incidents]
    hashes = [h for h, _ in hash_texts]
    stored: dict[str, str] = {}
    stored_version: dict[str, float | None] = {}
    ids = [i.id for i in incidents]
    for r, h, pk, v in stored_reports(conn, agreement.id, ids):
        stored[r] = h
        stored_version[r] = v
        result.pks[r] = pk
    new: list[int] = []
    revise: list[int] = []
    older: list[int] = []  # an older sending than the stored revision, with other content
    sent_version: dict[int, float] = {}
    for k, inc in enumerate(incidents):
        if inc.id in stored:
            version = versions[k] if versions is not None else None
            was = stored_version[inc.id]
            if stored[inc.id] == hashes[k]:
                result.duplicates.append(inc.id)
            elif version is not None and (was is None or version > was):
                revise.append(k)
            elif version is not None:
                older.append(k)
                sent_version[k] = version
            else:
                result.rejects.append(
                    Reject(
                        rows[k],
                        inc.id,
                        "id",
                        "a different report with this id is already stored; "
                        "reports are immutable, send a correction under a new id (or, from a "
                        "versioned source such as ACLED, with a later timestamp)",
                    )
                )
        else:
            new.append(k)

    if older:  # an earlier revision already kept (a capture imported again) is a duplicate
        kept = earlier_revisions(conn, [result.pks[incidents[k].id] for k in older])
        for k in older:
            inc = incidents[k]
            if (result.pks[inc.id], hashes[k]) in kept:
                result.duplicates.append(inc.id)
                continue
            was = stored_version[inc.id]
            result.rejects.append(
                Reject(
                    rows[k],
                    inc.id,
                    "version",
                    f"an older sending (version {sent_version[k]:.0f}) than the stored "
                    f"revision (version {was or 0:.0f}) with other content; the stored one is kept",
                )
            )

    adj = adjudicate(agreement, [incidents[k] for k in new], [rows[k] for k in new])
    result.rejects.extend(adj.rejects)
    # The batch row goes in once its counts are known (one statement, not an insert and an update).
    batch_row: dict[str, Any] = {
        "agreement_id": agreement.id,
        "source": source,
        "received_at": now,
        "n_accepted": len(adj.incidents),
        "n_duplicates": len(result.duplicates),
        "n_rejected": len(result.rejects),
    }
    batch_id = result.batch_id = conn.execute(_NEW_BATCH, batch_row).scalar_one()
    batch_row["id"] = batch_id
    version_of = {incidents[k].id: versions[k] for k in new} if versions is not None else {}
    cls = adj.classification
    hash_of = {incidents[k].id: hashes[k] for k in new}
    if isinstance(submitted_by, str):
        who = dict.fromkeys((incidents[k].id for k in new), submitted_by)
    else:
        who = {incidents[k].id: submitted_by[k] for k in new}
    text_of = {incidents[k].id: hash_texts[k][1] for k in new}
    # Columns as Python lists first: indexing NumPy arrays element by element costs more.
    party_side, distance_km = cls.party_side.tolist(), cls.distance_km.tolist()
    p_side, zones, sector = cls.p_side.tolist(), cls.zones.tolist(), cls.sector.tolist()
    in_force, in_area = cls.in_force.tolist(), cls.in_area.tolist()
    ag_id = agreement.id
    # One tuple per row in _INCIDENT_COLUMNS' order (enum values by ``_value_``: ``.value`` is a
    # descriptor call, three per report).
    values = [
        (
            ag_id, batch_id, inc.id, hash_of[inc.id], inc.observed_at, inc.observed_at.date(),
            inc.time_precision._value_, inc.lon, inc.lat, inc.uncertainty_m, inc.kind._value_,
            inc.weapon_class, inc.count, inc.party, inc.origin_lon, inc.origin_lat,
            inc.origin_uncertainty_m, inc.bearing_deg, inc.source_type._value_, inc.reliability,
            inc.credibility, inc.narrative, party_side[i], distance_km[i], p_side[i], zones[i],
            sector[i], in_force[i], in_area[i], now, who[inc.id], version_of.get(inc.id),
            *_second_fix_columns(inc.narrative),
        )
        for i, inc in enumerate(adj.incidents)
    ]  # fmt: skip
    pks: list[int] = []
    # Core inserts (COPY on PostgreSQL): the ORM's bulk path costs several times more.
    inc_t, find_t = IncidentRow.__table__, FindingRow.__table__
    # In chunks only to report progress: each chunk is a round trip (a COPY on PostgreSQL).
    step = _CHUNK if on_progress is not None else max(len(values), 1)
    for k in range(0, len(values), step):
        pks += bulk_insert(conn, inc_t, values[k : k + step], new_pks="pk", columns=_INCIDENT_COLUMNS)
        if on_progress is not None:
            on_progress(min(k + step, len(values)), len(values))
    pk_of = dict(zip((i.id for i in adj.incidents), pks, strict=True))
    # Count caps are about a whole stored day, one count per event: recount_caps judges them below.
    f = cls.findings
    if (f.rule_type == RuleType.count_cap.value).any():
        keep = f.rule_type != RuleType.count_cap.value
        f = Findings(**{k.name: getattr(f, k.name)[keep] for k in fields(Findings)})
    # The numbers' canonical text, made once: the findings' column and their ledger entries hold it.
    frows = finding_rows(f, pks, now)
    fpks = bulk_insert(conn, find_t, frows, new_pks="pk")
    reject_rows = _store_rejects(conn, batch_id, result.rejects, now)
    # What fusion and the caps take from this batch, made before the ledger's lock (below).
    new_rows: ReportColumns | None = None
    counted = np.zeros(0, bool)
    if adj.incidents:
        b, n = adj.batch, len(adj.incidents)
        new_rows = ReportColumns(
            pk=np.array(pks, np.intp),
            event=np.full(n, -1, np.intp),
            time_s=epoch_seconds(b.observed_at),
            precision=np.array([i.time_precision._value_ for i in adj.incidents]),
            lon=b.lon,
            lat=b.lat,
            unc_m=b.uncertainty_m,
            kind=b.kind,
            source_type=b.source_type,
            submitted_by=np.array([who[i.id] for i in adj.incidents], dtype=str),
            reliability=np.array([i.reliability for i in adj.incidents]),
            credibility=np.array([i.credibility for i in adj.incidents], np.intp),
            distance_km=cls.distance_km,
            p_side=cls.p_side,
            weapon=b.weapon_class,
            count=np.asarray(b.count, np.intp),
        ).fusable()
        counted = counted_by_caps(agreement, b, cls.zones)
    # The ledger append locks the ledger's head until commit, so it comes before fusion and the
    # caps: a batch committed concurrently by another worker is then visible to this one's fusion
    # and recount (tests/store/test_concurrent_ingest.py fails with fusion first). Everything
    # from here on runs one batch at a time across the server's processes.
    # the batch and its rejects (the daily report's figures) as written, then the reports
    ledger.record_rows(session, "ingest_batches", [], known=[batch_row], now=now)
    ledger.record_rows(session, "rejects", [], known=reject_rows, now=now)
    _ledger_accepted(
        session,
        agreement.id,
        batch_id,
        adj.incidents,
        pk_of,
        hash_of,
        text_of,
        (party_side, distance_km, p_side, zones, sector, in_force, in_area),
        frows,
        fpks,
        submitted_by=who,
        versions=version_of,
        now=now,
    )
    caps = CapRecount()
    if new_rows is not None:  # link reports of one event (fused events; truceline.services.events)
        link_events(
            session, agreement.id, new_rows, batch_id=batch_id, now=now, settings=agreement.fusion
        )
    if counted.any():
        days = np.unique(adj.batch.day[counted]).astype(dt.date)
        caps = recount_caps(session, agreement, days.tolist(), now=now)
    result.accepted = [i.id for i in adj.incidents]
    result.pks.update(pk_of)
    by_pk = Counter(r["incident_pk"] for r in frows)
    if caps.new_findings:  # the caps' findings on this batch's reports (earlier ones count elsewhere)
        mine = set(pk_of.values())
        by_pk.update(p for p in caps.new_finding_incidents if p in mine)
    result.findings = sum(by_pk.values())
    result.findings_by_pk = dict(by_pk)
    if revise:  # after this batch's new reports: the ledger's head is locked by now
        subm = submitted_by if isinstance(submitted_by, str) else None
        rev = revise_incidents(
            session,
            agreement,
            [
                Revision(
                    result.pks[incidents[k].id],
                    incidents[k],
                    rows[k],
                    float(versions[k]),  # type: ignore[index,arg-type]
                    subm if subm is not None else submitted_by[k],
                )
                for k in revise
            ],
            batch_id=batch_id,
            now=now,
        )
        result.revised = rev.revised
        result.rejects.extend(rev.rejects)
        if rev.rejects:  # revisions the agreement refused: the batch's counts and rejects too
            batch_row["n_rejected"] = len(result.rejects)
            conn.execute(
                update(_BT).where(_BT.c.id == batch_id).values(n_rejected=batch_row["n_rejected"])
            )
            more = _store_rejects(conn, batch_id, rev.rejects, now)
            ledger.record_rows(session, "ingest_batches", [], known=[batch_row], now=now)
            ledger.record_rows(session, "rejects", [], known=more, now=now)
        result.findings_by_pk.update(rev.findings_by_pk)
        result.findings += sum(rev.findings_by_pk.values())
    return result


def _store_rejects(
    conn: Connection, batch_id: int, rejects: Sequence[Reject], now: dt.datetime
) -> list[dict[str, Any]]:
    """Insert ``rejects`` as rows of batch ``batch_id``; the rows as written, with their keys."""
    rows: list[dict[str, Any]] = [
        {
            "batch_id": batch_id,
            "row": r.row,
            "report_id": _storable(r.id, 128),
            "field": _storable(r.field, 64),
            "reason": _storable(r.reason),
            "record": None,
            "received_at": now,
        }
        for r in rejects
    ]
    for row, pk in zip(rows, bulk_insert(conn, RejectRow.__table__, rows, new_pks="pk"), strict=True):
        row["pk"] = pk
    return rows


def _ledger_accepted(
    session: Session,
    agreement_id: str,
    batch_id: int,
    accepted: Sequence[Incident],
    pk_of: dict[str, int],
    hash_of: dict[str, str],
    text_of: dict[str, str],
    adjudication: tuple[
        list[str], list[float], list[float], list[str], list[str], list[bool], list[bool]
    ],
    frows: Sequence[dict[str, Any]],
    fpks: Sequence[int],
    *,
    submitted_by: dict[str, str],
    versions: dict[str, float | None],
    now: dt.datetime,
) -> None:
    """Append each accepted report, then each finding, to the tamper-evident ledger.

    A report's content is ``{agreement, batch, content_hash, distance_km, in_area, in_force,
    incident, p_side, received_at, record, sector, side_party, submitted_by, version, zones}``: the
    record and what the store derived from it (``adjudication``: side party, signed distance,
    p_side, zones, sector, in force and in area,
    one list each in ``accepted``'s order), so that ``ledger verify`` sees an edit of any column a
    report or map shows. Its text is assembled around the record's canonical text (serialised
    once, for the content hash too) in canonical key order.
    """
    # The head's keys sort before "record"; its shared parts are serialised once.
    lead = f'{{"agreement":{canonical_json(agreement_id)},"batch":{int(batch_id)},"content_hash":"'
    received = canonical_json(now.isoformat())
    who_json = {w: canonical_json(w) for w in set(submitted_by.values())}
    party_side, distance_km, p_side, zones, sector, in_force, in_area = adjudication
    flag = {True: "true", False: "false"}
    # a handful of distinct labels: each serialised once
    label = {v: json_text(v) for v in {*party_side, *zones, *sector}}
    num = ledger.number_text

    def version(rid: str) -> str:
        v = versions.get(rid)
        return "null" if v is None else num(float(v))

    items: list[tuple[str, str, dict[str, object] | ledger.CanonicalJSON]] = []
    for k, i in enumerate(accepted):
        pk = pk_of[i.id]
        text = (
            f'{lead}{hash_of[i.id]}","distance_km":{num(distance_km[k])},'
            f'"in_area":{flag[bool(in_area[k])]},"in_force":{flag[bool(in_force[k])]},'
            f'"incident":{int(pk)},'
            f'"p_side":{num(p_side[k])},"received_at":{received},"record":{text_of[i.id]},'
            f'"sector":{label[sector[k]]},"side_party":{label[party_side[k]]},'
            f'"submitted_by":{who_json[submitted_by[i.id]]},"version":{version(i.id)},'
            f'"zones":{label[zones[k]]}}}'
        )
        items.append(("report", f"incident:{pk}", ledger.CanonicalJSON(text)))
    report_hash = {pk_of[i.id]: hash_of[i.id] for i in accepted}
    items += [
        (
            "finding",
            f"finding:{fpk}",
            finding_text({**fr, "pk": fpk}, report_hash[int(fr["incident_pk"])], agreement_id),
        )
        for fr, fpk in zip(frows, fpks, strict=True)
    ]
    ledger.append(session, items, now=now)
