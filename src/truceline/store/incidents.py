"""Stored incidents: the lookups ingest needs below the service (no adjudication here)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, text

from truceline.core.rules import Findings
from truceline.store.ledger import new_salts, numbers_texts
from truceline.store.models import IncidentRevisionRow, IncidentRow

__all__ = ["earlier_revisions", "finding_rows", "stored_reports"]

_CHUNK = 500  # ids per IN list on SQLite

_STORED = select(
    IncidentRow.report_id, IncidentRow.content_hash, IncidentRow.pk, IncidentRow.version
).where(
    IncidentRow.agreement_id == bindparam("a"),
    IncidentRow.report_id.in_(bindparam("ids", expanding=True)),
)


_STORED_PG = text(
    "SELECT i.report_id, i.content_hash, i.pk, i.version "
    "FROM json_array_elements_text(CAST(:ids AS json)) AS q(id) "
    "JOIN LATERAL (SELECT report_id, content_hash, pk, version FROM incidents "
    "WHERE agreement_id = :a AND report_id = q.id) AS i ON true"
)


def stored_reports(
    conn: Connection, agreement_id: str, ids: Sequence[str]
) -> list[Row[str, str, int, float | None]]:
    """(report id, content hash, pk, version) of the ``ids`` already stored under the agreement."""
    if not ids:
        return []
    if conn.dialect.name == "postgresql":
        # One statement whose plan probes the unique index once per id. An ``IN`` list lets the
        # planner pick a scan of every stored incident of the agreement (its row estimates lag
        # a fast-growing table), which cost ~100 ms per 500 ids at 20,000 rows.
        # The ids travel as one JSON text: psycopg quotes a text[] parameter element by element
        # in Python (with a regular expression each), json.dumps in C.
        return list(conn.execute(_STORED_PG, {"ids": json.dumps(list(ids)), "a": agreement_id}))
    out: list[Row[str, str, int, float | None]] = []
    for k in range(0, len(ids), _CHUNK):
        out.extend(conn.execute(_STORED, {"a": agreement_id, "ids": list(ids[k : k + _CHUNK])}))
    return out


def earlier_revisions(conn: Connection, pks: Sequence[int]) -> set[tuple[int, str]]:
    """(incident pk, content hash) of every earlier revision kept for the incidents ``pks``."""
    out: set[tuple[int, str]] = set()
    t = IncidentRevisionRow
    for k in range(0, len(pks), _CHUNK):
        q = select(t.incident_pk, t.content_hash).where(t.incident_pk.in_(list(pks[k : k + _CHUNK])))
        out.update((int(pk), str(h)) for pk, h in conn.execute(q))
    return out


def finding_rows(f: Findings, pk_at: Sequence[int], now: dt.datetime) -> list[dict[str, Any]]:
    """The findings table's rows of ``f`` (``pk_at``: each classified incident's stored key), the
    numbers' canonical text made once (the findings' column and their ledger entries hold it), and
    each finding's salt for its entry's commitments."""
    return [
        {
            "incident_pk": pk_at[i],
            "rule_id": str(rid),
            "rule_type": str(rt),
            "responsible": str(resp),
            "probability": float(p),
            "explanation": str(ex),
            "numbers": nums,
            "created_at": now,
            "ledger_salt": salt,
        }
        for i, rid, rt, resp, p, ex, nums, salt in zip(
            f.incident.tolist(),
            f.rule_id.tolist(),
            f.rule_type.tolist(),
            f.responsible.tolist(),
            f.probability.tolist(),
            f.explanation.tolist(),
            numbers_texts(f),
            new_salts(len(f)),
            strict=True,
        )
    ]
