"""Stored rows as NumPy columns, straight from the driver (for the vectorised core).

Reading many rows through the ORM or SQLAlchemy's per-value result processing costs more than the
work done on them; :func:`read_columns` takes the driver's tuples a block at a time and turns each
block into arrays in one call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

__all__ = ["read_columns"]

_BLOCK = 100_000  # rows read and turned into arrays at a time (bounded memory)


#: Statements run again and again with new parameters, compiled once: id -> (the statement, kept
#: alive so that its id is not reused; dialect; SQL; parameter order or None; compiled values).
_COMPILED: dict[int, tuple[Any, str, str, tuple[str, ...] | None, dict[str, Any]]] = {}


def _compiled(
    conn: Any, q: Any, params: dict[str, Any] | None
) -> tuple[str, dict[str, Any], tuple[str, ...] | None]:
    """The SQL of ``q`` and its parameter values (``params`` over the statement's own)."""
    hit = _COMPILED.get(id(q)) if params is not None else None
    if hit is None or hit[0] is not q or hit[1] != conn.dialect.name:
        # IN lists rendered as plain parameters (no post-compile step to run here)
        compiled = q.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        order = tuple(compiled.positiontup or ()) if compiled.positional else None
        hit = (q, conn.dialect.name, str(compiled), order, compiled.construct_params())
        if params is not None:  # bound by name each time, so worth keeping
            _COMPILED[id(q)] = hit
    _, _, sql, order, values = hit
    return sql, {**values, **(params or {})}, order


def _driver_blocks(
    session: Session, q: Any, params: dict[str, Any] | None = None
) -> Iterator[Sequence[Any]]:
    """Rows of a Core select straight from the driver's cursor, a block at a time.

    Plain tuples, no per-value result processing: reading millions of rows is dominated by that
    processing otherwise. Values come as the driver gives them (a SQLite timestamp is its text).
    With ``params`` (values of its bound parameters by name; the statement has no IN list), the
    statement is compiled once and run with them each time.
    """
    conn = session.connection()
    sql, values, order = _compiled(conn, q, params)
    if conn.dialect.name == "sqlite":  # dates as SQLAlchemy stores them there: ISO text
        values = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in values.items()}
    args: Any = [values[k] for k in order] if order is not None else values
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, args)
        while block := cursor.fetchmany(_BLOCK):
            yield block
    finally:
        cursor.close()


def _timestamps(values: np.ndarray) -> np.ndarray:
    """UTC ``datetime64[us]`` from driver values: ISO text (SQLite) or datetimes (PostgreSQL)."""
    if values.size and isinstance(values[0], str):
        try:
            return values.astype(str).astype("datetime64[us]")
        except ValueError:  # text with an offset: parse it properly
            values = np.array([dt.datetime.fromisoformat(v) for v in values.tolist()], dtype=object)
    naive = [
        t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None)
        for t in values.tolist()
    ]
    return np.array(naive, dtype="datetime64[us]")


def read_columns(
    session: Session, q: Any, fields: list[tuple[str, str]], params: dict[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Run ``q`` and return its columns as arrays (``fields``: name and NumPy kind per column).

    ``params``: values of the statement's bound parameters by name, for a statement built once and
    run many times (compiled once; it must have no expanding IN list).

    Kinds: ``f8`` (None becomes NaN), ``i8``, ``str`` (strings; select them with COALESCE so that
    none is NULL) and ``ts`` (timestamps). Each block of rows becomes a structured array in one call.
    """
    layout = np.dtype([(n, "f8" if k == "f8" else "i8" if k == "i8" else "O") for n, k in fields])
    parts: dict[str, list[np.ndarray]] = {n: [] for n, _ in fields}
    for block in _driver_blocks(session, q, params):
        arr = np.array(block, dtype=layout)
        for n, k in fields:
            col = arr[n]
            if k == "str":
                col = col.astype(str)
            elif k == "ts":
                col = _timestamps(col)
            parts[n].append(col)
    empty = {"f8": np.zeros(0), "i8": np.zeros(0, np.int64), "str": np.zeros(0, dtype=str),
             "ts": np.zeros(0, dtype="datetime64[us]")}  # fmt: skip
    return {n: (np.concatenate(parts[n]) if parts[n] else empty[k]) for n, k in fields}
