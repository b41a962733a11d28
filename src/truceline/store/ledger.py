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

import base64
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic
from sqlalchemy import DateTime, Integer, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from truceline.core.incidents import Incident, second_fix
from truceline.core.rules import NUMBERS, Findings
from truceline.core.times import as_utc
from truceline.errors import ConflictError, NotFoundError, ValidationError
from truceline.ledger_verify import (
    FORMAT,
    GENESIS,
    canonical_json,
    check_signature,
    commitment,
    entry_hash,
    inclusion_path,
    json_text,
    merkle_root,
    opening_key,
    root_message,
)
from truceline.store import map_cells
from truceline.store.db import bulk_insert, one_of
from truceline.store.models import (
    AgreementRevisionRow,
    AgreementRow,
    ApiTokenRow,
    AttachmentRow,
    AuditRow,
    DetectionRow,
    EventRow,
    FindingRow,
    FusionPairRow,
    IncidentRevisionRow,
    IncidentRow,
    IngestBatchRow,
    LedgerEntryRow,
    LedgerHeadRow,
    LedgerRootRow,
    PatrolPositionRow,
    PublishedReportRow,
    RejectRow,
    SensorRow,
)
from truceline.store.record_text import content_hash

__all__ = [
    "AUDIT_TABLE",
    "BACKFILL",
    "ROW_TABLES",
    "TOKEN_TABLE",
    "CanonicalJSON",
    "Problem",
    "RootSigner",
    "Verification",
    "append",
    "attachment_content",
    "audit_content",
    "backfill_audit",
    "checkpoint",
    "close_days",
    "entry_body",
    "export_proof",
    "finding_content",
    "finding_openings",
    "finding_proof",
    "finding_text",
    "json_text",
    "latest_checkpoint",
    "latest_head",
    "mission_key",
    "new_salts",
    "number_text",
    "numbers_text",
    "numbers_texts",
    "record_rows",
    "root_documents",
    "row_state",
    "stored_time",
    "uncovered_keys",
    "verify",
]

#: Tables whose rows the ledger keeps whole: each change writes the changed rows' state (every
#: column, :func:`row_state`) in one ``rows`` entry (:func:`record_rows`), and :func:`verify`
#: compares each stored row with its newest recorded state.
ROW_TABLES: dict[str, Table] = {
    "events": EventRow.__table__,
    "incident_revisions": IncidentRevisionRow.__table__,
    "fusion_pairs": FusionPairRow.__table__,
    "patrol_positions": PatrolPositionRow.__table__,
    "sensors": SensorRow.__table__,
    "detections": DetectionRow.__table__,
    "ingest_batches": IngestBatchRow.__table__,
    "rejects": RejectRow.__table__,
}
#: The column saying when a row of each table was made: a row without a recorded state that was
#: made before the ledger first recorded its table (or whose integer key is below every key
#: recorded) was stored before the ledger kept the table, and is *not covered* (counted by
#: :func:`verify`, recorded by :func:`backfill_rows`); any other is a row with no ledger entry.
_MADE_AT = {
    "events": "created_at",
    "incident_revisions": "superseded_at",
    "fusion_pairs": "created_at",
    "patrol_positions": "received_at",
    "sensors": "registered_at",
    "detections": "received_at",
    "ingest_batches": "received_at",
    "rejects": "received_at",
}
#: A ``rows`` or ``audit`` entry's content key marking it as written by the backfill
#: (:func:`backfill_rows`, :func:`backfill_audit`): it records a row stored before the ledger
#: kept its table, as the row was when backfilled, and does not move where the live record began.
BACKFILL = "backfill"
#: What :func:`verify` counts as not covered besides :data:`ROW_TABLES`.
AUDIT_TABLE, TOKEN_TABLE = "audit_log", "api_tokens"


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
    backwards along the chain (an entry is stamped no earlier than the one before), and an append
    whose clock says a day whose root is already closed is refused.
    """
    if not items:
        return []
    head = _lock_head(session)
    conn = session.connection()  # Core statements: this runs in every write transaction
    last = as_utc(head.recorded_at)
    clock = as_utc(now)
    t = max(clock, last) if last else clock
    closed = conn.execute(_LAST_CLOSED).scalar()
    # the clock itself, not only the stamp: closing a day is an entry of the next day
    if closed is not None and clock.date() <= closed:
        raise ConflictError(
            f"the ledger's day {closed} is closed and the clock says {clock:%Y-%m-%d %H:%M}",
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

    The incident's key and the report's content hash are there as salted commitments
    (``commitments``, :func:`finding_openings`) when the finding has its ``ledger_salt``: a
    party's proof of the finding shows only what is released to it. A finding recorded before
    (no salt) has the values themselves, as its entry was written.

    ``numbers`` (the numbers the explanation states) is there only when the finding has them: a
    finding recorded before findings carried numbers has none, and its entry (written without
    the key) still verifies. ``created_at`` likewise, when ``f`` is a mapping that has it (a
    stored row's is added by :func:`verify` only where its entry recorded one).
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
                "ledger_salt",
            )
        }
    )
    content: dict[str, Any] = {
        "agreement": agreement_id,
        "finding": g["pk"],
        "rule_id": g["rule_id"],
        "rule_type": g["rule_type"],
        "responsible": g["responsible"],
        "probability": g["probability"],
        "explanation": g["explanation"],
    }
    salt = g.get("ledger_salt")
    if salt:
        content["commitments"] = _commitments(salt, g["incident_pk"], report_hash)
    else:
        content["incident"], content["report_hash"] = g["incident_pk"], report_hash
    numbers = g.get("numbers")
    if isinstance(numbers, str):
        # text spoiled outside Truceline stays as it is, so it differs from what was recorded
        with contextlib.suppress(json.JSONDecodeError):
            numbers = json.loads(numbers)
    if numbers is not None:
        content["numbers"] = numbers
    created = g.get("created_at")
    if created is not None:
        content["created_at"] = _iso(created)
    return content


#: What a finding's entry commits to instead of showing it (:func:`finding_openings`).
_COMMITTED = ("incident", "report_hash")


def _salt_ok(salt: str) -> bool:
    return len(salt) == 32 and all(c in "0123456789abcdef" for c in salt)


def _commitments(salt: str, incident_pk: int, report_hash: str) -> dict[str, str]:
    if not _salt_ok(salt):  # an edited salt: commitments that cannot match the entry's
        return {n: f"not a salt: {salt!r}" for n in _COMMITTED}
    values = (incident_pk, report_hash)
    return {n: commitment(opening_key(salt, n), v) for n, v in zip(_COMMITTED, values, strict=True)}


def finding_openings(salt: str, incident_pk: int, report_hash: str) -> dict[str, dict[str, Any]]:
    """The openings of a finding entry's commitments: each value with the key that opens it
    (:func:`truceline.ledger_verify.commitment`), for the mission's staff; never the salt."""
    values = (incident_pk, report_hash)
    return {
        n: {"value": v, "key": opening_key(salt, n)} for n, v in zip(_COMMITTED, values, strict=True)
    }


def new_salts(n: int) -> list[str]:
    """``n`` random salts (16 bytes, hex) for findings' commitments, drawn at once."""
    raw = os.urandom(16 * n).hex()
    return [raw[k : k + 32] for k in range(0, 32 * n, 32)]


def stored_time(t: dt.datetime) -> str:
    """A stored time as the ledger writes it (UTC, ISO 8601)."""
    return as_utc(t).isoformat()


_iso = stored_time


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
    created, salt = f.get("created_at"), f.get("ledger_salt")
    if not (
        pk.__class__ is int
        and inc.__class__ is int
        and p.__class__ is float
        and math.isfinite(p)
        and (nums is None or nums.__class__ is CanonicalJSON)
        and (created is None or created.__class__ is dt.datetime)
        and salt.__class__ is str
    ):
        return CanonicalJSON(canonical_json(finding_content(f, report_hash, agreement_id)))
    numbers = "" if nums is None else f',"numbers":{nums}'
    at = "" if created is None else f',"created_at":{json_text(_iso(created))}'
    salt_b, sha256 = bytes.fromhex(salt), hashlib.sha256
    # commitment(opening_key(salt, name), value), the values' canonical JSON written directly
    c_inc = sha256(sha256(salt_b + b"\x00incident").digest() + str(inc).encode()).hexdigest()
    c_rep = sha256(
        sha256(salt_b + b"\x00report_hash").digest() + json_text(report_hash).encode()
    ).hexdigest()
    return CanonicalJSON(
        f'{{"agreement":{json_text(agreement_id)},"commitments":{{"incident":"{c_inc}",'
        f'"report_hash":"{c_rep}"}}{at},"explanation":{json_text(f["explanation"])},'
        f'"finding":{pk}{numbers},"probability":{float.__repr__(p)},'
        f'"responsible":{json_text(f["responsible"])},'
        f'"rule_id":{json_text(f["rule_id"])},"rule_type":{json_text(f["rule_type"])}}}'
    )


# -- days and proofs --------------------------------------------------------------------------


def _day_hashes(session: Session, day: dt.date) -> list[tuple[int, str]]:
    q = select(LedgerEntryRow.seq, LedgerEntryRow.entry_hash).where(LedgerEntryRow.day == day)
    return [(s, h) for s, h in session.execute(q.order_by(LedgerEntryRow.seq))]


#: Signs a closed day's :func:`~truceline.ledger_verify.root_message`: (public key, signature) in hex.
RootSigner = Callable[[bytes], tuple[str, str]]


def close_days(
    session: Session, *, now: dt.datetime, sign: RootSigner | None = None
) -> list[LedgerRootRow]:
    """Close every day before ``now``'s UTC date that has entries and no root yet.

    Each closing is an entry (of the day it is made) holding the root, and with ``sign`` (the
    mission's key: :mod:`truceline.services.ledger_keys`) the public key and the signature.
    """
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
    # each closing is itself an entry (of the day it is made), so a root row edited or deleted
    # later no longer matches the chain
    items: list[tuple[str, str, dict[str, Any] | CanonicalJSON]] = []
    for r in out:
        content: dict[str, Any] = {
            "day": r.day.isoformat(),
            "root": r.root,
            "first_seq": r.first_seq,
            "last_seq": r.last_seq,
            "n_entries": r.n_entries,
            "closed_at": stored_time(r.closed_at),
        }
        if sign is not None:
            key, sig = sign(root_message(r.day.isoformat(), r.root, r.n_entries))
            content |= {"public_key": key, "signature": sig}
        items.append(("root", f"day:{r.day.isoformat()}", content))
    append(session, items, now=now)
    return out


#: The kind of a checkpoint's entry: a signed tree head over the current day's entries so far.
CHECKPOINT = "checkpoint"


def latest_checkpoint(session: Session, day: dt.date) -> tuple[int, dict[str, Any]] | None:
    """The newest checkpoint of ``day`` as (its entry's seq, its content), or None."""
    q = (
        select(LedgerEntryRow.seq, LedgerEntryRow.body)
        .where(
            LedgerEntryRow.kind == CHECKPOINT, LedgerEntryRow.ref == f"{CHECKPOINT}:{day.isoformat()}"
        )
        .order_by(LedgerEntryRow.seq.desc())
        .limit(1)
    )
    row = session.execute(q).one_or_none()
    if row is None:
        return None
    try:
        content = json.loads(row.body).get("content")
    except (json.JSONDecodeError, AttributeError):
        return None
    return (int(row.seq), content) if isinstance(content, dict) else None


def latest_head(session: Session) -> dict[str, Any] | None:
    """The ledger's newest tree head: the latest closed day's root or a later checkpoint, as
    ``{day, root, n_entries, last_seq, checkpoint, signed}``; None while there is neither."""
    row = session.execute(
        select(LedgerRootRow).order_by(LedgerRootRow.day.desc()).limit(1)
    ).scalar_one_or_none()
    cp_day = session.execute(
        select(LedgerEntryRow.day)
        .where(LedgerEntryRow.kind == CHECKPOINT)
        .order_by(LedgerEntryRow.seq.desc())
        .limit(1)
    ).scalar_one_or_none()
    cp = latest_checkpoint(session, cp_day) if cp_day is not None else None
    if cp is not None and cp_day is not None and (row is None or cp_day > row.day):
        c = cp[1]
        return {
            "day": cp_day,
            "root": str(c["root"]),
            "n_entries": int(c["n_entries"]),
            "last_seq": int(c["last_seq"]),
            "checkpoint": True,
            "signed": "signature" in c,
        }
    if row is None:
        return None
    return {
        "day": row.day,
        "root": row.root,
        "n_entries": row.n_entries,
        "last_seq": row.last_seq,
        "checkpoint": False,
        "signed": "signature" in _closings(session).get(row.day.isoformat(), {}),
    }


def checkpoint(
    session: Session, *, now: dt.datetime, sign: RootSigner | None = None
) -> dict[str, Any] | None:
    """A signed tree head over every entry recorded so far on ``now``'s UTC day (a checkpoint), so
    that an entry has a proof before its day closes; None when there is nothing new to cover.

    The tree is the one the day's root will be built on, taken at its current size: a checkpoint of
    ``n`` entries is the root the day would have closed with after its ``n``-th entry, and it is
    signed the same way (:func:`~truceline.ledger_verify.root_message`), so the standalone verifier
    checks a proof against it unchanged. The checkpoint is itself an entry of the day (kind
    ``checkpoint``), covered by the next checkpoint and by the day's root.
    """
    _lock_head(session)  # no append interleaves: the tree is exactly the day so far
    day = as_utc(now).date()
    if session.get(LedgerRootRow, day) is not None:
        return None  # closed already (a clock set back): its root covers the day
    hashes = _day_hashes(session, day)
    last = latest_checkpoint(session, day)
    if last is not None:
        newer = session.execute(
            select(func.count())
            .select_from(LedgerEntryRow)
            .where(
                LedgerEntryRow.day == day,
                LedgerEntryRow.seq > int(last[1].get("last_seq", 0)),
                LedgerEntryRow.kind != CHECKPOINT,
            )
        ).scalar_one()
        if not newer:
            return None
    if not hashes:
        return None
    content: dict[str, Any] = {
        "day": day.isoformat(),
        "root": merkle_root([h for _, h in hashes]),
        "first_seq": hashes[0][0],
        "last_seq": hashes[-1][0],
        "n_entries": len(hashes),
        "closed_at": stored_time(now),
    }
    if sign is not None:
        key, sig = sign(root_message(content["day"], content["root"], content["n_entries"]))
        content |= {"public_key": key, "signature": sig}
    (seq,) = append(session, [(CHECKPOINT, f"{CHECKPOINT}:{day.isoformat()}", content)], now=now)
    return {**content, "checkpoint": True, "entry": seq}


def _closings(session: Session) -> dict[str, dict[str, Any]]:
    """The closing entries' contents by day (ISO)."""
    q = select(LedgerEntryRow.body).where(LedgerEntryRow.kind == "root").order_by(LedgerEntryRow.seq)
    out: dict[str, dict[str, Any]] = {}
    for (body,) in session.execute(q):
        try:
            c = json.loads(body).get("content") or {}
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(c, dict) and "day" in c:
            out[str(c["day"])] = c
    return out


def mission_key(session: Session) -> str | None:
    """The public key (hex) that signed the newest signed day; None while no day is signed."""
    q = (
        select(LedgerEntryRow.body)
        .where(LedgerEntryRow.kind == "root")
        .order_by(LedgerEntryRow.seq.desc())
        .limit(20)
    )
    for (body,) in session.execute(q):
        try:
            key = (json.loads(body).get("content") or {}).get("public_key")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(key, str):
            return key
    return None


def root_documents(
    session: Session, start: dt.date | None = None, end: dt.date | None = None
) -> list[dict[str, Any]]:
    """The daily roots as a party keeps them (``ledger verify --roots`` and
    ``python -m truceline.ledger_verify --roots`` read this list), with their signatures."""
    signed = _closings(session)
    out = []
    for r in roots(session, start, end):
        doc: dict[str, Any] = {
            "day": r.day.isoformat(),
            "root": r.root,
            "first_seq": r.first_seq,
            "last_seq": r.last_seq,
            "n_entries": r.n_entries,
            "closed_at": stored_time(r.closed_at),
        }
        c = signed.get(doc["day"], {})
        if "signature" in c:
            doc |= {"public_key": c.get("public_key"), "signature": c.get("signature")}
        out.append(doc)
    closed = {r["day"] for r in out}
    open_days = session.execute(
        select(LedgerEntryRow.day).where(LedgerEntryRow.kind == CHECKPOINT).distinct()
    ).scalars()
    for day in sorted(open_days):
        if day.isoformat() in closed or (start and day < start) or (end and day > end):
            continue
        cp = latest_checkpoint(session, day)
        if cp is not None:  # a day not closed yet: its latest checkpoint, marked as one
            keys = (
                "day",
                "root",
                "first_seq",
                "last_seq",
                "n_entries",
                "closed_at",
                "public_key",
                "signature",
            )
            out.append({k: cp[1][k] for k in keys if k in cp[1]} | {"checkpoint": True})
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
    """Entry ``seq`` with its Merkle inclusion path and its day's stored root, or, while its day is
    open, the root of the day's newest checkpoint covering it (:func:`checkpoint`)."""
    entry = session.get(LedgerEntryRow, seq)
    if entry is None:
        raise NotFoundError(
            f"no ledger entry {seq}",
            field="entry",
            value=seq,
            fix="entries are numbered from 1; see `truceline ledger verify`",
        )
    root = session.get(LedgerRootRow, entry.day)
    hashes = _day_hashes(session, entry.day)
    tree_root: str
    if root is not None:
        tree_root, n_signed = root.root, root.n_entries
        closing = _closings(session).get(entry.day.isoformat(), {})
    else:  # the day is open: the newest checkpoint that covers the entry
        cp = latest_checkpoint(session, entry.day)
        if cp is None or int(cp[1].get("last_seq", 0)) < seq:
            raise ConflictError(
                f"entry {seq} is of {entry.day}, which is not closed, and no checkpoint covers it yet",
                field="entry",
                value=seq,
                fix="run `truceline ledger close` (it closes finished days and checkpoints today's "
                "entries so far), POST /api/v1/ledger/close, or wait for the server's next checkpoint",
            )
        closing = cp[1]
        tree_root, n_signed = str(closing["root"]), int(closing["n_entries"])
        hashes = [h for h in hashes if h[0] <= int(closing["last_seq"])]
    index = next(i for i, (s, _) in enumerate(hashes) if s == seq)
    doc: dict[str, Any] = {
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
        "root": tree_root,
    }
    if root is None:
        doc["checkpoint"] = {
            "note": "the day is not closed yet: the root is a checkpoint of its first "
            f"{n_signed} entries (through entry {closing['last_seq']}), made at {closing['closed_at']}",
            "last_seq": closing["last_seq"],
            "closed_at": closing["closed_at"],
        }
    if "signature" in closing:
        doc["root_signature"] = {
            "public_key": closing.get("public_key"),
            "signature": closing.get("signature"),
            "n_entries": n_signed,
        }
    return doc


def finding_proof(session: Session, pk: int, *, released_only: bool) -> dict[str, Any]:
    """The proof of finding ``pk``'s entry (:func:`export_proof`). For the mission's staff it
    opens the entry's commitments (``openings``: the incident key and the report's content hash,
    which the verifier checks); for a party (``released_only``) it shows the commitments alone,
    and a finding recorded before entries committed to them (its entry holds the values) has no
    proof for a party."""
    entry = entry_of(session, f"finding:{pk}")
    f = session.get(FindingRow, pk)
    salt = f.ledger_salt if f is not None else None
    if released_only and not salt:
        raise ConflictError(
            f"finding {pk} was recorded before ledger entries hid the incident key and the report's "
            "hash, and its entry shows them",
            field="finding",
            value=pk,
            fix="ask the mission for this proof; findings recorded since have proofs for the parties",
        )
    doc = export_proof(session, entry.seq)
    if not released_only and f is not None and salt and _salt_ok(salt):
        report_hash = session.execute(
            select(IncidentRow.content_hash).where(IncidentRow.pk == f.incident_pk)
        ).scalar_one_or_none()
        doc["openings"] = finding_openings(salt, f.incident_pk, report_hash or "")
    return doc


# -- verification -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong, at ledger entry ``seq`` (None: not tied to one entry)."""

    seq: int | None
    kind: str  # altered | deleted | reordered | inserted | root | record | summary
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
    attachments: int = 0
    problems: list[Problem] = field(default_factory=list)
    #: Rows stored before the ledger kept their table and never backfilled, by table (only the
    #: tables that have any): the ledger cannot tell whether they were edited.
    uncovered: dict[str, int] = field(default_factory=dict)

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


def _second_fix_fields(row: IncidentRow) -> list[str]:
    """The second-fix columns of a stored report that differ from what its narrative states."""
    fix = second_fix(row.narrative or "")
    want: tuple[bool, float | None, float | None, float | None] = (
        (False, None, None, None) if fix is None else (True, *fix)
    )
    have = (bool(row.ambiguous), row.alt_lon, row.alt_lat, row.alt_weight)
    names = ("ambiguous", "alt_lon", "alt_lat", "alt_weight")
    return [n for n, h, w in zip(names, have, want, strict=True) if h != w]


def _digest(content: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _entry_hash(prev_hash: str, body: str) -> str | None:
    """:func:`entry_hash`, None when ``prev_hash`` is not hex (an edited row)."""
    try:
        return entry_hash(prev_hash, body)
    except ValueError:
        return None


def _root_of(hashes: list[tuple[int, str]]) -> str:
    """The Merkle root over the entries' hashes ("not a root" when one is not hex: an edited row)."""
    try:
        return merkle_root([h for _, h in hashes])
    except ValueError:
        return "not a root (an entry hash is not hex)"


def number_text(v: float) -> str:
    """A stored float as the ledger writes it: its ``repr``, ``null`` when not finite."""
    return float.__repr__(v) if math.isfinite(v) else "null"


def _same_number(stored: float | None, recorded: object) -> bool:
    if stored is None or not math.isfinite(stored):
        return recorded is None
    return isinstance(recorded, int | float) and float(recorded) == stored


def _same_time(stored: dt.datetime | None, recorded: object) -> bool:
    if stored is None or not isinstance(recorded, str):
        return stored is None and recorded is None
    try:
        return as_utc(dt.datetime.fromisoformat(recorded)) == as_utc(stored)
    except ValueError:
        return False


def attachment_content(a: AttachmentRow, report_hash: str) -> dict[str, Any]:
    """What the ledger keeps of an attachment: every column, and the content hash of the report
    it was filed on (``report_hash``). Each change (filing, release) writes the whole state again
    under ``attachment:<pk>``; the first is the filing."""
    return {
        "attachment": a.pk,
        "incident": a.incident_pk,
        "report_hash": report_hash,
        "sha256": a.sha256,
        "size_bytes": a.size_bytes,
        "media_type": a.media_type,
        "filename": a.filename,
        "filed_by": a.filed_by,
        "filed_at": _iso(a.filed_at),
        "integrity": a.integrity,
        "exif_time": None if a.exif_time is None else _iso(a.exif_time),
        "exif_lon": a.exif_lon,
        "exif_lat": a.exif_lat,
        "consistent": a.consistent,
        "consistency": a.consistency,
        "c2pa": a.c2pa,
        "released": bool(a.released),
        "keep_location": bool(a.keep_location),
        "released_sha256": a.released_sha256,
        "released_at": None if a.released_at is None else _iso(a.released_at),
        "released_by": a.released_by,
    }


_ATTACHMENT_TIMES = ("filed_at", "exif_time", "released_at")


def audit_content(row: AuditRow, sealed: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the ledger keeps of an audit row; ``sealed``: more state only the ledger keeps (a
    token's secret hash, which the audit log does not show)."""
    content: dict[str, Any] = {
        "audit": row.pk,
        "at": _iso(row.at),
        "actor": row.actor,
        "role": row.role,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "action": row.action,
        "comment": row.comment,
        # as the JSON column gives them back (keys as strings, tuples as lists)
        "before": _as_stored(row.before),
        "after": _as_stored(row.after),
    }
    if sealed:
        content["sealed"] = dict(sealed)
    return content


def _as_stored(value: Any) -> Any:
    return None if value is None else json.loads(json.dumps(value))


def _held_root_now(r: LedgerRootRow, n: int | None, hashes: list[tuple[int, str]]) -> str:
    """The root a party should hold for day ``r``: the day's, or (a checkpoint held, of ``n``
    entries) the root its first ``n`` entries give."""
    if n is None or n == r.n_entries or n > len(hashes):
        return r.root
    return _root_of(hashes[:n])


def _checkpoint_problem(
    c: Mapping[str, Any], day_hashes: Mapping[dt.date, list[tuple[int, str]]], public_key: str | None
) -> str | None:
    """What is wrong with a checkpoint's content (its root, size, signature), or None."""
    try:
        day = dt.date.fromisoformat(str(c["day"]))
        last, n, root = int(c["last_seq"]), int(c["n_entries"]), str(c["root"])
    except (KeyError, TypeError, ValueError):
        return "a checkpoint without its day, last_seq, n_entries and root"
    hashes = [h for h in day_hashes.get(day, []) if h[0] <= last]
    if len(hashes) != n or _root_of(hashes) != root:
        return (
            f"checkpoint of {day}: its {len(hashes)} entries through {last} give root "
            f"{_root_of(hashes)[:16]}..., the checkpoint says {root[:16]}... over {n} entries"
        )
    key, sig = c.get("public_key"), c.get("signature")
    signed = isinstance(key, str) and isinstance(sig, str)
    if signed and check_signature(str(key), root_message(day.isoformat(), root, n), str(sig)) is False:
        return f"checkpoint of {day} through entry {last}: the signature over its root does not hold"
    if public_key is not None and (not signed or str(key) != public_key.lower()):
        return f"checkpoint of {day} through entry {last}: not signed by the mission's key"
    return None


def _held_roots(held: Sequence[Mapping[str, Any]]) -> dict[dt.date, tuple[str, int | None]]:
    out: dict[dt.date, tuple[str, int | None]] = {}
    for k, r in enumerate(held):
        try:
            day = dt.date.fromisoformat(str(r["day"]))
            root = str(r["root"]).lower()
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(
                f"held root {k + 1} is not a day and a root ({exc})",
                field="roots",
                value=r,
                fix='give the JSON list `truceline ledger roots --json` writes: [{"day": '
                '"2025-03-01", "root": "<64 hex>", ...}, ...]',
            ) from None
        n = r.get("n_entries")
        out[day] = (root, int(n) if isinstance(n, int) else None)
    return out


@dataclass(slots=True)
class _Recorded:
    """What the chain recorded, gathered in one pass (each value: the entry's seq first)."""

    report: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    finding: dict[int, tuple[int, str, bool]] = field(default_factory=dict)
    status: dict[str, tuple[int, str]] = field(default_factory=dict)
    released: dict[str, tuple[int, bool | str]] = field(default_factory=dict)
    event_of: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    publication: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    audit: dict[int, tuple[int, str]] = field(default_factory=dict)
    token: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    root: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    checkpoints: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    agreement: dict[tuple[str, int], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    attachment: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    #: table -> key -> (seq, the row's newest recorded state; None: recorded as deleted)
    rows: dict[str, dict[Any, tuple[int, dict[str, Any] | None]]] = field(default_factory=dict)
    #: table -> the keys recorded by live (not backfill) entries, and the first such entry's time
    live: dict[str, set[Any]] = field(default_factory=dict)
    live_since: dict[str, dt.datetime] = field(default_factory=dict)
    #: table -> the first backfill entry's time
    backfill_since: dict[str, dt.datetime] = field(default_factory=dict)
    #: the audit rows recorded as they were written (not backfilled)
    audit_live: set[int] = field(default_factory=set)


def _gather(rec: _Recorded, seq: int, kind: str, content: dict[str, Any], time: object = None) -> None:
    if kind == "report" and "incident" in content:
        content.pop("record", None)  # its content hash stands for it
        rec.report[int(content["incident"])] = (seq, content)
        for gone in content.get("withdrawn_findings") or ():  # a revision withdrew them
            rec.finding.pop(int(gone), None)
    elif kind == "finding" and "finding" in content:
        rec.finding[int(content["finding"])] = (seq, _digest(content), "created_at" in content)
    elif kind == "link":
        for pk, ev in content.get("links") or ():
            rec.event_of[int(pk)] = (seq, ev)
    elif kind == "review":
        for ref, status in (content.get("status_after") or {}).items():
            rec.status[ref] = (seq, status)
        for ref, released in (content.get("released_after") or {}).items():
            rec.released[ref] = (seq, released if isinstance(released, str) else bool(released))
        for ref, members in (content.get("members_after") or {}).items():
            ev = int(str(ref).rpartition(":")[2])
            for pk in members:
                rec.event_of[int(pk)] = (seq, ev)
    elif kind == "publication":
        rec.publication[f"report:{content.get('agreement')}/{content.get('day')}"] = (seq, content)
    elif kind == "agreement" and "revision" in content:
        rec.agreement[(str(content.get("agreement")), int(content["revision"]))] = (seq, content)
    elif kind == "attachment" and "attachment" in content:
        rec.attachment[int(content["attachment"])] = (seq, content)  # the newest state wins
    elif kind == "rows" and content.get("table") in ROW_TABLES:
        table = str(content["table"])
        key = ROW_TABLES[table].primary_key.columns.values()[0].name
        mine = rec.rows.setdefault(table, {})
        live = None if content.get(BACKFILL) is True else rec.live.setdefault(table, set())
        since = rec.live_since if live is not None else rec.backfill_since
        if table not in since:
            at = _parse_time(time)
            if at is not None:
                since[table] = at
        # deletions first: SQLite gives a deleted row's key to the next row inserted
        for gone in content.get("deleted") or ():
            mine[gone] = (seq, None)
            if live is not None:
                live.add(gone)
        for state in content.get("rows") or ():
            if isinstance(state, dict) and key in state:
                mine[state[key]] = (seq, state)
                if live is not None:
                    live.add(state[key])
    elif kind == "root" and "day" in content:
        rec.root[str(content["day"])] = (seq, content)
    elif kind == CHECKPOINT and "day" in content:
        rec.checkpoints.append((seq, content))
    elif kind == "audit" and "audit" in content:
        sealed = content.pop("sealed", None)
        if content.pop(BACKFILL, None) is not True:
            rec.audit_live.add(int(content["audit"]))
        rec.audit[int(content["audit"])] = (seq, _digest(content))
        if content.get("entity") == "token" and isinstance(content.get("after"), dict):
            rec.token[str(content["entity_id"])] = (seq, {**content["after"], **(sealed or {})})


def verify(
    session: Session,
    *,
    records: bool = True,
    limit: int = 20,
    held_roots: Sequence[Mapping[str, Any]] | None = None,
    public_key: str | None = None,
) -> Verification:
    """Check the chain, the daily roots, the head, and (``records``) that the stored records still
    hold what the ledger recorded: incidents (with their adjudication and event), findings,
    published reports (their bytes), the audit log and the tokens. ``held_roots``: the daily
    roots a party holds (``[{"day", "root"}, ...]``), each of which the database must still have
    and give. Signed days' signatures must hold (when ``cryptography`` is there); with
    ``public_key`` (hex) every closed day must be signed by that key. Stops collecting after
    ``limit`` problems."""
    held = _held_roots(held_roots) if held_roots is not None else None
    out = Verification()
    problems = out.problems
    expected, prev = 1, GENESIS
    last_day: dt.date | None = None
    day_hashes: dict[dt.date, list[tuple[int, str]]] = {}
    rec = _Recorded()
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
        if _entry_hash(row.prev_hash, row.body) != row.entry_hash:
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
        if body and (body.get("kind") != row.kind or body.get("ref") != row.ref):
            problems.append(Problem(row.seq, "altered", "its kind or ref is not the one in its body"))
        if body and not _same_time(row.recorded_at, body.get("time")):
            problems.append(Problem(row.seq, "altered", "its time is not the time in its body"))
        if last_day is not None and day < last_day:
            problems.append(Problem(row.seq, "reordered", f"its day {day} comes after {last_day}"))
        last_day = day
        day_hashes.setdefault(day, []).append((row.seq, row.entry_hash))
        content = body.get("content")
        if isinstance(content, dict):
            _gather(rec, row.seq, row.kind, content, body.get("time"))
        expected, prev = row.seq + 1, row.entry_hash

    head = session.get(LedgerHeadRow, 1)
    if head is None and expected > 1 and len(problems) < limit:
        problems.append(Problem(expected - 1, "deleted", "the ledger's head row is missing"))
    head_moved = head is not None and (
        head.seq != expected - 1
        or (head.seq > 0 and head.entry_hash != prev)
        or (head.seq > 0 and not _same_time(head.recorded_at, _last_time(session, head.seq)))
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
    stored_days: set[dt.date] = set()
    first_closing = min(rec.root, default=None)  # root rows of earlier days: closed before this
    for r in roots(session):
        out.days_closed += 1
        stored_days.add(r.day)
        hashes = day_hashes.get(r.day, [])
        computed = _root_of(hashes)
        first = hashes[0][0] if hashes else r.first_seq
        if computed != r.root or len(hashes) != r.n_entries:
            problems.append(
                Problem(
                    first,
                    "root",
                    f"day {r.day}: its {len(hashes)} entries give root {computed[:16]}..., the "
                    f"stored (published) root is {r.root[:16]}... over {r.n_entries} entries",
                )
            )
        elif hashes and (r.first_seq != hashes[0][0] or r.last_seq != hashes[-1][0]):
            problems.append(
                Problem(first, "root", f"day {r.day}: its root row names other first or last entries")
            )
        closing = rec.root.pop(r.day.isoformat(), None)
        if closing is not None:
            c = closing[1]
            signed = isinstance(c.get("signature"), str) and isinstance(c.get("public_key"), str)
            if (
                signed
                and check_signature(
                    c["public_key"], root_message(r.day.isoformat(), r.root, r.n_entries), c["signature"]
                )
                is False
            ):
                problems.append(
                    Problem(
                        closing[0], "root", f"day {r.day}: the signature over its root does not hold"
                    )
                )
            if public_key is not None and (not signed or c["public_key"] != public_key.lower()):
                problems.append(
                    Problem(
                        closing[0],
                        "root",
                        f"day {r.day}: its root is "
                        + (f"signed by key {c['public_key'][:16]}..." if signed else "not signed")
                        + f", not by the mission's {public_key[:16]}...",
                    )
                )
            bad = [
                k for k in ("root", "first_seq", "last_seq", "n_entries") if getattr(r, k) != c.get(k)
            ]
            bad += [] if _same_time(r.closed_at, c.get("closed_at")) else ["closed_at"]
            if bad:
                problems.append(_altered(f"the root row of {r.day}", bad, closing[0]))
        elif first_closing is not None and r.day.isoformat() > first_closing:
            problems.append(Problem(first, "root", f"day {r.day}: its root row has no closing entry"))
        if (
            held is not None
            and r.day in held
            and held[r.day][0] != _held_root_now(r, held[r.day][1], hashes)
        ):
            problems.append(
                Problem(
                    first,
                    "root",
                    f"day {r.day}: the root you hold is {held[r.day][0][:16]}..., the database's "
                    f"is {r.root[:16]}...: the day was rewritten and re-hashed",
                )
            )
    for closed_day, (seq, _) in sorted(rec.root.items()):
        problems.append(Problem(seq, "root", f"day {closed_day}: closed here, its root row is missing"))
    for seq, c in rec.checkpoints:
        problem = _checkpoint_problem(c, day_hashes, public_key)
        if problem:
            problems.append(Problem(seq, "root", problem))
    if held is not None:
        checkpointed = {str(c.get("day")) for _, c in rec.checkpoints}
        for day, (root, n) in sorted(held.items()):
            if day in stored_days:
                continue
            hashes = day_hashes.get(day, [])
            if n is not None and n <= len(hashes) and _root_of(hashes[:n]) == root:
                continue  # a checkpoint of a day not closed yet, still given by its first n entries
            if n is not None and day.isoformat() in checkpointed:
                problems.append(
                    Problem(
                        hashes[0][0] if hashes else None,
                        "root",
                        f"day {day}: the checkpoint root you hold, {root[:16]}... over {n} entries, "
                        f"is not what the day's first {n} entries give "
                        f"({_root_of(hashes[:n])[:16]}...): the day was rewritten and re-hashed",
                    )
                )
                continue
            problems.append(
                Problem(
                    hashes[0][0] if hashes else None,
                    "root",
                    f"day {day}: the database has no root for it, yet you hold {root[:16]}... "
                    f"(its {len(hashes)} entries give {_root_of(hashes)[:16]}"
                    "...): its root was deleted",
                )
            )
    if records:
        _verify_records(session, out, rec)
        # The map's summary is not ledgered: it is derived, so it is summed again from the
        # (ledgered) records it counts, and any row that differs is named.
        for msg in map_cells.check(session, limit=max(limit - len(out.problems), 1)):
            out.problems.append(Problem(None, "summary", msg))
    out.problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return out


def _last_time(session: Session, seq: int) -> str | None:
    body = session.execute(select(LedgerEntryRow.body).where(LedgerEntryRow.seq == seq)).scalar()
    try:
        t = json.loads(body).get("time") if body else None
    except json.JSONDecodeError:
        return None
    return t if isinstance(t, str) else None


def _altered(what: str, fields: Sequence[str], seq: int) -> Problem:
    return Problem(
        seq,
        "record",
        f"{what}: {', '.join(fields)} differ{'s' if len(fields) == 1 else ''} from what this "
        "entry recorded (altered)",
    )


def _incident_fields(row: IncidentRow, c: dict[str, Any]) -> list[str]:
    """The columns of ``row`` that differ from its report entry's content ``c`` (a key the entry
    lacks, written before the ledger kept it, is not compared)."""
    bad = []
    if row.agreement_id != c.get("agreement"):
        bad.append("agreement_id")
    for col, key in (("submitted_by", "submitted_by"), ("batch_id", "batch")):
        if key in c and getattr(row, col) != c[key]:
            bad.append(col)
    for col in ("sector", "side_party", "zones"):
        if col in c and getattr(row, col) != c[col]:
            bad.append(col)
    for col in ("in_force", "in_area"):
        # NULL (a row migrated down and up again past 0009) counts as true wherever it is shown
        now_flag = getattr(row, col)
        if col in c and (True if now_flag is None else now_flag) is not c[col]:
            bad.append(col)
    for col in ("distance_km", "p_side", "version"):
        if col in c and not _same_number(getattr(row, col), c[col]):
            bad.append(col)
    # withdrawn by its source (0011): the entry says when; a row withdrawn without one is altered
    if (row.withdrawn_at is not None or "withdrawn_at" in c) and not _same_time(
        row.withdrawn_at, c.get("withdrawn_at")
    ):
        bad.append("withdrawn_at")
    if ("batch" in c or "revision" in c) and row.revision != c.get("revision", 1):
        bad.append("revision")
    if "received_at" in c and not _same_time(row.received_at, c["received_at"]):
        bad.append("received_at")
    observed = as_utc(row.observed_at)
    if observed is None or row.day != observed.date():
        bad.append("day")
    return bad


def _verify_event_counts(session: Session, problems: list[Problem]) -> None:
    """Each event's count (what the daily figures add up) must be the most any of its reports
    counts: the reports' counts and their events are what the ledger recorded (checked above),
    so an event's count follows from them. An event with no report left (merged) counts 0."""
    most = (
        select(IncidentRow.event_id, func.max(func.coalesce(IncidentRow.count, 1)).label("k"))
        .where(IncidentRow.event_id.is_not(None))
        .group_by(IncidentRow.event_id)
        .subquery()
    )
    q = (
        select(EventRow.pk, EventRow.count, func.coalesce(most.c.k, 0))
        .join(most, most.c.event_id == EventRow.pk, isouter=True)
        .where(EventRow.count != func.coalesce(most.c.k, 0))
        .order_by(EventRow.pk)
    )
    for pk, count, k in session.execute(q):
        problems.append(
            Problem(
                None,
                "record",
                f"event {pk} counts {count}; its reports, as the ledger recorded them, say {k} "
                "(the most any of them counts)",
            )
        )


def _verify_records(session: Session, out: Verification, rec: _Recorded) -> None:
    problems = out.problems
    seen: set[int] = set()
    report_hash: dict[int, str] = {}
    q = select(IncidentRow).order_by(IncidentRow.pk).execution_options(yield_per=5000)
    for row in session.execute(q).scalars():
        out.incidents += 1
        seen.add(row.pk)
        report_hash[row.pk] = row.content_hash
        r = rec.report.get(row.pk)
        if r is None:
            problems.append(
                Problem(None, "record", f"incident {row.pk} ({row.report_id}) has no ledger entry")
            )
            continue
        seq, c = r
        what = f"incident {row.pk} ({row.report_id})"
        now_hash = _incident_hash(row)
        if now_hash != c.get("content_hash") or row.content_hash != c.get("content_hash"):
            problems.append(
                Problem(seq, "record", f"{what} differs from what this entry recorded (altered)")
            )
        bad = _incident_fields(row, c)
        if bad:
            problems.append(_altered(what, bad, seq))
        fix_bad = _second_fix_fields(row)
        if fix_bad:
            problems.append(
                Problem(
                    seq,
                    "record",
                    f"{what}: {', '.join(fix_bad)} differ from the second fix its narrative (which "
                    "this entry's content hash covers) states (altered)",
                )
            )
        ev = rec.event_of.get(row.pk)
        # membership is recorded for every report ingested since reports carry their batch
        if (ev is not None or "batch" in c) and row.event_id != (ev[1] if ev else None):
            problems.append(
                Problem(
                    ev[0] if ev else seq,
                    "record",
                    f"{what} is in event {row.event_id}; the ledger's last link or decision says "
                    f"{ev[1] if ev else None}",
                )
            )
        st = rec.status.get(f"incident:{row.pk}")
        if row.status != (st[1] if st else "new"):
            problems.append(
                Problem(
                    st[0] if st else seq,
                    "record",
                    f"incident {row.pk} has status {row.status!r}; the ledger's last decision says "
                    f"{st[1] if st else 'new'!r}",
                )
            )
    for pk, (seq, _) in rec.report.items():
        if pk not in seen:
            problems.append(Problem(seq, "record", f"incident {pk} recorded here is missing (deleted)"))
    _verify_event_counts(session, problems)
    seen.clear()
    fq = (
        select(FindingRow, IncidentRow.agreement_id)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk, isouter=True)
        .order_by(FindingRow.pk)
        .execution_options(yield_per=5000)
    )
    for f, agreement_id in session.execute(fq):
        out.findings += 1
        seen.add(f.pk)
        fr = rec.finding.get(f.pk)
        if fr is None:
            problems.append(Problem(None, "record", f"finding {f.pk} has no ledger entry"))
            continue
        content = finding_content(f, report_hash.get(f.incident_pk, ""), agreement_id or "")
        if fr[2]:
            content["created_at"] = _iso(f.created_at)
        if _digest(content) != fr[1]:
            problems.append(
                Problem(
                    fr[0], "record", f"finding {f.pk} differs from what this entry recorded (altered)"
                )
            )
        st = rec.status.get(f"finding:{f.pk}")
        if f.status != (st[1] if st else "open"):
            problems.append(
                Problem(
                    st[0] if st else fr[0],
                    "record",
                    f"finding {f.pk} has status {f.status!r}; the ledger's last decision says "
                    f"{st[1] if st else 'open'!r}",
                )
            )
        rel = rec.released.get(f"finding:{f.pk}")
        said = rel[1] if rel else False
        if (f.released_at is not None) != bool(said) or (
            isinstance(said, str) and not _same_time(f.released_at, said)
        ):
            problems.append(
                Problem(
                    rel[0] if rel else fr[0],
                    "record",
                    f"finding {f.pk} is {'' if f.released_at else 'not '}released to the parties"
                    f"{f' (at {f.released_at})' if f.released_at else ''}; the ledger's last "
                    "decision says otherwise",
                )
            )
    for pk, (seq, _, _) in rec.finding.items():
        if pk not in seen:
            problems.append(Problem(seq, "record", f"finding {pk} recorded here is missing (deleted)"))
    _verify_publications(session, rec, problems)
    out.uncovered |= _verify_audit(session, rec, problems)
    _verify_agreements(session, rec, problems)
    out.attachments = _verify_attachments(session, rec, problems)
    for table in ROW_TABLES:
        n = _verify_rows(session, table, rec, problems)
        if n:
            out.uncovered[table] = n


def _jsonable(value: Any) -> Any:
    """A stored value as a row's state keeps it (times in UTC ISO 8601, non-finite floats null)."""
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict | list):
        return _as_stored(value)
    return value


def row_state(table: Table, row: Mapping[Any, Any]) -> dict[str, Any]:
    """Every column of a stored row of ``table``, as the ledger keeps it (:func:`record_rows`)."""
    names = _NAMES.get(table.name)
    if names is None:
        names = _NAMES[table.name] = tuple(c.name for c in table.columns)
    return {n: _jsonable(row[n]) for n in names}


#: Each table's column names (iterating a Table's columns per row costs more than the row).
_NAMES: dict[str, tuple[str, ...]] = {}


_KEYS_CHUNK = 10_000


def record_rows(
    session: Session,
    table: str,
    keys: Sequence[Any],
    *,
    now: dt.datetime,
    deleted: Sequence[Any] = (),
    known: Sequence[Mapping[str, Any]] = (),
    backfill: bool = False,
) -> None:
    """One ledger entry (kind ``rows``) with the state of the rows ``keys`` of ``table`` (one of
    :data:`ROW_TABLES`) as the transaction now holds them, and the keys of its rows ``deleted``;
    nothing when all are empty. ``known``: rows the caller just wrote, every column with the
    values as stored (not read back). Called by the writer after its change, in its transaction.
    ``backfill``: the rows were stored before the ledger kept the table (:func:`backfill_rows`)."""
    t = ROW_TABLES[table]
    pk = t.primary_key.columns.values()[0]
    conn = session.connection()
    gone = sorted(set(deleted))
    ids = sorted(set(keys) - set(gone))
    if not ids and not gone and not known:
        return
    where = (
        one_of(pk, "ids", conn.dialect.name)
        if isinstance(pk.type, Integer)
        else pk.in_(bindparam("ids", expanding=True))
    )
    stmt = select(t).where(where).order_by(pk)
    states = [
        row_state(t, r._mapping)
        for k in range(0, len(ids), _KEYS_CHUNK)
        for r in conn.execute(stmt, {"ids": ids[k : k + _KEYS_CHUNK]})
    ]
    states += [row_state(t, r) for r in known]
    content: dict[str, Any] = {"table": table, "rows": states}
    if gone:
        content["deleted"] = gone
    if backfill:
        content[BACKFILL] = True
    first = states[0][pk.name] if states else gone[0]
    append(session, [("rows", f"{table}:{first}", content)], now=now)


def _gathered(session: Session, kinds: Sequence[str]) -> _Recorded:
    """What the entries of ``kinds`` recorded (the chain itself is :func:`verify`'s to check)."""
    rec = _Recorded()
    q = (
        select(LedgerEntryRow.seq, LedgerEntryRow.kind, LedgerEntryRow.body)
        .where(LedgerEntryRow.kind.in_(kinds))
        .order_by(LedgerEntryRow.seq)
        .execution_options(yield_per=5000)
    )
    for seq, kind, body in session.execute(q):
        try:
            doc = json.loads(body)
        except json.JSONDecodeError:
            continue
        content = doc.get("content") if isinstance(doc, dict) else None
        if isinstance(content, dict):
            _gather(rec, seq, kind, content, doc.get("time"))
    return rec


def uncovered_keys(session: Session) -> dict[str, list[Any]]:
    """The keys of the rows the ledger does not cover, by table (oldest first; only tables that
    have any): rows of :data:`ROW_TABLES` stored before the ledger kept their table, and audit
    rows written before the audit log was ledgered, none of them backfilled since. What
    :func:`verify` counts as ``uncovered`` (tokens follow their audit rows)."""
    rec = _gathered(session, ("rows", "audit"))
    out: dict[str, list[Any]] = {}
    for table, t in ROW_TABLES.items():
        pk = t.primary_key.columns.values()[0]
        made = _MADE_AT.get(table)
        recorded = rec.rows.get(table, {})
        before = _stored_before(table, rec)
        q = select(pk, *([t.c[made]] if made else [])).order_by(pk)
        keys = [
            m[pk.name] for m in session.execute(q).mappings() if m[pk.name] not in recorded and before(m)
        ]
        if keys:
            out[table] = keys
    first = min(rec.audit_live, default=None)
    q = select(AuditRow.pk).order_by(AuditRow.pk)
    if first is not None:
        q = q.where(AuditRow.pk < first)
    audit = [k for k in session.execute(q).scalars() if k not in rec.audit]
    if audit:
        out[AUDIT_TABLE] = audit
    return out


def backfill_audit(session: Session, pks: Sequence[int], *, now: dt.datetime) -> int:
    """One ``audit`` entry for each audit row ``pks`` (written before the audit log was ledgered),
    as it is now and marked :data:`BACKFILL`; a token's row seals the token's secret hash, as
    entries written live do. Returns how many rows were recorded."""
    rows = list(
        session.execute(
            select(AuditRow).where(AuditRow.pk.in_(sorted(set(pks)))).order_by(AuditRow.pk)
        ).scalars()
    )
    tokens = {a.entity_id for a in rows if a.entity == "token"}
    q = select(ApiTokenRow.id, ApiTokenRow.secret_sha256).where(ApiTokenRow.id.in_(tokens))
    secrets: dict[str, str] = {k: h for k, h in session.execute(q)}
    items: list[tuple[str, str, dict[str, Any] | CanonicalJSON]] = []
    for a in rows:
        secret = secrets.get(a.entity_id) if a.entity == "token" else None
        content = audit_content(a, {"secret_sha256": secret} if secret else None)
        items.append(("audit", f"audit:{a.pk}", {**content, BACKFILL: True}))
    append(session, items, now=now)
    return len(rows)


def _parse_time(value: object) -> dt.datetime | None:
    try:
        return as_utc(dt.datetime.fromisoformat(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _stored_before(table: str, rec: _Recorded) -> Callable[[Mapping[Any, Any]], bool]:
    """Whether a row of ``table`` that has no recorded state was stored before the ledger kept the
    table: nothing of the table recorded live, or its integer key below every key recorded live,
    or it was made (:data:`_MADE_AT`) before the first live entry of the table and (integer keys)
    its key is below the newest recorded live (an older row changed since, e.g. an event grown,
    moves the first key recorded down; a row inserted behind the ledger's back gets a key above
    every recorded one, and has no entry, whatever time it claims). Backfilled entries
    (:data:`BACKFILL`) do not count as live: a backfill stopped halfway leaves the rest of the
    older rows not covered, not rows with no entry."""
    t = ROW_TABLES[table]
    pk = t.primary_key.columns.values()[0].name
    live = rec.live.get(table, set())
    ints = [k for k in live if isinstance(k, int)]
    first, last = (min(ints), max(ints)) if ints else (None, None)
    since = rec.live_since.get(table)
    made = _MADE_AT.get(table)

    started = rec.backfill_since.get(table)

    def before(m: Mapping[Any, Any]) -> bool:
        if not live:  # only backfilled, if anything: older rows are those made before it began
            at = m[made] if made is not None else None
            return started is None or not isinstance(at, dt.datetime) or as_utc(at) < started
        key = m[pk]
        if isinstance(key, int) and first is not None:
            if key < first:
                return True
            if last is not None and key > last:
                return False
        at = m[made] if made is not None else None
        return since is not None and isinstance(at, dt.datetime) and as_utc(at) < since

    return before


def _verify_rows(session: Session, table: str, rec: _Recorded, problems: list[Problem]) -> int:
    """Each row of ``table`` against its newest recorded state (:func:`record_rows`); returns how
    many rows have none and were stored before the ledger kept the table (:func:`_stored_before`:
    not covered); a row with neither has no entry (a problem)."""
    t = ROW_TABLES[table]
    pk = t.primary_key.columns.values()[0]
    recorded = rec.rows.get(table, {})
    left = dict(recorded)
    before = _stored_before(table, rec)
    times = {c.name for c in t.columns if isinstance(c.type, DateTime)}
    uncovered = 0
    for r in session.execute(select(t).order_by(pk).execution_options(yield_per=5000)):
        m = r._mapping
        key = m[pk.name]
        what = f"{table} row {key}"
        e = left.pop(key, None)
        if e is None:
            if before(m):
                uncovered += 1  # stored before the ledger kept this table, not backfilled
                continue
            problems.append(Problem(None, "record", f"{what} has no ledger entry"))
            continue
        seq, c = e
        if c is None:
            problems.append(Problem(seq, "record", f"{what} was deleted here, yet it is stored"))
            continue
        now = row_state(t, m)
        bad = [
            k
            for k, v in now.items()
            if not (
                _same_time(m[k], c.get(k))
                if k in times
                else (v == c.get(k) and type(v) is type(c.get(k)))
                or (isinstance(v, float) and _same_number(v, c.get(k)))
            )
        ]
        if bad:
            problems.append(_altered(what, bad, seq))
    for key, (seq, c) in left.items():
        if c is not None:
            problems.append(
                Problem(seq, "record", f"{table} row {key} recorded here is missing (deleted)")
            )
    return uncovered


def _verify_attachments(session: Session, rec: _Recorded, problems: list[Problem]) -> int:
    """Each attachment's columns against its newest ``attachment`` entry (the report hash it was
    filed against is the entry's alone: a later revision of the report does not change it)."""
    left = dict(rec.attachment)
    n = 0
    for a in session.execute(select(AttachmentRow).order_by(AttachmentRow.pk)).scalars():
        n += 1
        e = left.pop(a.pk, None)
        what = f"attachment {a.pk} ({a.filename or a.sha256[:12]})"
        if e is None:
            problems.append(Problem(None, "record", f"{what} has no ledger entry"))
            continue
        seq, c = e
        now = attachment_content(a, str(c.get("report_hash", "")))
        bad = [
            k
            for k, v in now.items()
            if not (
                _same_time(getattr(a, k), c.get(k))
                if k in _ATTACHMENT_TIMES
                else (type(v) is type(c.get(k)) and v == c.get(k))
                or (isinstance(v, float) and _same_number(v, c.get(k)))
            )
        ]
        bad = ["pk" if k == "attachment" else "incident_pk" if k == "incident" else k for k in bad]
        if bad:
            problems.append(_altered(what, bad, seq))
    for pk, (seq, _) in left.items():
        problems.append(Problem(seq, "record", f"attachment {pk} recorded here is missing (deleted)"))
    return n


def _verify_agreements(session: Session, rec: _Recorded, problems: list[Problem]) -> None:
    """Each agreement revision's files against its entry; each agreement against its newest."""
    left = dict(rec.agreement)
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for (ag, _n), (seq, c) in sorted(rec.agreement.items()):
        newest[ag] = (seq, c)
    q = select(AgreementRevisionRow).order_by(AgreementRevisionRow.pk)
    for r in session.execute(q).scalars():
        what = f"revision {r.revision} of agreement {r.agreement_id}"
        e = left.pop((r.agreement_id, r.revision), None)
        if e is None:
            problems.append(Problem(None, "record", f"{what} has no ledger entry"))
            continue
        seq, c = e
        try:
            files = {k: hashlib.sha256(base64.b64decode(v)).hexdigest() for k, v in r.files.items()}
        except (TypeError, ValueError, AttributeError):
            files = {}
        bad = [] if files == c.get("files") else ["files"]
        bad += [] if r.content_hash == c.get("content_hash") else ["content_hash"]
        bad += [k for k in ("pk", "created_by") if k in c and getattr(r, k) != c[k]]
        if "created_at" in c and not _same_time(r.created_at, c["created_at"]):
            bad.append("created_at")
        if bad:
            problems.append(_altered(what, bad, seq))
    for (ag, n), (seq, _) in left.items():
        problems.append(Problem(seq, "record", f"revision {n} of {ag} recorded here is missing"))
    for a in session.execute(select(AgreementRow).order_by(AgreementRow.id)).scalars():
        e = newest.get(a.id)
        if e is None:
            problems.append(Problem(None, "record", f"agreement {a.id} has no ledger entry"))
            continue
        seq, c = e
        bad = [k for k in ("content_hash", "source", "name") if k in c and getattr(a, k) != c[k]]
        if "created_at" in c and not _same_time(a.loaded_at, c["created_at"]):
            bad.append("loaded_at")
        if bad:
            problems.append(_altered(f"agreement {a.id}", bad, seq))


def _verify_publications(session: Session, rec: _Recorded, problems: list[Problem]) -> None:
    """Each published report's bytes, day, agreement and publisher against its publication entry."""
    left = dict(rec.publication)
    for r in session.execute(select(PublishedReportRow).order_by(PublishedReportRow.pk)).scalars():
        ref = f"report:{r.agreement_id}/{r.day.isoformat()}"
        p = left.pop(ref, None)
        what = f"the published report of {r.agreement_id} for {r.day}"
        if p is None:
            problems.append(Problem(None, "record", f"{what} has no publication entry"))
            continue
        seq, c = p
        bad = []
        if hashlib.sha256(r.html.encode("utf-8")).hexdigest() != c.get("sha256"):
            bad.append("html (its bytes)")
        if r.sha256 != c.get("sha256"):
            bad.append("sha256")
        if r.published_by != c.get("published_by"):
            bad.append("published_by")
        if "published_at" in c and not _same_time(r.published_at, c["published_at"]):
            bad.append("published_at")
        if "report" in c and r.pk != c["report"]:
            bad.append("pk")
        if bad:
            problems.append(_altered(what, bad, seq))
    for ref, (seq, _) in left.items():
        problems.append(Problem(seq, "record", f"{ref} published here is missing (deleted)"))


def _verify_audit(session: Session, rec: _Recorded, problems: list[Problem]) -> dict[str, int]:
    """The audit log against its entries, and each token against its last audited state.

    Audit rows older than the first one the ledger recorded live (written before the audit log
    was ledgered) and not backfilled cannot be compared; nor can tokens whose only audit rows are
    of that time: returns how many of each (not covered), by table.
    """
    first = min(rec.audit_live, default=None)
    pre_ledger_tokens: set[str] = set()
    seen: set[int] = set()
    uncovered: dict[str, int] = {}
    for a in session.execute(select(AuditRow).order_by(AuditRow.pk)).scalars():
        seen.add(a.pk)
        e = rec.audit.get(a.pk)
        if e is None:
            if first is None or a.pk < first:
                if a.entity == "token":
                    pre_ledger_tokens.add(a.entity_id)
                uncovered[AUDIT_TABLE] = uncovered.get(AUDIT_TABLE, 0) + 1
                continue
            problems.append(Problem(None, "record", f"audit row {a.pk} has no ledger entry"))
            continue
        if _digest(audit_content(a)) != e[1]:
            problems.append(
                Problem(
                    e[0], "record", f"audit row {a.pk} differs from what this entry recorded (altered)"
                )
            )
    for pk, (seq, _) in rec.audit.items():
        if pk not in seen:
            problems.append(Problem(seq, "record", f"audit row {pk} recorded here is missing (deleted)"))
    left = dict(rec.token)
    for t in session.execute(select(ApiTokenRow).order_by(ApiTokenRow.id)).scalars():
        r = left.pop(t.id, None)
        if r is None:
            if t.id in pre_ledger_tokens:
                uncovered[TOKEN_TABLE] = uncovered.get(TOKEN_TABLE, 0) + 1
            else:
                problems.append(
                    Problem(None, "record", f"token {t.id} ({t.name}) has no audited creation")
                )
            continue
        seq, c = r
        bad: list[str] = [
            col
            for col in ("name", "role", "party", "sector", "created_by", "secret_sha256")
            if col in c and getattr(t, col) != c[col]
        ]
        bad += [
            col
            for col in ("created_at", "revoked_at")
            if col in c and not _same_time(getattr(t, col), c[col])
        ]
        if bad:
            problems.append(_altered(f"token {t.id} ({t.name})", bad, seq))
    for tid, (seq, _) in left.items():
        problems.append(Problem(seq, "record", f"token {tid} audited here is missing (deleted)"))
    return uncovered
