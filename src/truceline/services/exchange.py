"""Import and export of incidents and reference geodata in the analysts' file formats.

Exports go through the API's own filter service (:func:`truceline.services.queries.list_incidents`
with an :class:`~truceline.services.queries.IncidentFilter` and the caller's scope), page by
page, so a file holds exactly the incidents the same filter lists on screen. Imports read a file
(:func:`truceline.io.formats.read_incident_file`) and store it through the idempotent ingest that
every other report goes through. The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.core.times import as_utc
from truceline.errors import ValidationError
from truceline.io.acled import Deletion, acled_deletions, acled_deletions_document
from truceline.io.columnar import Block as ColumnarBlock
from truceline.io.columnar import ColumnarRead, incidents_of
from truceline.io.features import zones_feature_collection
from truceline.io.formats import (
    DERIVED_COLUMNS,
    ImportResult,
    format_of,
    read_incident_file,
    write_geodata_file,
    write_incident_file,
)
from truceline.io.incidents_io import Reject
from truceline.io.limits import DEFAULT_LIMITS, UploadLimits
from truceline.services import queries
from truceline.services.auth import Principal, Scope
from truceline.services.ingest import IngestResult, ingest_incidents
from truceline.services.revisions import Withdrawal, WithdrawalResult, withdraw_incidents
from truceline.store.db import Database
from truceline.store.models import FindingRow, IncidentRow

__all__ = [
    "STREAMED_FORMATS",
    "BlockImport",
    "ImportOutcome",
    "apply_acled_deletions",
    "export_geodata",
    "export_incidents",
    "export_records",
    "import_acled_deletions",
    "import_incident_blocks",
    "import_incidents",
    "incident_of_row",
]

_PAGE = 2000
_INCIDENT_COLUMNS = tuple(f for f in Incident.model_fields if f != "id")


def incident_of_row(row: IncidentRow) -> Incident:
    """The report as it was submitted (the stored row without the server's adjudication)."""
    data: dict[str, Any] = {k: getattr(row, k) for k in _INCIDENT_COLUMNS}
    data["observed_at"] = as_utc(row.observed_at)
    return Incident.model_validate({"id": row.report_id, **data})


def _record(row: IncidentRow, rules: list[str]) -> dict[str, Any]:
    rec = incident_of_row(row).model_dump(mode="json")
    rec.update(
        pk=row.pk,
        agreement_id=row.agreement_id,
        side_party=row.side_party,
        distance_km=row.distance_km,
        p_side=row.p_side,
        zones=row.zones,
        sector=row.sector,
        status=row.status,
        findings=";".join(rules),
        submitted_by=row.submitted_by,
        received_at=(as_utc(row.received_at) or dt.datetime.min).isoformat().replace("+00:00", "Z"),
    )
    return rec


def export_records(
    session: Session, flt: queries.IncidentFilter, *, scope: Scope
) -> list[dict[str, Any]]:
    """Every incident the filter lists for this scope, as export records, in ``pk`` order."""
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = queries.list_incidents(session, flt, scope=scope, cursor=cursor, limit=_PAGE)
        rows: list[IncidentRow] = page.items
        rules: dict[int, list[str]] = defaultdict(list)
        if rows:
            q = select(FindingRow.incident_pk, FindingRow.rule_id).where(
                FindingRow.incident_pk.in_([r.pk for r in rows])
            )
            if scope.released_only:  # pragma: no cover - liaisons cannot list incidents
                q = q.where(FindingRow.released_at.is_not(None))
            for pk, rule in session.execute(q.order_by(FindingRow.pk)):
                rules[pk].append(rule)
        out.extend(_record(r, rules[r.pk]) for r in rows)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def export_incidents(
    session: Session,
    flt: queries.IncidentFilter,
    path: str | Path,
    fmt: str | None = None,
    *,
    scope: Scope,
    party_names: Mapping[str, str] | None = None,
) -> int:
    """Write the filtered view to a file; returns the number of incidents written."""
    records = export_records(session, flt, scope=scope)
    return write_incident_file(path, records, fmt, name="incidents", party_names=party_names)


def export_geodata(agreement: Agreement, day: dt.date, path: str | Path, fmt: str | None = None) -> int:
    """Write the line, the zones in force on ``day`` (per side), sectors and observation posts."""
    return write_geodata_file(path, zones_feature_collection(agreement, day), fmt)


@dataclass(slots=True)
class ImportOutcome:
    read: ImportResult
    stored: IngestResult


def party_lookup(agreement: Agreement, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Actor names that stand for a party: its id, its name, and any given explicitly."""
    out = {p.id: p.id for p in agreement.parties}
    out.update({p.name: p.id for p in agreement.parties if p.name})
    out.update(extra or {})
    return out


def import_incidents(
    session: Session,
    agreement: Agreement,
    path: str | Path,
    fmt: str | None = None,
    *,
    principal: Principal,
    now: dt.datetime,
    actors: Mapping[str, str] | None = None,
    geo_sigma_m: Mapping[int, float] | None = None,
    encoding: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> ImportOutcome:
    """Read a file and store its incidents: validated, adjudicated, idempotent by report id.

    A record whose source versions it (ACLED's ``timestamp``) and whose id is stored with other
    content and an older version becomes a new revision of that incident
    (:mod:`truceline.services.revisions`). ``limits``: what the file may hold (the settings'
    ``uploads``); a file over one is refused whole.
    """
    res = read_incident_file(
        path,
        fmt,
        parties=party_lookup(agreement, actors),
        geo_sigma_m=geo_sigma_m,
        encoding=encoding,
        limits=limits,
    )
    stored = ingest_incidents(
        session,
        agreement,
        res.read.incidents,
        res.read.rows,
        source=f"{res.format}:{Path(path).name}",
        earlier_rejects=res.read.rejects,
        earlier_duplicates=[str(r) for r in res.read.duplicates],
        submitted_by=principal.subject,
        now=now,
        versions=[res.versions.get(row) for row in res.read.rows] if res.versions else None,
    )
    return ImportOutcome(res, stored)


#: Formats :func:`import_incident_blocks` streams (read in blocks of columns); others are read whole.
STREAMED_FORMATS = ("csv", "parquet")
#: The bytes of the file an import stores per transaction: about 36,000 rows of plain incidents.
#: Storing holds every row of its block as objects (about 11 kB a row), so a block is kept well
#: under the reader's own (a 16 MB block of 143,000 rows peaked at 1.6 GB).
IMPORT_BLOCK_BYTES = 4 << 20


@dataclass(slots=True)
class BlockImport:
    """A file imported block by block, each block committed on its own: counts, not ids, so that
    memory does not grow with the file; every rejected row is kept (named: row, id, field, fix)."""

    format: str
    encoding: str = "UTF-8"
    encoding_detected: bool = False
    blocks: int = 0
    records: int = 0  # data rows read
    accepted: int = 0
    duplicates: int = 0  # already stored (a retried run's earlier blocks) or repeated in the file
    revised: int = 0
    findings: int = 0
    rejects: list[Reject] = field(default_factory=list)
    batch_ids: list[int] = field(default_factory=list)  # one ingest batch per block


def import_incident_blocks(
    database: Database,
    agreement: Agreement,
    path: str | Path,
    fmt: str | None = None,
    *,
    principal: Principal,
    encoding: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
    progress: Callable[[BlockImport, int, int], None] | None = None,
    block_bytes: int = 0,
) -> BlockImport:
    """A CSV or GeoParquet file of incidents (:data:`STREAMED_FORMATS`) read in blocks of columns
    (:mod:`truceline.io.columnar`), each block validated, adjudicated and stored in a transaction
    of its own (:func:`~truceline.services.ingest.ingest_incidents`, one ingest batch a block).

    Memory is bounded by a block (``block_bytes`` of the file; 0: :data:`IMPORT_BLOCK_BYTES`), whatever
    the file's size. A run stopped part way (a crash, a full disk) keeps the blocks it committed;
    running it again stores the rest and counts the stored ones as duplicates: no report is stored
    twice (the store is idempotent by report id and content). Each bad row is rejected alone,
    named, and kept in its block's batch; its neighbours land. ``progress(so_far, bytes_read,
    size)`` after each committed block. The agreement must be registered already.
    """
    path = Path(path)
    f = format_of(path, fmt)
    if f not in STREAMED_FORMATS:
        raise ValidationError(
            f"{path}: {f} is not read in blocks", field="format", fix="use csv or parquet"
        )
    block_bytes = block_bytes or IMPORT_BLOCK_BYTES
    read = ColumnarRead(path, limits, encoding, block_bytes=block_bytes, ignore=DERIVED_COLUMNS)
    out = BlockImport(f)
    source = f"{f}:{path.name}"
    for b in read:  # blocks of the file: its size over the block size
        out.blocks += 1
        out.records = b.records or out.records + len(b.incidents.rows) + len(b.rejects)
        out.encoding, out.encoding_detected = read.encoding, read.encoding_detected
        done = b.bytes_read
        # committed here: a later failure leaves this block stored
        res = database.write(functools.partial(_store_block, agreement, b, source, principal))
        del b
        out.batch_ids.append(res.batch_id)
        out.accepted += len(res.accepted)
        out.duplicates += len(res.duplicates)
        out.revised += len(res.revised)
        out.findings += res.findings
        out.rejects.extend(res.rejects)
        del res
        if progress is not None:
            progress(out, done, read.size)
    out.rejects.sort(key=lambda r: r.row)
    return out


def _store_block(
    agreement: Agreement, b: ColumnarBlock, source: str, principal: Principal, session: Session
) -> IngestResult:
    """One block of a file stored (a transaction of :func:`import_incident_blocks`)."""
    return ingest_incidents(
        session,
        agreement,
        incidents_of(b.incidents.table),
        b.incidents.rows.tolist(),
        source=source,
        earlier_rejects=b.rejects,
        earlier_duplicates=[str(r) for r in b.duplicates],
        submitted_by=principal.subject,
        now=dt.datetime.now(dt.UTC),
    )


def apply_acled_deletions(
    session: Session,
    agreement: Agreement,
    deletions: list[Deletion],
    *,
    principal: Principal,
    now: dt.datetime,
) -> WithdrawalResult:
    """Withdraw the stored reports ACLED deleted (see
    :func:`~truceline.services.revisions.withdraw_incidents`)."""
    return withdraw_incidents(
        session,
        agreement,
        [Withdrawal(d.row, d.event_id, d.deleted_at) for d in deletions],
        submitted_by=principal.subject,
        now=now,
    )


def import_acled_deletions(
    session: Session,
    agreement: Agreement,
    source: str | Path | Any,
    *,
    principal: Principal,
    now: dt.datetime,
) -> WithdrawalResult:
    """ACLED's deletions list (a CSV or JSON file, or the API's JSON document already parsed):
    each listed report that is stored is withdrawn; bad rows are rejects, the others still apply."""
    if isinstance(source, str | Path):
        found, rejects = acled_deletions(Path(source))
    else:
        found, rejects = acled_deletions_document(source)
    out = apply_acled_deletions(session, agreement, found, principal=principal, now=now)
    out.rejects = sorted(rejects + out.rejects, key=lambda r: r.row)
    return out
