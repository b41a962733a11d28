"""Request and response models of the API (pydantic 2, at the edge only)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from truceline.core.probability import icd203_term
from truceline.services.auth import Role
from truceline.services.review import Action
from truceline.services.submissions import Verdict
from truceline.store.models import AuditRow, FindingRow, IncidentRow

T = TypeVar("T")


def utc(t: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; everything in the store is UTC."""
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(_Out, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class Health(_Out):
    status: str
    version: str


class Ready(_Out):
    status: str
    database: str
    schema_at_head: bool


class Me(_Out):
    subject: str
    role: Role
    party: str | None
    sector: str | None
    anonymous: bool


# -- agreements -------------------------------------------------------------------------------


class AgreementOut(_Out):
    id: str
    name: str
    source: str
    content_hash: str
    loaded_at: dt.datetime
    revisions: int


class ZoneOut(_Out):
    id: str
    name: str
    type: str
    buffer: bool
    area_km2: dict[str, float]


class VersionOut(_Out):
    index: int
    effective_from: dt.date
    description: str = ""
    line_length_km: float
    n_rules: int
    rules: list[str]
    zones: list[ZoneOut]


class SectorOut(_Out):
    id: str
    nation: str
    name: str
    line_km: float


class AgreementDetail(AgreementOut):
    parties: list[dict[str, str]]
    left: str
    right: str
    versions: list[VersionOut]
    sectors: list[SectorOut]


class AgreementUpload(BaseModel):
    """An agreement folder as files: ``agreement.yaml`` plus the geometry files it names."""

    model_config = ConfigDict(extra="forbid")

    files: dict[str, str] = Field(
        description="Text files by relative path (agreement.yaml, *.geojson, *.kml)", max_length=64
    )
    files_base64: dict[str, str] = Field(
        default_factory=dict,
        description="Binary files (GeoPackage, Shapefile parts) as base64",
        max_length=64,
    )


class AgreementStored(_Out):
    agreement: AgreementOut
    revision: int
    created: bool = Field(description="False when the upload equals the revision in force")


# -- incidents --------------------------------------------------------------------------------


class FindingOut(_Out):
    pk: int
    incident_pk: int
    rule_id: str
    rule_type: str
    responsible: str
    probability: float
    likelihood: str
    explanation: str
    status: str
    created_at: dt.datetime
    released_at: dt.datetime | None

    @classmethod
    def of(cls, f: FindingRow) -> FindingOut:
        return cls(
            pk=f.pk,
            incident_pk=f.incident_pk,
            rule_id=f.rule_id,
            rule_type=f.rule_type,
            responsible=f.responsible,
            probability=f.probability,
            likelihood=str(icd203_term(f.probability)),
            explanation=f.explanation,
            status=f.status,
            created_at=utc(f.created_at),
            released_at=utc(f.released_at),
        )


class IncidentOut(_Out):
    pk: int
    agreement_id: str
    report_id: str
    observed_at: dt.datetime
    day: dt.date
    time_precision: str
    lon: float
    lat: float
    uncertainty_m: float
    kind: str
    weapon_class: str | None
    count: int
    party: str | None
    origin_lon: float | None
    origin_lat: float | None
    origin_uncertainty_m: float | None
    bearing_deg: float | None
    source_type: str
    reliability: str
    credibility: int
    narrative: str
    side_party: str
    distance_km: float
    p_side: float
    zones: list[str]
    sector: str
    status: str
    submitted_by: str
    received_at: dt.datetime

    @classmethod
    def of(cls, r: IncidentRow) -> IncidentOut:
        data = {k: getattr(r, k) for k in cls.model_fields if k != "zones"}
        data["observed_at"] = utc(r.observed_at)
        data["received_at"] = utc(r.received_at)
        return cls(**data, zones=[z for z in r.zones.split(";") if z])


class IncidentDetail(IncidentOut):
    findings: list[FindingOut]


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incidents: list[Any] = Field(
        description="Incident records (schema `Incident`); each is judged on its own, a bad one "
        "never stops the others",
        json_schema_extra={"items": {"$ref": "#/components/schemas/Incident"}},
    )


class RecordResultOut(_Out):
    index: int = Field(description="0-based position in the request")
    id: str
    status: Verdict
    pk: int | None = None
    field: str | None = None
    reason: str | None = None
    findings: int = 0


class BatchOut(_Out):
    batch_id: int
    accepted: int
    duplicates: int
    rejected: int
    results: list[RecordResultOut]


class SubmittedOut(_Out):
    batch_id: int
    id: str
    status: Verdict
    pk: int | None
    findings: int


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    comment: str = Field(default="", max_length=4000)
    findings: list[int] | None = Field(
        default=None, max_length=1000, description="Finding pks to act on (default: all of the incident)"
    )


class ReviewOut(_Out):
    incident: IncidentOut
    findings: list[FindingOut]
    changes: int


class AuditOut(_Out):
    pk: int
    at: dt.datetime
    actor: str
    role: str
    entity: str
    entity_id: str
    action: str
    comment: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @classmethod
    def of(cls, a: AuditRow) -> AuditOut:
        return cls(
            pk=a.pk,
            at=utc(a.at),
            actor=a.actor,
            role=a.role,
            entity=a.entity,
            entity_id=a.entity_id,
            action=a.action,
            comment=a.comment,
            before=a.before,
            after=a.after,
        )


# -- findings and statistics ------------------------------------------------------------------


class FindingView(FindingOut):
    """A finding with where and what it is about. For liaisons the raw report's own fields
    (``report_id``, ``incident_pk``, ``source_type``, ``submitted_by``) are null."""

    incident_pk: int | None  # type: ignore[assignment]
    report_id: str | None
    source_type: str | None
    day: dt.date
    observed_at: dt.datetime
    kind: str
    weapon_class: str | None
    lon: float
    lat: float
    sector: str
    side_party: str
    distance_km: float
    zones: list[str]

    @classmethod
    def view(cls, f: FindingRow, i: IncidentRow, *, redact: bool) -> FindingView:
        base = FindingOut.of(f).model_dump()
        base.update(
            report_id=None if redact else i.report_id,
            source_type=None if redact else i.source_type,
            incident_pk=None if redact else i.pk,
            day=i.day,
            observed_at=utc(i.observed_at),
            kind=i.kind,
            weapon_class=i.weapon_class,
            lon=i.lon,
            lat=i.lat,
            sector=i.sector,
            side_party=i.side_party,
            distance_km=i.distance_km,
            zones=[z for z in i.zones.split(";") if z],
        )
        return cls(**base)


class DailyStatistics(_Out):
    day: dt.date
    incidents: int
    incidents_by_kind: dict[str, int]
    incidents_by_sector: dict[str, int]
    findings: int
    violations: int = Field(description="Findings with probability >= 0.5")
    findings_by_rule: dict[str, int]
    violations_by_party: dict[str, int]
    findings_by_status: dict[str, int]


# -- reports ----------------------------------------------------------------------------------


class PublishedOut(_Out):
    day: dt.date
    sha256: str
    published_at: dt.datetime
    published_by: str


# -- tokens -----------------------------------------------------------------------------------


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str = Field(min_length=1, max_length=128)
    party: str | None = Field(default=None, max_length=32)
    sector: str | None = Field(default=None, max_length=64)


class TokenOut(_Out):
    id: str
    name: str
    role: str
    party: str | None
    sector: str | None
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None


class TokenIssued(TokenOut):
    token: str = Field(description="The secret; shown once, store it now")


# -- ledger -----------------------------------------------------------------------------------


class LedgerRoot(_Out):
    day: dt.date
    root: str = Field(description="RFC 6962 Merkle root (SHA-256, hex) over the day's entry hashes")
    first_seq: int
    last_seq: int
    n_entries: int
    closed_at: dt.datetime


class LedgerProblem(_Out):
    seq: int | None
    kind: str
    message: str


class LedgerVerification(_Out):
    ok: bool
    entries: int
    days_closed: int
    incidents: int
    findings: int
    problems: list[LedgerProblem]
