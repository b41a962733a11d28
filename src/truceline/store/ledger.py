"""The tamper-evident ledger: every accepted report, finding, review decision and publication.

Each entry's hash commits to the previous entry's hash and to its own body (canonical JSON of
``{seq, time, kind, ref, content}``), so changing, removing or reordering any entry breaks every
later link. Each UTC day closes with a Merkle root over its entries (RFC 6962), which can be
published to both parties; :func:`export_proof` gives one entry with its inclusion path so that a
party holding only that root can check it with :mod:`truceline.ledger_verify` (standard library).

Appenders lock the single head row, so the chain has one order even with concurrent writers
(PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: the write transaction is already exclusive).
The hashing and tree functions live in :mod:`truceline.ledger_verify`, shared with the verifier.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic
from sqlalchemy import Row, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from truceline.core.incidents import Incident
from truceline.core.rules import NUMBERS, Findings
from truceline.core.times import as_utc
from truceline.errors import ConflictError, NotFoundError
from truceline.ledger_verify import (
    FORMAT,
    GENESIS,
    canonical_json,
    entry_hash,
    inclusion_path,
    json_text,
    merkle_root,
)
from truceline.store.db import bulk_insert
from truceline.store.models import (
    FindingRow,
    IncidentRow,
    LedgerEntryRow,
    LedgerHeadRow,
    LedgerRootRow,
)
from truceline.store.record_text import content_hash

__all__ = [
    "CanonicalJSON",
    "Problem",
    "Verification",
    "append",
    "close_days",
    "entry_body",
    "export_proof",
    "finding_content",
    "finding_text",
    "json_text",
    "numbers_text",
    "numbers_texts",
    "verify",
]


# Statements built once: append runs in every write transaction.
_HT = LedgerHeadRow.__table__
_HEAD = select(_HT.c.seq, _HT.c.entry_hash, _HT.c.recorded_at).where(_HT.c.id == 1)
_HEAD_LOCKED = _HEAD.with_for_update()
_MOVE_HEAD = (
    update(_HT)
    .where(_HT.c.id == 1)
    .values(seq=bindparam("h_seq"), entry_hash=bindparam("h_hash"), recorded_at=bindparam("h_at"))
)
_LAST_CLOSED = select(func.max(LedgerRootRow.__table__.c.day))


def _lock_head(session: Session) -> Row[int, str, Any]:
    """The head (seq, entry_hash, recorded_at), locked until the transaction ends."""
    conn = session.connection()
    head = conn.execute(_HEAD_LOCKED).one_or_none()
    if head is None:  # a database whose tables were made without the migration's head row
        conn.execute(insert(_HT).values(id=1, seq=0, entry_hash=GENESIS, recorded_at=None))
        head = conn.execute(_HEAD).one()
    return head


class CanonicalJSON(str):
    """Content already serialised by :func:`~truceline.ledger_verify.canonical_json` (so a caller
    that has the text anyway does not pay for it twice)."""

    __slots__ = ()


def entry_body(seq: int, stamp: str, kind: str, ref: str, content: str) -> str:
    """``canonical_json({"seq", "time", "kind", "ref", "content"})`` from the content's canonical text.

    The keys in canonical (sorted) order around the content's own text: byte for byte what
    serialising the whole entry gives, without serialising the content a second time.
    """
    return (
        f'{{"content":{content},"kind":{json_text(kind)},"ref":{json_text(ref)},'
        f'"seq":{int(seq)},"time":{json_text(stamp)}}}'
    )


#: The columns of a ledger entry, in the order of the row tuples :func:`append` writes.
_ENTRY_COLUMNS = ("seq", "recorded_at", "day", "kind", "ref", "body", "prev_hash", "entry_hash")


def append(
    session: Session,
    items: Sequence[tuple[str, str, dict[str, Any] | CanonicalJSON]],
    *,
    now: dt.datetime,
) -> list[int]:
    """Append ``(kind, ref, content)`` items in order; returns their sequence numbers.

    ``content`` is a JSON-ready mapping or its :class:`CanonicalJSON` text. Times never go
    backwards along the chain (an entry is stamped no earlier than the one before), and never into
    a day whose root is already closed.
    """
    if not items:
        return []
    head = _lock_head(session)
    conn = session.connection()  # Core statements: this runs in every write transaction
    last = as_utc(head.recorded_at)
    t = as_utc(now)
    t = max(t, last) if last else t
    closed = conn.execute(_LAST_CLOSED).scalar()
    if closed is not None and t.date() <= closed:
        raise ConflictError(
            f"the ledger's day {closed} is closed and the clock says {t:%Y-%m-%d %H:%M}",
            fix="check the server's clock (UTC)",
        )
    stamp, day = t.isoformat(), t.date()
    seq, prev = head.seq, head.entry_hash
    rows: list[tuple[Any, ...]] = []
    # entry_body with the parts shared by every entry of the call serialised once
    tail = f',"time":{json_text(stamp)}}}'
    kinds: dict[str, str] = {}
    prev_b = bytes.fromhex(prev)
    sha256 = hashlib.sha256
    for kind, ref, content in items:  # sequential by nature: each hash commits to the previous one
        seq += 1
        text = content if isinstance(content, CanonicalJSON) else canonical_json(content)
        k = kinds.get(kind) or kinds.setdefault(kind, json_text(kind))
        body = f'{{"content":{text},"kind":{k},"ref":{json_text(ref)},"seq":{seq}{tail}'
        prev_b = sha256(prev_b + body.encode()).digest()  # entry_hash(prev, body)
        h = prev_b.hex()
        rows.append((seq, t, day, kind, ref, body, prev, h))
        prev = h
    bulk_insert(conn, LedgerEntryRow.__table__, rows, columns=_ENTRY_COLUMNS)
    conn.execute(_MOVE_HEAD, {"h_seq": seq, "h_hash": prev, "h_at": t})
    return [r[0] for r in rows]


def finding_content(
    f: FindingRow | dict[str, Any], report_hash: str, agreement_id: str
) -> dict[str, Any]:
    """What the ledger keeps of a finding (its immutable part; status changes are review entries).

    ``numbers`` (the numbers the explanation states) is there only when the finding has them: a
    finding recorded before findings carried numbers has none, and its entry (written without
    the key) still verifies.
    """
    g = (
        f
        if isinstance(f, dict)
        else {
            c: getattr(f, c)
            for c in (
                "pk",
                "incident_pk",
                "rule_id",
                "rule_type",
                "responsible",
                "probability",
                "explanation",
                "numbers",
            )
        }
    )
    content = {
        "agreement": agreement_id,
        "finding": g["pk"],
        "incident": g["incident_pk"],
        "report_hash": report_hash,
        "rule_id": g["rule_id"],
        "rule_type": g["rule_type"],
        "responsible": g["responsible"],
        "probability": g["probability"],
        "explanation": g["explanation"],
    }
    numbers = g.get("numbers")
    if numbers is not None:
        content["numbers"] = json.loads(numbers) if isinstance(numbers, str) else numbers
    return content


def numbers_text(numbers: Mapping[str, Any]) -> CanonicalJSON:
    """A finding's numbers as their canonical text (what the store and the ledger keep)."""
    return CanonicalJSON(canonical_json(numbers))


#: Up to this many findings, :func:`numbers_texts` serialises each finding's mapping (setting up
#: the column-wise path costs more).
_FEW_FINDINGS = 16
_NO_NUMBERS = CanonicalJSON("{}")


def numbers_texts(f: Findings) -> list[CanonicalJSON]:
    """``numbers_text`` of each of :meth:`Findings.numbers <truceline.core.rules.Findings.numbers>`,
    written column by column: for ingest, which stores and ledgers every finding of a batch.

    The findings of one rule type with the same numbers that apply share one template (the keys
    in canonical order); each number is serialised once per column, not once per finding.
    """
    n = len(f)
    if n <= _FEW_FINDINGS:
        return [numbers_text(d) for d in f.numbers()]
    out: list[CanonicalJSON] = [_NO_NUMBERS] * n
    types = f.rule_type
    for t in np.unique(types).tolist():
        keys = sorted(NUMBERS.get(t, ()))
        idx = np.flatnonzero(types == t)
        cols = [getattr(f, k)[idx] for k in keys]
        given = [np.isfinite(c) if c.dtype.kind == "f" else c != "" for c in cols]
        # which numbers apply, as bits: one template per combination (a handful)
        pattern = np.zeros(idx.size, np.int64)
        for bit, g in enumerate(given):
            pattern |= g.astype(np.int64) << bit
        for p in np.unique(pattern).tolist():
            here = pattern == p
            use = [b for b in range(len(keys)) if p >> b & 1]
            template = "{" + ",".join(f"{json_text(keys[b])}:%s" for b in use) + "}"
            values = []
            for b in use:
                v = cols[b][here].tolist()
                if cols[b].dtype.kind == "f":
                    values.append(list(map(float.__repr__, v)))
                else:
                    text = {x: json_text(x) for x in set(v)}  # a few distinct ids
                    values.append(list(map(text.__getitem__, v)))
            rows = idx[here].tolist()
            texts = map(template.__mod__, zip(*values, strict=True)) if use else ["{}"] * len(rows)
            for j, x in zip(rows, texts, strict=True):
                out[j] = CanonicalJSON(x)
    return out


def finding_text(f: dict[str, Any], report_hash: str, agreement_id: str) -> CanonicalJSON:
    """``canonical_json(finding_content(f, report_hash, agreement_id))``, written directly.

    For ingest, where every finding of a batch is serialised: ``f`` holds the types a stored
    finding has (``pk`` and ``incident_pk`` int, ``probability`` a finite float, ``numbers`` None
    or their :class:`CanonicalJSON` text, the rest str); anything else takes the general path.
    """
    pk, inc, p, nums = f["pk"], f["incident_pk"], f["probability"], f.get("numbers")
    if not (
        pk.__class__ is int
        and inc.__class__ is int
        and p.__class__ is float
        and math.isfinite(p)
        and (nums is None or nums.__class__ is CanonicalJSON)
    ):
        return CanonicalJSON(canonical_json(finding_content(f, report_hash, agreement_id)))
    numbers = "" if nums is None else f',"numbers":{nums}'
    return CanonicalJSON(
        f'{{"agreement":{json_text(agreement_id)},"explanation":{json_text(f["explanation"])},'
        f'"finding":{pk},"incident":{inc}{numbers},"probability":{float.__repr__(p)},'
        f'"report_hash":{json_text(report_hash)},"responsible":{json_text(f["responsible"])},'
        f'"rule_id":{json_text(f["rule_id"])},"rule_type":{json_text(f["rule_type"])}}}'
    )


# -- days and proofs --------------------------------------------------------------------------


def _day_hashes(session: Session, day: dt.date) -> list[tuple[int, str]]:
    q = select(LedgerEntryRow.seq, LedgerEntryRow.entry_hash).where(LedgerEntryRow.day == day)
    return [(s, h) for s, h in session.execute(q.order_by(LedgerEntryRow.seq))]


def close_days(session: Session, *, now: dt.datetime) -> list[LedgerRootRow]:
    """Close every day before ``now``'s UTC date that has entries and no root yet."""
    _lock_head(session)  # no append interleaves with closing
    today = as_utc(now).date()
    closed = set(session.execute(select(LedgerRootRow.day)).scalars())
    days = session.execute(
        select(LedgerEntryRow.day).where(LedgerEntryRow.day < today).distinct()
    ).scalars()
    out = []
    for day in sorted(d for d in days if d not in closed):
        hashes = _day_hashes(session, day)
        row = LedgerRootRow(
            day=day,
            first_seq=hashes[0][0],
            last_seq=hashes[-1][0],
            n_entries=len(hashes),
            root=merkle_root([h for _, h in hashes]),
            closed_at=now,
        )
        session.add(row)
        out.append(row)
    session.flush()
    return out


def roots(
    session: Session, start: dt.date | None = None, end: dt.date | None = None
) -> list[LedgerRootRow]:
    q = select(LedgerRootRow).order_by(LedgerRootRow.day)
    if start is not None:
        q = q.where(LedgerRootRow.day >= start)
    if end is not None:
        q = q.where(LedgerRootRow.day <= end)
    return list(session.execute(q).scalars())


def entry_of(session: Session, ref: str) -> LedgerEntryRow:
    """The first entry recording ``ref`` (e.g. ``finding:12``)."""
    row = session.execute(
        select(LedgerEntryRow).where(LedgerEntryRow.ref == ref).order_by(LedgerEntryRow.seq).limit(1)
    ).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no ledger entry for {ref}", field="ref", value=ref)
    return row


def export_proof(session: Session, seq: int) -> dict[str, Any]:
    """Entry ``seq`` with its Merkle inclusion path and its day's stored root.

    The day must be closed (``truceline ledger close`` after 00:00 UTC).
    """
    entry = session.get(LedgerEntryRow, seq)
    if entry is None:
        raise NotFoundError(
            f"no ledger entry {seq}",
            field="entry",
            value=seq,
            fix="entries are numbered from 1; see `truceline ledger verify`",
        )
    root = session.get(LedgerRootRow, entry.day)
    if root is None:
        raise ConflictError(
            f"entry {seq} is of {entry.day}, which is not closed yet",
            field="entry",
            value=seq,
            fix="a day closes after 00:00 UTC: run `truceline ledger close` "
            "(or POST /api/v1/ledger/close)",
        )
    hashes = _day_hashes(session, entry.day)
    index = next(i for i, (s, _) in enumerate(hashes) if s == seq)
    return {
        "format": FORMAT,
        "hash": "SHA-256; entry_hash = H(prev_hash || body); RFC 6962 tree: leaf = H(0x00 || "
        "entry_hash), node = H(0x01 || left || right)",
        "entry": {
            "seq": entry.seq,
            "kind": entry.kind,
            "ref": entry.ref,
            "body": entry.body,
            "prev_hash": entry.prev_hash,
            "entry_hash": entry.entry_hash,
        },
        "day": entry.day.isoformat(),
        "leaf_index": index,
        "tree_size": len(hashes),
        "path": inclusion_path([h for _, h in hashes], index),
        "root": root.root,
    }


# -- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong, at ledger entry ``seq`` (None: not tied to one entry)."""

    seq: int | None
    kind: str  # altered | deleted | reordered | inserted | root | record
    message: str

    def __str__(self) -> str:
        where = f"entry {self.seq}" if self.seq is not None else "ledger"
        return f"{where} ({self.kind}): {self.message}"


@dataclass(slots=True)
class Verification:
    entries: int = 0
    days_closed: int = 0
    incidents: int = 0
    findings: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The earliest entry that was altered, deleted or reordered; failing that, the earliest whose
        record no longer matches; failing that, a day whose root no longer matches (which says only
        that something in the day changed)."""
        for kinds in (("altered", "deleted", "reordered"), ("record",), ("root",)):
            pool = [p for p in self.problems if p.seq is not None and p.kind in kinds]
            if pool:
                return min(pool, key=lambda p: p.seq or 0)
        return self.problems[0] if self.problems else None


def _entries(session: Session) -> Iterator[LedgerEntryRow]:
    q = select(LedgerEntryRow).order_by(LedgerEntryRow.seq).execution_options(yield_per=5000)
    yield from session.execute(q).scalars()


def _incident_hash(row: IncidentRow) -> str | None:
    """The content hash of the record as the table holds it now (None: no longer a valid record)."""
    doc = {
        "id": row.report_id,
        "observed_at": as_utc(row.observed_at),
        "time_precision": row.time_precision,
        "lon": row.lon,
        "lat": row.lat,
        "uncertainty_m": row.uncertainty_m,
        "kind": row.kind,
        "weapon_class": row.weapon_class,
        "count": row.count,
        "party": row.party,
        "origin_lon": row.origin_lon,
        "origin_lat": row.origin_lat,
        "origin_uncertainty_m": row.origin_uncertainty_m,
        "bearing_deg": row.bearing_deg,
        "source_type": row.source_type,
        "reliability": row.reliability,
        "credibility": row.credibility,
        "narrative": row.narrative,
    }
    try:
        return content_hash(Incident.model_validate(doc))
    except pydantic.ValidationError:
        return None


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def verify(session: Session, *, records: bool = True, limit: int = 20) -> Verification:
    """Check the chain, the daily roots, the head, and (``records``) that the incident and finding
    tables still hold what the ledger recorded. Stops collecting after ``limit`` problems."""
    out = Verification()
    problems = out.problems
    expected, prev = 1, GENESIS
    last_day: dt.date | None = None
    day_hashes: dict[dt.date, list[tuple[int, str]]] = {}
    report_at: dict[int, tuple[int, str]] = {}  # incident pk -> (seq, content hash)
    finding_at: dict[int, tuple[int, str]] = {}  # finding pk -> (seq, digest of its content)
    status_of: dict[str, tuple[int, str]] = {}  # "incident:pk" / "finding:pk" -> (seq, last status)
    released_of: dict[str, tuple[int, bool]] = {}  # "finding:pk" -> (seq, released after the decision)
    for row in _entries(session):
        out.entries += 1
        if len(problems) >= limit:
            break
        if row.seq != expected:
            gap = f"{expected}" if row.seq == expected + 1 else f"{expected}-{row.seq - 1}"
            problems.append(Problem(expected, "deleted", f"entries {gap} are missing"))
        try:
            body = json.loads(row.body)
        except json.JSONDecodeError:
            body = {}
        moved = bool(body) and body.get("seq") != row.seq
        if entry_hash(row.prev_hash, row.body) != row.entry_hash:
            problems.append(Problem(row.seq, "altered", "its body does not match its hash"))
        elif row.prev_hash != prev and row.seq == expected and not moved:
            problems.append(
                Problem(
                    row.seq - 1,
                    "altered",
                    f"entry {row.seq} was chained to hash {row.prev_hash[:12]}... but entry "
                    f"{row.seq - 1} now hashes to {prev[:12]}...: entry {row.seq - 1} was changed "
                    "and re-hashed, or "
                    "entries were inserted or removed before it",
                )
            )
        if moved:
            problems.append(
                Problem(row.seq, "reordered", f"it holds the body of entry {body.get('seq')}")
            )
        day = row.day
        if body and str(body.get("time", ""))[:10] != day.isoformat():
            problems.append(Problem(row.seq, "altered", f"its day {day} is not the day in its body"))
        if last_day is not None and day < last_day:
            problems.append(Problem(row.seq, "reordered", f"its day {day} comes after {last_day}"))
        last_day = day
        day_hashes.setdefault(day, []).append((row.seq, row.entry_hash))
        content = body.get("content") or {}
        if row.kind == "report" and "incident" in content:
            report_at[int(content["incident"])] = (row.seq, str(content.get("content_hash")))
            for gone in content.get("withdrawn_findings") or ():  # a revision withdrew them
                finding_at.pop(int(gone), None)
        elif row.kind == "finding" and "finding" in content:
            finding_at[int(content["finding"])] = (row.seq, _digest(content))
        elif row.kind == "review":
            for ref, status in (content.get("status_after") or {}).items():
                status_of[ref] = (row.seq, status)
            for ref, released in (content.get("released_after") or {}).items():
                released_of[ref] = (row.seq, bool(released))
        expected, prev = row.seq + 1, row.entry_hash

    head = session.get(LedgerHeadRow, 1)
    head_moved = head is not None and (
        head.seq != expected - 1 or (head.seq > 0 and head.entry_hash != prev)
    )
    if head is not None and head_moved and len(problems) < limit:
        problems.append(
            Problem(
                expected,
                "deleted",
                f"the head records entry {head.seq} ({head.entry_hash[:12]}...) but the chain "
                f"ends at {expected - 1}: the newest entries were removed or the head was changed",
            )
        )
    for r in roots(session):
        out.days_closed += 1
        hashes = day_hashes.get(r.day, [])
        computed = merkle_root([h for _, h in hashes])
        if computed != r.root or len(hashes) != r.n_entries:
            first = hashes[0][0] if hashes else r.first_seq
            problems.append(
                Problem(
                    first,
                    "root",
                    f"day {r.day}: its {len(hashes)} entries give root {computed[:16]}..., the "
                    f"stored (published) root is {r.root[:16]}... over {r.n_entries} entries",
                )
            )
    if records:
        _verify_records(session, out, report_at, finding_at, status_of, released_of)
    out.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return out


def _verify_records(
    session: Session,
    out: Verification,
    report_at: dict[int, tuple[int, str]],
    finding_at: dict[int, tuple[int, str]],
    status_of: dict[str, tuple[int, str]],
    released_of: dict[str, tuple[int, bool]],
) -> None:
    problems = out.problems
    seen: set[int] = set()
    report_hash: dict[int, str] = {}
    q = select(IncidentRow).order_by(IncidentRow.pk).execution_options(yield_per=5000)
    for row in session.execute(q).scalars():
        out.incidents += 1
        seen.add(row.pk)
        report_hash[row.pk] = row.content_hash
        rec = report_at.get(row.pk)
        if rec is None:
            problems.append(
                Problem(None, "record", f"incident {row.pk} ({row.report_id}) has no ledger entry")
            )
            continue
        now_hash = _incident_hash(row)
        if now_hash != rec[1] or row.content_hash != rec[1]:
            problems.append(
                Problem(
                    rec[0],
                    "record",
                    f"incident {row.pk} ({row.report_id}) differs from what this entry recorded "
                    "(altered)",
                )
            )
        st = status_of.get(f"incident:{row.pk}")
        if row.status != (st[1] if st else "new"):
            problems.append(
                Problem(
                    st[0] if st else rec[0],
                    "record",
                    f"incident {row.pk} has status {row.status!r}; the ledger's last decision says "
                    f"{st[1] if st else 'new'!r}",
                )
            )
    for pk, (seq, _) in report_at.items():
        if pk not in seen:
            problems.append(Problem(seq, "record", f"incident {pk} recorded here is missing (deleted)"))
    seen.clear()
    fq = (
        select(FindingRow, IncidentRow.agreement_id)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .order_by(FindingRow.pk)
        .execution_options(yield_per=5000)
    )
    for f, agreement_id in session.execute(fq):
        out.findings += 1
        seen.add(f.pk)
        rec = finding_at.get(f.pk)
        if rec is None:
            problems.append(Problem(None, "record", f"finding {f.pk} has no ledger entry"))
            continue
        content = finding_content(f, report_hash.get(f.incident_pk, ""), agreement_id)
        if _digest(content) != rec[1]:
            problems.append(
                Problem(
                    rec[0], "record", f"finding {f.pk} differs from what this entry recorded (altered)"
                )
            )
        st = status_of.get(f"finding:{f.pk}")
        if f.status != (st[1] if st else "open"):
            problems.append(
                Problem(
                    st[0] if st else rec[0],
                    "record",
                    f"finding {f.pk} has status {f.status!r}; the ledger's last decision says "
                    f"{st[1] if st else 'open'!r}",
                )
            )
        rel = released_of.get(f"finding:{f.pk}")
        if (f.released_at is not None) != (rel[1] if rel else False):
            problems.append(
                Problem(
                    rel[0] if rel else rec[0],
                    "record",
                    f"finding {f.pk} is {'' if f.released_at else 'not '}released to the parties; the "
                    "ledger's last decision says otherwise",
                )
            )
    for pk, (seq, _) in finding_at.items():
        if pk not in seen:
            problems.append(Problem(seq, "record", f"finding {pk} recorded here is missing (deleted)"))
