"""ACLED-layout CSV: the conflict analysts' lingua franca, in and out.

Import maps ACLED's ``event_type`` / ``sub_event_type`` to Truceline's :class:`Kind`,
``geo_precision`` to a 1-sigma position error and ``time_precision`` to a day, and says in a
:class:`MappingReport` what could not be mapped (rows set aside with the reason, and rows taken
with an approximation). Export writes the same columns; a ``tags`` cell
``truceline:kind=...;...`` carries what ACLED's vocabulary cannot (the exact kind, weapon class,
position error, time, source and Admiralty grading), so Truceline's own exports read back exactly
while any ACLED file still reads through the tables.

Position error from ``geo_precision`` (1-sigma, metres; :data:`GEO_PRECISION_SIGMA_M`):

- 1, a named town or village: the town's coordinates, the event somewhere in it: 1 km;
- 2, near a town or in part of a region: 5 km;
- 3, only the region (the coordinates are its centroid): 25 km.

These are conservative defaults for adjudication against zone bands; pass other values with
``geo_sigma_m`` when the mission has calibrated them.

**Layouts.** The current lower-case layout (``event_id_cnty``, ``event_date``, ``event_type``,
``sub_event_type``, ..., ``timestamp``) and the legacy upper-case one of files before ~2016
(``EVENT_ID_CNTY``, ``EVENT_DATE``, ``GWNO``, ``EVENT_TYPE`` with values such as
"Battle-No change of territory" and no sub-event type; dates also as ``dd/mm/YYYY``): column names
are read case-insensitively and legacy event types map through :data:`LEGACY_TYPES`.

**The API's JSON.** ACLED's API answers ``{"status": 200, "success": true, "count": N,
"data": [{...}, ...]}`` with the same column names as the CSV export (values as strings or
numbers): a file whose suffix is ``.json`` or whose first character is ``{`` or ``[`` is read so,
the rest exactly as the CSV; an answer with another status is refused with that status.

**Deletions.** ACLED publishes the ids it deleted (``event_id_cnty``, ``deleted_timestamp`` in
Unix seconds; CSV or the deletions API's JSON): :func:`acled_deletions` reads them, each bad row
a :class:`~truceline.io.incidents_io.Reject`; :mod:`truceline.services.revisions` withdraws the
reports (``withdraw_incidents``).

**Revisions.** ACLED revises published rows: the same ``event_id_cnty`` comes back with a later
``timestamp`` (seconds) and changed fields. The timestamp is each record's *version*
(:attr:`ACLED_VERSION`), so ingest stores a changed row with a later timestamp as a new revision
of its incident (:mod:`truceline.services.revisions`) instead of refusing it.

**Interceptions.** "Strategic developments > Disrupted weapons use" covers an attack that was
prevented: a missile or drone shot down, a bomb defused, a cache seized. In ACLED's coding the
actor who disrupted it (the air defence) is ``actor1``; the one whose weapon it was, when known, is
``actor2``. So the record is a ``projectile`` (something was fired or flown) whose party is taken
from ``actor2`` (the attacker), never from ``actor1`` (the interceptor); with no ``actor2`` the
party is unknown. The position is where it was intercepted, not where it was fired from.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from truceline.core.incidents import Kind
from truceline.errors import ValidationError
from truceline.io.incidents_io import NUL_REASON, UNICODE_REASON, ReadResult, Reject
from truceline.io.text_encoding import open_text

__all__ = [
    "ACLED_COLUMNS",
    "ACLED_TYPES",
    "ACLED_VERSION",
    "DELETION_COLUMNS",
    "GEO_PRECISION_SIGMA_M",
    "KIND_TO_ACLED",
    "LEGACY_TYPES",
    "Deletion",
    "MappingReport",
    "acled_deletions",
    "acled_deletions_document",
    "acled_records",
    "acled_row",
]

#: Columns written on export, in ACLED's order (a subset of ACLED's full layout).
ACLED_COLUMNS: tuple[str, ...] = (
    "event_id_cnty",
    "event_date",
    "year",
    "time_precision",
    "disorder_type",
    "event_type",
    "sub_event_type",
    "actor1",
    "actor2",
    "latitude",
    "longitude",
    "geo_precision",
    "source",
    "source_scale",
    "notes",
    "fatalities",
    "tags",
)
REQUIRED = ("event_date", "event_type", "latitude", "longitude")
#: The columns of ACLED's deletions list (``deleted_timestamp``: Unix seconds).
DELETION_COLUMNS = ("event_id_cnty", "deleted_timestamp")

EXPL = "Explosions/Remote violence"
STRAT = "Strategic developments"

#: (event_type, sub_event_type) -> kind. Pairs absent here are reported, not guessed.
ACLED_TYPES: dict[tuple[str, str], Kind] = {
    (EXPL, "Shelling/artillery/missile attack"): Kind.explosion,
    (EXPL, "Air/drone strike"): Kind.explosion,
    (EXPL, "Remote explosive/landmine/IED"): Kind.explosion,
    (EXPL, "Grenade"): Kind.explosion,
    (EXPL, "Suicide bomb"): Kind.explosion,
    (EXPL, "Chemical weapon"): Kind.explosion,
    ("Battles", "Armed clash"): Kind.small_arms_fire,
    ("Battles", "Government regains territory"): Kind.armed_personnel,
    ("Battles", "Non-state actor overtakes territory"): Kind.armed_personnel,
    # Interceptions of missiles and drones, defused bombs: something was fired or flown, by
    # actor2 (the interceptor, actor1, is not the attacker: see the module doc).
    (STRAT, "Disrupted weapons use"): Kind.projectile,
    (STRAT, "Headquarters or base established"): Kind.fortification_works,
    (STRAT, "Non-violent transfer of territory"): Kind.armed_personnel,
    (STRAT, "Looting/property destruction"): Kind.damage,
    ("Violence against civilians", "Attack"): Kind.civilian_casualty,
}

#: Legacy (pre-2016) ``EVENT_TYPE`` values, which had no sub-event type -> kind.
LEGACY_TYPES: dict[str, Kind] = {
    "Battle-No change of territory": Kind.small_arms_fire,
    "Battle-Government regains territory": Kind.armed_personnel,
    "Battle-Non-state actor overtakes territory": Kind.armed_personnel,
    "Battle-Non-state actor overtakes teritory": Kind.armed_personnel,  # as some files spell it
    "Remote violence": Kind.explosion,
    "Violence against civilians": Kind.civilian_casualty,
    "Headquarters or base established": Kind.fortification_works,
    "Non-violent transfer of territory": Kind.armed_personnel,
}
#: The key under which :func:`acled_records` gives a record's version (ACLED's ``timestamp``, s).
ACLED_VERSION = "__version__"
_INTERCEPTION = (STRAT, "Disrupted weapons use")

#: kind -> (disorder_type, event_type, sub_event_type) for export.
KIND_TO_ACLED: dict[Kind, tuple[str, str, str]] = {
    Kind.explosion: ("Political violence", EXPL, "Shelling/artillery/missile attack"),
    Kind.projectile: ("Political violence", EXPL, "Shelling/artillery/missile attack"),
    Kind.heavy_weapon: ("Strategic developments", STRAT, "Other"),
    Kind.muzzle_flash: ("Political violence", EXPL, "Shelling/artillery/missile attack"),
    Kind.small_arms_fire: ("Political violence", "Battles", "Armed clash"),
    Kind.flare: ("Strategic developments", STRAT, "Other"),
    Kind.armed_personnel: ("Strategic developments", STRAT, "Other"),
    Kind.vehicle_movement: ("Strategic developments", STRAT, "Other"),
    Kind.drone_flight: ("Strategic developments", STRAT, "Other"),
    Kind.fortification_works: ("Strategic developments", STRAT, "Headquarters or base established"),
    Kind.movement_restriction: ("Strategic developments", STRAT, "Other"),
    Kind.civilian_casualty: ("Political violence", "Violence against civilians", "Attack"),
    Kind.damage: ("Strategic developments", STRAT, "Looting/property destruction"),
    Kind.threat_to_monitors: ("Political violence", EXPL, "Shelling/artillery/missile attack"),
}

#: geo_precision -> 1-sigma position error (m); see the module docstring.
GEO_PRECISION_SIGMA_M: dict[int, float] = {1: 1_000.0, 2: 5_000.0, 3: 25_000.0}
TIME_PRECISION_NAMES = {1: "day", 2: "week", 3: "month"}
#: Legacy column names (lower-cased) -> the current ones.
_LEGACY_NAMES = {"geo_precis": "geo_precision", "time_precis": "time_precision"}
_TAG = "truceline:"


@dataclass(slots=True)
class MappingReport:
    """What an ACLED import could not map (rows set aside) or mapped only approximately."""

    rows: int = 0
    mapped: Counter[str] = field(default_factory=Counter)  # "event > sub -> kind"
    unmapped_types: Counter[str] = field(default_factory=Counter)  # "event > sub" (rejected)
    coarse_time: Counter[str] = field(default_factory=Counter)  # "week"/"month" (kept as day)
    unmapped_actors: Counter[str] = field(default_factory=Counter)  # party left unknown
    geo_precision_default: int = 0  # rows without a usable geo_precision (region assumed)
    interceptions_without_attacker: int = 0  # Disrupted weapons use without actor2: party unknown
    legacy_layout: bool = False  # the upper-case layout of files before ~2016

    def lines(self) -> list[str]:
        """A human-readable summary, one finding per line."""
        out = [f"{self.rows} ACLED rows read"]
        for k, n in self.mapped.most_common():
            out.append(f"mapped {n} x {k}")
        for k, n in self.unmapped_types.most_common():
            out.append(f"NOT MAPPED {n} x {k}: no Truceline kind; rows set aside")
        for k, n in self.coarse_time.most_common():
            out.append(f"APPROXIMATE {n} x time_precision {k}: kept with day precision on event_date")
        for k, n in self.unmapped_actors.most_common():
            out.append(f"APPROXIMATE {n} x actor {k!r}: no party matches; party left unknown")
        if self.legacy_layout:
            out.insert(1, "legacy (pre-2016) upper-case layout: event types without sub-event types")
        if self.interceptions_without_attacker:
            out.append(
                f"APPROXIMATE {self.interceptions_without_attacker} x Disrupted weapons use without "
                "actor2: the interceptor (actor1) is not the attacker; party left unknown"
            )
        if self.geo_precision_default:
            out.append(
                f"APPROXIMATE {self.geo_precision_default} x geo_precision missing or unknown: "
                f"taken as 3 (region, {GEO_PRECISION_SIGMA_M[3]:.0f} m)"
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "mapped": dict(self.mapped),
            "unmapped_types": dict(self.unmapped_types),
            "coarse_time": dict(self.coarse_time),
            "unmapped_actors": dict(self.unmapped_actors),
            "geo_precision_default": self.geo_precision_default,
            "interceptions_without_attacker": self.interceptions_without_attacker,
            "legacy_layout": self.legacy_layout,
        }


def _tags(text: str) -> dict[str, str]:
    """``truceline:k=v;k=v`` from ACLED's free-text ``tags`` cell (other tags are ignored)."""
    for part in text.split("|"):
        part = part.strip()
        if part.startswith(_TAG):
            pairs = (kv.split("=", 1) for kv in part[len(_TAG) :].split(";") if "=" in kv)
            return {k.strip(): v.strip() for k, v in pairs}
    return {}


def _stable_id(rec: Mapping[str, Any]) -> str:
    key = "|".join(str(rec.get(c, "")) for c in ACLED_COLUMNS if c != "event_id_cnty")
    return "acled-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _party(actor: str, parties: Mapping[str, str]) -> str | None:
    """The party an actor name stands for (exact, then case-insensitive)."""
    if not actor:
        return None
    if actor in parties:
        return parties[actor]
    low = {k.lower(): v for k, v in parties.items()}
    return low.get(actor.lower())


def _map_row(
    row: int,
    rec: Mapping[str, Any],
    report: MappingReport,
    *,
    parties: Mapping[str, str],
    geo_sigma_m: Mapping[int, float],
) -> dict[str, Any] | Reject:
    rid = (rec.get("event_id_cnty") or "").strip() or _stable_id(rec)
    tags = _tags(rec.get("tags") or "")
    ev, sub = (rec.get("event_type") or "").strip(), (rec.get("sub_event_type") or "").strip()
    kind: str | None = tags.get("kind")
    if kind is None:
        mapped = ACLED_TYPES.get((ev, sub)) if sub else LEGACY_TYPES.get(ev)
        if mapped is None:
            report.unmapped_types[f"{ev} > {sub}"] += 1
            known = "; ".join(f"{e} > {s}" for e, s in ACLED_TYPES)
            legacy = "; ".join(LEGACY_TYPES)
            return Reject(
                row,
                rid,
                "sub_event_type" if sub else "event_type",
                f"ACLED type {ev!r} > {sub!r} has no Truceline kind; mapped types are: {known} "
                f"(legacy files, without sub-event types: {legacy})"
                if sub
                else f"ACLED event type {ev!r} (no sub-event type) has no Truceline kind; "
                f"mapped: {legacy}",
            )
        kind = mapped.value
        report.mapped[f"{ev} > {sub} -> {kind}" if sub else f"{ev} -> {kind}"] += 1
    out: dict[str, Any] = {
        "id": rid,
        "kind": kind,
        "lon": rec.get("longitude"),
        "lat": rec.get("latitude"),
    }
    # Time: Truceline's own exact time when present, else ACLED's day.
    date = (rec.get("event_date") or "").strip()
    if "observed_at" in tags:
        out["observed_at"] = tags["observed_at"]
        out["time_precision"] = tags.get("time_precision", "day")
    else:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            for style in ("%d %B %Y", "%d/%m/%Y", "%d-%B-%Y"):  # ACLED's export styles, legacy
                try:
                    day = dt.datetime.strptime(date, style).date()
                    break
                except ValueError:
                    continue
            else:
                return Reject(row, rid, "event_date", f"not a date (got {date!r}); use YYYY-MM-DD")
        out["observed_at"] = f"{day.isoformat()}T12:00:00Z"
        out["time_precision"] = "day"
        tp = _int(rec.get("time_precision") or 1)
        if tp in (2, 3):
            report.coarse_time[TIME_PRECISION_NAMES[tp]] += 1
    # Position error: Truceline's own when present, else from geo_precision.
    if "uncertainty_m" in tags:
        out["uncertainty_m"] = tags["uncertainty_m"]
    else:
        gp = _int(rec.get("geo_precision") or "")
        if gp is None or gp not in geo_sigma_m:
            report.geo_precision_default += 1
            gp = 3
        out["uncertainty_m"] = geo_sigma_m[gp]
    for key in (
        "weapon_class",
        "count",
        "origin_lon",
        "origin_lat",
        "origin_uncertainty_m",
        "bearing_deg",
        "source_type",
        "reliability",
        "credibility",
    ):
        if key in tags:
            out[key] = tags[key]
    out.setdefault("source_type", "open_source")
    stamp = _int(rec.get("timestamp") or "")
    if stamp is not None:
        out[ACLED_VERSION] = float(stamp)
    actor1 = (rec.get("actor1") or "").strip()
    actor2 = (rec.get("actor2") or "").strip()
    # the actor observed: actor1, except in an interception, where actor1 is the interceptor
    observed = actor2 if (ev, sub) == _INTERCEPTION else actor1
    if "party" in tags:
        out["party"] = tags["party"]
    elif observed:
        p = _party(observed, parties)
        if p is None:
            report.unmapped_actors[observed] += 1
        out["party"] = p
    elif (ev, sub) == _INTERCEPTION:
        report.interceptions_without_attacker += 1
    notes = rec.get("notes") or ""
    if tags:
        out["narrative"] = notes  # our own export: the notes are the narrative, unchanged
    else:
        extra = []
        if (ev, sub) == _INTERCEPTION:
            extra.append(f"interception: by {actor1 or '-'}, of a weapon of {actor2 or 'unknown'}")
        elif actor1 or actor2:
            extra.append(f"actors: {actor1 or '-'} / {actor2 or '-'}")
        if _int(rec.get("fatalities") or 0):
            extra.append(f"fatalities: {rec.get('fatalities')}")
        if rec.get("source"):
            extra.append(f"source: {rec.get('source')}")
        tp = _int(rec.get("time_precision") or 1)
        if tp in (2, 3):
            extra.append(f"ACLED time precision: {TIME_PRECISION_NAMES[tp]}")
        out["narrative"] = (notes + (" [" + "; ".join(extra) + "]" if extra else "")).strip()[:4000]
    return out


def acled_records(
    path: Path,
    report: MappingReport,
    *,
    parties: Mapping[str, str] | None = None,
    geo_sigma_m: Mapping[int, float] | None = None,
    encoding: str | None = None,
    read: ReadResult | None = None,
) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    """Each data row of an ACLED CSV as a Truceline record, or a :class:`Reject` with the reason.

    ``encoding`` as given (``--encoding``) or detected (:func:`~truceline.io.text_encoding.open_text`);
    ``read``, when given, is told which.

    Parameters
    ----------
    parties
        Actor name -> party id (``actor1`` is the actor observed). Party ids and names of the
        agreement are the natural keys; unmatched actors are reported and left unknown.
    geo_sigma_m
        ``geo_precision`` -> 1-sigma position error (m); default :data:`GEO_PRECISION_SIGMA_M`.
    """
    sig = dict(geo_sigma_m or GEO_PRECISION_SIGMA_M)
    given, rows = _table(path, encoding, read)
    # column names case-insensitively: the legacy layout is upper-case (EVENT_ID_CNTY, ...)
    header = [_LEGACY_NAMES.get(h.strip().lower(), h.strip().lower()) for h in given]
    report.legacy_layout = bool(given) and all(h == h.upper() for h in given)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ValidationError(
            f"{path}: not an ACLED layout: missing column(s) {', '.join(missing)}",
            fix=f"the header must include {', '.join(REQUIRED)} (any case)",
        )
    names = dict(zip(given, header, strict=True))
    for i, raw in enumerate(rows, start=1):
        report.rows += 1
        rec = {names.get(k, k.strip().lower()): v for k, v in raw.items()}
        yield i, _map_row(i, rec, report, parties=parties or {}, geo_sigma_m=sig)


def _is_json(path: Path) -> bool:
    if path.suffix.lower() == ".json":
        return True
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head[:1] in (b"{", b"[")


def _cell_text(v: Any) -> str:
    """A JSON value as the CSV cell ACLED would have written (numbers as text, null empty; a
    boolean as ``true``/``false``, which no number or time column reads: never the number 1)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _table(
    path: Path, encoding: str | None = None, read: ReadResult | None = None
) -> tuple[list[str], Iterator[dict[str, str]]]:
    """The column names and the rows of an ACLED file: CSV (any case), or the API's JSON
    (``{"status": 200, "success": true, "count": N, "data": [{...}, ...]}``, or the bare list)."""
    if not _is_json(path):
        fh, det = open_text(path, encoding)
        if read is not None:
            read.encoding, read.encoding_detected = det.name, det.how == "detected"
        reader = csv.DictReader(fh)
        given = list(reader.fieldnames or [])

        def rows() -> Iterator[dict[str, str]]:
            with fh:
                for rec in reader:
                    yield {k: v for k, v in rec.items() if k is not None}

        return given, rows()
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(
            f"{path}: not JSON ({exc})", fix="give ACLED's API answer as saved, or its CSV export"
        ) from None
    return _json_table(doc, str(path))


def _json_table(doc: Any, where: str) -> tuple[list[str], Iterator[dict[str, str]]]:
    if isinstance(doc, dict):
        status = doc.get("status")
        if status is not None and status != 200:
            msg = doc.get("messages") or doc.get("error") or ""
            raise ValidationError(
                f"{where}: ACLED's API answered status {status} {msg}".rstrip(),
                fix="save an answer with status 200 (check the query and the access key)",
            )
        data = doc.get("data")
    else:
        data = doc
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValidationError(
            f'{where}: not ACLED\'s API layout: expected {{"status": 200, "data": [{{...}}, ...]}}',
            fix="give ACLED's API answer as saved (a 'data' list of events), or its CSV export",
        )
    given = list(dict.fromkeys(k for r in data for k in r))
    return given, ({k: _cell_text(v) for k, v in r.items()} for r in data)


@dataclass(frozen=True, slots=True)
class Deletion:
    """One row of ACLED's deletions list: the event id and when ACLED deleted it."""

    row: int
    event_id: str
    deleted_at: dt.datetime


def _deleted_time(text: str) -> dt.datetime | None:
    text = text.strip()
    if not text:
        return None
    try:
        stamp = float(text)
    except ValueError:
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            t = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)
        except (ValueError, OverflowError):  # 0001-01-01T00:00+01:00 is before year 1 in UTC
            return None
        return t if _EPOCH <= t < _DELETED_MAX else None
    if not (0 <= stamp < 4_102_444_800):  # 1970 .. 2100
        return None
    return dt.datetime.fromtimestamp(stamp, dt.UTC)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_DELETED_MAX = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def _id_problem(rid: str) -> str | None:
    """Why an event id cannot be looked up in any database (NUL, a lone surrogate), or None."""
    if "\x00" in rid:
        return NUL_REASON
    try:
        rid.encode("utf-8")
    except UnicodeEncodeError:
        return UNICODE_REASON
    return None


def _shown(rid: str) -> str:
    """An id as a reject may show it (escaped: a response and a log must be able to hold it)."""
    return rid.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")[:200]


def acled_deletions(path: Path) -> tuple[list[Deletion], list[Reject]]:
    """ACLED's deletions list (CSV or the API's JSON, columns ``event_id_cnty`` and
    ``deleted_timestamp``, Unix seconds): each row a :class:`Deletion`, or a :class:`Reject`."""
    if not path.is_file():
        raise ValidationError(f"{path}: file not found", fix="give the path of ACLED's deletions list")
    given, rows = _table(path)
    return _deletions(given, rows, str(path))


def acled_deletions_document(doc: Any) -> tuple[list[Deletion], list[Reject]]:
    """ACLED's deletions list as its API answers it (``{"status": 200, "data": [{"event_id_cnty":
    ..., "deleted_timestamp": ...}, ...]}``, or the bare list), already parsed from JSON."""
    given, rows = _json_table(doc, "the body")
    return _deletions(given, rows, "the body")


def _deletions(
    given: list[str], rows: Iterator[dict[str, str]], where: str
) -> tuple[list[Deletion], list[Reject]]:
    if not given:  # the API's answer when nothing was deleted: {"status": 200, "data": []}
        return [], []
    header = {h: h.strip().lower() for h in given}
    missing = [c for c in DELETION_COLUMNS if c not in header.values()]
    if missing:
        raise ValidationError(
            f"{where}: not ACLED's deletions list: missing column(s) {', '.join(missing)}",
            fix="the deletions list has the columns event_id_cnty and deleted_timestamp "
            "(Unix seconds); an events file is read by --format acled",
        )
    out: list[Deletion] = []
    rejects: list[Reject] = []
    for i, raw in enumerate(rows, start=1):
        rec = {header.get(k, k.strip().lower()): (v or "") for k, v in raw.items()}
        rid = rec.get("event_id_cnty", "").strip()
        stamp = rec.get("deleted_timestamp", "")
        when = _deleted_time(stamp)
        if not rid:
            rejects.append(Reject(i, "", "event_id_cnty", "empty; give the deleted event's id"))
        elif (why := _id_problem(rid)) is not None:
            rejects.append(Reject(i, _shown(rid), "event_id_cnty", why))
        elif when is None:
            rejects.append(
                Reject(
                    i,
                    rid,
                    "deleted_timestamp",
                    f"not a time from 1970 to 2100 (got {_shown(stamp)!r}); give Unix seconds or "
                    "ISO 8601",
                )
            )
        else:
            out.append(Deletion(i, rid, when))
    return out, rejects


def _geo_precision(sigma_m: float) -> int:
    if sigma_m <= GEO_PRECISION_SIGMA_M[1]:
        return 1
    return 2 if sigma_m <= GEO_PRECISION_SIGMA_M[2] else 3


def acled_row(rec: Mapping[str, Any], *, party_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One exported incident (an export record, see :mod:`truceline.io.formats`) in ACLED layout."""
    kind = Kind(rec["kind"])
    disorder, ev, sub = KIND_TO_ACLED[kind]
    observed = rec["observed_at"]
    day = observed[:10]
    tags = {
        "kind": kind.value,
        "observed_at": observed,
        "time_precision": rec["time_precision"],
        "uncertainty_m": repr(float(rec["uncertainty_m"])),
        "source_type": rec["source_type"],
        "reliability": rec["reliability"],
        "credibility": str(rec["credibility"]),
        "count": str(rec["count"]),
    }
    for key in (
        "weapon_class",
        "party",
        "origin_lon",
        "origin_lat",
        "origin_uncertainty_m",
        "bearing_deg",
    ):
        v = rec.get(key)
        if v not in (None, ""):
            tags[key] = repr(float(v)) if isinstance(v, float) else str(v)
    party = rec.get("party") or ""
    return {
        "event_id_cnty": rec["id"],
        "event_date": day,
        "year": day[:4],
        "time_precision": 1,
        "disorder_type": disorder,
        "event_type": ev,
        "sub_event_type": sub,
        "actor1": (party_names or {}).get(party, party),
        "actor2": "",
        "latitude": repr(float(rec["lat"])),
        "longitude": repr(float(rec["lon"])),
        "geo_precision": _geo_precision(float(rec["uncertainty_m"])),
        "source": f"Truceline ({rec['source_type']})",
        "source_scale": "Other",
        "notes": rec.get("narrative") or "",
        "fatalities": 0,
        "tags": _TAG + ";".join(f"{k}={v}" for k, v in tags.items()),
    }
