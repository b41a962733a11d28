"""Request and response models of the API (pydantic 2, at the edge only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    model_validator,
)

from truceline.core.incidents import NO_NUL, refuse_booleans
from truceline.core.probability import icd203_term
from truceline.core.times import as_utc
from truceline.services.auth import Role
from truceline.services.review import Action
from truceline.services.sensors import DetectionRecord, SensorRecord, from_us
from truceline.services.submissions import Verdict
from truceline.store.models import AuditRow, DetectionRow, EventRow, FindingRow, IncidentRow

T = TypeVar("T")

#: The largest key of a stored record (incidents, findings, events, ledger entries: 32-bit
#: integers on PostgreSQL); a larger one in a path or body names nothing and gets a 422.
MAX_KEY = 2**31 - 1
#: A record's key in a body: a JSON integer (strict: ``true`` is not key 1, nor ``"1"`` or 1.0).
Key = Annotated[int, Field(strict=True, ge=1, le=MAX_KEY)]


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
    area_km2: float = Field(description="The area of application (km2, geodesic)")
    territory_km2: dict[str, float] = Field(
        description="Each party's side of the line inside the area of application, by party id "
        "(km2, geodesic; as `agreement check` prints it)"
    )
    n_rules: int
    rules: list[str]
    zones: list[ZoneOut]
    assumptions: list[str] = Field(
        default_factory=list,
        description="What Truceline assumes about this version's geometry (as `agreement check`)",
    )


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


class FindingNumbersOut(_Out):
    """The numbers a finding's explanation states; which apply depends on the rule type (null: does
    not apply). Distances are unsigned, with the side they are on."""

    distance_km: float | None = Field(
        default=None, description="Geodesic distance (km) from the line of the point measured"
    )
    distance_of: str | None = Field(
        default=None, description="The point measured: `incident` (observed, impact) or `origin`"
    )
    side_party: str | None = Field(default=None, description="The party holding that point's side")
    limit_km: float | None = Field(default=None, description="Withdrawal distance for that party")
    zone: str | None = Field(default=None, description="The zone the rule is about")
    weapon_class: str | None = Field(default=None, description="The report's weapon class")
    counted: float | None = Field(
        default=None, description="Count cap: expected count in the zone for the party on the day"
    )
    cap: float | None = Field(default=None, description="Count cap: the cap")
    origin_distance_km: float | None = Field(
        default=None, description="Fire across the line: the origin's distance (km) from the line"
    )
    origin_side_party: str | None = Field(
        default=None, description="Fire across the line: the side the fire most likely came from"
    )
    origin_method: str | None = Field(
        default=None, description="Fire across the line: `origin` (reported) or `bearing` only"
    )
    origin_probability: float | None = Field(
        default=None, description="Fire across the line: probability of that side"
    )


class FindingOut(_Out):
    pk: int
    incident_pk: int
    rule_id: str
    rule_type: str
    responsible: str
    probability: float
    likelihood: str
    explanation: str
    numbers: FindingNumbersOut | None = Field(
        description="The numbers the explanation states; null for a finding recorded before "
        "findings carried them (its explanation says them)"
    )
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
            numbers=None if f.numbers is None else FindingNumbersOut.model_validate(f.numbers),
            status=f.status,
            created_at=as_utc(f.created_at),
            released_at=as_utc(f.released_at),
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
    ambiguous: bool = Field(
        default=False,
        description="Two fixes (an acoustic event whose likelihood has two modes, e.g. the mirror "
        "image across a near-linear array of sensors): lon, lat are the more probable one, "
        "alt_lon, alt_lat the other, as the narrative states",
    )
    alt_lon: float | None = Field(default=None, description="The second fix (WGS84 deg), when ambiguous")
    alt_lat: float | None = Field(default=None, description="The second fix (WGS84 deg), when ambiguous")
    alt_weight: float | None = Field(
        default=None, description="The second fix's probability, when ambiguous"
    )
    side_party: str
    distance_km: float
    p_side: float
    zones: list[str]
    sector: str
    in_force: bool | None = Field(
        default=None,
        description="The agreement was in force on the report's day (null: stored before this "
        "label existed); no rule judges a report outside it",
    )
    in_area: bool | None = Field(
        default=None,
        description="The report lies in the area of application; outside it no rule judges it "
        "and it has no zone or sector",
    )
    status: str
    submitted_by: str
    received_at: dt.datetime
    event_id: int | None = Field(default=None, description="The fused event it belongs to, if any")
    withdrawn_at: dt.datetime | None = Field(
        default=None,
        description="When its source withdrew it (ACLED's deletions list): kept, with no findings, "
        "left out of lists, counts, maps and reports; null: a live report",
    )

    @classmethod
    def of(cls, r: IncidentRow) -> IncidentOut:
        data = {k: getattr(r, k) for k in cls.model_fields if k != "zones"}
        data["observed_at"] = as_utc(r.observed_at)
        data["received_at"] = as_utc(r.received_at)
        data["withdrawn_at"] = as_utc(r.withdrawn_at)
        return cls(**data, zones=[z for z in r.zones.split(";") if z])


class IncidentDetail(IncidentOut):
    findings: list[FindingOut]
    linked_reports: list[LinkedReportOut] = Field(
        default_factory=list, description="The other reports of the same event (nearest first)"
    )
    fusion: list[FusionPairOut] = Field(
        default_factory=list,
        description="Why fusion linked this report, with what probability, and its possible "
        "duplicates (most probable first)",
    )
    detections: list[IncidentDetectionOut] = Field(
        default_factory=list, description="The detections an acoustic incident was located from"
    )


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incidents: list[Any] = Field(
        description="Incident records (schema `Incident`); each is judged on its own, a bad one "
        "never stops the others",
        json_schema_extra={"items": {"$ref": "#/components/schemas/Incident"}},
    )


class ObservationsIn(BaseModel):
    """Monitors' observations as they write them (as ``import --format smm`` reads them)."""

    model_config = ConfigDict(extra="forbid")

    observations: list[Any] = Field(
        description="One object per statement: `id`, `observer_lon`, `observer_lat`, "
        "`observed_from`, `observed_to` (ISO 8601 with a UTC offset), the direction as `bearing` "
        "(`SE`, `W to N`, `135`) or `bearing_from_deg` and `bearing_to_deg` (clockwise), "
        "`distance_min_km`, `distance_max_km`; optional `count`, `kind`, `weapon`, `party`, "
        "`threat_to_monitors`, `source_type`, `reliability`, `credibility`, `narrative`. Each "
        "becomes an incident at its arc-and-range sector's centroid; a bad one never stops the "
        "others",
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


class WithdrawalsIn(BaseModel):
    """ACLED's deletions list as its API answers it: ``data`` rows of ``event_id_cnty`` and
    ``deleted_timestamp`` (Unix seconds); the API's other keys are allowed and ignored."""

    model_config = ConfigDict(extra="allow")
    # strict: a boolean stays one (each row's reader rejects it alone), never the number 1
    data: list[dict[str, str | StrictInt | StrictFloat | StrictBool | None]] = Field(
        max_length=100_000,
        description='[{"event_id_cnty": "UKR12345", "deleted_timestamp": "1741600000"}, ...]',
    )


class WithdrawalsOut(_Out):
    withdrawn: list[str] = Field(description="The report ids withdrawn now")
    already: list[str] = Field(description="Withdrawn before: unchanged")
    not_stored: int = Field(description="Ids not stored here (the list covers every country)")
    rejected: list[RecordResultOut]
    findings_withdrawn: int


class SubmittedOut(_Out):
    batch_id: int
    id: str
    status: Verdict
    pk: int | None
    findings: int


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    comment: str = Field(default="", max_length=4000, pattern=NO_NUL)
    findings: list[Key] | None = Field(
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
            at=as_utc(a.at),
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
            observed_at=as_utc(i.observed_at),
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
    incidents: int = Field(description="Reports judged: in the area, the agreement in force")
    outside_area: int = Field(description="Reports outside the area of application (not judged)")
    not_in_force: int = Field(description="Reports on a day the agreement was not in force (not judged)")
    withdrawn: int = Field(
        default=0,
        description="Reports their source withdrew (ACLED's deletions applied): kept, not counted",
    )
    incidents_by_kind: dict[str, int]
    incidents_by_sector: dict[str, int]
    events: int = Field(
        description="Distinct events among the judged reports: the reports of one fused event "
        "count once, a report in no event counts alone"
    )
    events_expected: float = Field(
        description="The expected number of distinct events among ``events``: each counts 1 less "
        "the probability that it is another's duplicate (the possible duplicates and the pairs "
        "weighed for the count, at most 1); a dismissed pair counts nothing"
    )
    explosion_events: int = Field(description="Those of the events with an explosion reported")
    explosions: int = Field(
        description='Explosions: per event, the most any of its reports counts ("12 '
        'explosions"), summed; not the number of reports'
    )
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
    published_by: str | None = Field(
        default=None, description="Who published (a token); only for those who may read the audit"
    )


# -- tokens -----------------------------------------------------------------------------------


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    name: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    party: str | None = Field(default=None, max_length=32, pattern=NO_NUL)
    sector: str | None = Field(default=None, max_length=64, pattern=NO_NUL)


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
    public_key: str | None = Field(
        default=None, description="The mission's Ed25519 public key (hex) that signed the root"
    )
    signature: str | None = Field(
        default=None,
        description="Ed25519 signature (hex) over truceline-ledger-root/1, day, root, n_entries "
        "(one per line); check with `python -m truceline.ledger_verify --roots`",
    )
    checkpoint: bool = Field(
        default=False,
        description="A checkpoint of a day not closed yet: the root of its first n_entries entries "
        "(through last_seq), signed the same way; the day's own root comes when it closes",
    )


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
    #: rows stored before the ledger kept their table, by table (`truceline ledger backfill`)
    uncovered: dict[str, int] = Field(default_factory=dict)


# -- sensors, detections, acoustic localisation -------------------------------------------------


class SensorsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sensors: list[Any] = Field(
        description="Sensor records; each is judged on its own, a bad one never stops the others",
        json_schema_extra={"items": SensorRecord.model_json_schema()},
    )


class DetectionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    detections: list[Any] = Field(
        description="Detection records; each is judged on its own, a bad one never stops the others",
        json_schema_extra={"items": DetectionRecord.model_json_schema()},
    )


class RecordVerdictOut(_Out):
    index: int = Field(description="0-based position in the request")
    id: str
    status: str = Field(
        description="sensors: created | updated | unchanged | rejected; "
        "detections: accepted | duplicate | rejected"
    )
    pk: int | None = None
    field: str | None = None
    reason: str | None = None
    fix: str | None = None


class VerdictsOut(_Out):
    counts: dict[str, int]
    results: list[RecordVerdictOut]


class PointGeometry(_Out):
    type: Literal["Point"]
    coordinates: list[float] = Field(description="[lon, lat] (WGS84 deg)")


class SensorProperties(_Out):
    id: str
    network: str
    kind: str
    status: Literal["active", "retired"]
    detections_24h: int
    elevation_m: float
    timing_sigma_ms: float
    sector: str


class SensorFeature(_Out):
    type: Literal["Feature"]
    geometry: PointGeometry
    properties: SensorProperties


class SensorCollection(_Out):
    type: Literal["FeatureCollection"]
    features: list[SensorFeature]


class DetectionOut(_Out):
    pk: int
    sensor_id: str
    detection_id: str
    arrival_time: dt.datetime = Field(description="UTC, to the microsecond")
    signal: str
    amplitude_db: float | None
    received_at: dt.datetime
    incident_pk: int | None = Field(description="The located event's incident, once associated")

    @classmethod
    def of(cls, d: DetectionRow) -> DetectionOut:
        return cls(
            pk=d.pk,
            sensor_id=d.sensor_id,
            detection_id=d.detection_id,
            arrival_time=from_us(d.arrival_us),
            signal=d.signal,
            amplitude_db=d.amplitude_db,
            received_at=as_utc(d.received_at),
            incident_pk=d.incident_pk,
        )


class LocateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: dt.datetime = Field(description="arrival >= start (ISO 8601 with a UTC offset)")
    end: dt.datetime = Field(description="arrival < end; at most 2 days after start")
    temperature_c: float | None = Field(
        default=None, ge=-60, le=60, description="Air temperature (deg C); default 15"
    )
    wind_speed_mps: float | None = Field(default=None, ge=0, le=60, description="default 0")
    wind_from_deg: float | None = Field(
        default=None, ge=0, lt=360, description="Where the wind blows from (deg); default 0"
    )
    temperature_sigma_c: float | None = Field(
        default=None, gt=0, le=50,
        description="Uncertainty of the temperature (1 sigma, deg C); default 2 when a temperature "
        "is given, 10 when not",
    )  # fmt: skip
    wind_sigma_mps: float | None = Field(
        default=None, gt=0, le=50,
        description="Uncertainty of each wind component (1 sigma, m/s); default 2 when a wind speed "
        "is given, 5 when not",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: object) -> object:
        return refuse_booleans(cls.__name__, data)


class LocatedIncidentOut(_Out):
    pk: int | None
    report_id: str
    status: str
    kind: str
    observed_at: dt.datetime
    lon: float
    lat: float
    uncertainty_m: float
    n_detections: int
    event_id: int | None
    reason: str | None
    ambiguous: bool = Field(
        description="The likelihood has a second mode (the mirror image across a near-linear "
        "array): lon, lat are the more probable fix, alt_lon, alt_lat the other"
    )
    alt_lon: float | None = Field(description="The second fix (WGS84 deg), when ambiguous")
    alt_lat: float | None = Field(description="The second fix (WGS84 deg), when ambiguous")
    alt_weight: float | None = Field(description="The second fix's probability, when ambiguous")
    salvo_report_id: str | None = Field(
        description="The report_id of the first round of the salvo this event belongs to (rounds "
        "from one firing point, within their ellipses, seconds apart); null when fired alone"
    )
    salvo_size: int = Field(description="Rounds in that salvo (1 when fired alone)")


class UnassociatedOut(_Out):
    sensor_id: str
    detection_id: str
    reason: str
    message: str


class LocateOut(_Out):
    detections: int = Field(description="Detections in the window not yet associated")
    events: int
    accepted: int
    duplicates: int
    rejected: int
    findings: int
    linked: int = Field(description="Detections now linked to an incident")
    incidents: list[LocatedIncidentOut]
    unassociated: list[UnassociatedOut] = Field(description="Detections no event holds (first 1000)")


# -- fused events -------------------------------------------------------------------------------


class LinkedReportOut(_Out):
    pk: int
    report_id: str
    source_type: str
    submitted_by: str = Field(description="The reporter (token subject)")
    kind: str
    observed_at: dt.datetime
    distance_m: float = Field(description="Geodesic distance from this report (m)")
    time_offset_s: float = Field(description="Its time minus this report's (s)")


class FusionPairOut(_Out):
    pk: int
    status: str = Field(description="linked (fusion joined the two) | possible (a possible duplicate)")
    probability: float = Field(description="Probability that the two reports describe one event")
    other_pk: int
    other_report_id: str
    reason: dict[str, Any] = Field(
        description="The evidence: distance_m, time_apart_s, kinds, sources, uncertainty_m, and "
        "the thresholds and event density fusion used"
    )


class DuplicateReportOut(_Out):
    pk: int
    report_id: str
    event_id: int | None
    source_type: str
    observed_at: dt.datetime


class DuplicateOut(_Out):
    pk: int
    probability: float = Field(description="Probability that the two reports describe one event")
    a: DuplicateReportOut
    b: DuplicateReportOut
    reason: dict[str, Any]


class IncidentDetectionOut(_Out):
    sensor_id: str
    detection_id: str
    arrival_time: dt.datetime
    signal: str


class EventOut(_Out):
    id: int
    agreement_id: str
    observed_at: dt.datetime
    lon: float
    lat: float
    cov_m2: list[list[float]] = Field(description="2x2 position covariance (x east, y north; m²)")
    n_reports: int
    n_sources: int
    count: int = Field(
        description="How many explosions (shots...) it stands for: the most any of its reports "
        "says, not the number of reports; 0 once merged into another"
    )
    confidence: float
    origin: str = Field(description="fusion | split | merge")
    merged_into: int | None
    members: list[IncidentOut]

    @classmethod
    def of(cls, ev: EventRow, members: list[IncidentRow]) -> EventOut:
        return cls(
            id=ev.pk,
            agreement_id=ev.agreement_id,
            observed_at=as_utc(ev.observed_at),
            lon=ev.lon,
            lat=ev.lat,
            cov_m2=[[ev.cov_xx_m2, ev.cov_xy_m2], [ev.cov_xy_m2, ev.cov_yy_m2]],
            n_reports=ev.n_reports,
            n_sources=ev.n_sources,
            count=ev.count,
            confidence=ev.confidence,
            origin=ev.origin,
            merged_into=ev.merged_into,
            members=[IncidentOut.of(m) for m in members],
        )


class SplitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incidents: list[Key] = Field(
        min_length=1, max_length=1000, description="The reports (incident pks) to move into a new event"
    )
    comment: str = Field(default="", max_length=4000, pattern=NO_NUL)


class DuplicateDecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    same: bool = Field(
        strict=True, description="true: one event (the reports are linked); false: dismissed"
    )
    comment: str = Field(default="", max_length=4000, pattern=NO_NUL)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Key] = Field(
        min_length=2, max_length=100, description="Event ids; all merge into the smallest"
    )
    comment: str = Field(default="", max_length=4000, pattern=NO_NUL)


class DecisionOut(_Out):
    events: list[EventOut]
    audit: list[int] = Field(description="The audit rows written")


IncidentDetail.model_rebuild()


# -- attachments (issue 21) ---------------------------------------------------------------------


class AttachmentOut(_Out):
    """An evidence file filed on an incident. Liaisons and the public see released ones, without
    who filed them and without the file's own position unless the analyst kept it."""

    pk: int
    incident_pk: int
    sha256: str = Field(description="SHA-256 of the bytes as filed (the ledger's key)")
    size_bytes: int
    media_type: str = Field(description="Detected from the bytes, not the name")
    filename: str
    filed_by: str | None = None
    filed_at: dt.datetime
    integrity: str = Field(description="How the file was checked whole")
    exif_time: dt.datetime | None = None
    exif_lon: float | None = None
    exif_lat: float | None = None
    consistent: bool | None = Field(
        description="Whether the file's own time and position agree with the report's "
        "(null: the file states neither)"
    )
    consistency: str = Field(description="Why: the distance and time apart, with the tolerance")
    c2pa: str = Field(description="C2PA content credentials: the reader's result")
    released: bool
    keep_location: bool
    released_sha256: str | None = Field(
        default=None,
        description="SHA-256 of the bytes liaisons and the public are given (location removed "
        "unless kept: then it differs from sha256)",
    )
    released_at: dt.datetime | None = None
    created: bool | None = Field(
        default=None, description="On filing: false when the same bytes were filed before"
    )


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_location: bool = Field(
        default=False,
        strict=True,
        description="Give liaisons and the public the file with its location metadata (EXIF GPS, "
        "XMP); by default they get a copy without it",
    )
    comment: str = Field(default="", max_length=2000, pattern=NO_NUL)
