"""The schema (SQLAlchemy 2 declarative). One schema for SQLite and PostgreSQL; Alembic migrates both."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from truceline.core.times import utc_now
from truceline.ledger_verify import canonical_json

__all__ = [
    "AgreementRevisionRow",
    "AgreementRow",
    "ApiTokenRow",
    "AttachmentRow",
    "AuditRow",
    "Base",
    "DetectionRow",
    "EventRow",
    "FindingRow",
    "FusionPairRow",
    "IncidentRevisionRow",
    "IncidentRow",
    "IngestBatchRow",
    "JSONText",
    "LedgerEntryRow",
    "LedgerHeadRow",
    "LedgerRootRow",
    "MapCellRow",
    "MapCellsVersionRow",
    "MapStaleDayRow",
    "PatrolPositionRow",
    "PublishedReportRow",
    "RejectRow",
    "SensorRow",
]


class Base(DeclarativeBase):
    # Every mapped class here has a Table (SQLAlchemy types ``__table__`` as the wider FromClause).
    __table__: ClassVar[Table]


class JSONText(TypeDecorator[Any]):
    """A JSON value kept as its canonical text (:func:`~truceline.ledger_verify.canonical_json`).

    Reads give the parsed value. A ``str`` is taken as that text already (ingest serialises a
    finding's numbers once, for this column and for the ledger); anything else is serialised here.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return canonical_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError:  # only an edit outside Truceline writes this: the text as
            return str(value)  # stored, which differs from any recorded value (ledger verify)


class AgreementRow(Base):
    __tablename__ = "agreements"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    source: Mapped[str] = mapped_column(Text)  # folder it was loaded from
    content_hash: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class IngestBatchRow(Base):
    __tablename__ = "ingest_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    source: Mapped[str] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    n_accepted: Mapped[int] = mapped_column(Integer, default=0)
    n_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    n_rejected: Mapped[int] = mapped_column(Integer, default=0)


class IncidentRow(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        UniqueConstraint("agreement_id", "report_id", name="uq_incident_report"),
        Index("ix_incident_day", "agreement_id", "day"),
        Index("ix_incident_lonlat", "lon", "lat"),
        Index("ix_incident_event", "event_id"),
        Index("ix_incident_time", "agreement_id", "observed_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batches.id"))
    report_id: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))
    observed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[dt.date] = mapped_column(Date)
    time_precision: Mapped[str] = mapped_column(String(16))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    uncertainty_m: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    weapon_class: Mapped[str | None] = mapped_column(String(64))
    count: Mapped[int] = mapped_column(Integer, default=1)
    party: Mapped[str | None] = mapped_column(String(32))
    origin_lon: Mapped[float | None] = mapped_column(Float)
    origin_lat: Mapped[float | None] = mapped_column(Float)
    origin_uncertainty_m: Mapped[float | None] = mapped_column(Float)
    bearing_deg: Mapped[float | None] = mapped_column(Float)
    source_type: Mapped[str] = mapped_column(String(32))
    reliability: Mapped[str] = mapped_column(String(1))
    credibility: Mapped[int] = mapped_column(Integer)
    narrative: Mapped[str] = mapped_column(Text, default="")
    # A second fix stated by the narrative (an ambiguous acoustic event: the mirror image across a
    # near-linear array), as columns for the map, the API and the report; always those the
    # narrative states (``core.incidents.second_fix``), which is how the ledger covers them.
    ambiguous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    alt_lon: Mapped[float | None] = mapped_column(Float, default=None)
    alt_lat: Mapped[float | None] = mapped_column(Float, default=None)
    alt_weight: Mapped[float | None] = mapped_column(Float, default=None)
    # Adjudication (recomputed when the agreement changes)
    side_party: Mapped[str] = mapped_column(String(32), default="")
    distance_km: Mapped[float] = mapped_column(Float)
    p_side: Mapped[float] = mapped_column(Float)
    zones: Mapped[str] = mapped_column(String(512), default="")
    sector: Mapped[str] = mapped_column(String(64), default="")
    # Whether the agreement was in force on the report's day, and whether it lies in the area of
    # application (no finding otherwise). NULL in_force: stored before migration 0009 (unknown).
    in_force: Mapped[bool | None] = mapped_column(Boolean, default=None)
    in_area: Mapped[bool | None] = mapped_column(Boolean, default=None)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    # Review (truceline.services.review): new -> verified | rejected | sent_back
    status: Mapped[str] = mapped_column(String(16), default="new", server_default="new")
    submitted_by: Mapped[str] = mapped_column(String(128), default="", server_default="")
    # The fused event this report belongs to (truceline.services.events); NULL: linked to no other.
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.pk"), default=None)
    # Revisions (migration 0008): 1 for a report as first stored, +1 per revision; ``version`` is
    # the source's own ordering of its sendings (ACLED's ``timestamp``, a CoT event's start, s).
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    version: Mapped[float | None] = mapped_column(Float, default=None)
    # Withdrawn by its source (ACLED's deletions list, migration 0011): kept, but no longer counted
    # (no findings; lists, counts, maps and reports leave it out). NULL: a live report.
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)

    findings: Mapped[list[FindingRow]] = relationship(back_populates="incident")


class IncidentRevisionRow(Base):
    """An earlier content of an incident, kept when a revision replaced it (migration 0008).

    ``record`` is the report as it was submitted (the ledger's record text), ``adjudication`` the
    side, distance, zones and sector it had, ``findings`` its findings then (withdrawn by the
    revision, each with its pk, rule, party, probability, status and explanation).
    """

    __tablename__ = "incident_revisions"
    __table_args__ = (UniqueConstraint("incident_pk", "revision", name="uq_incident_revision"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_pk: Mapped[int] = mapped_column(ForeignKey("incidents.pk", ondelete="CASCADE"))
    revision: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[float | None] = mapped_column(Float)
    record: Mapped[Any] = mapped_column(JSONText, nullable=True)
    adjudication: Mapped[Any] = mapped_column(JSONText, nullable=True)
    findings: Mapped[Any] = mapped_column(JSONText, nullable=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("ingest_batches.id"))
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    submitted_by: Mapped[str] = mapped_column(String(128), default="")
    superseded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    superseded_by_batch: Mapped[int | None] = mapped_column(ForeignKey("ingest_batches.id"))


class PatrolPositionRow(Base):
    """Where a monitors' device was (a TAK position report, PLI): the patrols' tracks (0008).

    One row per device (``uid``) and time; a re-sent report is not stored twice.
    """

    __tablename__ = "patrol_positions"
    __table_args__ = (
        UniqueConstraint("agreement_id", "uid", "observed_at", name="uq_patrol_position"),
        Index("ix_patrol_time", "agreement_id", "observed_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    uid: Mapped[str] = mapped_column(String(200))
    callsign: Mapped[str] = mapped_column(String(100), default="")
    group_name: Mapped[str] = mapped_column(String(64), default="")  # TAK team colour
    group_role: Mapped[str] = mapped_column(String(64), default="")
    cot_type: Mapped[str] = mapped_column(String(100))
    observed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    uncertainty_m: Mapped[float] = mapped_column(Float)  # 1 sigma per axis (CoT ce)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    submitted_by: Mapped[str] = mapped_column(String(128), default="")


class FindingRow(Base):
    __tablename__ = "findings"
    __table_args__ = (Index("ix_finding_incident", "incident_pk"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_pk: Mapped[int] = mapped_column(ForeignKey("incidents.pk", ondelete="CASCADE"))
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_type: Mapped[str] = mapped_column(String(32))
    responsible: Mapped[str] = mapped_column(String(32))
    probability: Mapped[float] = mapped_column(Float)
    explanation: Mapped[str] = mapped_column(Text)
    # The numbers the explanation states (truceline.core.rules.Findings: which apply to which rule
    # type in NUMBERS); None for a finding recorded before findings carried them (migration 0006).
    numbers: Mapped[dict[str, float | str] | None] = mapped_column(JSONText)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))  # to the parties
    # The salt of the ledger entry's commitments to the incident key and the report's content hash
    # (truceline.ledger_verify.commitment): kept here, never shown; None for a finding recorded
    # before entries committed to them (migration 0015), whose entry holds the values.
    ledger_salt: Mapped[str | None] = mapped_column(String(32))

    incident: Mapped[IncidentRow] = relationship(back_populates="findings")


class RejectRow(Base):
    __tablename__ = "rejects"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("ingest_batches.id"))
    row: Mapped[int] = mapped_column(Integer)
    report_id: Mapped[str] = mapped_column(String(128), default="")
    field: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text)
    record: Mapped[dict[str, object] | None] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


# -- the mission server (issue 4) ---------------------------------------------------------------


class AgreementRevisionRow(Base):
    """An agreement's files as registered (folder or API upload); the newest revision is in force."""

    __tablename__ = "agreement_revisions"
    __table_args__ = (UniqueConstraint("agreement_id", "revision", name="uq_agreement_revision"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    revision: Mapped[int] = mapped_column(Integer)
    files: Mapped[dict[str, str]] = mapped_column(JSON)  # relative path -> base64 of the bytes
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    created_by: Mapped[str] = mapped_column(String(128), default="")


class ApiTokenRow(Base):
    """An API token: only the SHA-256 of its secret is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # public handle, e.g. tok_3f2a...
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    party: Mapped[str | None] = mapped_column(String(32))
    sector: Mapped[str | None] = mapped_column(String(64))
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """One change: who, when, what, the state before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    actor: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    entity: Mapped[str] = mapped_column(String(32))  # incident | finding | token | agreement | report
    entity_id: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[dict[str, object] | None] = mapped_column(JSON)
    after: Mapped[dict[str, object] | None] = mapped_column(JSON)


class PublishedReportRow(Base):
    """A daily report as published (immutable; the public and the parties read this copy)."""

    __tablename__ = "published_reports"
    __table_args__ = (UniqueConstraint("agreement_id", "day", name="uq_published_report"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    day: Mapped[dt.date] = mapped_column(Date)
    html: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    published_by: Mapped[str] = mapped_column(String(128), default="")


class LedgerEntryRow(Base):
    """One entry of the hash chain: ``entry_hash = SHA-256(prev_hash || body)`` (see ledger_verify).

    ``body`` is the canonical JSON exactly as hashed: ``{seq, time, kind, ref, content}``.
    """

    __tablename__ = "ledger_entries"
    __table_args__ = (Index("ix_ledger_day", "day"), Index("ix_ledger_ref", "ref"))

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))  # report | finding | review | publication | agreement
    ref: Mapped[str] = mapped_column(String(160))  # e.g. incident:42
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    entry_hash: Mapped[str] = mapped_column(String(64))


class LedgerHeadRow(Base):
    """The newest entry (one row, id 1): appenders lock it, so the chain has one order."""

    __tablename__ = "ledger_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    entry_hash: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class LedgerRootRow(Base):
    """A closed day: the Merkle root over that day's entries, to publish to both parties."""

    __tablename__ = "ledger_roots"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    first_seq: Mapped[int] = mapped_column(Integer)
    last_seq: Mapped[int] = mapped_column(Integer)
    n_entries: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


# -- sensors, detections and fused events (migration 0005) ---------------------------------------


class SensorRow(Base):
    """An acoustic (or other) sensor of an agreement's network, as registered."""

    __tablename__ = "sensors"
    __table_args__ = (Index("ix_sensor_agreement", "agreement_id", "sector"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the sensor's own id
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    network: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(32), default="acoustic")
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    elevation_m: Mapped[float] = mapped_column(Float, default=0.0)
    timing_sigma_ms: Mapped[float] = mapped_column(Float, default=5.0)
    sector: Mapped[str] = mapped_column(String(64), default="")
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    registered_by: Mapped[str] = mapped_column(String(128), default="")
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class DetectionRow(Base):
    """One arrival at one sensor; idempotent by (sensor, the sensor's own detection id).

    ``arrival_us`` is the arrival time in integer microseconds since 1970-01-01 UTC (exact,
    sortable, the same on every database); ``incident_pk`` the located event's incident, once
    associated.
    """

    __tablename__ = "detections"
    __table_args__ = (
        UniqueConstraint("sensor_id", "detection_id", name="uq_detection"),
        Index("ix_detection_time", "agreement_id", "arrival_us"),
        Index("ix_detection_incident", "incident_pk"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.id"))
    detection_id: Mapped[str] = mapped_column(String(128))
    arrival_us: Mapped[int] = mapped_column(BigInteger)
    signal: Mapped[str] = mapped_column(String(16), default="unknown")
    amplitude_db: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    submitted_by: Mapped[str] = mapped_column(String(128), default="")
    incident_pk: Mapped[int | None] = mapped_column(ForeignKey("incidents.pk"))


class EventRow(Base):
    """One event that several reports describe (fused by truceline.core.fusion, or by an analyst).

    The position is the inverse-covariance mean of the members (covariance in a local plane, x east,
    y north, m²). ``merged_into`` is set when an analyst merged this event into another.
    """

    __tablename__ = "events"
    __table_args__ = (Index("ix_event_day", "agreement_id", "day"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    observed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    day: Mapped[dt.date] = mapped_column(Date)
    lon: Mapped[float] = mapped_column(Float)
    lat: Mapped[float] = mapped_column(Float)
    cov_xx_m2: Mapped[float] = mapped_column(Float)
    cov_xy_m2: Mapped[float] = mapped_column(Float)
    cov_yy_m2: Mapped[float] = mapped_column(Float)
    n_reports: Mapped[int] = mapped_column(Integer)
    n_sources: Mapped[int] = mapped_column(Integer)
    # how many explosions (shots...) it stands for: the most any of its reports says (0013)
    count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    confidence: Mapped[float] = mapped_column(Float)
    origin: Mapped[str] = mapped_column(String(16), default="fusion")  # fusion | split | merge
    merged_into: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class FusionPairRow(Base):
    """Two reports that fusion weighed as one event: ``linked`` (the link that put ``a_pk`` in
    its event, above the threshold), ``possible`` (a possible duplicate for an analyst;
    ``dismissed`` once an analyst said no) or ``weighed`` (below the analyst's queue, kept for
    the expected count of distinct events, ``a_pk`` the vaguer report), with the probability and
    the evidence (``reason``: distance, time apart, kinds, the threshold)."""

    __tablename__ = "fusion_pairs"
    __table_args__ = (
        Index("ix_fusion_pair_a", "a_pk"),
        Index("ix_fusion_pair_b", "b_pk"),
        Index("ix_fusion_pair_status", "agreement_id", "status", "observed_at"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(ForeignKey("agreements.id"))
    a_pk: Mapped[int] = mapped_column(ForeignKey("incidents.pk"))
    b_pk: Mapped[int] = mapped_column(ForeignKey("incidents.pk"))
    status: Mapped[str] = mapped_column(String(16))  # linked | possible | dismissed | weighed
    probability: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    observed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    batch_id: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


# -- evidence files (migration 0010) ------------------------------------------------------------


class AttachmentRow(Base):
    """A file filed on an incident: its bytes are in the attachment store under ``sha256``.

    What the file says about itself (``exif_*``) and whether that agrees with the report
    (``consistent``: None when the file states neither time nor position; ``consistency``: why).
    ``released``: liaisons and the public may see it, as ``released_sha256`` (the bytes served
    after its location was removed; equal to ``sha256`` when ``keep_location``).
    """

    __tablename__ = "attachments"
    __table_args__ = (
        UniqueConstraint("incident_pk", "sha256", name="uq_attachment"),
        Index("ix_attachment_sha", "sha256"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_pk: Mapped[int] = mapped_column(ForeignKey("incidents.pk", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255), default="")
    filed_by: Mapped[str] = mapped_column(String(128), default="")
    filed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    integrity: Mapped[str] = mapped_column(String(128), default="")
    exif_time: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    exif_lon: Mapped[float | None] = mapped_column(Float)
    exif_lat: Mapped[float | None] = mapped_column(Float)
    consistent: Mapped[bool | None] = mapped_column(Boolean)
    consistency: Mapped[str] = mapped_column(Text, default="")
    c2pa: Mapped[str] = mapped_column(Text, default="")
    released: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_location: Mapped[bool] = mapped_column(Boolean, default=False)
    released_sha256: Mapped[str | None] = mapped_column(String(64))
    released_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    released_by: Mapped[str | None] = mapped_column(String(128))


class MapCellRow(Base):
    """The map's summary: findings and incidents without findings counted per day (``period``
    "d") and per month ("m", ``day`` its first day), per grid cell at a few zooms (``zoom``: cells
    of ``CELL_PX`` pixels at it, see :mod:`truceline.store.map_cells`) and per value of every
    field the dashboard filters on, with the sums of their positions.

    Derived, not ledgered: each day's rows are rebuilt from the ledgered ``incidents`` and
    ``findings`` (a day is marked in ``map_stale_days`` by triggers on both tables whenever one of
    its rows changes); the map reads it only for days that are not stale.
    ``finding``: 1 for a finding (``party`` the responsible one), 0 for an incident without
    findings (``party`` reported as acting, ``rule_id`` empty). Withdrawn reports are left out.
    """

    __tablename__ = "map_cells"
    __table_args__ = (
        Index("ix_map_cells_level", "agreement_id", "zoom", "period", "sector", "day"),
        Index("ix_map_cells_day", "agreement_id", "zoom", "period", "day"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agreement_id: Mapped[str] = mapped_column(String(64))
    zoom: Mapped[int] = mapped_column(Integer)
    period: Mapped[str] = mapped_column(String(1))
    day: Mapped[dt.date] = mapped_column(Date)
    gx: Mapped[int] = mapped_column(Integer)
    gy: Mapped[int] = mapped_column(Integer)
    finding: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    sector: Mapped[str] = mapped_column(String(64))
    source_type: Mapped[str] = mapped_column(String(32))
    rule_id: Mapped[str] = mapped_column(String(64))
    party: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    released: Mapped[int] = mapped_column(Integer)
    in_force: Mapped[bool | None] = mapped_column(Boolean)
    in_area: Mapped[bool | None] = mapped_column(Boolean)
    n: Mapped[int] = mapped_column(Integer)
    sx: Mapped[float] = mapped_column(Float)
    sy: Mapped[float] = mapped_column(Float)


class MapStaleDayRow(Base):
    """A day whose ``map_cells`` are out of date (written by triggers, cleared by the rebuild)."""

    __tablename__ = "map_stale_days"

    agreement_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)


class MapCellsVersionRow(Base):
    """When an agreement's ``map_cells`` were last rebuilt (nanoseconds since 1970): the key of the
    server's cache of map answers, which a rebuild makes stale."""

    __tablename__ = "map_cells_version"

    agreement_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
