"""Who may see which rows: the row-level rules of a caller's :class:`~truceline.services.auth.Scope`.

Every query that reads incidents, findings or sensors for a caller adds these WHERE clauses (a
list, empty when the caller sees every row), so the rules live here once:

- a monitor (``restricted``, with a ``sector``) sees the incidents of their sector and those they
  submitted themselves, and the sensors of their sector;
- a liaison (``released_only``) sees the findings released to the parties, and no raw report;
- every other role sees every row.

Reports their source withdrew (ACLED's deletions list, ``withdrawn_at``) are kept and found by
their pk, but lists, counts, maps and reports leave them out: :func:`live_incident_clauses`.

A row outside the scope is answered as not found, so its existence does not leak.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, select

from truceline.services.auth import Scope
from truceline.store.models import FindingRow, IncidentRow, SensorRow

__all__ = [
    "aliased_incident_clauses",
    "counted_incident_clauses",
    "finding_clauses",
    "incident_clauses",
    "live_incident_clauses",
    "released_finding_clauses",
    "sensor_clauses",
]


def incident_clauses(scope: Scope) -> list[ColumnElement[bool]]:
    """The incidents the caller may see."""
    if scope.released_only:
        return [false()]  # liaisons never see raw reports
    if not scope.restricted:
        return []
    own = IncidentRow.submitted_by == (scope.subject or "")
    return [or_(IncidentRow.sector == scope.sector, own) if scope.sector else own]


def live_incident_clauses() -> list[ColumnElement[bool]]:
    """The incidents that count: not withdrawn by their source."""
    return [IncidentRow.withdrawn_at.is_(None)]


def aliased_incident_clauses(row: Any, scope: Scope) -> list[ColumnElement[bool]]:
    """The incidents the caller may see, for an aliased incident (``row``: a second incident of
    one query, e.g. the other report of a pair)."""
    sc = incident_clauses(scope)
    return [select(IncidentRow.pk).where(*sc, IncidentRow.pk == row.pk).exists()] if sc else []


def finding_clauses(scope: Scope) -> list[ColumnElement[bool]]:
    """The findings the caller may see, in a query that joins each finding to its incident."""
    if scope.released_only:
        return [FindingRow.released_at.is_not(None)]
    return incident_clauses(scope)


def released_finding_clauses(scope: Scope) -> list[ColumnElement[bool]]:
    """The findings of an incident the caller already sees (no join): a liaison's released ones."""
    return [FindingRow.released_at.is_not(None)] if scope.released_only else []


def counted_incident_clauses(scope: Scope) -> list[ColumnElement[bool]]:
    """The incidents the caller may count in statistics.

    A liaison counts every incident (counts carry no positions or report fields); the others
    count the incidents they see.
    """
    return [] if scope.released_only else incident_clauses(scope)


def sensor_clauses(scope: Scope) -> list[ColumnElement[bool]]:
    """The sensors the caller may see (a monitor: those of their sector)."""
    return [SensorRow.sector == (scope.sector or "")] if scope.restricted else []
