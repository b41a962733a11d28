"""Bringing rows stored before the ledger kept their table under the ledger (``ledger backfill``).

Events, incident revisions, fusion pairs, patrol positions, sensors, detections, ingest batches
and rejects have been kept whole by the ledger (``rows`` entries) only since issue 17; the audit
log only since it was ledgered. Rows stored before are *not covered*: ``ledger verify`` counts
them and cannot tell whether they were edited. :func:`backfill` records each such row as it is
now, in entries marked ``backfill``, one transaction per batch, so that from then on an edit of
any of its columns is caught. It is idempotent (a row recorded is not asked for again) and
resumable (each batch is committed; interrupted, a second run records the rest). It attests the
rows as they are when backfilled: an edit made before cannot be found any more than before.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from truceline.services.audit import Actor, record_change
from truceline.store import ledger
from truceline.store.db import Database

__all__ = ["BATCH", "backfill", "uncovered"]

#: Rows per entry (and per transaction).
BATCH = 2000


def uncovered(db: Database) -> dict[str, int]:
    """How many rows of each table the ledger does not cover (only tables that have any)."""
    with db.read() as s:
        return {t: len(keys) for t, keys in ledger.uncovered_keys(s).items()}


def backfill(
    db: Database,
    *,
    actor: Actor,
    now: Callable[[], dt.datetime],
    batch: int = BATCH,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Record every row not covered (:func:`truceline.store.ledger.uncovered_keys`), ``batch``
    rows per entry and transaction; then one audit row (entity ``ledger``, action ``backfill``)
    saying by whom and how many of each table (also when interrupted, for the batches
    committed). Returns the rows recorded, by table (empty: there was nothing to do, and nothing
    is written). ``progress(table, done, total)`` after each batch.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    with db.read() as s:
        todo = ledger.uncovered_keys(s)
    total = sum(len(k) for k in todo.values())
    done = 0
    counts: dict[str, int] = {}
    try:
        for table, keys in todo.items():
            for k in range(0, len(keys), batch):
                part = keys[k : k + batch]
                db.write(functools.partial(_record, table=table, keys=part, now=now()))
                done += len(part)
                counts[table] = counts.get(table, 0) + len(part)
                if progress is not None:
                    progress(table, done, total)
    except BaseException:
        if counts:  # the batches committed are audited too (a run again records the rest)
            _audit(db, actor, now, counts, finished=False)
        raise
    if counts:
        _audit(db, actor, now, counts, finished=True)
    return counts


def _audit(
    db: Database, actor: Actor, now: Callable[[], dt.datetime], counts: dict[str, int], *, finished: bool
) -> None:
    db.write(
        lambda s: record_change(
            s,
            actor=actor,
            entity="ledger",
            entity_id="backfill",
            action="backfill",
            now=now(),
            before=None,
            after={"rows": counts, "finished": finished},
            comment="rows stored before the ledger kept their table, recorded as they are now"
            + ("" if finished else " (interrupted: run it again for the rest)"),
        )
    )


def _record(session: Session, *, table: str, keys: list[Any], now: dt.datetime) -> None:
    if table == ledger.AUDIT_TABLE:
        ledger.backfill_audit(session, keys, now=now)
    else:
        ledger.record_rows(session, table, keys, now=now, backfill=True)
