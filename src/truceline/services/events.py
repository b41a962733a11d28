"""Fused events: the reports of one event linked when they land, split and merged by analysts.

When a batch of incidents is stored, :func:`link_events` fuses its reports with the stored reports
inside the batch's time and space window (:func:`truceline.core.fusion.fuse`: a space-time KD-tree,
never all pairs). A new report joins the stored event its cluster mostly belongs to, or forms a new
event with the other reports of its cluster; stored reports never change event here, so an analyst's
split or merge is never undone by a later batch. A report linked to no other keeps ``event_id``
NULL.

Only reports whose time and place are precise enough take part: ``time_precision`` second or minute
and ``uncertainty_m`` at most :data:`MAX_UNCERTAINTY_M` (an hour-precise or 50 km-wide report would
match everything around it).

:func:`split` and :func:`merge` are an analyst's decisions: each writes audit rows (before, after)
and a ``review`` entry in the ledger, in the caller's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import (
    ColumnElement,
    Float,
    and_,
    bindparam,
    case,
    cast,
    extract,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session, aliased

from truceline.core import fusion
from truceline.core.geodesy import GEOD, LocalFrame, mean_lon, pad_lat_deg, pad_lon_deg, unwrapped_lon
from truceline.core.times import as_utc
from truceline.errors import ConflictError, NotFoundError, ValidationError
from truceline.services.audit import record_change
from truceline.services.auth import Principal, Scope
from truceline.services.scope import aliased_incident_clauses, incident_clauses
from truceline.store import ledger
from truceline.store.db import bulk_insert, one_of
from truceline.store.models import AuditRow, DetectionRow, EventRow, FusionPairRow, IncidentRow

__all__ = [
    "DEFAULT_SETTINGS",
    "MAX_UNCERTAINTY_M",
    "RELINK_ENTITY",
    "DayRelinked",
    "Duplicate",
    "EventView",
    "FusionPair",
    "LinkResult",
    "ReportColumns",
    "day_event_counts",
    "day_expected_events",
    "decide_duplicate",
    "detections_of",
    "epoch_seconds",
    "expected_events",
    "fusion_pairs_of",
    "get_event",
    "link_events",
    "linked_reports",
    "list_duplicates",
    "merge",
    "refresh_events",
    "relink",
    "relink_closed_days",
    "split",
]

#: Reports less precise than this (1-sigma, m) are not fused.
MAX_UNCERTAINTY_M = 5000.0
_FUSABLE_PRECISION = ("second", "minute")
#: Time uncertainty (1-sigma, s) of rounding by the stated precision (uniform over the unit).
_PRECISION_SIGMA_S = {"second": 1.0 / math.sqrt(12.0), "minute": 60.0 / math.sqrt(12.0)}
#: A report states the side of the line its position is on when this sure of it.
_SIDE_CERTAIN = 0.9999
#: Fusion's settings when the caller gives none (the per-source error models' defaults).
DEFAULT_SETTINGS = fusion.FusionSettings()


def _window_s(settings: fusion.FusionSettings) -> float:
    """Half-width of the candidate window around a batch: beyond it no pair passes fusion's time
    gate (the longest reporting delay and 4 combined clock sigmas of the least precise sources)."""
    clocks = [m.clock_sigma_s for m in settings.sources.values()] + [
        settings.unknown_source.clock_sigma_s
    ]
    return settings.longest_delay_s() + 4.0 * math.sqrt(2.0) * max(max(clocks), 60.0) + 60.0


#: Half-width in space: the 99.99 % gate of two reports at the cap.
_WINDOW_M = math.sqrt(fusion.GATE_D2_9999 * 2.0) * MAX_UNCERTAINTY_M + 1000.0
_CHUNK = 500
_IDS_CHUNK = 10_000


def _epoch_s(col: Any, dialect: str) -> ColumnElement[float]:
    """A UTC timestamp as float seconds since 1970, computed by the database (no parsing here)."""
    if dialect == "postgresql":
        return cast(extract("epoch", col), Float)
    return (func.julianday(col) - 2440587.5) * 86400.0  # SQLite: exact to ~20 µs


def _cols(session: Session) -> tuple[Any, ...]:
    return _cols_for(session.get_bind().dialect.name)


def _cols_for(dialect: str) -> tuple[Any, ...]:
    return (
        IncidentRow.pk,
        IncidentRow.event_id,
        _epoch_s(IncidentRow.observed_at, dialect),
        IncidentRow.time_precision,
        IncidentRow.lon,
        IncidentRow.lat,
        IncidentRow.uncertainty_m,
        IncidentRow.kind,
        IncidentRow.source_type,
        IncidentRow.submitted_by,
        IncidentRow.reliability,
        IncidentRow.credibility,
        IncidentRow.distance_km,
        IncidentRow.p_side,
        IncidentRow.weapon_class,
        IncidentRow.count,
    )


_N_COLS = 16
#: numpy types of the columns after pk and event_id, in the order of :func:`_cols` (weapon and
#: count apart: they may be NULL)
_TYPES = (
    np.float64, str, np.float64, np.float64, np.float64, str, str, str, str, np.intp,
    np.float64, np.float64,
)  # fmt: skip


@dataclass(frozen=True)
class ReportColumns:
    """Reports as columns for fusion: stored rows (one conversion per query, then arrays) or a
    batch just adjudicated, built by the caller from the columns in hand."""

    pk: NDArray[np.intp]
    event: NDArray[np.intp]  # -1: none
    time_s: NDArray[np.float64]
    precision: NDArray[np.str_]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    unc_m: NDArray[np.float64]
    kind: NDArray[np.str_]
    source_type: NDArray[np.str_]
    submitted_by: NDArray[np.str_]
    reliability: NDArray[np.str_]
    credibility: NDArray[np.intp]
    distance_km: NDArray[np.float64]
    p_side: NDArray[np.float64]
    weapon: NDArray[np.str_]  # "" when none
    count: NDArray[np.intp]  # how many the report says it saw (1 when not said)

    @classmethod
    def of(cls, rows: Sequence[Any]) -> ReportColumns:
        cols = list(zip(*rows, strict=True)) if rows else [()] * _N_COLS
        arrays: list[Any] = [
            np.array(cols[0], np.intp),
            np.array([-1 if e is None else e for e in cols[1]], np.intp),
            *(np.array(cols[k], t) for k, t in enumerate(_TYPES, start=2)),
            np.array(["" if w is None else w for w in cols[_N_COLS - 2]], str),
            np.array([1 if c is None else c for c in cols[_N_COLS - 1]], np.intp),
        ]
        return cls(*arrays)

    def fusable(self) -> ReportColumns:
        """Those precise enough in time and place to take part in fusion."""
        keep = (self.unc_m <= MAX_UNCERTAINTY_M) & np.logical_or.reduce(
            [self.precision == p for p in _FUSABLE_PRECISION]
        )
        return ReportColumns(*(getattr(self, f.name)[keep] for f in fields(self)))

    def concat(self, other: ReportColumns) -> ReportColumns:
        cols = (np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self))
        return ReportColumns(*cols)

    def __len__(self) -> int:
        return len(self.pk)

    def take(self, idx: NDArray[np.intp]) -> ReportColumns:
        """These rows in the order ``idx``."""
        return ReportColumns(*(getattr(self, f.name)[idx] for f in fields(self)))

    def source_id(self) -> NDArray[np.str_]:
        return _source_ids(self.source_type, self.submitted_by)

    def var_m2(self) -> NDArray[np.float64]:
        """Each report's position variance (m², per axis; at least 1 m²)."""
        return np.asarray(np.maximum(self.unc_m, 1.0) ** 2, np.float64)

    def reports(self, settings: fusion.FusionSettings = DEFAULT_SETTINGS) -> fusion.Reports:
        """The reports under their sources' error models (:class:`fusion.SourceModel`): position
        uncertainty at least the source's floor, time uncertainty its clock and the stated
        precision's rounding, and its reporting delay."""
        n = len(self)
        types, inv = np.unique(self.source_type, return_inverse=True)
        models = [settings.source(str(t)) for t in types.tolist()]
        inv = inv.ravel()

        def per(attr: str) -> NDArray[np.float64]:
            col = np.array([getattr(m, attr) for m in models], np.float64)
            return col[inv] if n else np.zeros(0)

        prec = np.array([_PRECISION_SIGMA_S.get(p, 1800.0) for p in self.precision.tolist()])
        sigma = np.hypot(per("clock_sigma_s"), prec if n else np.zeros(0))
        sd = np.maximum(np.maximum(self.unc_m, 1.0), per("position_floor_m"))
        side = np.where(self.p_side >= _SIDE_CERTAIN, np.sign(self.distance_km), 0).astype(np.int8)
        return fusion.Reports(
            report_id=self.pk.astype(str),
            source_id=self.source_id(),
            source_type=self.source_type,
            time_s=self.time_s,
            time_sigma_s=sigma.astype(np.float64),
            delay_max_s=per("delay_max_s"),
            lon=self.lon,
            lat=self.lat,
            cov_m2=np.einsum("n,ij->nij", sd**2, np.eye(2)),
            kind=self.kind,
            reliability=self.reliability,
            credibility=self.credibility,
            side=side,
            prompt_share=per("prompt_share"),
            weapon=self.weapon,
            time_floor_s=prec.astype(np.float64),
            count=self.count,
        )


def epoch_seconds(t: NDArray[np.datetime64]) -> NDArray[np.float64]:
    """UTC times as seconds since 1970, as the database gives them (the nearest double to the
    microsecond)."""
    return np.asarray(t.astype("datetime64[us]").astype(np.int64) / 1e6, np.float64)


def _source_ids(source_type: NDArray[np.str_], submitted_by: NDArray[np.str_]) -> NDArray[np.str_]:
    """Who reported: the acoustic network is one source; otherwise the type and the submitter."""
    own = np.char.add(np.char.add(source_type.astype(str), ":"), submitted_by.astype(str))
    return np.where(source_type == "acoustic", "acoustic", own).astype(str)


@functools.lru_cache(maxsize=512)
def _frame_at(lon_deg: int, lat_deg: int) -> LocalFrame:
    frame = LocalFrame.centred(float(lon_deg), float(lat_deg))
    frame.to_xy(float(lon_deg), float(lat_deg))  # PROJ sets a transformer up on its first use
    return frame


def _frame(lon: NDArray[np.float64], lat: NDArray[np.float64]) -> LocalFrame:
    """A local plane centred within ~80 km of the reports, built once per whole-degree cell
    (distances between reports a few km apart change by less than 1e-4 of themselves)."""
    return _frame_at(round(mean_lon(lon)), round(float(np.mean(lat))))


def _fusable() -> list[ColumnElement[bool]]:
    return [
        IncidentRow.time_precision.in_(_FUSABLE_PRECISION),
        IncidentRow.uncertainty_m <= MAX_UNCERTAINTY_M,
        IncidentRow.withdrawn_at.is_(None),  # withdrawn by its source: fused with nothing new
    ]


@functools.cache
def _around_statement(dialect: str, n_ranges: int = 1) -> Any:
    """The stored reports around a batch, but for the batch's own (built once per dialect: it runs
    on every ingest, and building a statement costs more than running it for one submission).

    Longitude in ``n_ranges`` ranges ``w0..e0`` (``w1..e1``: the part across the antimeridian).
    """
    lon = [IncidentRow.lon.between(bindparam(f"w{k}"), bindparam(f"e{k}")) for k in range(n_ranges)]
    return select(*_cols_for(dialect)).where(
        IncidentRow.agreement_id == bindparam("ag"),
        IncidentRow.observed_at.between(bindparam("t0"), bindparam("t1")),
        lon[0] if n_ranges == 1 else or_(*lon),
        IncidentRow.lat.between(bindparam("s"), bindparam("n")),
        func.coalesce(IncidentRow.batch_id, 0) != bindparam("batch"),  # batch ids start at 1
        *_fusable(),
    )


def _lon_ranges(west: float, east: float) -> list[tuple[float, float]]:
    """A window of longitude ``west..east`` (deg, maybe past +-180) as ranges within -180..180."""
    if east - west >= 360.0:
        return [(-180.0, 180.0)]
    if east > 180.0:
        if west >= 180.0:
            return [(west - 360.0, east - 360.0)]
        return [(west, 180.0), (-180.0, east - 360.0)]
    if west < -180.0:
        return [(west + 360.0, 180.0), (-180.0, east)]
    return [(west, east)]


@functools.cache
def _members_statement(dialect: str) -> Any:
    """Every report of the given events (``ids``), as :class:`ReportColumns` reads them."""
    return select(*_cols_for(dialect)).where(one_of(IncidentRow.event_id, "ids", dialect))


_ET = EventRow.__table__
_PT = FusionPairRow.__table__


@functools.cache
def _held_statement(dialect: str) -> Any:
    """The sources already in the given events (``evs``; one report per source per event)."""
    return select(
        IncidentRow.event_id, IncidentRow.source_type, IncidentRow.submitted_by, IncidentRow.pk
    ).where(one_of(IncidentRow.event_id, "evs", dialect))


_REFRESH_EVENT = (
    update(_ET)
    .where(_ET.c.pk == bindparam("b_pk"))
    .values(
        observed_at=bindparam("b_t"),
        day=bindparam("b_day"),
        lon=bindparam("b_lon"),
        lat=bindparam("b_lat"),
        cov_xx_m2=bindparam("b_xx"),
        cov_xy_m2=bindparam("b_xy"),
        cov_yy_m2=bindparam("b_yy"),
        n_reports=bindparam("b_n"),
        n_sources=bindparam("b_ns"),
        count=bindparam("b_k"),
        confidence=bindparam("b_c"),
        updated_at=bindparam("b_now"),
    )
)


#: Up to this many new reports, :func:`_may_pair` looks for a possible partner before fusing.
_PAIR_CHECK_MAX = 64


def _may_pair(cand: ReportColumns, var_m2: NDArray[np.float64], is_new: NDArray[np.bool_]) -> bool:
    """Whether some new report may pair with another candidate (:func:`fusion.may_link`: a
    conservative screen on fusion's position gate, so that no means fusing can be skipped).
    For large batches it answers yes without looking (fusing them is the cheaper way).
    """
    n_new = int(np.count_nonzero(is_new))
    if n_new == 0:
        return False
    if n_new > _PAIR_CHECK_MAX:
        return True
    return fusion.may_link(cand.lon, cand.lat, var_m2, is_new)


@dataclass(frozen=True, slots=True)
class LinkResult:
    """What :func:`link_events` did: reports linked, events made, events that grew."""

    linked: int = 0
    new_events: list[int] = field(default_factory=list)
    grown_events: list[int] = field(default_factory=list)


def link_events(
    session: Session,
    agreement_id: str,
    new: ReportColumns,
    *,
    batch_id: int,
    now: dt.datetime,
    settings: fusion.FusionSettings | None = None,
) -> LinkResult:
    """Fuse the reports just stored in batch ``batch_id`` (``new``: those of them that may fuse,
    :meth:`ReportColumns.fusable`; the caller holds them, so they are not read back) with the
    stored reports around them, under ``settings`` (default :data:`DEFAULT_SETTINGS`).

    The link that put each moved report in its event and the possible duplicates through a new
    report are kept (``fusion_pairs``) with their probability and evidence."""
    if len(new) == 0:
        return LinkResult()
    settings = settings if settings is not None else DEFAULT_SETTINGS
    conn = session.connection()
    window_s = _window_s(settings)
    t0, t1 = float(new.time_s.min()) - window_s, float(new.time_s.max()) + window_s
    lat_pad = float(pad_lat_deg(_WINDOW_M))
    south, north = float(new.lat.min()) - lat_pad, float(new.lat.max()) + lat_pad
    lon_pad = float(pad_lon_deg(_WINDOW_M, min(89.0, max(abs(south), abs(north)))))
    lon = unwrapped_lon(new.lon)  # 0..360 when the batch straddles the antimeridian
    ranges = _lon_ranges(float(lon.min()) - lon_pad, float(lon.max()) + lon_pad)
    start = dt.datetime.fromtimestamp(t0, dt.UTC)
    end = dt.datetime.fromtimestamp(t1, dt.UTC)
    params = {"ag": agreement_id, "t0": start, "t1": end, "s": south, "n": north}
    params.update({f"w{k}": w for k, (w, _) in enumerate(ranges)})
    params.update({f"e{k}": e for k, (_, e) in enumerate(ranges)})
    around = _around_statement(conn.dialect.name, len(ranges))
    old = ReportColumns.of(conn.execute(around, {**params, "batch": batch_id}).all())
    if len(old) == 0 and len(new) < 2:  # alone in its window: nothing to link
        return LinkResult()
    is_new = np.zeros(len(old) + len(new), bool)
    is_new[len(old) :] = True
    return _link(
        session, agreement_id, old.concat(new), is_new, batch_id=batch_id,
        ref=f"batch:{batch_id}", now=now, settings=settings,
    )  # fmt: skip


def relink(
    session: Session,
    agreement_id: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    settings: fusion.FusionSettings | None = None,
) -> LinkResult:
    """Fuse again every stored report observed in ``start`` .. ``end`` (UTC) with the stored
    reports around them, as one batch: the final pass of a day whose reports are in.

    During the day each batch is fused with the reports stored by then (:func:`link_events`), so
    its links depend on the order and batching of arrival (a report that arrives later is weighed
    only in later batches; the time model and the event density are learned from the reports at
    hand). Once the day's reports are in (the longest reporting delay after its end), this pass
    weighs them all at once: the events fusion made are taken apart and made again, and the
    possible duplicates and the pairs weighed for the count re-weighed, so that the day's links
    are those one batch of the same reports gives, whatever their order of arrival. An analyst's
    split or merge stands, as in :func:`link_events`; the pairs fusion writes carry
    ``batch_id`` 0 and the ledger's link entry ``relink:START/END``."""
    settings = settings if settings is not None else DEFAULT_SETTINGS
    s, e = as_utc(start), as_utc(end)
    if e <= s:
        raise ValidationError(f"relink: the end {e.isoformat()} is not after the start {s.isoformat()}")
    conn = session.connection()
    margin = dt.timedelta(seconds=_window_s(settings))
    params = {
        "ag": agreement_id, "t0": s - margin, "t1": e + margin, "s": -90.0, "n": 90.0,
        "w0": -180.0, "e0": 180.0, "batch": -1,  # every batch
    }  # fmt: skip
    cand = ReportColumns.of(conn.execute(_around_statement(conn.dialect.name, 1), params).all())
    t0, t1 = s.timestamp(), e.timestamp()
    is_new = (cand.time_s >= t0) & (cand.time_s < t1)
    if not is_new.any():
        return LinkResult()
    ref = f"relink:{s.isoformat()}/{e.isoformat()}"
    return _link(session, agreement_id, cand, is_new, batch_id=0, ref=ref, now=now, settings=settings)


#: The audit trail's entity for a day's final pass (its id: ``AGREEMENT/DAY``).
RELINK_ENTITY = "fusion_day"


@dataclass(frozen=True)
class DayRelinked:
    """One day :func:`relink_closed_days` fused again, and what moved."""

    day: dt.date
    reports: int
    result: LinkResult


def relink_closed_days(
    session: Session,
    agreement_id: str,
    *,
    now: dt.datetime,
    actor: Principal,
    settings: fusion.FusionSettings | None = None,
    days_back: int = 7,
) -> list[DayRelinked]:
    """The final pass (:func:`relink`) of each closed day that needs one, oldest first.

    A day (UTC) is closed once the longest reporting delay has passed since its end
    (``settings.longest_delay_s()``): its reports are in, as far as the sources' models expect.
    It needs the pass when it has reports and none was made since the last of them was
    received: so a complaint filed hours late brings its day back for another pass, and a
    second call moves nothing (idempotent). Days up to ``days_back`` before the last closed one
    are looked at. Each pass is audited (entity ``fusion_day``, id ``AGREEMENT/DAY``, action
    ``relink``: how many reports were weighed and moved) and its links go into the ledger as
    :func:`relink` writes them. On PostgreSQL a transaction lock on the agreement keeps two
    server processes from making the same pass at once.
    """
    settings = settings if settings is not None else DEFAULT_SETTINGS
    now = as_utc(now)
    margin = dt.timedelta(seconds=settings.longest_delay_s())
    last = (now - margin).date() - dt.timedelta(days=1)  # the last day whose end + margin is past
    first = last - dt.timedelta(days=max(days_back, 1) - 1)
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        key = func.hashtext("relink:" + agreement_id)
        conn.execute(select(func.pg_advisory_xact_lock(key)))
    latest: dict[dt.date, dt.datetime] = {}
    n_of: dict[dt.date, int] = {}
    for d, n, received in session.execute(
        select(IncidentRow.day, func.count(), func.max(IncidentRow.received_at))
        .where(IncidentRow.agreement_id == agreement_id, IncidentRow.day.between(first, last))
        .group_by(IncidentRow.day)
    ):
        latest[d], n_of[d] = as_utc(received), int(n)
    if not latest:
        return []
    ids = {f"{agreement_id}/{d.isoformat()}": d for d in latest}
    done: dict[dt.date, dt.datetime] = {}
    for eid, at in session.execute(
        select(AuditRow.entity_id, func.max(AuditRow.at))
        .where(
            AuditRow.entity == RELINK_ENTITY,
            AuditRow.action == "relink",
            AuditRow.entity_id.in_(ids),
        )
        .group_by(AuditRow.entity_id)
    ):
        done[ids[eid]] = as_utc(at)
    out: list[DayRelinked] = []
    for d in sorted(latest):
        if d in done and done[d] >= latest[d]:
            continue
        start = dt.datetime.combine(d, dt.time(), dt.UTC)
        res = relink(
            session, agreement_id, start=start, end=start + dt.timedelta(days=1), now=now,
            settings=settings,
        )  # fmt: skip
        record_change(
            session, actor=actor, entity=RELINK_ENTITY, entity_id=f"{agreement_id}/{d.isoformat()}",
            action="relink", now=now, before=None,
            after={
                "reports": n_of[d], "moved": res.linked, "events_made": len(res.new_events),
                "events_changed": len(res.grown_events),
                "last_received": latest[d].isoformat(),
            },
            comment="the day's final pass, once closed",
        )  # fmt: skip
        out.append(DayRelinked(d, n_of[d], res))
    return out


def _link(
    session: Session, agreement_id: str, cand: ReportColumns, is_new: NDArray[np.bool_], *,
    batch_id: int, ref: str, now: dt.datetime, settings: fusion.FusionSettings,
) -> LinkResult:  # fmt: skip
    """Fuse the candidates ``cand`` (stored and new, ``is_new``) and store what changes: the
    new reports and those near them join, leave or make events (:func:`link_events`)."""
    if len(cand) < 2:
        return LinkResult()
    conn = session.connection()
    # one order whatever the order of arrival or of the rows read (ties in fusion's rounds go to
    # the first report): by time, then place
    order = np.lexsort((cand.unc_m, cand.lat, cand.lon, cand.time_s))
    cand, is_new = cand.take(order), is_new[order]
    # times to the millisecond: a stored time comes back from SQLite within ~20 µs, and two
    # times to the minute exactly a fusion box apart must stay so whether read or just received
    cand = dataclasses.replace(cand, time_s=np.round(cand.time_s, 3))
    reports = cand.reports(settings)
    if not _may_pair(cand, reports.cov_m2[:, 0, 0], is_new):
        return LinkResult()
    frame = _frame(cand.lon, cand.lat)
    # Most new reports near others still pass no gate with them (time, kind, side, source): then
    # they stay alone, and the merging rounds of fusion need not run.
    cands = fusion.candidates(reports, frame=frame)
    if not cands.touch(is_new):
        return LinkResult()
    res = fusion.fuse(reports, pairs=cands, settings=settings)
    near_new = np.zeros(len(cand), bool)  # in a candidate pair with a new report
    through = is_new[cands.a] | is_new[cands.b]
    near_new[cands.a[through]] = near_new[cands.b[through]] = True
    _keep_possible(
        session, agreement_id, cand, is_new | near_new, res, cands, settings, batch_id=batch_id, now=now
    )
    cluster = res.event_of_report
    n_cl = int(cluster.max()) + 1
    size = np.bincount(cluster, minlength=n_cl)
    touched = np.zeros(n_cl, bool)
    touched[cluster[is_new]] = True
    touched &= size >= 2
    # Stored links are re-weighed with the new reports (the same links whatever the order of
    # arrival): an event fusion made, all of whose members are in the window, is taken apart and
    # made again from this fusion when one of its members is in a touched cluster. An analyst's
    # split or merge, and an event reaching outside the window, stand.
    free = _free(conn, cand)
    hit = np.unique(cand.event[free & (touched[cluster] | near_new)])
    affected = free & np.isin(cand.event, hit)
    touched[cluster[affected]] = True
    # each touched cluster's target: the stored event most of its stored members belong to, an
    # event the target of one cluster only (the one holding most of its members)
    in_event = (cand.event >= 0) & touched[cluster] & (size[cluster] >= 2)
    target = np.full(n_cl, -1, np.intp)
    if in_event.any():
        votes, cnt = np.unique(
            np.stack([cluster[in_event], cand.event[in_event]], 1), axis=0, return_counts=True
        )
        order = np.lexsort((votes[:, 1], -cnt, votes[:, 0]))
        first = order[np.r_[True, votes[order, 0][1:] != votes[order, 0][:-1]]]
        cl_t, ev_t, n_t = votes[first, 0], votes[first, 1], cnt[first]
        by_ev = np.lexsort((cl_t, -n_t, ev_t))
        once = by_ev[np.r_[True, ev_t[by_ev][1:] != ev_t[by_ev][:-1]]]
        target[cl_t[once]] = ev_t[once]
    # who moves: the new reports, the unlinked stored reports and the members of affected
    # events, wherever this fusion puts them elsewhere (alone: out of their event)
    movable = (cand.event < 0) | affected
    dest = np.where(size[cluster] >= 2, target[cluster], -1)
    move = touched[cluster] & movable & ((dest != cand.event) | ((dest < 0) & (size[cluster] >= 2)))
    src = cand.source_id()
    joining = move & (dest >= 0)
    if joining.any():
        # at most one report per source per event: also against members outside the window
        evs = np.unique(dest[joining]).tolist()
        held = conn.execute(_held_statement(conn.dialect.name), {"evs": evs}).all()
        leaving = set(cand.pk[move].tolist())
        held = [h for h in held if h[3] not in leaving]
        if held:
            he, hs, hb = (np.array(c, str) for c in list(zip(*held, strict=True))[:3])
            keys = np.char.add(np.char.add(he, "|"), _source_ids(hs, hb))
            clash = joining & np.isin(np.char.add(np.char.mod("%d|", dest), src), keys)
            move &= ~clash
    # clusters without a target become new events if at least two of their reports move
    fresh = move & (dest < 0) & (size[cluster] >= 2)
    n_fresh = np.bincount(cluster[fresh], minlength=n_cl)
    make = np.flatnonzero((n_fresh >= 2) & (target < 0))
    out = move & (dest < 0) & ~np.isin(cluster, make) & (cand.event >= 0)
    move &= ((dest >= 0) | np.isin(cluster, make)) & ~out
    if not move.any() and not out.any():
        return LinkResult()
    new_ids: list[int] = []
    if len(make):
        blank = {
            "agreement_id": agreement_id,
            "observed_at": now,
            "day": now.date(),
            "lon": 0.0,
            "lat": 0.0,
            "cov_xx_m2": 0.0,
            "cov_xy_m2": 0.0,
            "cov_yy_m2": 0.0,
            "n_reports": 0,
            "n_sources": 0,
            "count": 1,
            "confidence": 0.0,
            "origin": "fusion",
            "created_at": now,
            "updated_at": now,
        }
        # COPY on PostgreSQL (an INSERT of many VALUES rows is new SQL text for each count)
        new_ids = bulk_insert(conn, _ET, [blank] * len(make), new_pks="pk")
        target[make] = new_ids
    rows = np.flatnonzero(move)
    linked, into = cand.pk[rows], target[cluster[rows]]
    left = cand.event[move | out]
    left = np.unique(left[left >= 0])
    gone = cand.pk[out]
    moved = np.concatenate([linked, gone])
    dropped: list[int] = []
    if len(moved):  # the links that put them where they were no longer hold
        dropped = list(conn.execute(_drop_links(conn.dialect.name), {"pks": moved.tolist()}).scalars())
    _set_event(session, linked, into)
    if len(gone):
        _set_event(session, gone, None)
    links_kept = _keep_links(
        conn, agreement_id, cand, rows, res, cands, settings, batch_id=batch_id, now=now
    )
    ledger.record_rows(session, "fusion_pairs", [], deleted=dropped, known=links_kept, now=now)
    # events left with one report or none are no events: the last report leaves, the row goes
    alone, dissolved = _dissolve(session, left)
    gone = np.concatenate([gone, alone])
    # the membership goes into the ledger (its text written directly: one pair per report)
    links = ",".join(
        [f"[{i},{j}]" for i, j in zip(linked.tolist(), into.tolist(), strict=True)]
        + [f"[{i},null]" for i in gone.tolist()]
    )
    ledger.append(session, [("link", ref, ledger.CanonicalJSON(f'{{"links":[{links}]}}'))], now=now)
    grown = sorted((set(into.tolist()) | set(left.tolist())) - set(new_ids))
    refresh_events(session, [*new_ids, *grown], now=now)
    # the events' new state (and those dissolved) in the ledger: one entry for the batch
    ledger.record_rows(session, "events", [*new_ids, *grown], deleted=dissolved, now=now)
    return LinkResult(len(rows), new_ids, grown)


def _free(conn: Any, cand: ReportColumns) -> NDArray[np.bool_]:
    """Which candidates are in an event fusion made (not an analyst's split or merge) all of
    whose members are among the candidates: events fusion may take apart and make again."""
    linked = cand.event >= 0
    if not linked.any():
        return np.zeros(len(cand), bool)
    evs, n_here = np.unique(cand.event[linked], return_counts=True)
    rows = conn.execute(_free_statement(conn.dialect.name), {"evs": evs.tolist()}).all()
    have = dict(zip(evs.tolist(), n_here.tolist(), strict=True))
    ok = [pk for pk, n in rows if have.get(pk) == n]
    return np.asarray(linked & np.isin(cand.event, ok), bool)


@functools.cache
def _free_statement(dialect: str) -> Any:
    """The events fusion made among ``evs``, with their number of reports."""
    return select(_ET.c.pk, _ET.c.n_reports).where(
        one_of(_ET.c.pk, "evs", dialect), _ET.c.origin == "fusion", _ET.c.merged_into.is_(None)
    )


@functools.cache
def _drop_links(dialect: str) -> Any:
    """Delete the ``linked`` pairs that put the reports ``pks`` in their events; their pks."""
    return (
        _PT.delete()
        .where(_PT.c.status == "linked", one_of(_PT.c.a_pk, "pks", dialect))
        .returning(_PT.c.pk)
    )


def _dissolve(session: Session, events: NDArray[np.intp]) -> tuple[NDArray[np.intp], list[int]]:
    """Remove the events among ``events`` left with fewer than two reports; the pks of the
    reports that were alone in one (now in no event), and of the events removed."""
    if len(events) == 0:
        return np.zeros(0, np.intp), []
    conn = session.connection()
    it = IncidentRow.__table__
    counts: dict[int, int] = dict(
        conn.execute(
            select(it.c.event_id, func.count())
            .where(one_of(it.c.event_id, "evs", conn.dialect.name))
            .group_by(it.c.event_id),
            {"evs": events.tolist()},
        ).all()
    )
    few = [int(e) for e in events.tolist() if counts.get(int(e), 0) < 2]
    if not few:
        return np.zeros(0, np.intp), []
    alone = np.array(
        conn.execute(
            select(it.c.pk).where(one_of(it.c.event_id, "evs", conn.dialect.name)), {"evs": few}
        )
        .scalars()
        .all(),
        np.intp,
    )
    if len(alone):
        _set_event(session, alone, None)
    conn.execute(_ET.delete().where(one_of(_ET.c.pk, "evs", conn.dialect.name)), {"evs": few})
    return alone, few


def _reason(
    cand: ReportColumns, pairs: fusion.Candidates, i: NDArray[np.intp], j: NDArray[np.intp],
    p: NDArray[np.float64], settings: fusion.FusionSettings,
    model_p: NDArray[np.float64] | None = None,
) -> list[str]:  # fmt: skip
    """Why fusion weighed reports ``i`` and ``j`` as one event, one JSON text per pair
    (``model_p``: the model's probability where ``p`` is restated by the calibration)."""
    dist = np.hypot(*(pairs.xy[j] - pairs.xy[i]).T)
    dt_s = cand.time_s[j] - cand.time_s[i]
    cols = (
        p.tolist(), dist.tolist(), dt_s.tolist(), cand.kind[i].tolist(), cand.kind[j].tolist(),
        cand.source_type[i].tolist(), cand.source_type[j].tolist(),
        cand.unc_m[i].tolist(), cand.unc_m[j].tolist(),
    )  # fmt: skip
    thr, off, dens = settings.link_threshold, settings.offer_threshold, settings.event_density_km2_h
    restated = model_p is not None and settings.calibration is not None
    models = model_p.tolist() if model_p is not None else [None] * len(i)
    out = []
    for pr, d, t, ka, kb, sa, sb, ua, ub, m in zip(*cols, models, strict=True):
        why: dict[str, Any] = {
            "probability": round(pr, 4),
            "distance_m": round(d, 1),
            "time_apart_s": round(t, 1),
            "kinds": [ka, kb],
            "sources": [sa, sb],
            "uncertainty_m": [ua, ub],
            "link_threshold": thr,
            "offer_threshold": off,
            "event_density_km2_h": dens,
        }
        if restated:  # the model's own, and how the calibration restated it
            why["model_probability"] = round(m, 4)
            why["calibration"] = list(settings.calibration or ())
        out.append(json.dumps(why, separators=(",", ":")))
    return out


def _insert_pairs(
    conn: Any, agreement_id: str, cand: ReportColumns, pairs: fusion.Candidates,
    i: NDArray[np.intp], j: NDArray[np.intp], p: NDArray[np.float64], status: str,
    settings: fusion.FusionSettings, *, batch_id: int, now: dt.datetime,
    model_p: NDArray[np.float64] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Store the pairs (i, j) with their probability ``p`` (``model_p``: the model's, where ``p``
    is restated by the calibration): the rows written, with their pks."""
    if len(i) == 0:
        return []
    reasons = _reason(cand, pairs, i, j, p, settings, model_p)
    t = np.minimum(cand.time_s[i], cand.time_s[j])
    rows = [
        {
            "agreement_id": agreement_id, "a_pk": a, "b_pk": b, "status": status,
            "probability": pr, "reason": r, "observed_at": dt.datetime.fromtimestamp(ts, dt.UTC),
            "batch_id": batch_id, "created_at": now,
        }
        for a, b, pr, r, ts in zip(
            cand.pk[i].tolist(), cand.pk[j].tolist(), p.tolist(), reasons, t.tolist(), strict=True
        )
    ]  # fmt: skip
    for row, pk in zip(rows, bulk_insert(conn, _PT, rows, new_pks="pk"), strict=True):
        row["pk"] = pk
    return rows


def _keep_possible(
    session: Session, agreement_id: str, cand: ReportColumns, reweighed: NDArray[np.bool_],
    res: fusion.FusionResult, pairs: fusion.Candidates, settings: fusion.FusionSettings,
    *, batch_id: int, now: dt.datetime,
) -> None:  # fmt: skip
    """The possible duplicates through a re-weighed report (``reweighed``: the new reports and
    those in a candidate pair with one, whose probabilities the new reports change). The open
    ones an earlier batch offered between two candidates, one of them re-weighed, are stale:
    they are withdrawn, and this fusion's offers take their place (the same pair with its new
    probability, or none when it is no longer offered: linked, or less likely than the
    ``offer_threshold``). A pair an analyst dismissed stays dismissed and is not offered again.
    The same for the pairs weighed for the day's count (``weighed``: below the queue, from
    ``count_floor``; :func:`expected_events`), kept with the vaguer report as ``a_pk``."""
    pks = cand.pk[reweighed]
    if len(pks) == 0:
        return
    conn = session.connection()
    dialect = conn.dialect.name
    written: list[dict[str, Any]] = []
    prior = [
        row
        for k in range(0, len(pks), _IDS_CHUNK)  # SQLite binds at most 32,766 parameters
        for row in conn.execute(_offered_statement(dialect), {"pks": pks[k : k + _IDS_CHUNK].tolist()})
    ]
    here = set(cand.pk.tolist())
    stale = sorted({pk for pk, a, b, st in prior if st in _OPEN and a in here and b in here})
    for k in range(0, len(stale), _IDS_CHUNK):
        conn.execute(
            _PT.delete().where(one_of(_PT.c.pk, "pks", dialect)), {"pks": stale[k : k + _IDS_CHUNK]}
        )
    dismissed = {(min(a, b), max(a, b)) for _, a, b, st in prior if st == "dismissed"}
    for status, (ra, rb, rp, rk) in (
        ("possible", (res.dup_a, res.dup_b, res.dup_p, res.dup_pair)),
        ("weighed", (res.mass_a, res.mass_b, res.mass_p, res.mass_pair)),
    ):
        mine = reweighed[ra] | reweighed[rb]
        i, j, p, mp = ra[mine], rb[mine], rp[mine], res.pair_p[rk[mine]]
        if dismissed and len(i):
            pa, pb = cand.pk[i], cand.pk[j]
            keys = zip(np.minimum(pa, pb).tolist(), np.maximum(pa, pb).tolist(), strict=True)
            keep = np.array([k not in dismissed for k in keys], bool)
            i, j, p, mp = i[keep], j[keep], p[keep], mp[keep]
        written += _insert_pairs(
            conn, agreement_id, cand, pairs, i, j, p, status, settings, batch_id=batch_id, now=now,
            model_p=mp,
        )  # fmt: skip
    # the pairs withdrawn and offered, in the ledger (the analyst's queue and the day's count)
    ledger.record_rows(session, "fusion_pairs", [], deleted=stale, known=written, now=now)


#: Pairs a new batch re-weighs: the possible duplicates and the pairs weighed for the count.
_OPEN = ("possible", "weighed")


@functools.cache
def _offered_statement(dialect: str) -> Any:
    """The possible, weighed and dismissed pairs through any of the reports ``pks``."""
    return select(_PT.c.pk, _PT.c.a_pk, _PT.c.b_pk, _PT.c.status).where(
        _PT.c.status.in_((*_OPEN, "dismissed")),
        or_(one_of(_PT.c.a_pk, "pks", dialect), one_of(_PT.c.b_pk, "pks", dialect)),
    )


def _keep_links(
    conn: Any, agreement_id: str, cand: ReportColumns, moved: NDArray[np.intp],
    res: fusion.FusionResult, pairs: fusion.Candidates, settings: fusion.FusionSettings,
    *, batch_id: int, now: dt.datetime,
) -> list[dict[str, Any]]:  # fmt: skip
    """For each report that moved into an event, the link that put it there (the rows written)."""
    i = moved[res.link_to[moved] >= 0]
    j = res.link_to[i]
    return _insert_pairs(
        conn,
        agreement_id,
        cand,
        pairs,
        i,
        j,
        res.link_p[i],
        "linked",
        settings,
        batch_id=batch_id,
        now=now,
    )


_SET_EVENT_PG = text(
    "UPDATE incidents SET event_id = u.ev FROM unnest(CAST(:pks AS bigint[]), CAST(:evs AS bigint[])) "
    "AS u(pk, ev) WHERE incidents.pk = u.pk"
)


def _set_event(session: Session, pks: NDArray[np.intp], events: NDArray[np.intp] | None) -> None:
    it = IncidentRow.__table__
    ev = [None] * len(pks) if events is None else events.tolist()
    conn = session.connection()
    if conn.dialect.name == "postgresql":  # one statement for all, not one per row
        conn.execute(_SET_EVENT_PG, {"pks": pks.tolist(), "evs": ev})
        return
    stmt = update(it).where(it.c.pk == bindparam("b_pk")).values(event_id=bindparam("b_ev"))
    params = [{"b_pk": p, "b_ev": e} for p, e in zip(pks.tolist(), ev, strict=True)]
    for k in range(0, len(params), _CHUNK):
        session.connection().execute(stmt, params[k : k + _CHUNK])


def refresh_events(session: Session, event_ids: Sequence[int], *, now: dt.datetime) -> None:
    """Recompute the fused position, time and confidence of events from all their members."""
    ids = sorted(set(int(e) for e in event_ids))
    if not ids:
        return
    conn = session.connection()
    members = ReportColumns.of(conn.execute(_members_statement(conn.dialect.name), {"ids": ids}).all())
    if len(members) == 0:
        return
    res = fusion.summarise(members.reports(), members.event, frame=_frame(members.lon, members.lat))
    ev_ids = np.unique(members.event)  # the events in the order summarise gives them
    n_rep = np.bincount(res.event_of_report, minlength=len(ev_ids))
    n_max = np.ones(len(ev_ids), np.intp)  # the event's count: the most any report says
    np.maximum.at(n_max, res.event_of_report, members.count)
    times = [dt.datetime.fromtimestamp(t, dt.UTC) for t in res.time_s.tolist()]
    cols = {  # one list per parameter of _REFRESH_EVENT, one value per event
        "b_pk": ev_ids.tolist(),
        "b_t": times,
        "b_day": [t.date() for t in times],
        "b_lon": res.lon.tolist(),
        "b_lat": res.lat.tolist(),
        "b_xx": res.cov_m2[:, 0, 0].tolist(),
        "b_xy": res.cov_m2[:, 0, 1].tolist(),
        "b_yy": res.cov_m2[:, 1, 1].tolist(),
        "b_n": n_rep.tolist(),
        "b_ns": res.n_sources.tolist(),
        "b_c": res.confidence.tolist(),
        "b_k": n_max.tolist(),
    }
    if conn.dialect.name == "postgresql":  # one statement for all, not one per event
        conn.execute(_REFRESH_EVENTS_PG, {**cols, "b_now": now})
        return
    params = [dict(zip(cols, v, strict=True), b_now=now) for v in zip(*cols.values(), strict=True)]
    conn.execute(_REFRESH_EVENT, params)


#: The per-event parameters of :data:`_REFRESH_EVENT` and their PostgreSQL array types.
_REFRESH_ARRAYS = {
    "b_pk": "bigint", "b_t": "timestamptz", "b_day": "date", "b_lon": "float8", "b_lat": "float8",
    "b_xx": "float8", "b_xy": "float8", "b_yy": "float8", "b_n": "int", "b_ns": "int",
    "b_c": "float8", "b_k": "int",
}  # fmt: skip
_REFRESH_EVENTS_PG = text(
    "UPDATE events SET observed_at = u.t, day = u.day, lon = u.lon, lat = u.lat, "
    "cov_xx_m2 = u.xx, cov_xy_m2 = u.xy, cov_yy_m2 = u.yy, n_reports = u.n, n_sources = u.ns, "
    "confidence = u.c, count = u.k, updated_at = :b_now FROM unnest("
    + ", ".join(f"CAST(:{k} AS {t}[])" for k, t in _REFRESH_ARRAYS.items())
    + ") AS u(pk, t, day, lon, lat, xx, xy, yy, n, ns, c, k) WHERE events.pk = u.pk"
)


# -- reading ------------------------------------------------------------------------------------


def day_event_counts(
    session: Session, where: Sequence[ColumnElement[bool]]
) -> dict[dt.date, tuple[int, int, int]]:
    """Per day of the incidents ``where`` selects: (events, events with an explosion reported,
    explosions). The reports of one event count once and a report in no event alone; an event's
    explosions are the most any of its explosion reports counts ("12 explosions"), not how many
    reports it has."""
    key = func.coalesce(IncidentRow.event_id, -IncidentRow.pk)
    boom = case((IncidentRow.kind == "explosion", func.coalesce(IncidentRow.count, 1)), else_=0)
    per_event = (
        select(IncidentRow.day.label("d"), func.max(boom).label("k"))
        .where(*where)
        .group_by(IncidentRow.day, key)
        .subquery()
    )
    q = select(
        per_event.c.d,
        func.count(),
        func.sum(case((per_event.c.k > 0, 1), else_=0)),
        func.sum(per_event.c.k),
    ).group_by(per_event.c.d)
    return {d: (int(n), int(nb or 0), int(k or 0)) for d, n, nb, k in session.execute(q)}


def expected_events(session: Session, where: Sequence[ColumnElement[bool]] = ()) -> tuple[int, float]:
    """The incidents ``where`` selects as events (the reports of one event count once, a report
    in no event alone) and the expected number of distinct events among them
    (:func:`fusion.expected_count`): each counts 1 less the probability that it duplicates
    another, from the open possible duplicates and the pairs weighed for the count whose vaguer
    report (``a_pk``) it holds, one pair per pair of events (the most probable), at most 1.
    A dismissed pair counts nothing; an analyst's merge makes its events one."""
    ia, ib = aliased(IncidentRow), aliased(IncidentRow)
    ga = func.coalesce(ia.event_id, -ia.pk)
    gb = func.coalesce(ib.event_id, -ib.pk)
    n = session.execute(
        select(func.count(func.distinct(func.coalesce(IncidentRow.event_id, -IncidentRow.pk)))).where(
            *where
        )
    ).scalar_one()
    sel = select(IncidentRow.pk).where(*where).scalar_subquery()
    rows = session.execute(
        select(ga, gb, FusionPairRow.probability)
        .join(ia, ia.pk == FusionPairRow.a_pk)
        .join(ib, ib.pk == FusionPairRow.b_pk)
        .where(FusionPairRow.status.in_(_OPEN), ia.pk.in_(sel), ib.pk.in_(sel), ga != gb)
    ).all()
    if not rows:
        return int(n), float(n)
    g_a, g_b, p = (np.array(c) for c in zip(*rows, strict=True))
    _, code = np.unique(np.r_[g_a, g_b], return_inverse=True)
    ca, cb = code[: len(g_a)], code[len(g_a) :]
    k = int(code.max()) + 1
    first = fusion.most_probable_pairs(ca, cb, p)
    # the events outside the pairs count 1 each; the k in them, 1 less their mass
    return int(n), float(n - k) + fusion.expected_count(k, ca[first], p[first])


def day_expected_events(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    events: Mapping[dt.date, int] | None = None,
) -> dict[dt.date, float]:
    """Per day of the incidents ``where`` selects, the expected number of distinct events among
    the day's events (:func:`day_event_counts`' first figure, or ``events`` where the caller has
    it): as :func:`expected_events`, each counts 1 less the probability that it duplicates
    another, from the open possible duplicates and the pairs weighed for the count whose vaguer
    report it holds, one pair per pair of events (the most probable), at most 1. All days at
    once, over arrays; a pair across midnight lowers the day of its vaguer report."""
    if events is None:
        events = {d: n for d, (n, _, _) in day_event_counts(session, where).items()}
    out = {d: float(n) for d, n in events.items()}
    ia, ib = aliased(IncidentRow), aliased(IncidentRow)
    ga = func.coalesce(ia.event_id, -ia.pk)
    gb = func.coalesce(ib.event_id, -ib.pk)
    sel = select(IncidentRow.pk).where(*where).scalar_subquery()
    rows = session.execute(
        select(ia.day, ga, ib.day, gb, FusionPairRow.probability)
        .join(ia, ia.pk == FusionPairRow.a_pk)
        .join(ib, ib.pk == FusionPairRow.b_pk)
        .where(FusionPairRow.status.in_(_OPEN), ia.pk.in_(sel), ib.pk.in_(sel), ga != gb)
    ).all()
    if not rows:
        return out
    d_a, g_a, d_b, g_b, p = zip(*rows, strict=True)
    day = np.array([*d_a, *d_b], "datetime64[D]").astype(np.int64)
    grp = np.array([*g_a, *g_b], np.int64)
    lo = int(grp.min())
    span = int(grp.max()) - lo + 1
    # a unit: one event's reports of one day (an event across midnight counts on both days)
    units, code = np.unique(day * span + (grp - lo), return_inverse=True)
    n = len(g_a)
    ca, cb, pr = code[:n], code[n:], np.array(p, np.float64)
    first = fusion.most_probable_pairs(ca, cb, pr)
    mass = fusion.duplicate_mass(len(units), ca[first], pr[first])
    days, of_unit = np.unique(units // span, return_inverse=True)
    lost = np.bincount(of_unit, mass, len(days))
    for d, m in zip(days.astype("datetime64[D]").tolist(), lost.tolist(), strict=True):
        out[d] = out.get(d, 0.0) - m
    return out


@dataclass(frozen=True, slots=True)
class EventView:
    event: EventRow
    members: list[IncidentRow]


def get_event(session: Session, event_id: int, *, scope: Scope) -> EventView:
    """An event and its members; 404 when it does not exist or a member is outside the scope.

    A monitor sees an event only when every one of its reports is visible to them (their sector
    or their own submissions): the fused position carries information from every member.
    """
    ev = session.get(EventRow, event_id)
    missing = NotFoundError(
        f"no event {event_id}", field="event_id", value=event_id, fix="see an incident's event_id"
    )
    if ev is None:
        raise missing
    members = list(
        session.execute(
            select(IncidentRow).where(IncidentRow.event_id == event_id).order_by(IncidentRow.pk)
        ).scalars()
    )
    sc = incident_clauses(scope)
    if sc and members:
        visible = session.execute(
            select(func.count()).select_from(IncidentRow).where(IncidentRow.event_id == event_id, *sc)
        ).scalar_one()
        if visible != len(members):
            raise missing
    elif sc and scope.restricted:
        raise missing  # an empty (merged) event says nothing a monitor needs
    return EventView(ev, members)


@dataclass(frozen=True, slots=True)
class LinkedReport:
    pk: int
    report_id: str
    source_type: str
    submitted_by: str
    kind: str
    observed_at: dt.datetime
    distance_m: float
    time_offset_s: float


def linked_reports(session: Session, incident: IncidentRow, *, scope: Scope) -> list[LinkedReport]:
    """The other reports of the incident's event visible under ``scope``, nearest first."""
    if incident.event_id is None:
        return []
    conds = [
        IncidentRow.event_id == incident.event_id,
        IncidentRow.pk != incident.pk,
        *incident_clauses(scope),
    ]
    rows = list(session.execute(select(IncidentRow).where(*conds)).scalars())
    if not rows:
        return []
    lon = np.array([r.lon for r in rows])
    lat = np.array([r.lat for r in rows])
    _, _, d = GEOD.inv(np.full(len(rows), incident.lon), np.full(len(rows), incident.lat), lon, lat)
    t0 = as_utc(incident.observed_at)
    out = [
        LinkedReport(
            r.pk,
            r.report_id,
            r.source_type,
            r.submitted_by,
            r.kind,
            as_utc(r.observed_at),
            round(float(dm), 1),
            (as_utc(r.observed_at) - t0).total_seconds(),
        )
        for r, dm in zip(rows, np.asarray(d).tolist(), strict=True)
    ]
    out.sort(key=lambda x: (x.distance_m, x.pk))
    return out


@dataclass(frozen=True, slots=True)
class FusionPair:
    """A pair fusion weighed (:class:`FusionPairRow`) as one of the reports sees it."""

    pk: int
    status: str  # linked | possible
    probability: float
    other_pk: int
    other_report_id: str
    reason: dict[str, Any]


def fusion_pairs_of(session: Session, incident: IncidentRow, *, scope: Scope) -> list[FusionPair]:
    """Why fusion linked this report (the link that put it in its event, and the links that
    brought others to it) and the possible duplicates through it, with their probability; only
    pairs whose other report is visible under ``scope``, most probable first."""
    other = aliased(IncidentRow)
    conds: list[ColumnElement[bool]] = [
        or_(FusionPairRow.a_pk == incident.pk, FusionPairRow.b_pk == incident.pk),
        FusionPairRow.status != "weighed",
    ]
    q = (
        select(FusionPairRow, other.pk, other.report_id)
        .join(
            other,
            other.pk
            == case((FusionPairRow.a_pk == incident.pk, FusionPairRow.b_pk), else_=FusionPairRow.a_pk),
        )
        .where(*conds, *aliased_incident_clauses(other, scope))
    )
    out = [
        FusionPair(r.pk, r.status, r.probability, opk, orid, json.loads(r.reason))
        for r, opk, orid in session.execute(
            q.order_by(FusionPairRow.probability.desc(), FusionPairRow.pk)
        )
    ]
    return out


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A possible duplicate: two reports fusion did not link automatically, and the
    probability that they describe one event."""

    pk: int
    probability: float
    a_pk: int
    a_report_id: str
    a_event_id: int | None
    a_source_type: str
    a_observed_at: dt.datetime
    b_pk: int
    b_report_id: str
    b_event_id: int | None
    b_source_type: str
    b_observed_at: dt.datetime
    reason: dict[str, Any]


def list_duplicates(
    session: Session,
    *,
    agreement_id: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    min_probability: float = 0.0,
    after: int = 0,
    limit: int | None = None,
) -> list[Duplicate]:
    """The possible duplicates still open: both reports stored and not (yet) in one event (an
    analyst's merge, or a later link, closes them), by ``pk`` from ``after``; ``start``..``end``
    bound the earlier report's time."""
    ia, ib = aliased(IncidentRow), aliased(IncidentRow)
    q = (
        select(FusionPairRow, ia, ib)
        .join(ia, ia.pk == FusionPairRow.a_pk)
        .join(ib, ib.pk == FusionPairRow.b_pk)
        .where(
            FusionPairRow.status == "possible",
            FusionPairRow.pk > after,
            FusionPairRow.probability >= min_probability,
            or_(ia.event_id.is_(None), ib.event_id.is_(None), ia.event_id != ib.event_id),
        )
        .order_by(FusionPairRow.pk)
    )
    if agreement_id is not None:
        q = q.where(FusionPairRow.agreement_id == agreement_id)
    if start is not None:
        q = q.where(FusionPairRow.observed_at >= start)
    if end is not None:
        q = q.where(FusionPairRow.observed_at < end)
    if limit is not None:
        q = q.limit(limit)
    return [
        Duplicate(
            p.pk,
            p.probability,
            a.pk,
            a.report_id,
            a.event_id,
            a.source_type,
            as_utc(a.observed_at),
            b.pk,
            b.report_id,
            b.event_id,
            b.source_type,
            as_utc(b.observed_at),
            json.loads(p.reason),
        )
        for p, a, b in session.execute(q)
    ]


def detections_of(session: Session, incident_pk: int) -> list[DetectionRow]:
    """The detections an acoustic incident was located from, in arrival order."""
    q = (
        select(DetectionRow)
        .where(DetectionRow.incident_pk == incident_pk)
        .order_by(DetectionRow.arrival_us, DetectionRow.pk)
    )
    return list(session.execute(q).scalars())


# -- an analyst's decisions -----------------------------------------------------------------------


def _members(session: Session, event_id: int) -> list[int]:
    q = select(IncidentRow.pk).where(IncidentRow.event_id == event_id).order_by(IncidentRow.pk)
    return [pk for (pk,) in session.execute(q)]


def _state(ev: EventRow, members: list[int]) -> dict[str, object]:
    return {
        "members": members,
        "lon": round(ev.lon, 7),
        "lat": round(ev.lat, 7),
        "n_sources": ev.n_sources,
        "confidence": round(ev.confidence, 6),
        "merged_into": ev.merged_into,
    }


def _new_event(session: Session, like: EventRow, origin: str, now: dt.datetime) -> EventRow:
    ev = EventRow(
        agreement_id=like.agreement_id,
        observed_at=like.observed_at,
        day=like.day,
        lon=like.lon,
        lat=like.lat,
        cov_xx_m2=like.cov_xx_m2,
        cov_xy_m2=like.cov_xy_m2,
        cov_yy_m2=like.cov_yy_m2,
        n_reports=0,
        n_sources=0,
        confidence=0.0,
        origin=origin,
        created_at=now,
        updated_at=now,
    )
    session.add(ev)
    session.flush()
    return ev


def _decision(
    session: Session,
    action: str,
    *,
    actor: Principal,
    comment: str,
    before: dict[int, dict[str, object]],
    events: Sequence[EventRow],
    now: dt.datetime,
) -> dict[int, dict[str, object]]:
    """Audit rows (one per event touched) and one ledger entry for the decision."""
    after: dict[int, dict[str, object]] = {}
    for ev in events:
        session.refresh(ev)
        after[ev.pk] = _state(ev, _members(session, ev.pk))
        record_change(
            session,
            actor=actor,
            entity="event",
            entity_id=ev.pk,
            action=action,
            now=now,
            before=before.get(ev.pk),
            after=after[ev.pk],
            comment=comment,
        )
    session.flush()
    ledger.record_rows(session, "events", [ev.pk for ev in events], now=now)
    ledger.append(
        session,
        [
            (
                "review",
                f"event:{events[0].pk}",
                {
                    "action": action,
                    "comment": comment,
                    "actor": actor.subject,
                    "role": actor.role.value,
                    "events": [ev.pk for ev in events],
                    "members_before": {f"event:{k}": v["members"] for k, v in before.items()},
                    "members_after": {f"event:{k}": v["members"] for k, v in after.items()},
                },
            )
        ],
        now=now,
    )
    return after


@dataclass(frozen=True, slots=True)
class Decision:
    """The events a split or merge left, with their members before and after."""

    events: list[EventRow]
    before: dict[int, dict[str, object]]
    after: dict[int, dict[str, object]]


def split(
    session: Session,
    event_id: int,
    incident_pks: Sequence[int],
    *,
    actor: Principal,
    now: dt.datetime,
    comment: str = "",
) -> Decision:
    """Move the given reports out of an event into a new event (an analyst's decision)."""
    ev = session.get(EventRow, event_id)
    if ev is None:
        raise NotFoundError(f"no event {event_id}", field="event_id", value=event_id)
    moving = sorted(set(int(p) for p in incident_pks))
    if not moving:
        raise ValidationError(
            "no reports to move out",
            field="incidents",
            value=[],
            fix="list the incident pks to split off",
        )
    members = _members(session, event_id)
    strangers = sorted(set(moving) - set(members))
    if strangers:
        raise ValidationError(
            f"incident(s) {strangers} are not reports of event {event_id}",
            field="incidents",
            value=strangers,
            fix=f"choose among the event's reports: {members[:50]}",
        )
    if len(moving) == len(members):
        raise ConflictError(
            f"moving every report of event {event_id} out would leave it empty",
            field="incidents",
            value=moving,
            fix="leave at least one report in the event",
        )
    before = {ev.pk: _state(ev, members)}
    new = _new_event(session, ev, "split", now)
    _set_event(session, np.array(moving, np.intp), np.full(len(moving), new.pk, np.intp))
    ev.origin = "split" if ev.origin == "fusion" else ev.origin
    session.flush()
    refresh_events(session, [ev.pk, new.pk], now=now)
    after = _decision(
        session, "split", actor=actor, comment=comment, before=before, events=[ev, new], now=now
    )
    return Decision([ev, new], before, after)


def merge(
    session: Session,
    event_ids: Sequence[int],
    *,
    actor: Principal,
    now: dt.datetime,
    comment: str = "",
) -> Decision:
    """Merge events into the oldest of them (an analyst's decision; sources may then repeat)."""
    ids = sorted(set(int(e) for e in event_ids))
    if len(ids) < 2:
        raise ValidationError(
            "a merge needs at least two distinct events",
            field="events",
            value=list(event_ids),
            fix="give two or more event ids",
        )
    rows = list(session.execute(select(EventRow).where(EventRow.pk.in_(ids))).scalars())
    found = {r.pk: r for r in rows}
    unknown = [e for e in ids if e not in found]
    if unknown:
        raise NotFoundError(
            f"no event(s) {unknown}", field="events", value=unknown, fix="see an incident's event_id"
        )
    gone = [e for e in ids if found[e].merged_into is not None]
    if gone:
        raise ConflictError(
            f"event(s) {gone} were already merged into {[found[e].merged_into for e in gone]}",
            field="events",
            value=gone,
            fix="merge the events they were merged into instead",
        )
    if len({r.agreement_id for r in rows}) > 1:
        raise ValidationError(
            "the events belong to different agreements",
            field="events",
            value=ids,
            fix="merge within one",
        )
    keep, others = found[ids[0]], [found[e] for e in ids[1:]]
    before = {e: _state(found[e], _members(session, e)) for e in ids}
    it = IncidentRow.__table__
    session.connection().execute(update(it).where(it.c.event_id.in_(ids[1:])).values(event_id=keep.pk))
    keep.origin = "merge"
    for o in others:  # the events an analyst named (a handful)
        o.merged_into = keep.pk
        o.n_reports = o.n_sources = o.count = 0  # it stands for nothing now
        o.updated_at = now
    session.flush()
    refresh_events(session, [keep.pk], now=now)
    after = _decision(
        session, "merge", actor=actor, comment=comment, before=before, events=[keep, *others], now=now
    )
    return Decision([keep, *others], before, after)


def _pairs_between(
    session: Session, a: IncidentRow, b: IncidentRow, but: int
) -> list[tuple[FusionPairRow, str]]:
    """The open pairs (possible or weighed) other than ``but`` that link the events of reports
    ``a`` and ``b`` (a report in no event stands for itself), with their status."""
    ia, ib = aliased(IncidentRow), aliased(IncidentRow)
    ga = func.coalesce(ia.event_id, -ia.pk)
    gb = func.coalesce(ib.event_id, -ib.pk)
    g = (
        a.event_id if a.event_id is not None else -a.pk,
        b.event_id if b.event_id is not None else -b.pk,
    )
    rows = session.execute(
        select(FusionPairRow)
        .join(ia, ia.pk == FusionPairRow.a_pk)
        .join(ib, ib.pk == FusionPairRow.b_pk)
        .where(
            FusionPairRow.status.in_(_OPEN),
            FusionPairRow.pk != but,
            or_(and_(ga == g[0], gb == g[1]), and_(ga == g[1], gb == g[0])),
        )
        .order_by(FusionPairRow.pk)
    ).scalars()
    return [(r, r.status) for r in rows]


def decide_duplicate(
    session: Session,
    pair_pk: int,
    *,
    same: bool,
    actor: Principal,
    now: dt.datetime,
    comment: str = "",
) -> Decision | None:
    """An analyst's answer to a possible duplicate: ``same`` puts both reports in one event (their
    events merge; a report alone joins the other's event, or both make a new one), otherwise the
    pair is dismissed. Audited and in the ledger like a split or merge; later batches never move
    stored reports, so the answer stands. Returns the decision when events changed."""
    pair = session.get(FusionPairRow, pair_pk)
    if pair is None or pair.status not in ("possible", "dismissed"):
        raise NotFoundError(
            f"no possible duplicate {pair_pk}", field="pair", value=pair_pk, fix="see GET /duplicates"
        )
    a, b = session.get(IncidentRow, pair.a_pk), session.get(IncidentRow, pair.b_pk)
    assert a is not None and b is not None  # foreign keys
    if not same:
        dismissed: list[int] = []
        # the two events are not one: every stored pair between them stops counting, not only this one
        for other, before_st in [(pair, "possible"), *_pairs_between(session, a, b, pair.pk)]:
            other.status = "dismissed"
            why = (
                comment
                if other is pair
                else f"with pair {pair.pk}: the same two events" + (f"; {comment}" if comment else "")
            )
            record_change(
                session, actor=actor, entity="fusion_pair", entity_id=other.pk, action="dismiss",
                now=now, before={"status": before_st}, after={"status": "dismissed"}, comment=why,
            )  # fmt: skip
            dismissed.append(other.pk)
        session.flush()
        ledger.record_rows(session, "fusion_pairs", dismissed, now=now)
        return None
    pair.status = "possible"  # an analyst may take back a dismissal
    session.flush()
    ledger.record_rows(session, "fusion_pairs", [pair.pk], now=now)
    if a.event_id is not None and b.event_id is not None:
        if a.event_id == b.event_id:
            raise ConflictError(
                f"reports {a.pk} and {b.pk} are already in event {a.event_id}",
                field="pair", value=pair_pk, fix="nothing to do",
            )  # fmt: skip
        return merge(session, [a.event_id, b.event_id], actor=actor, now=now, comment=comment)
    held = a if a.event_id is not None else b if b.event_id is not None else None
    if held is not None:
        ev = session.get(EventRow, held.event_id)
        assert ev is not None
        before = {ev.pk: _state(ev, _members(session, ev.pk))}
    else:
        ev = _new_event(session, _blank_like(a, now), "merge", now)
        before = {}
    moving = [r.pk for r in (a, b) if r.event_id is None]
    _set_event(session, np.array(moving, np.intp), np.full(len(moving), ev.pk, np.intp))
    ev.origin = "merge"
    session.flush()
    refresh_events(session, [ev.pk], now=now)
    after = _decision(
        session, "merge", actor=actor, comment=comment, before=before, events=[ev], now=now
    )
    return Decision([ev], before, after)


def _blank_like(r: IncidentRow, now: dt.datetime) -> EventRow:
    """An event row to copy from: at the report, before the members refresh it."""
    return EventRow(
        agreement_id=r.agreement_id, observed_at=r.observed_at, day=r.day, lon=r.lon, lat=r.lat,
        cov_xx_m2=r.uncertainty_m**2, cov_xy_m2=0.0, cov_yy_m2=r.uncertainty_m**2,
    )  # fmt: skip
