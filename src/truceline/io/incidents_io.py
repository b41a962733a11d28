"""Read and write incident files (CSV and GeoJSON) with per-record rejects, and the table of a
batch's classification.

A bad record never stops a batch: it is set aside with its row number, the field at fault, the value
and how to fix it, and every good record of the same file still goes through.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from truceline.core.incidents import NO_NUL, Incident
from truceline.core.rules import Classification
from truceline.errors import ValidationError, safe_text
from truceline.io.csv_safe import read_cell, safe_cell, safe_row
from truceline.io.limits import (
    DEFAULT_LIMITS,
    LimitError,
    UploadLimits,
    bounded_csv,
    load_json,
    too_many_rows,
)
from truceline.io.text_encoding import open_text

__all__ = [
    "CLASSIFY_COLUMNS",
    "INCIDENT_FIELDS",
    "NUL_REASON",
    "UNICODE_REASON",
    "ReadResult",
    "Reject",
    "check_header",
    "classification_rows",
    "conflicting_id",
    "incidents_from_records",
    "is_nul_error",
    "read_incidents",
    "validate_record",
    "write_incidents_csv",
    "write_rejects",
]

INCIDENT_FIELDS: tuple[str, ...] = tuple(Incident.model_fields)
REQUIRED_FIELDS = ("id", "observed_at", "lon", "lat", "kind", "source_type")

_HINTS = {
    "lon": "give WGS84 longitude in decimal degrees, -180..180",
    "lat": "give WGS84 latitude in decimal degrees, -90..90",
    "observed_at": "give ISO 8601 with a UTC offset, e.g. 2025-03-01T04:12:00Z",
    "kind": "use one of: " + ", ".join(Incident.model_fields["kind"].annotation.__members__),  # type: ignore[union-attr]
    "source_type": "use one of: "
    + ", ".join(Incident.model_fields["source_type"].annotation.__members__),  # type: ignore[union-attr]
    "reliability": "use an Admiralty reliability letter A-F",
    "credibility": "use an Admiralty credibility digit 1-6",
    "uncertainty_m": "give the 1-sigma position error in metres (>= 0)",
    "count": "give a whole number >= 1",
    "bearing_deg": "give an azimuth in degrees, 0 <= bearing < 360",
}


@dataclass(frozen=True, slots=True)
class Reject:
    """A record that was not accepted, and why."""

    row: int  # 1-based data row (CSV: the header is row 0) or feature number
    id: str
    field: str
    reason: str

    def __str__(self) -> str:
        who = f"row {self.row}" + (f" (id {self.id})" if self.id else "")
        return f"{who}, field {self.field}: {self.reason}" if self.field else f"{who}: {self.reason}"


@dataclass(slots=True)
class ReadResult:
    incidents: list[Incident] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)  # row number of each accepted incident
    rejects: list[Reject] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)  # rows repeating an earlier identical record
    encoding: str = "UTF-8"  # how the file's text was read (text_encoding.Detected.name)
    encoding_detected: bool = False  # a legacy code page chosen from the text, not given or UTF-8


#: What is wrong with text holding NUL (refused by the models' ``NO_NUL`` pattern).
NUL_REASON = "contains a NUL character (\\u0000), which cannot be stored"


#: What is wrong with text that is not Unicode scalar values (pydantic-core's ``string_unicode``).
UNICODE_REASON = (
    "is not valid Unicode text (a lone surrogate such as \\ud800, or bytes that are not UTF-8), "
    "which cannot be stored; if the file is in another encoding, name it with --encoding"
)


def is_nul_error(err: Mapping[str, Any]) -> bool:
    """Whether a pydantic error is the ``NO_NUL`` pattern refusing a text."""
    return (
        err.get("type") == "string_pattern_mismatch" and (err.get("ctx") or {}).get("pattern") == NO_NUL
    )


def _reason(err: dict[str, Any]) -> tuple[str, str]:
    loc = [safe_text(str(p)) for p in err.get("loc", ())]
    fld = loc[0] if loc else ""
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    value = err.get("input")
    if err.get("type") == "missing":
        return fld, "missing; " + (_HINTS.get(fld) or "this field is required")
    if is_nul_error(err):
        return fld, f"{NUL_REASON}; remove it"
    if err.get("type") == "string_unicode":
        if not loc:  # a field name that is not text: named by its escaped self
            return safe_text(str(value)), f"the field name {UNICODE_REASON}; send UTF-8 text"
        return fld, f"{UNICODE_REASON}; send UTF-8 text"
    if err.get("type") == "extra_forbidden":
        return fld, f"unknown field; known fields are {', '.join(INCIDENT_FIELDS)}"
    if err.get("type") == "finite_number" or (
        isinstance(value, str)
        and value.strip().lower()
        in (
            "nan",
            "inf",
            "+inf",
            "-inf",
            "infinity",
        )
    ):
        msg = "must be a finite number"
    got = repr(value)
    if len(got) > 80:  # a long value is not repeated whole in every message
        got = f"{got[:60]}... ({len(value) if isinstance(value, str) else len(got)} characters)"
    shown = "" if isinstance(value, dict) else f" (got {got})"
    hint = _HINTS.get(fld)
    return fld, f"{msg}{shown}" + (f"; {hint}" if hint else "")


def _clean(rec: dict[str, Any]) -> dict[str, Any]:
    """Empty CSV cells mean 'absent' (the record itself when it has none: no copy)."""
    for v in rec.values():
        if isinstance(v, str) and not v.strip():
            break
    else:
        if None not in rec:
            return rec
    return {
        k: v for k, v in rec.items() if k is not None and not (isinstance(v, str) and v.strip() == "")
    }


def validate_record(row: int, rec: dict[str, Any]) -> Incident | Reject:
    """One raw record (a CSV row's cells, a feature's properties) as an incident, or its reject."""
    rid = safe_text(str(rec.get("id") or "").strip())
    if rec.pop("__extra__", None):
        return Reject(row, rid, "", "the row has more cells than the header; quote values with commas")
    try:
        return Incident.model_validate(_clean(rec))
    except pydantic.ValidationError as exc:
        errs = exc.errors()
        fld, reason = _reason(dict(errs[0]))
        if {e["loc"][0] for e in errs if e.get("loc")} >= {"lon", "lat"}:
            reason += "; lon and lat both fail: are they swapped or in another CRS?"
        return Reject(row, rid, fld, reason)


def conflicting_id(row: int, rid: str, first_row: int) -> Reject:
    """The reject of a record reusing an earlier record's id with different content."""
    return Reject(
        row,
        rid,
        "id",
        f"id already used by row {first_row} with different content; give each report its own id",
    )


def incidents_from_records(records: Iterable[tuple[int, dict[str, Any]]]) -> ReadResult:
    """Validate raw records (row number, mapping); see :class:`ReadResult`."""
    out = ReadResult()
    seen: dict[str, tuple[int, Incident]] = {}
    for row, rec in records:
        inc = validate_record(row, rec)
        if isinstance(inc, Reject):
            out.rejects.append(inc)
            continue
        if inc.id in seen:
            first_row, first = seen[inc.id]
            if first == inc:
                out.duplicates.append(row)
            else:
                out.rejects.append(conflicting_id(row, inc.id, first_row))
            continue
        seen[inc.id] = (row, inc)
        out.incidents.append(inc)
        out.rows.append(row)
    return out


def _csv_records(
    path: Path,
    encoding: str | None = None,
    read: ReadResult | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The CSV's rows as records, in its encoding (:func:`~truceline.io.text_encoding.open_text`),
    within the ``limits`` (cell length, rows); ``read``, when given, is told which encoding that
    was."""
    return bounded_csv(_csv_rows(path, encoding, read), path, limits)


def _csv_rows(
    path: Path, encoding: str | None, read: ReadResult | None
) -> Iterator[tuple[int, dict[str, Any]]]:
    # UTF-8 with surrogateescape: a byte that is not UTF-8 becomes a lone surrogate, which the
    # model refuses in that record alone (named and escaped in the reject), not an error that
    # stops the file
    fh, det = open_text(path, encoding)
    if read is not None:
        read.encoding, read.encoding_detected = det.name, det.how == "detected"
    with fh, _decode_errors(path, det.name):
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if not header:
            raise ValidationError(
                f"{path}: the file is empty; expected a header row with {', '.join(REQUIRED_FIELDS)}"
            )
        check_header(path, header)
        for i, rec in enumerate(reader, start=1):
            if None in rec:
                rec = {k: read_cell(v) for k, v in rec.items() if k is not None}
                rec["__extra__"] = "too many cells"
            else:
                rec = {k: read_cell(v) for k, v in rec.items()}
            yield i, rec


def check_header(path: Path, header: Sequence[str]) -> None:
    """Refuse a CSV header without the required columns (naming ACLED's layout when it is one)."""
    missing = [c for c in REQUIRED_FIELDS if c not in header]
    lower = {h.strip().lower() for h in header}
    if missing and {"event_id_cnty", "event_type", "latitude"} <= lower:
        raise ValidationError(
            f"{path}: an ACLED file (event_id_cnty, event_type, latitude, ...), not "
            "Truceline's CSV layout",
            field="format",
            fix=f"import it with `truceline import {path} --format acled -a AGREEMENT` "
            "(--actor 'NAME=PARTY' maps ACLED actors to the parties); to classify it without "
            "a database, export it first in Truceline's layout",
        )
    if missing:
        raise ValidationError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must include "
            f"{', '.join(REQUIRED_FIELDS)}"
        )


@contextlib.contextmanager
def _decode_errors(path: Path, encoding: str) -> Iterator[None]:
    """A byte the chosen code page cannot read, as a message naming it (never a traceback)."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path}: byte 0x{exc.object[exc.start]:02X} cannot be read as {encoding}",
            field="encoding",
            fix="name the file's encoding with --encoding (e.g. utf-8, cp1251, cp1252, latin-1)",
        ) from exc


def _geojson_records(path: Path, limits: UploadLimits) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        data = load_json(path.read_text(encoding="utf-8"), limits)
    except LimitError as exc:
        raise ValidationError(f"{path}: {exc.message}", field=exc.setting) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path}: not valid GeoJSON ({exc})") from exc
    feats = data.get("features") if isinstance(data, dict) else None
    if not isinstance(feats, list):
        raise ValidationError(f"{path}: expected a GeoJSON FeatureCollection")
    if len(feats) > limits.max_import_rows:
        raise too_many_rows(path, limits)
    for i, f in enumerate(feats, start=1):
        if not isinstance(f, dict):  # rejected alone: it has none of the fields a report needs
            f = {}
        props = f.get("properties") or {}
        props = dict(props) if isinstance(props, dict) else {}
        geom = f.get("geometry") or {}
        geom = geom if isinstance(geom, dict) else {}
        if geom.get("type") == "Point" and isinstance(geom.get("coordinates"), list):
            c = geom["coordinates"]
            if len(c) >= 2:
                props.setdefault("lon", c[0])
                props.setdefault("lat", c[1])
        yield i, props


def read_incidents(
    path: str | Path, limits: UploadLimits = DEFAULT_LIMITS, *, encoding: str | None = None
) -> ReadResult:
    """Read incidents from a CSV or GeoJSON file; bad rows become rejects, the rest go through.

    ``encoding`` names a CSV's text encoding; by default it is detected
    (:mod:`truceline.io.text_encoding`) and given back in the result. A file over one of the
    ``limits`` (cell length, rows, JSON nesting) is refused whole, naming the limit and its
    setting.
    """
    path = Path(path)
    if not path.exists():
        raise ValidationError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValidationError(f"{path}: the file is empty; expected a header row or a FeatureCollection")
    if path.suffix.lower() in (".geojson", ".json"):
        return incidents_from_records(_geojson_records(path, limits))
    read = ReadResult()
    records = _csv_records(path, encoding, read, limits)
    out = incidents_from_records(records)
    out.encoding, out.encoding_detected = read.encoding, read.encoding_detected
    return out


def incident_row(inc: Incident) -> dict[str, Any]:
    d = inc.model_dump(mode="json")
    return {k: ("" if d.get(k) is None else d[k]) for k in INCIDENT_FIELDS}


def write_incidents_csv(path: str | Path, incidents: Iterable[Incident]) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(INCIDENT_FIELDS))
        w.writeheader()
        for inc in incidents:
            w.writerow(safe_row(incident_row(inc)))  # read back by read_cell


def write_rejects(path: str | Path, rejects: Iterable[Reject]) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "id", "field", "reason"])
        for r in rejects:
            w.writerow([r.row, safe_cell(r.id), safe_cell(r.field), safe_cell(r.reason)])


#: Columns of :func:`classification_rows` (the ``classify`` command's output).
CLASSIFY_COLUMNS = (
    "id",
    "side",
    "distance_km",
    "p_side",
    "zones",
    "sector",
    "in_force",
    "in_area",
    "findings",
    "responsible",
    "probability",
    "likelihood",
    "explanation",
)


def classification_rows(incidents: Sequence[Incident], cls: Classification) -> list[dict[str, object]]:
    """One output row per incident; several findings are joined with ';' (explanations with ' | ')."""
    f = cls.findings
    by_inc: dict[int, list[int]] = {}
    for j, i in enumerate(f.incident.tolist()):
        by_inc.setdefault(i, []).append(j)
    likelihood = f.likelihood
    out = []
    for i, inc in enumerate(incidents):
        js = by_inc.get(i, [])
        out.append(
            {
                "id": inc.id,
                "side": cls.party_side[i],
                "distance_km": round(float(cls.distance_km[i]), 4),
                "p_side": round(float(cls.p_side[i]), 4),
                "zones": cls.zones[i],
                "sector": cls.sector[i],
                "in_force": bool(cls.in_force[i]),
                "in_area": bool(cls.in_area[i]),
                "findings": ";".join(f.rule_id[j] for j in js),
                "responsible": ";".join(f.responsible[j] for j in js),
                "probability": ";".join(f"{f.probability[j]:.3f}" for j in js),
                "likelihood": ";".join(likelihood[j] for j in js),
                "explanation": " | ".join(f.explanation[j] for j in js),
            }
        )
    return out
