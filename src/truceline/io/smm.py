"""Monitors' observations as the OSCE SMM's daily reports give them (``import --format smm``).

A daily report says, per observation post or patrol: "*positioned at X, the SMM heard three
undetermined explosions 3-5 km south-east between 21:00 and 23:30*", or "*bursts ranging from west
to north*", or "*the patrol came under fire*". One row (CSV) or object (JSON: a list, or
``{"observations": [...]}``) per such statement:

=========================  ====================================================================
column                     meaning
=========================  ====================================================================
``id``                     the report's id (idempotency key), e.g. ``SMM-2025-03-01-OP12-1``
``observer_lon``,          where the monitors stood (WGS84 deg)
``observer_lat``
``observed_from``,         the time window, ISO 8601 with a UTC offset (SMM reports give local
``observed_to``            time: EET is +02:00, EEST +03:00); one instant: the same time twice
``bearing``                the direction: a 16-point compass name (``SE``, ``south-east``), a
                           range of points clockwise (``W to N``, ``W..N``, ``W-N``), degrees
                           (``135``) or a range of degrees (``270 to 360``)
``bearing_error_deg``      for degrees only: +- this (default 5)
``bearing_from_deg``,      instead of ``bearing``: the arc in degrees from north, clockwise from
``bearing_to_deg``         the first to the second (``270``, ``0``: west to north)
``distance_min_km``,       the distance estimate as a range (km, up to 50); one estimate: the
``distance_max_km``        same number twice
``count``                  how many (default 1)
``kind``                   ``explosion`` (also ``undetermined explosion``), ``small_arms_fire``
                           (``burst``, ``shot``), ``projectile``, ``muzzle_flash``, ``flare``
                           (``illumination flare``), ``heavy_weapon``, ``drone_flight``, ...
``weapon``                 the weapon class, if the monitors assessed one (e.g. ``mortar``)
``party``                  the party the fire came from, if the monitors assessed it
``threat_to_monitors``     ``true`` when the monitors were fired at or near: the record's kind
                           becomes ``threat_to_monitors`` (the observed kind in the narrative)
``source_type``            ``patrol`` (default) or ``observation_post``
``reliability``,           Admiralty grading (default: Truceline's, F / 6)
``credibility``
``narrative``              the report's own words
=========================  ====================================================================

Each observation becomes an incident at the centroid of its arc-and-range sector with a 1-sigma
error that covers the sector (:mod:`truceline.core.observations`); ``observed_at`` is the middle of
the window and ``time_precision`` the shortest of second / minute / hour / day that holds it (a
window over a day is refused: split it). The narrative keeps what the monitors wrote: observer,
direction, distances, window. The party is never taken from the ground the monitors stood on: it is
the ``party`` column or unknown.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from truceline.core.incidents import Kind
from truceline.core.observations import MAX_OBSERVED_KM, arc_positions, compass_arc
from truceline.errors import ValidationError
from truceline.io.incidents_io import Reject

__all__ = ["KIND_WORDS", "REQUIRED", "observation_records", "smm_records"]

REQUIRED = (
    "id",
    "observer_lon",
    "observer_lat",
    "observed_from",
    "observed_to",
    "bearing",
    "distance_min_km",
    "distance_max_km",
)
#: SMM wording -> kind (any kind's own name is accepted too).
KIND_WORDS: dict[str, Kind] = {
    "undetermined explosion": Kind.explosion,
    "undetermined explosions": Kind.explosion,
    "explosions": Kind.explosion,
    "burst": Kind.small_arms_fire,
    "bursts": Kind.small_arms_fire,
    "shot": Kind.small_arms_fire,
    "shots": Kind.small_arms_fire,
    "small-arms fire": Kind.small_arms_fire,
    "heavy-machine-gun fire": Kind.small_arms_fire,
    "illumination flare": Kind.flare,
    "illumination flares": Kind.flare,
    "projectiles": Kind.projectile,
    "muzzle flashes": Kind.muzzle_flash,
}
_PRECISIONS = (("second", 1.0), ("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n", ""}


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise ValidationError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"{path}: not JSON ({exc})") from None
        data = doc.get("observations") if isinstance(doc, dict) else doc
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValidationError(
                f'{path}: expected a list of observations (or {{"observations": [...]}})',
                fix="one object per observation, with the columns of truceline.io.smm",
            )
        rows = _text_rows(data)
        return list(dict.fromkeys(k for r in rows for k in r)), rows
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in reader.fieldnames or []]
    reader.fieldnames = header
    return header, [{k: v or "" for k, v in r.items() if k is not None} for r in reader]


def _text_rows(data: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """JSON objects as the CSV reader's rows: keys lower case, values text (booleans lower case)."""
    return [
        {str(k).strip().lower(): "" if v is None else str(v).lower() if isinstance(v, bool)
         else str(v) for k, v in r.items()}
        for r in data
    ]  # fmt: skip


def _time(text: str) -> dt.datetime | str:
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return f"not an ISO 8601 time (got {text!r}); e.g. 2025-03-01T21:00:00+02:00"
    if t.tzinfo is None:
        return (
            f"no UTC offset (got {text!r}); give one: SMM reports use local time, EET +02:00, "
            "EEST +03:00"
        )
    return t.astimezone(dt.UTC)


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _parse(i: int, r: dict[str, str]) -> dict[str, Any] | Reject:
    """One observation checked and parsed (the sector's geometry comes after, for all at once)."""
    rid = r.get("id", "").strip()

    def bad(fld: str, why: str) -> Reject:
        return Reject(i, rid, fld, why)

    if not rid:
        return bad("id", "empty; give the report's own id")
    lon, lat = _number(r.get("observer_lon", "")), _number(r.get("observer_lat", ""))
    if lon is None or not -180 <= lon <= 180:
        return bad("observer_lon", f"not a longitude (got {r.get('observer_lon')!r})")
    if lat is None or not -90 <= lat <= 90:
        return bad("observer_lat", f"not a latitude (got {r.get('observer_lat')!r})")
    t0, t1 = _time(r.get("observed_from", "")), _time(r.get("observed_to", ""))
    if isinstance(t0, str):
        return bad("observed_from", t0)
    if isinstance(t1, str):
        return bad("observed_to", t1)
    if t1 < t0:
        return bad("observed_to", f"before observed_from ({t0.isoformat()}); swap them")
    width = (t1 - t0).total_seconds()
    precision = next((name for name, s in _PRECISIONS if width <= s), None)
    if precision is None:
        return bad("observed_to", f"a window of {width / 3600:.1f} h; split it into days")
    err = _number(r.get("bearing_error_deg", "") or "5")
    if err is None or not 0 <= err <= 90:
        return bad("bearing_error_deg", f"give 0..90 deg (got {r.get('bearing_error_deg')!r})")
    if r.get("bearing_from_deg", "").strip() or r.get("bearing_to_deg", "").strip():
        b0, b1 = _number(r.get("bearing_from_deg", "")), _number(r.get("bearing_to_deg", ""))
        if b0 is None or not 0 <= b0 <= 360:
            return bad("bearing_from_deg", f"give 0..360 deg (got {r.get('bearing_from_deg')!r})")
        if b1 is None or not 0 <= b1 <= 360:
            return bad("bearing_to_deg", f"give 0..360 deg (got {r.get('bearing_to_deg')!r})")
        arc = compass_arc(f"{b0:g} to {b1:g}", err)
        r = {**r, "bearing": r.get("bearing") or f"{b0:g} to {b1:g} deg"}
    else:
        arc = compass_arc(r.get("bearing", ""), err)
    if arc is None:
        return bad(
            "bearing",
            f"not a direction (got {r.get('bearing')!r}); give a 16-point compass name (SE, "
            "south-east), a range clockwise (W to N), degrees (135) or degrees range (270 to 360)",
        )
    if arc[1] - arc[0] >= 360.0:
        return bad("bearing", "the arc covers every direction; give the observer's position instead")
    d0, d1 = _number(r.get("distance_min_km", "")), _number(r.get("distance_max_km", ""))
    if d0 is None or d0 < 0:
        return bad("distance_min_km", f"give km >= 0 (got {r.get('distance_min_km')!r})")
    if d1 is None or d1 < d0 or d1 > MAX_OBSERVED_KM or d1 <= 0:
        return bad(
            "distance_max_km",
            f"give km > 0, >= distance_min_km and <= {MAX_OBSERVED_KM:g} (got "
            f"{r.get('distance_max_km')!r})",
        )
    word = r.get("kind", "").strip().lower() or "explosion"
    kind = KIND_WORDS.get(word) or (Kind(word) if word in Kind.__members__ else None)
    if kind is None:
        return bad(
            "kind",
            f"unknown kind {word!r}; use one of {', '.join(k.value for k in Kind)} or the SMM's "
            f"words {', '.join(KIND_WORDS)}",
        )
    threat = r.get("threat_to_monitors", "").strip().lower()
    if threat not in _TRUE | _FALSE:
        return bad("threat_to_monitors", f"give true or false (got {threat!r})")
    mid = t0 + (t1 - t0) / 2
    say = (
        f"{r.get('narrative', '').strip()} [SMM observation from {lat:.5f}, {lon:.5f}: "
        f"{r.get('count') or 1} x {word} {d0:g}-{d1:g} km {r.get('bearing', '').strip()}, "
        f"between {t0.isoformat()} and {t1.isoformat()}"
        + ("; the monitors were fired at or near" if threat in _TRUE else "")
        + "]"
    ).strip()
    rec: dict[str, Any] = {
        "id": rid,
        "observed_at": mid.isoformat(),
        "time_precision": precision,
        "kind": (Kind.threat_to_monitors if threat in _TRUE else kind).value,
        "weapon_class": r.get("weapon") or None,
        "count": r.get("count") or 1,
        "party": r.get("party") or None,
        "source_type": r.get("source_type") or "patrol",
        "narrative": say[:4000],
        "_arc": (lon, lat, arc[0], arc[1], d0, d1),
    }
    for key in ("reliability", "credibility"):
        if r.get(key):
            rec[key] = r[key]
    return rec


def _missing(header: Sequence[str]) -> list[str]:
    arc = {"bearing_from_deg", "bearing_to_deg"} <= set(header)
    return [c for c in REQUIRED if c not in header and not (c == "bearing" and arc)]


def smm_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    """Each observation as a Truceline record (at its sector's centroid), or a :class:`Reject`."""
    header, rows = _rows(path)
    missing = _missing(header)
    if rows and missing:
        raise ValidationError(
            f"{path}: not an SMM observations file: missing column(s) {', '.join(missing)}",
            fix=f"the columns are {', '.join(REQUIRED)} (and optional ones: see truceline.io.smm)",
        )
    yield from _records(rows)


def observation_records(
    data: Sequence[Mapping[str, Any]],
) -> list[tuple[int, dict[str, Any] | Reject]]:
    """Observations as JSON objects (the API's), each as a record or a :class:`Reject` (rows from 1).

    The fields are the CSV's columns; a record missing a required one is rejected alone.
    """
    rows = _text_rows(data)
    out: list[tuple[int, dict[str, Any] | Reject]] = []
    ok: list[dict[str, str]] = []
    at: list[int] = []
    for i, r in enumerate(rows, start=1):
        miss = _missing([k for k, v in r.items() if v.strip()])
        if miss:
            out.append((i, Reject(i, r.get("id", ""), miss[0], f"missing; give {', '.join(miss)}")))
        else:
            ok.append(r)
            at.append(i)
    for k, (_, rec) in enumerate(_records(ok)):
        if isinstance(rec, Reject):
            rec = Reject(at[k], rec.id, rec.field, rec.reason)
        out.append((at[k], rec))
    return sorted(out, key=lambda x: x[0])


def _records(rows: list[dict[str, str]]) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    parsed = [_parse(i, r) for i, r in enumerate(rows, start=1)]
    good = [p for p in parsed if not isinstance(p, Reject)]
    if good:
        arcs = np.array([p.pop("_arc") for p in good], dtype=float)
        pos = arc_positions(*arcs.T)
        for p, x, y, s in zip(
            good, pos.lon.tolist(), pos.lat.tolist(), pos.sigma_m.tolist(), strict=True
        ):
            p.update(lon=x, lat=y, uncertainty_m=min(s, 200_000.0))
    yield from enumerate(parsed, start=1)
