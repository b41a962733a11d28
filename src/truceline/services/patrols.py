"""The monitors' own positions (TAK position reports, PLI): where the patrols were.

Kept as tracks (one row per device and time, :class:`~truceline.store.models.PatrolPositionRow`):
the context of a restriction of movement, and a map layer to come. A device re-sending the same
report stores nothing twice. Each call's new positions are one ledger entry (``rows``, every
column as written). The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.core.times import as_utc
from truceline.services.auth import Scope
from truceline.store import ledger
from truceline.store.db import bulk_insert
from truceline.store.models import PatrolPositionRow

__all__ = [
    "MAX_TRACK_POINTS",
    "PatrolPosition",
    "PositionsStored",
    "store_positions",
    "track",
    "tracks_layer",
]


@dataclass(frozen=True, slots=True)
class PatrolPosition:
    """One position report (WGS84 degrees; ``uncertainty_m`` 1 sigma per axis)."""

    uid: str
    cot_type: str
    observed_at: dt.datetime
    lon: float
    lat: float
    uncertainty_m: float
    callsign: str = ""
    group_name: str = ""
    group_role: str = ""


@dataclass(frozen=True, slots=True)
class PositionsStored:
    stored: int
    duplicates: int
    new: tuple[bool, ...]  # per position given: stored now (True) or already there (False)


def store_positions(
    session: Session,
    agreement_id: str,
    positions: Sequence[PatrolPosition],
    *,
    submitted_by: str,
    now: dt.datetime,
) -> PositionsStored:
    """Store the positions not stored yet (by device uid and time)."""
    if not positions:
        return PositionsStored(0, 0, ())
    t = PatrolPositionRow
    uids = sorted({p.uid for p in positions})
    lo = min(p.observed_at for p in positions)
    hi = max(p.observed_at for p in positions)
    q = select(t.uid, t.observed_at).where(
        t.agreement_id == agreement_id,
        t.uid.in_(uids),
        t.observed_at >= lo,
        t.observed_at <= hi,
    )
    seen = {(u, as_utc(at)) for u, at in session.execute(q)}
    rows, new = [], []
    for p in positions:
        key = (p.uid, as_utc(p.observed_at))
        if key in seen:
            new.append(False)
            continue
        seen.add(key)
        new.append(True)
        rows.append(
            {
                "agreement_id": agreement_id,
                "uid": p.uid,
                "callsign": p.callsign,
                "group_name": p.group_name,
                "group_role": p.group_role,
                "cot_type": p.cot_type,
                "observed_at": p.observed_at,
                "lon": p.lon,
                "lat": p.lat,
                "uncertainty_m": p.uncertainty_m,
                "received_at": now,
                "submitted_by": submitted_by,
            }
        )
    if rows:
        pks = bulk_insert(session.connection(), PatrolPositionRow.__table__, rows, new_pks="pk")
        for row, pk in zip(rows, pks, strict=True):
            row["pk"] = pk
        # the map's patrol layer: every position in the ledger, as written (one entry a call)
        ledger.record_rows(session, "patrol_positions", [], known=rows, now=now)
    return PositionsStored(len(rows), len(positions) - len(rows), tuple(new))


def track(
    session: Session, agreement_id: str, uid: str, start: dt.datetime, end: dt.datetime
) -> list[PatrolPositionRow]:
    """A device's positions between ``start`` and ``end``, in time order."""
    t = PatrolPositionRow
    q = (
        select(t)
        .where(t.agreement_id == agreement_id, t.uid == uid, t.observed_at.between(start, end))
        .order_by(t.observed_at)
    )
    return list(session.execute(q).scalars())


#: Most positions one tracks layer draws (then ``truncated``: narrow the days).
MAX_TRACK_POINTS = 200_000


def tracks_layer(
    session: Session,
    agreement_id: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    scope: Scope,
    limit: int = MAX_TRACK_POINTS,
) -> dict[str, object]:
    """The patrols' tracks between ``start`` and ``end`` as a GeoJSON FeatureCollection: per
    device a LineString of its positions in time order (a Point when it reported once), with its
    callsign, team, first and last time and number of positions. A monitor (``scope.restricted``)
    gets the tracks of the devices their own token reported only. ``truncated``: more than
    ``limit`` positions matched (the earliest ``limit`` are drawn)."""
    t = PatrolPositionRow
    q = (
        select(t.uid, t.callsign, t.group_name, t.observed_at, t.lon, t.lat)
        .where(t.agreement_id == agreement_id, t.observed_at.between(start, end))
        .order_by(t.uid, t.observed_at)
        .limit(limit + 1)
    )
    if scope.restricted:
        q = q.where(t.submitted_by == (scope.subject or ""))
    rows = session.execute(q).all()
    truncated = len(rows) > limit
    rows = rows[:limit]
    features: list[dict[str, object]] = []
    if rows:
        uid, callsign, group, at, lon, lat = zip(*rows, strict=True)
        u = np.array(uid, dtype=object)
        xy = np.round(np.column_stack([np.array(lon, float), np.array(lat, float)]), 5)
        cuts = np.flatnonzero(u[1:] != u[:-1]) + 1
        bounds = zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(u)].tolist(), strict=True)
        for a, b in bounds:  # one feature per device (a few dozen), not per position
            coords = xy[a:b].tolist()
            geom = (
                {"type": "Point", "coordinates": coords[0]}
                if b - a == 1
                else {"type": "LineString", "coordinates": coords}
            )
            features.append(
                {
                    "type": "Feature",
                    "geometry": geom,
                    "properties": {
                        "uid": u[a],
                        "callsign": callsign[b - 1] or u[a],
                        "team": group[b - 1],
                        "first": as_utc(at[a]).isoformat().replace("+00:00", "Z"),
                        "last": as_utc(at[b - 1]).isoformat().replace("+00:00", "Z"),
                        "positions": b - a,
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features, "truncated": truncated}
