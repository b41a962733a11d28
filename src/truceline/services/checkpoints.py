"""Closing the ledger up to now: finished days get their roots, today a checkpoint.

``truceline ledger close``, ``POST /api/v1/ledger/close`` and the server (every
``ledger_checkpoint_minutes``) all run :func:`close_all`, so an entry recorded a minute ago has a
proof (:func:`truceline.store.ledger.export_proof`) as soon as a checkpoint covers it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from truceline.store import ledger
from truceline.store.models import LedgerEntryRow, LedgerRootRow

__all__ = ["Closed", "close_all", "prepare_proof"]


@dataclass(frozen=True, slots=True)
class Closed:
    """What one :func:`close_all` made: the days closed, and today's checkpoint (None: nothing new)."""

    days: list[LedgerRootRow]
    checkpoint: dict[str, Any] | None


def close_all(session: Session, *, now: dt.datetime, sign: ledger.RootSigner | None = None) -> Closed:
    """Close every finished day (before ``now``'s UTC day), then checkpoint the day so far (which
    covers the closings just recorded)."""
    days = ledger.close_days(session, now=now, sign=sign)
    return Closed(days, ledger.checkpoint(session, now=now, sign=sign))


def prepare_proof(
    session: Session, entry: str, *, now: dt.datetime, sign: ledger.RootSigner | None = None
) -> int:
    """The seq of ``entry`` (a number, or a record such as ``finding:12``), after closing finished
    days and, when its day is open and no checkpoint covers it yet, checkpointing the day."""
    ledger.close_days(session, now=now, sign=sign)
    seq = int(entry) if entry.isdigit() else ledger.entry_of(session, entry).seq
    row = session.get(LedgerEntryRow, seq)
    if row is not None and session.get(LedgerRootRow, row.day) is None:
        cp = ledger.latest_checkpoint(session, row.day)
        if cp is None or int(cp[1].get("last_seq", 0)) < seq:
            ledger.checkpoint(session, now=now, sign=sign)
    return seq
