"""Cursor on Target: parse events safely, turn them into incident records, build what goes back.

**Position error.** CoT's ``ce`` is a circular error radius in metres. TAK clients fill it from the
device's horizontal accuracy or leave it at 9999999 ("unknown"); in practice it is read as a
CE90-like radius (the circle holding the position with ~90 % probability). Truceline's
``uncertainty_m`` is the 1-sigma of a circular Gaussian per axis, whose 90 % radius is
``sigma * sqrt(-2 ln 0.1) = 2.146 sigma``. So, consistently both ways::

    uncertainty_m = ce / 2.146        (incoming events)
    ce = 2.146 * uncertainty_m        (markers pushed back)

A ``ce`` of 9999999 is replaced by the configured ``unknown_ce_m`` (a CE90 radius) and the
narrative says so.

**What becomes an incident.** Sightings ``a-h-*`` (hostile), ``a-s-*`` (suspect), ``a-u-*``
(unknown), ``a-j-*``/``a-k-*``; acoustic detections ``b-d-a*``; and any other event with
remarks (free-form reports: spot markers, reports). The kind comes from a ``<__truceline kind=...>``
detail element when a client sends one, else from the type (:func:`kind_of`), else from
keywords in the remarks. Friendly and neutral tracks (``a-f-*``, ``a-n-*``: the devices' own
positions) are not incidents. ``t-x-c-t`` pings are answered with ``t-x-c-t-r``; ``t-x-d-d``
(delete / the pytak "hello") is ignored, as TAK servers do; a ``t-x-takp-q`` request to switch
to protobuf is refused (the server never offers protobuf, so clients stay on XML).

**Safety.** Parsing goes through :mod:`defusedxml` (no DTD, no entities, no external
references); the listener bounds the size of each event and of each connection.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

import defusedxml.ElementTree as SafeElementTree
import shapely
from defusedxml import DefusedXmlException

from truceline.core.geodesy import M_PER_DEG_MAX
from truceline.core.incidents import Kind
from truceline.errors import ValidationError

__all__ = [
    "CE90_PER_SIGMA",
    "UNKNOWN_CE",
    "CotError",
    "CotEvent",
    "EventSplitter",
    "Oversize",
    "ce_from_sigma",
    "finding_marker",
    "incident_record",
    "kind_of",
    "parse_event",
    "pong",
    "protobuf_refusal",
    "shape_events",
    "sigma_from_ce",
]

#: 90 % radius of a circular Gaussian in units of its per-axis sigma: sqrt(-2 ln 0.1).
CE90_PER_SIGMA = math.sqrt(-2.0 * math.log(0.1))
UNKNOWN_CE = 9999999.0
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class CotError(ValidationError):
    """An event that cannot be used (malformed, unsafe, or without what an incident needs)."""


def sigma_from_ce(ce_m: float) -> float:
    """1-sigma per-axis error (m) from a CE90 radius (m)."""
    return ce_m / CE90_PER_SIGMA


def ce_from_sigma(sigma_m: float) -> float:
    """CE90 radius (m) from a 1-sigma per-axis error (m)."""
    return sigma_m * CE90_PER_SIGMA


@dataclass(frozen=True, slots=True)
class CotEvent:
    """The parts of a CoT event Truceline uses (times as given; lat/lon/ce as parsed floats)."""

    uid: str
    type: str
    how: str
    time: str
    start: str
    stale: str
    lat: float
    lon: float
    hae: float
    ce: float
    le: float
    callsign: str = ""
    remarks: str = ""
    extension: dict[str, str] = field(default_factory=dict)  # <__truceline .../> attributes


# -- stream splitting ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Oversize:
    """A stretch of the stream that was dropped because one event was too large."""

    reason: str


class EventSplitter:
    """Split a byte stream into events after each ``</event>``, within size limits.

    An event over ``max_event_bytes`` is reported once (:class:`Oversize`) and skipped up to its
    end tag; the events after it are read normally. :attr:`exhausted` turns true once the
    connection has sent more than ``max_connection_bytes``.
    """

    END = b"</event>"

    def __init__(self, max_event_bytes: int, max_connection_bytes: int) -> None:
        self.max_event = max_event_bytes
        self.max_connection = max_connection_bytes
        self.total = 0
        self._buf = bytearray()
        self._skipping = False

    @property
    def exhausted(self) -> bool:
        return self.total > self.max_connection

    @property
    def pending(self) -> bool:
        """Part of an event has arrived (not only whitespace between events)."""
        return self._skipping or bool(self._buf.strip())

    def feed(self, data: bytes) -> list[bytes | Oversize]:
        self.total += len(data)
        self._buf += data
        out: list[bytes | Oversize] = []
        while True:
            i = self._buf.find(self.END)
            if i < 0:
                if len(self._buf) > self.max_event:
                    if not self._skipping:
                        out.append(
                            Oversize(f"an event exceeds {self.max_event} bytes; skipped to its end")
                        )
                        self._skipping = True
                    del self._buf[: len(self._buf) - (len(self.END) - 1)]
                return out
            end = i + len(self.END)
            chunk = bytes(self._buf[:end])
            del self._buf[:end]
            if self._skipping:
                self._skipping = False
                continue
            if len(chunk) > self.max_event:
                out.append(Oversize(f"an event of {len(chunk)} bytes exceeds {self.max_event}; skipped"))
                continue
            chunk = chunk.strip()
            if chunk:
                out.append(chunk)


# -- parsing ------------------------------------------------------------------------------------


def _float(value: str | None, name: str, *, default: float | None = None) -> float:
    if value is None:
        if default is not None:
            return default
        raise CotError(f"point has no {name}", field=name)
    try:
        x = float(value)
    except ValueError:
        raise CotError(f"point {name} is not a number (got {value[:40]!r})", field=name) from None
    if not math.isfinite(x):
        raise CotError(f"point {name} is not finite", field=name)
    return x


def parse_event(data: bytes) -> CotEvent:
    """Parse one CoT event (XML), refusing DTDs and entities.

    Raises
    ------
    CotError
        With a reason safe to log: not XML, unsafe XML, not an ``<event>``, a missing or bad field.
    """
    try:
        root = SafeElementTree.fromstring(
            data, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException as exc:
        raise CotError(f"unsafe XML refused ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise CotError(f"not well-formed XML ({exc})") from None
    if root.tag != "event":
        raise CotError(f"the root element is <{root.tag[:40]}>, not <event>")
    uid, typ = root.get("uid", "").strip(), root.get("type", "").strip()
    if not uid or not typ:
        raise CotError("the event has no uid or no type", field="uid" if not uid else "type")
    point = root.find("point")
    if point is None:
        raise CotError("the event has no <point>", field="point")
    lat = _float(point.get("lat"), "lat")
    lon = _float(point.get("lon"), "lon")
    detail = root.find("detail")
    callsign, remarks, ext = "", "", {}
    if detail is not None:
        contact = detail.find("contact")
        if contact is not None:
            callsign = (contact.get("callsign") or "").strip()
        rem = detail.find("remarks")
        if rem is not None:
            remarks = "".join(rem.itertext()).strip()
        tl = detail.find("__truceline")
        if tl is None:
            tl = detail.find("truceline")
        if tl is not None:
            ext = {k: v for k, v in tl.attrib.items()}
    return CotEvent(
        uid=uid[:200],
        type=typ[:100],
        how=root.get("how", "")[:20],
        time=root.get("time", ""),
        start=root.get("start", "") or root.get("time", ""),
        stale=root.get("stale", ""),
        lat=lat,
        lon=lon,
        hae=_float(point.get("hae"), "hae", default=UNKNOWN_CE),
        ce=_float(point.get("ce"), "ce", default=UNKNOWN_CE),
        le=_float(point.get("le"), "le", default=UNKNOWN_CE),
        callsign=callsign[:100],
        remarks=remarks[:3000],
        extension=ext,
    )


# -- events to incidents ------------------------------------------------------------------------

_SIGHTING = re.compile(r"^a-[husjk]-")
#: Type fragments (after the affiliation) -> kind, most specific first (MIL-STD-2525 CoT types).
_TYPE_KINDS: tuple[tuple[str, Kind], ...] = (
    ("A-M-F-Q", Kind.drone_flight),  # unmanned aerial vehicle
    ("A", Kind.drone_flight),  # anything airborne over the line is watched as a flight
    ("G-E-V-A-T", Kind.heavy_weapon),  # tanks
    ("G-U-C-F", Kind.heavy_weapon),  # field artillery units
    ("G-E-W", Kind.heavy_weapon),  # weapons (guns, launchers, mortars)
    ("G-E-V", Kind.vehicle_movement),
    ("G-I", Kind.fortification_works),  # installations
    ("G", Kind.armed_personnel),
)
#: Remarks keywords -> kind for free-form reports (first match wins).
_KEYWORDS: tuple[tuple[str, Kind], ...] = (
    ("muzzle flash", Kind.muzzle_flash),
    ("flare", Kind.flare),
    ("small arms", Kind.small_arms_fire),
    ("gunfire", Kind.small_arms_fire),
    ("machine gun", Kind.small_arms_fire),
    ("drone", Kind.drone_flight),
    ("uav", Kind.drone_flight),
    ("tank", Kind.heavy_weapon),
    ("artillery", Kind.heavy_weapon),
    ("howitzer", Kind.heavy_weapon),
    ("mortar", Kind.heavy_weapon),
    ("mlrs", Kind.heavy_weapon),
    ("explosion", Kind.explosion),
    ("impact", Kind.explosion),
    ("shelling", Kind.explosion),
    ("blast", Kind.explosion),
    ("missile", Kind.projectile),
    ("rocket", Kind.projectile),
    ("projectile", Kind.projectile),
    ("trench", Kind.fortification_works),
    ("fortification", Kind.fortification_works),
    ("checkpoint", Kind.movement_restriction),
    ("denied", Kind.movement_restriction),
    ("casualt", Kind.civilian_casualty),
    ("wounded", Kind.civilian_casualty),
    ("damage", Kind.damage),
    ("convoy", Kind.vehicle_movement),
    ("vehicle", Kind.vehicle_movement),
    ("troops", Kind.armed_personnel),
    ("soldiers", Kind.armed_personnel),
    ("personnel", Kind.armed_personnel),
)


def kind_of(ev: CotEvent) -> Kind | None:
    """The kind an event reports: its extension, its type, or its remarks; ``None`` if none."""
    if ev.extension.get("kind"):
        try:
            return Kind(ev.extension["kind"])
        except ValueError:
            raise CotError(
                f"unknown kind {ev.extension['kind'][:40]!r} in <__truceline>",
                field="kind",
                fix="use one of: " + ", ".join(k.value for k in Kind),
            ) from None
    if _SIGHTING.match(ev.type):
        rest = ev.type[4:]
        for frag, kind in _TYPE_KINDS:
            if rest == frag or rest.startswith(frag + "-"):
                return kind
    text = ev.remarks.lower()
    for word, kind in _KEYWORDS:
        if word in text:
            return kind
    if ev.type.startswith("b-d-a"):
        return Kind.explosion  # an acoustic detection with nothing more said: a bang
    return None


def disposition(ev: CotEvent) -> str:
    """``incident``, ``ping``, ``protocol`` (a protobuf request), or ``ignore``."""
    t = ev.type
    if t == "t-x-c-t":
        return "ping"
    if t.startswith("t-x-takp"):
        return "protocol"
    if t.startswith("t-") or t.startswith("a-f-") or t.startswith("a-n-") or t.startswith("a-p-"):
        return "ignore"
    if _SIGHTING.match(t) or t.startswith("b-d-a") or ev.remarks or ev.extension:
        return "incident"
    return "ignore"


#: Events dated before this are refused: no TAK device reported then, and dates near year 1
#: cannot be widened into the time windows that linking and reports use.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
#: How far after the server's clock an event may be dated (a device's clock off by a time zone).
AHEAD = dt.timedelta(days=1)


def _time(text: str, now: dt.datetime | None) -> str:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CotError(f"event time {text[:40]!r} is not ISO 8601", field="start") from None
    if t.tzinfo is None:
        raise CotError("event time has no UTC offset", field="start")
    try:
        t = t.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        t = EARLIEST - dt.timedelta(days=1)
    latest = (now or dt.datetime.now(dt.UTC)) + AHEAD
    if not EARLIEST <= t <= latest:
        raise CotError(
            f"event start {text[:40]} is before {EARLIEST:%Y} or more than a day after the "
            f"server's clock",
            field="start",
            fix="set the device's clock (and time zone) right and send the event again",
        )
    return t.isoformat().replace("+00:00", "Z")


def report_id(ev: CotEvent) -> str:
    """The idempotency key: the device's uid and the event's start (a resend is a duplicate)."""
    rid = f"cot:{ev.uid}@{ev.start}"
    if len(rid) <= 128:
        return rid
    return "cot:" + hashlib.sha256(rid.encode()).hexdigest()[:40]


def incident_record(
    ev: CotEvent, *, unknown_ce_m: float, source_type: str, now: dt.datetime | None = None
) -> dict[str, Any]:
    """The incident record of an event (validated downstream like any other submission).

    Raises
    ------
    CotError
        When no kind can be told from the type, the extension or the remarks, or the event's
        start is not a time between 1970 and a day after ``now`` (default: the system clock).
    """
    kind = kind_of(ev)
    if kind is None:
        raise CotError(
            f"event type {ev.type} with no recognisable kind",
            field="type",
            fix="send a sighting type a-h-G..., add a kind keyword to the remarks, or "
            '<__truceline kind="..."/> in the detail',
        )
    unknown = ev.ce >= UNKNOWN_CE
    ce = unknown_ce_m if unknown else ev.ce
    src = "acoustic" if ev.type.startswith("b-d-a") else source_type
    note = f"ce unknown, {unknown_ce_m:g} m CE90 assumed" if unknown else f"ce {ev.ce:g} m (CE90)"
    who = ev.callsign or "-"
    rec: dict[str, Any] = {
        "id": report_id(ev),
        "observed_at": _time(ev.start, now),
        "time_precision": "second",
        "lon": ev.lon,
        "lat": ev.lat,
        "uncertainty_m": sigma_from_ce(ce),
        "kind": kind.value,
        "source_type": src,
        "narrative": f"TAK {who} (uid {ev.uid}, type {ev.type}, how {ev.how or '-'}, {note})"
        + (f": {ev.remarks}" if ev.remarks else ""),
    }
    for key in (
        "weapon_class",
        "party",
        "count",
        "reliability",
        "credibility",
        "origin_lon",
        "origin_lat",
        "origin_uncertainty_m",
        "bearing_deg",
        "source_type",
    ):
        if ev.extension.get(key):
            rec[key] = ev.extension[key]
    rec["narrative"] = rec["narrative"][:4000]
    return rec


# -- events to devices --------------------------------------------------------------------------


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime(_TIME)[:-4] + "Z"  # milliseconds, as TAK writes them


def _event(
    uid: str,
    type_: str,
    now: dt.datetime,
    stale: dt.timedelta,
    lat: float,
    lon: float,
    ce: float = UNKNOWN_CE,
    how: str = "h-g-i-g-o",
) -> ET.Element:
    ev = ET.Element(
        "event",
        version="2.0",
        uid=uid,
        type=type_,
        how=how,
        time=_stamp(now),
        start=_stamp(now),
        stale=_stamp(now + stale),
    )
    ET.SubElement(
        ev, "point", lat=repr(lat), lon=repr(lon), hae="0.0", ce=repr(float(ce)), le=repr(UNKNOWN_CE)
    )
    return ev


def _xml(ev: ET.Element) -> bytes:
    return bytes(ET.tostring(ev, encoding="utf-8", xml_declaration=False))


def pong(now: dt.datetime) -> bytes:
    """The answer to a ``t-x-c-t`` ping."""
    return _xml(_event("takPong", "t-x-c-t-r", now, dt.timedelta(seconds=20), 0.0, 0.0))


def protobuf_refusal(now: dt.datetime) -> bytes:
    """The answer to a request to switch to protobuf: no (stay on XML)."""
    ev = _event("protouid", "t-x-takp-r", now, dt.timedelta(seconds=20), 0.0, 0.0)
    ET.SubElement(
        ET.SubElement(ET.SubElement(ev, "detail"), "TakControl"), "TakResponse", status="false"
    )
    return _xml(ev)


#: ARGB colours as TAK stores them (signed 32-bit ints).
def _argb(a: int, r: int, g: int, b: int) -> str:
    v = (a << 24) | (r << 16) | (g << 8) | b
    return str(v - (1 << 32) if v >= 1 << 31 else v)


_STYLE = {
    "line": (_argb(255, 255, 0, 0), _argb(0, 0, 0, 0), "3.0"),
    "zone": (_argb(255, 255, 165, 0), _argb(60, 255, 165, 0), "2.0"),
    "buffer": (_argb(255, 255, 215, 0), _argb(80, 255, 215, 0), "2.0"),
}


def _parts(geom: Any) -> list[Any]:
    return [g for g in shapely.get_parts(geom) if not g.is_empty]


def shape_events(
    features: Iterable[Mapping[str, Any]],
    *,
    now: dt.datetime,
    stale: dt.timedelta,
    simplify_m: float = 20.0,
) -> list[bytes]:
    """The line and the zones as TAK drawing shapes (``u-d-f`` with ``<link point>`` vertices).

    ``features`` are GeoJSON features with a ``layer`` property (the agreement's
    ``zones_feature_collection``); lines and zones are sent, one event per part. Outlines are
    simplified to within ``simplify_m`` for the devices (a display tolerance: the adjudication
    always uses the exact zones).
    """
    # degrees that span at most simplify_m anywhere: a drawing tolerance, not a measurement
    tol_deg = simplify_m / M_PER_DEG_MAX
    out = []
    for f in features:
        props = f.get("properties") or {}
        layer = props.get("layer")
        if layer not in ("line", "zone"):
            continue
        geom = shapely.geometry.shape(f["geometry"])
        style = "line" if layer == "line" else ("buffer" if props.get("buffer") else "zone")
        stroke, fill, weight = _STYLE[style]
        name = (
            "Line of contact"
            if layer == "line"
            else f"{props.get('name') or props.get('zone')} ({props.get('side')})"
        )
        for k, part in enumerate(_parts(geom)):
            if tol_deg > 0:
                part = shapely.simplify(part, tol_deg, preserve_topology=True)
            ring = part.exterior if part.geom_type == "Polygon" else part
            coords = list(ring.coords)
            c = part.centroid if part.geom_type == "Polygon" else part.interpolate(0.5, normalized=True)
            uid = f"truceline-{layer}-{props.get('id', 'line')}-{k}".replace(":", "-")
            ev = _event(uid, "u-d-f", now, stale, float(c.y), float(c.x))
            detail = ET.SubElement(ev, "detail")
            for x, y, *_ in coords:
                ET.SubElement(detail, "link", point=f"{float(y)!r},{float(x)!r}")
            ET.SubElement(detail, "strokeColor", value=stroke)
            ET.SubElement(detail, "strokeWeight", value=weight)
            ET.SubElement(detail, "fillColor", value=fill)
            ET.SubElement(detail, "contact", callsign=name)
            ET.SubElement(detail, "labels_on", value="true")
            ET.SubElement(detail, "remarks").text = f"Truceline: {name}" + (
                " - buffer zone" if props.get("buffer") else ""
            )
            ET.SubElement(detail, "archive")
            out.append(_xml(ev))
    return out


def finding_marker(
    *,
    pk: int,
    rule_id: str,
    responsible: str,
    probability: float,
    likelihood: str,
    explanation: str,
    lon: float,
    lat: float,
    uncertainty_m: float,
    observed_at: dt.datetime,
    now: dt.datetime,
    stale: dt.timedelta,
) -> bytes:
    """A finding as a red spot marker; its ``ce`` is the incident's CE90 (see the module doc)."""
    ev = _event(
        f"truceline-finding-{pk}",
        "b-m-p-s-m",
        now,
        stale,
        lat,
        lon,
        ce=ce_from_sigma(uncertainty_m),
        how="m-g",
    )
    detail = ET.SubElement(ev, "detail")
    red = _argb(255, 255, 0, 0)
    ET.SubElement(detail, "contact", callsign=f"{rule_id} {responsible} p={probability:.2f}")
    ET.SubElement(detail, "color", argb=red)
    ET.SubElement(detail, "usericon", iconsetpath=f"COT_MAPPING_SPOTMAP/b-m-p-s-m/{red}")
    ET.SubElement(detail, "remarks").text = (
        f"Possible violation of {rule_id} by {responsible} ({likelihood}, p={probability:.2f}), "
        f"observed {observed_at.astimezone(dt.UTC):%Y-%m-%d %H:%M}Z: {explanation}"
    )[:3000]
    return _xml(ev)
