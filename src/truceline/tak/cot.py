"""Cursor on Target: parse events safely, turn them into incident records, build what goes back.

**Position error.** The CoT event schema defines ``point@ce`` (circular error) and ``le``
(linear error, height) in metres and, when they describe an error, as one standard deviation of a
zero-mean normal distribution; 9999999 means "unknown". Truceline's ``uncertainty_m`` is the
1-sigma of a circular Gaussian per axis, so both ways it is the same number::

    uncertainty_m = ce        (incoming events)
    ce = uncertainty_m        (markers pushed back)

An event whose ``ce`` is 9999999 (or more) has no usable position error: it is refused with that
reason (a device without a fix sends it; assuming a radius would make it look measured).

**Identity.** A marker is its ``uid``: the incident's id is ``cot:<uid>``. TAK clients re-send
each marker about once a minute with the same uid and fresh ``time``/``start``/``stale``; such a
re-send changes nothing (:func:`truceline.services.submissions.submit_markers` takes the stored
time for a re-send whose other content is unchanged). A marker moved or edited (same uid, other
content) becomes a new revision of its incident. ``stale`` is honoured: an event whose ``stale``
is before its ``start`` is malformed, one already stale when it arrives is refused as outdated,
and an event older than the marker's stored revision never replaces it.

**What becomes an incident.** Sightings ``a-h-*`` (hostile), ``a-s-*`` (suspect), ``a-u-*``
(unknown), ``a-j-*``/``a-k-*``; acoustic detections ``b-d-a*``; and any other event with
remarks (free-form reports: spot markers, reports). The kind comes from a ``<__truceline kind=...>``
detail element when a client sends one, else from the type (:func:`kind_of`), else from
keywords in the remarks. Friendly and neutral tracks (``a-f-*``, ``a-n-*``: the devices' own
positions) are not incidents. ``t-x-c-t`` pings are answered with ``t-x-c-t-r``; ``t-x-d-d``
(delete / the pytak "hello") is ignored, as TAK servers do; a ``t-x-takp-q`` request to switch
to protobuf is refused (the server never offers protobuf, so clients stay on XML).

**Observations.** A monitor's report of something seen or heard away from where they stand
carries the fields of :mod:`truceline.io.smm` (``observed_from``, ``observed_to``, ``bearing`` or
``bearing_from_deg`` and ``bearing_to_deg``, ``bearing_error_deg``, ``distance_min_km``,
``distance_max_km``, ``threat_to_monitors``) as attributes of ``<__truceline>`` or as
``key: value`` (or ``key=value``) parts of the remarks, separated by ``;`` or new lines. The
event's point is then the observer's position, and the incident lies at the arc-and-range
sector's centroid with the sector's error, as ``import --format smm`` places it (no window: the
event's start).

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
from truceline.io.incidents_io import Reject
from truceline.io.smm import observation_records

__all__ = [
    "TYPE_KINDS",
    "UNKNOWN_CE",
    "CotError",
    "CotEvent",
    "EventSplitter",
    "Oversize",
    "Truncated",
    "ce_from_sigma",
    "finding_marker",
    "incident_record",
    "kind_of",
    "marker_version",
    "parse_event",
    "pong",
    "position_record",
    "protobuf_refusal",
    "shape_events",
]

UNKNOWN_CE = 9999999.0
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"


class CotError(ValidationError):
    """An event that cannot be used (malformed, unsafe, or without what an incident needs)."""


def ce_from_sigma(sigma_m: float) -> float:
    """CoT ``ce`` (m) for a 1-sigma per-axis error (m): the same number (see the module doc)."""
    return float(sigma_m)


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
    group: str = ""  # <__group name=...>: the device's team (a position report, PLI)
    group_role: str = ""


# -- stream splitting ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Oversize:
    """A stretch of the stream that was dropped because one event was too large."""

    reason: str


@dataclass(frozen=True, slots=True)
class Truncated:
    """A broken stretch of the stream, refused alone: an event cut off by the next one (no
    ``</event>`` before the next ``<event`` or ``<?xml``), bytes outside any event, or an event
    the stream ended inside. ``uid`` is the broken event's, when it got that far."""

    reason: str
    uid: str = ""


#: Where an event begins: its start tag, or the XML declaration that may come before it.
_START = re.compile(rb"<event[\s>/]|<\?xml[\s?]")
_EVENT = re.compile(rb"<event[\s>/]")
_DECLARATION = re.compile(rb"<\?xml[^<>]*\?>")
_UID = re.compile(rb"""\suid\s*=\s*["']([^"'<>]{1,200})["']""")


def _truncated(
    piece: bytes, why: str, after: str = "; refused, the events after it are read"
) -> Truncated:
    m = _UID.search(piece)
    uid = m.group(1).decode("utf-8", "replace") if m else ""
    named = f" (uid {uid[:80]!r})" if uid else ""
    return Truncated(f"{why}{named}{after}", uid)


class EventSplitter:
    """Split a byte stream into events after each ``</event>``, within size limits.

    A broken event never takes a good neighbour with it: an event with no ``</event>`` before the
    next event's start (``<event`` or an ``<?xml`` declaration) ends there and is reported alone
    (:class:`Truncated`), as are bytes before an event's start that belong to no event; the next
    event is read normally. An event over ``max_event_bytes`` is reported once
    (:class:`Oversize`) and skipped up to its end tag (or the next event's start). :meth:`finish`
    reports what the stream ended inside. :attr:`exhausted` turns true once the connection has
    sent more than ``max_connection_bytes``.
    """

    END = b"</event>"
    _TAIL = len(END) - 1  # bytes kept while skipping: an end tag or a start split across reads

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

    def _cut(self, limit: int) -> int | None:
        """Where the event at the buffer's head is cut short (before ``limit``), if it is: at a
        second event start, or at the first start when something else comes before it."""
        buf = self._buf
        m = _START.search(buf, 0, limit)
        if m is None:
            return None
        if m.start() > 0 and bytes(buf[: m.start()]).strip():
            return m.start()  # bytes outside any event
        if m.group().startswith(b"<?"):  # a declaration: the event's start tag must come next
            m = _START.search(buf, m.end(), limit)
            if m is None:
                return None
            if m.group().startswith(b"<?"):
                return m.start()
        nxt = _START.search(buf, m.end(), limit)
        return None if nxt is None else nxt.start()

    def feed(self, data: bytes) -> list[bytes | Oversize | Truncated]:
        self.total += len(data)
        self._buf += data
        out: list[bytes | Oversize | Truncated] = []
        while True:
            i = self._buf.find(self.END)
            if self._skipping:
                m = _START.search(self._buf, 0, i if i >= 0 else len(self._buf))
                if m is not None:  # the oversize event ends where the next one begins
                    del self._buf[: m.start()]
                    self._skipping = False
                    continue
                if i < 0:
                    del self._buf[: max(0, len(self._buf) - self._TAIL)]
                    return out
                del self._buf[: i + len(self.END)]
                self._skipping = False
                continue
            cut = self._cut(i if i >= 0 else len(self._buf))
            if cut is not None:
                piece = bytes(self._buf[:cut])
                del self._buf[:cut]
                if _DECLARATION.fullmatch(piece.strip()):
                    continue  # a declaration repeated (or left by a cut sender) holds no event
                if _EVENT.search(piece):
                    out.append(_truncated(piece, "an event with no </event> before the next event"))
                else:
                    out.append(_truncated(piece, f"{len(piece)} bytes outside any event"))
                continue
            if i < 0:
                if len(self._buf) > self.max_event:
                    out.append(Oversize(f"an event exceeds {self.max_event} bytes; skipped to its end"))
                    self._skipping = True
                    del self._buf[: max(0, len(self._buf) - self._TAIL)]
                return out
            end = i + len(self.END)
            chunk = bytes(self._buf[:end])
            del self._buf[:end]
            if len(chunk) > self.max_event:
                out.append(Oversize(f"an event of {len(chunk)} bytes exceeds {self.max_event}; skipped"))
                continue
            chunk = chunk.strip()
            if chunk:
                out.append(chunk)

    def finish(self) -> list[Truncated]:
        """At the end of the stream: the event it ended inside, if any (reported, not parsed)."""
        piece, self._buf = bytes(self._buf), bytearray()
        skipping, self._skipping = self._skipping, False
        if skipping or not piece.strip():
            return []
        return [_truncated(piece, "the stream ended inside an event (no </event>)", "; refused")]


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
    callsign, remarks, ext, group, group_role = "", "", {}, "", ""
    if detail is not None:
        grp = detail.find("__group")
        if grp is not None:
            group, group_role = (grp.get("name") or "")[:64], (grp.get("role") or "")[:64]
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
        group=group,
        group_role=group_role,
    )


# -- events to incidents ------------------------------------------------------------------------

_SIGHTING = re.compile(r"^a-[husjk]-")
#: CoT type (after the affiliation ``a-h-``, ``a-s-``, ``a-u-``, ``a-j-``, ``a-k-``) -> kind, most
#: specific first (MIL-STD-2525 function ids as CoT writes them). A type that matches none (a
#: manned aircraft, a helicopter, a ship) has no kind from its type: the remarks' keywords or a
#: ``<__truceline kind=...>`` element must say what was seen, else the event is refused. The table
#: is in the README's TAK section; ``tests/tak/test_cot.py`` holds the two to each other.
TYPE_KINDS: tuple[tuple[str, Kind, str], ...] = (
    ("A-M-F-Q", Kind.drone_flight, "unmanned aerial vehicle (fixed wing)"),
    ("A-M-H-Q", Kind.drone_flight, "unmanned aerial vehicle (rotary wing)"),
    ("A-W-M", Kind.projectile, "missile in flight"),
    ("G-E-V-A-T", Kind.heavy_weapon, "tank"),
    ("G-U-C-A", Kind.heavy_weapon, "armour unit"),
    ("G-U-C-F", Kind.heavy_weapon, "field artillery unit"),
    ("G-E-W", Kind.heavy_weapon, "weapon (gun, howitzer, launcher, mortar)"),
    ("G-E-V", Kind.vehicle_movement, "ground vehicle"),
    ("G-I", Kind.fortification_works, "installation"),
    ("G", Kind.armed_personnel, "ground unit or personnel"),
)
_TYPE_KINDS = tuple((frag, kind) for frag, kind, _ in TYPE_KINDS)
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
        # anything else airborne (manned aircraft, helicopters), at sea or in space: the remarks
        # (or the extension) must say what was seen
    text = ev.remarks.lower()
    for word, kind in _KEYWORDS:
        if word in text:
            return kind
    if ev.type.startswith("b-d-a"):
        return Kind.explosion  # an acoustic detection with nothing more said: a bang
    return None


def disposition(ev: CotEvent) -> str:
    """``incident``, ``position`` (a device's own, PLI), ``ping``, ``protocol`` (a protobuf
    request), or ``ignore``."""
    t = ev.type
    if t == "t-x-c-t":
        return "ping"
    if t.startswith("a-f-G") and ev.group:  # a team member's device: where the patrol is
        return "position"
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
    t = _parse_time(text, "start")
    latest = (now or dt.datetime.now(dt.UTC)) + AHEAD
    if not EARLIEST <= t <= latest:
        raise CotError(
            f"event start {text[:40]} is before {EARLIEST:%Y} or more than a day after the "
            f"server's clock",
            field="start",
            fix="set the device's clock (and time zone) right and send the event again",
        )
    return t.isoformat().replace("+00:00", "Z")


def _check_stale(ev: CotEvent, now: dt.datetime | None) -> None:
    """``stale`` before ``start`` is malformed; stale on arrival (``now`` given) is outdated."""
    if not ev.stale:
        return
    stale, start = _parse_time(ev.stale, "stale"), _parse_time(ev.start, "start")
    if stale < start:
        raise CotError(
            f"event stale {ev.stale[:40]} is before its start {ev.start[:40]}",
            field="stale",
            fix="set stale to when the information stops being valid (after start)",
        )
    if now is not None and stale < now:
        raise CotError(
            f"event went stale at {ev.stale[:40]}, before it arrived "
            f"({now.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}): outdated, not stored",
            field="stale",
            fix="send current events; import a capture with `truceline import --format cot`",
        )


def report_id(ev: CotEvent) -> str:
    """The idempotency key: the marker's uid (a re-send or a revision of a marker keeps it)."""
    rid = f"cot:{ev.uid}"
    if len(rid) <= 128:
        return rid
    return "cot:" + hashlib.sha256(rid.encode()).hexdigest()[:40]


def marker_version(ev: CotEvent) -> float:
    """The event's start in seconds since 1970: which of two sendings of a marker is the newer."""
    return _parse_time(ev.start, "start").timestamp()


def _parse_time(text: str, name: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise CotError(f"event {name} {text[:40]!r} is not ISO 8601", field=name) from None
    if t.tzinfo is None:
        raise CotError(f"event {name} has no UTC offset", field=name)
    try:
        return t.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 in UTC
        return EARLIEST - dt.timedelta(days=1)


def incident_record(
    ev: CotEvent,
    *,
    source_type: str,
    now: dt.datetime | None = None,
    live: bool = True,
) -> dict[str, Any]:
    """The incident record of an event (validated downstream like any other submission).

    ``live``: the event arrives now from a device (``now``, default the system clock), so one
    already stale is outdated; a capture read from a file (``live=False``) is judged only by its
    own times.

    Raises
    ------
    CotError
        When no kind can be told from the type, the extension or the remarks; ``ce`` is unknown
        (9999999); ``stale`` is before ``start`` or (live) already past; or the start is not a
        time between 1970 and a day after ``now``.
    """
    kind = kind_of(ev)
    if kind is None:
        raise CotError(
            f"event type {ev.type} with no recognisable kind",
            field="type",
            fix="send a sighting type a-h-G..., add a kind keyword to the remarks, or "
            '<__truceline kind="..."/> in the detail (README, TAK: CoT types)',
        )
    if ev.ce >= UNKNOWN_CE:
        raise CotError(
            f"point ce is {ev.ce:.0f} (unknown position error): the position cannot be weighed",
            field="ce",
            fix="wait for the device's position fix (or place the marker by hand, which sets ce) "
            "and send it again",
        )
    if ev.ce <= 0:
        raise CotError(
            f"point ce is {ev.ce:g}: a position error must be positive (one sigma, metres)",
            field="ce",
            fix="send the device's horizontal accuracy (1 sigma, m) as ce",
        )
    observed = _time(ev.start, now)
    _check_stale(ev, (now or dt.datetime.now(dt.UTC)) if live else None)
    obs = observation_fields(ev)
    if obs:
        return _observation_record(ev, kind, observed, obs, source_type)
    src = "acoustic" if ev.type.startswith("b-d-a") else source_type
    who = ev.callsign or "-"
    rec: dict[str, Any] = {
        "id": report_id(ev),
        "observed_at": observed,
        "time_precision": "second",
        "lon": ev.lon,
        "lat": ev.lat,
        "uncertainty_m": ev.ce,
        "kind": kind.value,
        "source_type": src,
        "narrative": f"TAK {who} (uid {ev.uid}, type {ev.type}, how {ev.how or '-'}, "
        f"ce {ev.ce:g} m 1-sigma)" + (f": {ev.remarks}" if ev.remarks else ""),
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


#: The observation fields an event may carry (see the module's doc).
OBSERVATION_FIELDS = (
    "observed_from",
    "observed_to",
    "bearing",
    "bearing_from_deg",
    "bearing_to_deg",
    "bearing_error_deg",
    "distance_min_km",
    "distance_max_km",
    "threat_to_monitors",
)
_REMARK_FIELD = re.compile(
    r"(?:^|[;\n])\s*(" + "|".join(OBSERVATION_FIELDS) + r")\s*[:=]\s*([^;\n]*)", re.IGNORECASE
)


def observation_fields(ev: CotEvent) -> dict[str, str]:
    """The observation fields an event carries: ``<__truceline>`` attributes, else the remarks'
    ``key: value`` parts; empty when it carries no distance or direction (not an observation)."""
    got = {k.lower(): v.strip() for k, v in _REMARK_FIELD.findall(ev.remarks)}
    got |= {k: str(v).strip() for k, v in ev.extension.items() if k in OBSERVATION_FIELDS}
    keys = {"distance_min_km", "distance_max_km", "bearing", "bearing_from_deg", "bearing_to_deg"}
    return got if keys & {k for k, v in got.items() if v} else {}


def _observation_record(
    ev: CotEvent, kind: Kind, observed: str, obs: Mapping[str, str], source_type: str
) -> dict[str, Any]:
    """An observation's record: at its sector's centroid, the event's point being the observer."""
    t0 = obs.get("observed_from") or observed
    row: dict[str, Any] = {
        **{k: v for k, v in obs.items() if v},
        "observed_from": t0,
        "observed_to": obs.get("observed_to") or t0,
        "id": report_id(ev),
        "observer_lon": ev.lon,
        "observer_lat": ev.lat,
        "kind": kind.value,
        "source_type": ev.extension.get("source_type") or source_type,
        "narrative": f"TAK {ev.callsign or '-'} (uid {ev.uid}, type {ev.type})"
        + (f": {ev.remarks}" if ev.remarks else ""),
    }
    for key in ("weapon_class", "party", "count", "reliability", "credibility"):
        if ev.extension.get(key):
            row["weapon" if key == "weapon_class" else key] = ev.extension[key]
    [(_, rec)] = observation_records([row])
    if isinstance(rec, Reject):
        raise CotError(f"observation {rec.field}: {rec.reason}", field=rec.field)
    return rec


def position_record(
    ev: CotEvent, *, now: dt.datetime | None = None, live: bool = True
) -> dict[str, Any]:
    """A position report (PLI) as the fields of a patrol position (validated like an incident's).

    Raises
    ------
    CotError
        A position outside -90..90 / -180..180, ``ce`` unknown or not positive, a bad time, or
        (live) a report already stale.
    """
    if not (-90 <= ev.lat <= 90 and -180 <= ev.lon <= 180):
        raise CotError(f"position {ev.lat:g}, {ev.lon:g} is not on the globe", field="lat")
    if not 0 < ev.ce < UNKNOWN_CE:
        raise CotError(
            f"point ce is {ev.ce:.0f}: the device has no position fix",
            field="ce",
            fix="positions are kept once the device has a fix",
        )
    observed = _time(ev.start, now)
    _check_stale(ev, (now or dt.datetime.now(dt.UTC)) if live else None)
    return {
        "uid": ev.uid,
        "cot_type": ev.type,
        "observed_at": dt.datetime.fromisoformat(observed.replace("Z", "+00:00")),
        "lon": ev.lon,
        "lat": ev.lat,
        "uncertainty_m": ev.ce,
        "callsign": ev.callsign,
        "group_name": ev.group,
        "group_role": ev.group_role,
    }


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
    """A finding as a red spot marker; its ``ce`` is the incident's 1-sigma error (module doc)."""
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
