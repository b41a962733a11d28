"""Sensors and their detections in the store, and locating stored detections as incidents.

- :func:`register_sensors`: register or update sensors (one verdict per record: created, updated,
  unchanged, rejected with the field and the fix); each change is in the audit log.
- :func:`sensors_geojson`: the sensors of an agreement as a GeoJSON FeatureCollection (a monitor
  sees those of their sector), each with its detections of the last 24 hours.
- :func:`submit_detections`: a batch, idempotent by (sensor, the sensor's own detection id).
- :func:`list_detections`: filtered, in pages.
- :func:`locate_stored`: locate the stored detections of a time window that no event holds yet
  (:func:`truceline.services.acoustic.locate_arrays`), store the events as incidents through the
  same idempotent ingest and rule engine as every report, and link each detection to its incident.

The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from sqlalchemy import bindparam, func, select, tuple_, update
from sqlalchemy.orm import Session

from truceline.core.acoustic import SIGNALS, SensorNetwork, Weather
from truceline.core.agreement import Agreement
from truceline.core.incidents import IncidentBatch, refuse_booleans, utc_time
from truceline.core.rules import classify
from truceline.core.times import EPOCH, as_utc, require_utc, utc_isoformat
from truceline.errors import ConflictError, PayloadTooLargeError, ValidationError, safe_text
from truceline.io import acoustic_csv
from truceline.io.incidents_io import UNICODE_REASON
from truceline.services.audit import record_change
from truceline.services.auth import Principal, Scope
from truceline.services.queries import Page, decode_cursor, encode_cursor
from truceline.services.scope import sensor_clauses
from truceline.services.submissions import Verdict
from truceline.store import ledger
from truceline.store.db import bulk_insert
from truceline.store.models import DetectionRow, IncidentRow, SensorRow

__all__ = [
    "DetectionRecord",
    "LocateOutcome",
    "RecordVerdict",
    "SensorRecord",
    "list_detections",
    "locate_stored",
    "register_sensors",
    "sensors_geojson",
    "submit_detections",
]

_US = dt.timedelta(microseconds=1)
#: A time as sensors write it (to the microsecond), for the error of one without an offset.
_EXAMPLE_TIME = "2025-03-01T04:12:00.123456Z"
_CHUNK = 500
#: A detection may be stamped this far after the server's clock (clock skew of a device).
FUTURE_SKEW = dt.timedelta(seconds=5)
#: The longest window one locate call covers, and the most detections it takes.
MAX_LOCATE_WINDOW = dt.timedelta(days=2)
MAX_LOCATE_DETECTIONS = 200_000
_ID = r"^[^\x00-\x1f\x7f]+$"  # printable: no control characters (PostgreSQL refuses NUL)


def to_us(t: dt.datetime) -> int:
    """A UTC datetime as integer microseconds since 1970 (exact)."""
    return (t.astimezone(dt.UTC) - EPOCH) // _US


def from_us(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=int(us))


def _aware(v: dt.datetime) -> dt.datetime:
    """In UTC and within the times a report may carry (fusion and the store compute on them)."""
    return utc_time(v)


def _finite(v: float | None) -> float | None:
    if v is not None and not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


class SensorRecord(BaseModel):
    """A sensor as registered (WGS84 lon/lat; the same columns as sensors.csv)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64, pattern=_ID, description="The sensor's own id")
    network: str = Field(default="", max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    kind: str = Field(default="acoustic", min_length=1, max_length=32, pattern=_ID)
    lon: float = Field(ge=-180, le=180, description="WGS84 longitude (deg)")
    lat: float = Field(ge=-90, le=90, description="WGS84 latitude (deg)")
    elevation_m: float = Field(default=0.0, ge=-500, le=9000)
    timing_sigma_ms: float = Field(
        default=5.0, gt=0, le=10_000, description="1-sigma timing error of the sensor's clock (ms)"
    )
    retired_at: dt.datetime | None = Field(
        default=None, description="When the sensor was taken out of service (null: in service)"
    )

    _finite_numbers = field_validator("lon", "lat", "elevation_m", "timing_sigma_ms")(_finite)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: object) -> object:
        return refuse_booleans(cls.__name__, data)

    @field_validator("retired_at")
    @classmethod
    def _in_utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        return None if v is None else _aware(require_utc(v, example=_EXAMPLE_TIME))


class DetectionRecord(BaseModel):
    """One arrival at one sensor (the same columns as detections.csv)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sensor_id: str = Field(min_length=1, max_length=64, pattern=_ID)
    detection_id: str = Field(
        min_length=1, max_length=128, pattern=_ID, description="The sensor's own id (idempotency key)"
    )
    arrival_time: dt.datetime = Field(description="ISO 8601 with a UTC offset, to the microsecond")
    signal: Literal["unknown", "muzzle_blast", "impact"] = "unknown"
    amplitude_db: Annotated[float, Field(ge=-200, le=300)] | None = None

    _finite_numbers = field_validator("amplitude_db")(_finite)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: object) -> object:
        return refuse_booleans(cls.__name__, data)

    @field_validator("arrival_time")
    @classmethod
    def _in_utc(cls, v: dt.datetime) -> dt.datetime:
        return _aware(require_utc(v, example=_EXAMPLE_TIME))


_HINTS = {
    "id": "give the sensor's own id, e.g. S-014",
    "lon": "WGS84 longitude in decimal degrees, e.g. 37.55",
    "lat": "WGS84 latitude in decimal degrees, e.g. 48.12",
    "timing_sigma_ms": "a positive number of milliseconds, e.g. 5",
    "retired_at": "ISO 8601 with a UTC offset, e.g. 2025-03-01T00:00:00Z",
    "sensor_id": "the id the sensor was registered with (POST /sensors)",
    "detection_id": "the sensor's own id of the detection, unique per sensor",
    "arrival_time": "ISO 8601 with a UTC offset, e.g. 2025-03-01T12:00:00.123456Z",
    "signal": "one of: unknown, muzzle_blast, impact",
    "amplitude_db": "a number of dB, or leave it out",
}


@dataclass(frozen=True, slots=True)
class RecordVerdict:
    """What became of one record (``index`` is its 0-based position in the request)."""

    index: int
    id: str
    status: str  # accepted | duplicate | rejected (detections); created | updated | unchanged
    pk: int | None = None
    field: str | None = None
    reason: str | None = None
    fix: str | None = None


def _validate(
    adapter: TypeAdapter[Any], records: Sequence[Any], id_of: str
) -> tuple[list[tuple[int, Any]], list[RecordVerdict]]:
    """Each record on its own: the valid ones, and a rejection (field, reason, fix) per bad one."""
    good: list[tuple[int, Any]] = []
    bad: list[RecordVerdict] = []
    for k, r in enumerate(records):  # per-record validation at the edge (messages per record)
        rid = safe_text(str(r.get(id_of, ""))[:128]) if isinstance(r, dict) else ""
        try:
            good.append((k, adapter.validate_python(r)))
        except pydantic.ValidationError as exc:
            e = exc.errors()[0]
            fld = safe_text(".".join(str(p) for p in e.get("loc", ()))) or "record"
            leaf = safe_text(str(e.get("loc", ("",))[-1])) if e.get("loc") else ""
            msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
            if e.get("type") == "model_type":
                fld, msg = "record", "not a JSON object; send one object per record"
            elif e.get("type") == "string_unicode":
                msg = UNICODE_REASON
                if not e.get("loc"):  # a field name that is not text names itself
                    fld, msg = safe_text(str(e.get("input"))), f"the field name {UNICODE_REASON}"
            fix = (
                f"remove `{leaf}`"
                if e.get("type") == "extra_forbidden"
                else _HINTS.get(leaf, "see the request schema in /docs")
            )
            bad.append(RecordVerdict(k, rid, Verdict.rejected, field=fld, reason=msg, fix=fix))
    return good, bad


def _sectors(agreement: Agreement, lon: np.ndarray, lat: np.ndarray, now: dt.datetime) -> list[str]:
    """The sector of each position, exactly as an incident there would get it."""
    if not len(lon):
        return []
    n = len(lon)
    batch = IncidentBatch.from_columns(
        lon=lon,
        lat=lat,
        observed_at=np.full(n, np.datetime64(now.replace(tzinfo=None), "us")),
        kind=np.full(n, "damage"),  # a kind no rule bans: only the geometry is wanted
    )
    return [str(s) for s in classify(agreement, batch).sector]


def _sensor_state(r: SensorRow) -> dict[str, object]:
    return {
        "network": r.network,
        "kind": r.kind,
        "lon": r.lon,
        "lat": r.lat,
        "elevation_m": r.elevation_m,
        "timing_sigma_ms": r.timing_sigma_ms,
        "sector": r.sector,
        "retired_at": utc_isoformat(r.retired_at),
    }


def register_sensors(
    session: Session,
    agreement: Agreement,
    records: Sequence[Any],
    *,
    actor: Principal,
    now: dt.datetime,
) -> list[RecordVerdict]:
    """Register new sensors and update known ones; every change goes to the audit log."""
    good, out = _validate(TypeAdapter(SensorRecord), records, "id")
    seen: dict[str, int] = {}
    fresh: list[tuple[int, SensorRecord]] = []
    for k, rec in good:
        if rec.id in seen:
            out.append(
                RecordVerdict(
                    k,
                    rec.id,
                    Verdict.rejected,
                    field="id",
                    reason=f"repeats sensor {rec.id!r} of record {seen[rec.id]}",
                    fix="send one record per sensor",
                )
            )
            continue
        seen[rec.id] = k
        fresh.append((k, rec))
    ids = [r.id for _, r in fresh]
    stored = {
        s.id: s
        for k in range(0, len(ids), _CHUNK)
        for s in session.execute(
            select(SensorRow).where(SensorRow.id.in_(ids[k : k + _CHUNK]))
        ).scalars()
    }
    sector = _sectors(
        agreement,
        np.array([r.lon for _, r in fresh]),
        np.array([r.lat for _, r in fresh]),
        now,
    )
    changed: list[str] = []
    for (k, rec), sec in zip(fresh, sector, strict=True):  # registrations: a network at a time
        row = stored.get(rec.id)
        if row is not None and row.agreement_id != agreement.id:
            out.append(
                RecordVerdict(
                    k,
                    rec.id,
                    Verdict.rejected,
                    field="id",
                    reason=f"sensor {rec.id!r} belongs to agreement {row.agreement_id!r}",
                    fix="give the sensor another id, or register it under its agreement",
                )
            )
            continue
        values = {
            "network": rec.network,
            "kind": rec.kind,
            "lon": rec.lon,
            "lat": rec.lat,
            "elevation_m": rec.elevation_m,
            "timing_sigma_ms": rec.timing_sigma_ms,
            "sector": sec,
            "retired_at": rec.retired_at,
        }
        before: dict[str, object] | None = None
        if row is None:
            row = SensorRow(
                id=rec.id,
                agreement_id=agreement.id,
                registered_at=now,
                registered_by=actor.subject,
                **values,
            )
            session.add(row)
            action, verdict = "register", "created"
        else:
            before = _sensor_state(row)
            for name, v in values.items():
                setattr(row, name, v)
            if _sensor_state(row) == before:
                out.append(RecordVerdict(k, rec.id, "unchanged"))
                continue
            action, verdict = "update", "updated"
        session.flush()
        record_change(
            session,
            actor=actor,
            entity="sensor",
            entity_id=rec.id,
            action=action,
            now=now,
            before=before,
            after=_sensor_state(row),
        )
        out.append(RecordVerdict(k, rec.id, verdict))
        changed.append(rec.id)
    # the sensors as registered (every column), one ledger entry for the call
    ledger.record_rows(session, "sensors", changed, now=now)
    out.sort(key=lambda v: v.index)
    return out


def sensors_geojson(
    session: Session, agreement_id: str, *, scope: Scope, now: dt.datetime
) -> dict[str, Any]:
    """The agreement's sensors as GeoJSON points with status and detections of the last 24 h.

    A monitor (restricted scope) sees the sensors of their sector only.
    """
    q = (
        select(SensorRow)
        .where(SensorRow.agreement_id == agreement_id, *sensor_clauses(scope))
        .order_by(SensorRow.id)
    )
    rows = list(session.execute(q).scalars())
    since = to_us(now - dt.timedelta(hours=24))
    counts = dict(
        session.execute(
            select(DetectionRow.sensor_id, func.count())
            .where(
                DetectionRow.agreement_id == agreement_id,
                DetectionRow.arrival_us >= since,
                DetectionRow.arrival_us <= to_us(now),
            )
            .group_by(DetectionRow.sensor_id)
        ).all()
    )
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
                "properties": {
                    "id": r.id,
                    "network": r.network,
                    "kind": r.kind,
                    "status": "retired"
                    if r.retired_at is not None and as_utc(r.retired_at) <= now
                    else "active",
                    "detections_24h": int(counts.get(r.id, 0)),
                    "elevation_m": r.elevation_m,
                    "timing_sigma_ms": r.timing_sigma_ms,
                    "sector": r.sector,
                },
            }
            for r in rows
        ],
    }


def submit_detections(
    session: Session,
    agreement: Agreement,
    records: Sequence[Any],
    *,
    actor: Principal,
    now: dt.datetime,
) -> list[RecordVerdict]:
    """Store a batch of detections; a (sensor, detection id) already stored is a duplicate.

    The same id with another arrival time or signal is rejected (detections are immutable).
    """
    good, out = _validate(TypeAdapter(DetectionRecord), records, "detection_id")
    sensor_ids = sorted({r.sensor_id for _, r in good})
    sensors = {
        s.id: s
        for k in range(0, len(sensor_ids), _CHUNK)
        for s in session.execute(
            select(SensorRow).where(SensorRow.id.in_(sensor_ids[k : k + _CHUNK]))
        ).scalars()
    }
    keys = [(r.sensor_id, r.detection_id) for _, r in good]
    stored: dict[tuple[str, str], tuple[int, int, str]] = {}
    for k in range(0, len(keys), _CHUNK):
        q = select(
            DetectionRow.sensor_id,
            DetectionRow.detection_id,
            DetectionRow.pk,
            DetectionRow.arrival_us,
            DetectionRow.signal,
        ).where(tuple_(DetectionRow.sensor_id, DetectionRow.detection_id).in_(keys[k : k + _CHUNK]))
        for s, d, pk, us, sig in session.execute(q):
            stored[(s, d)] = (pk, us, sig)
    latest = now + FUTURE_SKEW
    rows: list[dict[str, Any]] = []
    row_of: list[tuple[int, str]] = []
    seen: dict[tuple[str, str], int] = {}
    for k, rec in good:  # per-record verdicts (the checks themselves are dictionary lookups)
        key = (rec.sensor_id, rec.detection_id)
        us = to_us(rec.arrival_time)

        def reject(fld: str, why: str, fix: str, _k: int = k, _id: str = rec.detection_id) -> None:
            out.append(RecordVerdict(_k, _id, Verdict.rejected, field=fld, reason=why, fix=fix))

        sensor = sensors.get(rec.sensor_id)
        if sensor is None or sensor.agreement_id != agreement.id:
            reject(
                "sensor_id",
                f"unknown sensor {rec.sensor_id!r}" + ("" if sensor is None else " in this agreement"),
                "register it first with POST /sensors, or fix the id",
            )
            continue
        if key in seen:
            out.append(
                RecordVerdict(
                    k,
                    rec.detection_id,
                    Verdict.duplicate,
                    reason=f"repeats record {seen[key]} of this request",
                )
            )
            continue
        seen[key] = k
        if key in stored:
            pk, s_us, s_sig = stored[key]
            if s_us == us and s_sig == rec.signal:
                out.append(
                    RecordVerdict(
                        k,
                        rec.detection_id,
                        Verdict.duplicate,
                        pk=pk,
                        reason="already stored (same sensor, id, time and signal)",
                    )
                )
            else:
                reject(
                    "detection_id",
                    f"sensor {rec.sensor_id!r} already has a different detection "
                    f"{rec.detection_id!r} (arrival {from_us(s_us).isoformat()}, {s_sig})",
                    "detections are immutable: send a new detection id",
                )
            continue
        if rec.arrival_time > latest:
            reject(
                "arrival_time",
                f"arrival_time {rec.arrival_time.isoformat()} is in the future "
                f"(server time {now.isoformat()})",
                "check the sensor's clock and time zone",
            )
            continue
        if sensor.retired_at is not None and rec.arrival_time > as_utc(sensor.retired_at):
            reject(
                "arrival_time",
                f"sensor {rec.sensor_id!r} was retired at {as_utc(sensor.retired_at).isoformat()}",
                "only arrivals before the sensor's retirement are accepted",
            )
            continue
        rows.append(
            {
                "agreement_id": agreement.id,
                "sensor_id": rec.sensor_id,
                "detection_id": rec.detection_id,
                "arrival_us": us,
                "signal": rec.signal,
                "amplitude_db": rec.amplitude_db,
                "received_at": now,
                "submitted_by": actor.subject,
                "incident_pk": None,
            }
        )
        row_of.append((k, rec.detection_id))
    conn = session.connection()
    pks: list[int] = []
    for k in range(0, len(rows), _CHUNK):
        pks.extend(bulk_insert(conn, DetectionRow.__table__, rows[k : k + _CHUNK], new_pks="pk"))
    for row, pk in zip(rows, pks, strict=True):
        row["pk"] = pk
    # every detection in the ledger as written (one entry for the batch)
    ledger.record_rows(session, "detections", [], known=rows, now=now)
    out.extend(
        RecordVerdict(k, did, Verdict.accepted, pk=pk) for (k, did), pk in zip(row_of, pks, strict=True)
    )
    out.sort(key=lambda v: v.index)
    return out


def list_detections(
    session: Session,
    agreement_id: str,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    sensor: str | None = None,
    associated: bool | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> Page:
    """A page of detections in ``pk`` order; ``start <= arrival < end``."""
    conds = [DetectionRow.agreement_id == agreement_id, DetectionRow.pk > decode_cursor(cursor)]
    if start is not None:
        conds.append(DetectionRow.arrival_us >= to_us(start))
    if end is not None:
        conds.append(DetectionRow.arrival_us < to_us(end))
    if sensor is not None:
        conds.append(DetectionRow.sensor_id == sensor)
    if associated is not None:
        col = DetectionRow.incident_pk
        conds.append(col.is_not(None) if associated else col.is_(None))
    rows = list(
        session.execute(
            select(DetectionRow).where(*conds).order_by(DetectionRow.pk).limit(limit + 1)
        ).scalars()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, encode_cursor(rows[-1].pk) if more and rows else None)


# -- locating stored detections -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocatedIncident:
    pk: int | None
    report_id: str
    status: str
    kind: str
    observed_at: dt.datetime
    lon: float
    lat: float
    uncertainty_m: float
    n_detections: int
    event_id: int | None = None
    reason: str | None = None
    ambiguous: bool = False
    alt_lon: float | None = None
    alt_lat: float | None = None
    alt_weight: float | None = None
    salvo_report_id: str | None = None
    salvo_size: int = 1


@dataclass(frozen=True, slots=True)
class Unassociated:
    sensor_id: str
    detection_id: str
    reason: str
    message: str


@dataclass(slots=True)
class LocateOutcome:
    detections: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    findings: int = 0
    linked: int = 0
    incidents: list[LocatedIncident] = field(default_factory=list)
    unassociated: list[Unassociated] = field(default_factory=list)


def locate_stored(
    session: Session,
    agreement: Agreement,
    *,
    start: dt.datetime,
    end: dt.datetime,
    weather: Weather | None,
    actor: Principal,
    now: dt.datetime,
) -> LocateOutcome:
    """Locate the detections of ``[start, end)`` not yet associated, and store the events.

    The events become incidents (``source_type`` acoustic) through
    :func:`truceline.services.ingest.ingest_incidents`: idempotent (an event's id comes from its
    detections), adjudicated by the rule engine, fused with other reports of the same event.
    """
    from truceline.services.acoustic import acoustic_incidents, locate_arrays
    from truceline.services.ingest import ingest_incidents

    if end <= start:
        raise ValidationError(
            "end is not after start", field="end", value=end.isoformat(), fix="give end > start"
        )
    if end - start > MAX_LOCATE_WINDOW:
        raise ValidationError(
            f"the window is {end - start}; at most {MAX_LOCATE_WINDOW} per call",
            field="end",
            value=end.isoformat(),
            fix="locate a long period in several calls",
        )
    sens_rows = list(
        session.execute(
            select(SensorRow).where(SensorRow.agreement_id == agreement.id).order_by(SensorRow.id)
        ).scalars()
    )
    if len(sens_rows) < 3:
        raise ConflictError(
            f"agreement {agreement.id} has {len(sens_rows)} registered sensors; locating needs 3",
            field="sensors",
            fix="register the network's sensors with POST /sensors",
        )
    conn = session.connection()
    det = conn.execute(
        select(
            DetectionRow.pk,
            DetectionRow.sensor_id,
            DetectionRow.detection_id,
            DetectionRow.arrival_us,
            DetectionRow.signal,
            DetectionRow.amplitude_db,
        )
        .where(
            DetectionRow.agreement_id == agreement.id,
            DetectionRow.arrival_us >= to_us(start),
            DetectionRow.arrival_us < to_us(end),
            DetectionRow.incident_pk.is_(None),
        )
        .order_by(DetectionRow.arrival_us, DetectionRow.pk)
        .limit(MAX_LOCATE_DETECTIONS + 1)
    ).all()
    if len(det) > MAX_LOCATE_DETECTIONS:
        raise PayloadTooLargeError(
            f"more than {MAX_LOCATE_DETECTIONS} detections in the window",
            field="end",
            value=end.isoformat(),
            fix="locate a shorter window",
        )
    outcome = LocateOutcome(detections=len(det))
    if not det:
        return outcome
    net = SensorNetwork.build(
        [s.id for s in sens_rows],
        [s.lon for s in sens_rows],
        [s.lat for s in sens_rows],
        elevation_m=[s.elevation_m for s in sens_rows],
        timing_sigma_ms=[s.timing_sigma_ms for s in sens_rows],
    )
    retired = np.array([as_utc(s.retired_at).timestamp() if s.retired_at else np.inf for s in sens_rows])
    sensors = acoustic_csv.Sensors(net, np.full(len(sens_rows), -np.inf), retired)
    pk, sid, did, us, sig, amp = (np.asarray(c) for c in zip(*det, strict=True))
    key = np.char.add(np.char.add(sid.astype(str), "/"), did.astype(str))
    names = np.array(SIGNALS)
    order = np.argsort(names)
    sig_code = order[np.searchsorted(names[order], sig.astype(str))]
    amp_f = np.array(amp.tolist(), np.float64)  # None -> NaN
    detections = acoustic_csv.Detections(
        key,
        net.index_of(sid.astype(str)),
        us.astype(np.int64) / 1e6,
        amp_f,
        np.asarray(sig_code, np.intp),
        pk.astype(np.intp),
    )
    run = locate_arrays(sensors, detections, weather, agreement=agreement)
    incidents, rows = acoustic_incidents(agreement, run)
    res = ingest_incidents(
        session,
        agreement,
        incidents,
        rows,
        source="acoustic:api",
        submitted_by=actor.subject,
        now=now,
    )
    ev = run.events
    inc_pk = np.array([res.pks.get(i.id, -1) for i in incidents], np.int64)
    of_det = run.result.event_of_detection
    linked = np.flatnonzero(of_det >= 0)
    linked = linked[inc_pk[of_det[linked]] >= 0]
    if len(linked):
        dt_ = DetectionRow.__table__
        stmt = update(dt_).where(dt_.c.pk == bindparam("b_pk")).values(incident_pk=bindparam("b_inc"))
        params = [
            {"b_pk": int(p), "b_inc": int(i)}
            for p, i in zip(pk[linked].tolist(), inc_pk[of_det[linked]].tolist(), strict=True)
        ]
        for k in range(0, len(params), _CHUNK):
            conn.execute(stmt, params[k : k + _CHUNK])
        # which incident each detection located, in the ledger
        ledger.record_rows(session, "detections", pk[linked].tolist(), now=now)
    event_of = dict(
        session.execute(
            select(IncidentRow.pk, IncidentRow.event_id).where(
                IncidentRow.pk.in_([int(p) for p in inc_pk if p >= 0])
            )
        ).all()
    ) if (inc_pk >= 0).any() else {}  # fmt: skip
    rejected = {r.id: r for r in res.rejects}
    accepted = set(res.accepted)
    for i, inc in enumerate(incidents):  # the response lists each event (one row per event)
        p = int(inc_pk[i])
        status = (
            Verdict.accepted if inc.id in accepted else Verdict.duplicate if p >= 0 else Verdict.rejected
        )
        outcome.incidents.append(
            LocatedIncident(
                p if p >= 0 else None,
                inc.id,
                status,
                inc.kind.value,
                inc.observed_at,
                inc.lon,
                inc.lat,
                inc.uncertainty_m,
                len(ev.detections[i]),
                event_of.get(p),
                rejected[inc.id].reason if inc.id in rejected else None,
                bool(ev.ambiguous[i]),
                float(ev.alt_lon[i]) if ev.ambiguous[i] else None,
                float(ev.alt_lat[i]) if ev.ambiguous[i] else None,
                float(ev.alt_weight[i]) if ev.ambiguous[i] else None,
                incidents[int(ev.salvo[i])].id if ev.salvo[i] >= 0 else None,
                int(ev.salvo_size[i]),
            )
        )
    un = run.result.unassigned
    outcome.unassociated = [
        Unassociated(str(sid[d]), str(did[d]), str(code_), msg)
        for d, code_, msg in zip(un.detection.tolist(), un.reason.tolist(), un.message, strict=True)
    ][:1000]
    outcome.events = len(ev)
    outcome.accepted = len(res.accepted)
    outcome.duplicates = len(res.duplicates)
    outcome.rejected = len([r for r in res.rejects if r.id in {i.id for i in incidents}])
    outcome.findings = res.findings
    outcome.linked = len(linked)
    return outcome
