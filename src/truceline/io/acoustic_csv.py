"""Reading sensors.csv / detections.csv / weather.csv and writing events.csv for the acoustic pipeline.

Bad rows never stop a file: each is returned as a :class:`Reject` naming the row, the field and the fix,
and the good rows are still used.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from truceline.core.acoustic import SIGNALS, LocatedEvents, SensorNetwork, Unassigned, Weather
from truceline.core.acoustic.propagation import TOLD_TEMPERATURE_SIGMA_C, TOLD_WIND_SIGMA_MPS
from truceline.core.times import EPOCH, as_utc, utc_from_epoch_s
from truceline.errors import RecordError
from truceline.io.csv_safe import safe_cell
from truceline.io.limits import UploadLimits, bounded_csv
from truceline.io.text_encoding import open_text

if TYPE_CHECKING:
    from truceline.core.attribution import Attribution

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "DETECTION_COLUMNS",
    "EVENT_COLUMNS",
    "SENSOR_COLUMNS",
    "Detections",
    "Reject",
    "Sensors",
    "detection_records",
    "parse_time_s",
    "read_detections",
    "read_sensors",
    "read_weather",
    "sensor_records",
    "write_events",
    "write_rejects",
]

SENSOR_COLUMNS = ("sensor_id", "lon", "lat", "elevation_m", "timing_sigma_ms")
DETECTION_COLUMNS = ("detection_id", "sensor_id", "arrival_time")
EVENT_COLUMNS = (
    "event_id",
    "emitted_at",
    "lon",
    "lat",
    "cov_xx_m2",
    "cov_xy_m2",
    "cov_yy_m2",
    "ellipse95_semi_major_m",
    "ellipse95_semi_minor_m",
    "ellipse_orientation_deg",
    "n_sensors",
    "residual_rms_ms",
    "speed_of_sound_mps",
    "signal",
    "detection_ids",
    "ambiguous",
    "alt_lon",
    "alt_lat",
    "alt_weight",
    "alt_cov_xx_m2",
    "alt_cov_xy_m2",
    "alt_cov_yy_m2",
    "salvo_id",
    "salvo_size",
)
ATTRIBUTION_COLUMNS = (
    "responsible",
    "probability",
    "probability_low",
    "probability_high",
    "likelihood",
    "launch_point",
)


@dataclass(frozen=True)
class Reject:
    """One input row that was not used: file, 1-based line number, record id, field and reason."""

    file: str
    line: int
    record: str
    field: str
    reason: str

    def as_error(self) -> RecordError:
        """The same reject as a :class:`~truceline.errors.RecordError`."""
        return RecordError(
            f"{self.file} line {self.line}: {self.reason}", record=self.record, field=self.field
        )


@dataclass(frozen=True)
class Sensors:
    """Sensors read from CSV (good rows only) and the rejects."""

    network: SensorNetwork | None
    commissioned_s: NDArray[np.float64]
    decommissioned_s: NDArray[np.float64]
    rejects: list[Reject] = field(default_factory=list)


@dataclass(frozen=True)
class Detections:
    """Detections read from CSV (good rows only; ``line`` is each one's line number) and the rejects."""

    detection_id: NDArray[np.str_]
    sensor: NDArray[np.intp]
    arrival_s: NDArray[np.float64]
    amplitude_db: NDArray[np.float64]
    signal: NDArray[np.intp]
    line: NDArray[np.intp]
    rejects: list[Reject] = field(default_factory=list)


def parse_time_s(text: str) -> float:
    """ISO 8601 timestamp to POSIX seconds (exact to the microsecond); naive times are UTC.

    Raises
    ------
    ValueError
        When the text is not an ISO 8601 timestamp.
    """
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    delta = as_utc(dt.datetime.fromisoformat(s)) - EPOCH
    return delta.days * 86400.0 + delta.seconds + delta.microseconds * 1e-6


def format_time(t_s: float) -> str:
    """POSIX seconds to ISO 8601 UTC with microseconds (``...Z``)."""
    return utc_from_epoch_s(t_s).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: A cell's length bounded (a hostile cell, an unclosed quote); detection files may be long.
_CELLS = UploadLimits(max_import_rows=2**62)


def _rows(path: Path, encoding: str | None = None) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    fh, _ = open_text(path, encoding)
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [
            (reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
            for row in bounded_csv(reader, path, _CELLS)
        ]
    return header, rows


def _missing_columns(path: Path, header: Sequence[str], needed: Sequence[str]) -> list[Reject]:
    return [
        Reject(path.name, 1, "", col, f"column {col!r} is missing from the header; add it")
        for col in needed
        if col not in header
    ]


def _float(value: str) -> float | None:
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def read_sensors(path: Path, *, frame_size_km: float = 50.0) -> Sensors:
    """Read sensors.csv (``sensor_id, lon, lat, elevation_m, timing_sigma_ms`` and optional
    ``commissioned_at``, ``decommissioned_at``)."""
    header, rows = _rows(path)
    rejects = _missing_columns(path, header, ("sensor_id", "lon", "lat"))
    if rejects:
        return Sensors(None, np.zeros(0), np.zeros(0), rejects)
    ids: list[str] = []
    lon: list[float] = []
    lat: list[float] = []
    elev: list[float] = []
    sig: list[float] = []
    com: list[float] = []
    dec: list[float] = []
    seen: set[str] = set()
    name = path.name
    for line, r in rows:
        sid = r.get("sensor_id", "")

        def rej(fld: str, why: str, _line: int = line, _sid: str = sid) -> None:
            rejects.append(Reject(name, _line, _sid, fld, why))

        if not sid:
            rej("sensor_id", "empty sensor_id; give every sensor a unique id")
            continue
        if sid in seen:
            rej("sensor_id", f"duplicate sensor_id {sid!r}; keep one row per sensor")
            continue
        x, y = _float(r.get("lon", "")), _float(r.get("lat", ""))
        if x is None or y is None:
            rej(
                "lon" if x is None else "lat",
                "the sensor has no position: give lon and lat in decimal degrees (WGS84)",
            )
            continue
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            rej("lon", f"lon {x} / lat {y} out of range; check for swapped or projected coordinates")
            continue
        e_txt = r.get("elevation_m", "")
        e = _float(e_txt) if e_txt else 0.0
        if e is None:
            rej("elevation_m", f"elevation_m {e_txt!r} is not a number of metres")
            continue
        s_txt = r.get("timing_sigma_ms", "")
        s = _float(s_txt) if s_txt else 5.0
        if s is None or s <= 0:
            rej(
                "timing_sigma_ms",
                f"timing_sigma_ms {s_txt!r} must be a positive number of milliseconds",
            )
            continue
        times = []
        bad = False
        for col, default in (("commissioned_at", -math.inf), ("decommissioned_at", math.inf)):
            txt = r.get(col, "")
            if not txt:
                times.append(default)
                continue
            try:
                times.append(parse_time_s(txt))
            except ValueError:
                rej(col, f"{col} {txt!r} is not an ISO 8601 time (e.g. 2025-03-01T00:00:00Z)")
                bad = True
                break
        if bad:
            continue
        seen.add(sid)
        ids.append(sid)
        lon.append(x)
        lat.append(y)
        elev.append(e)
        sig.append(s)
        com.append(times[0])
        dec.append(times[1])
    net = None
    if len(ids) >= 3:
        net = SensorNetwork.build(
            ids, lon, lat, elevation_m=elev, timing_sigma_ms=sig, frame_size_km=frame_size_km
        )
    else:
        rejects.append(Reject(name, 0, "", "", f"only {len(ids)} usable sensors; at least 3 are needed"))
    return Sensors(net, np.array(com), np.array(dec), rejects)


def read_detections(path: Path, sensors: Sensors, *, now_s: float | None = None) -> Detections:
    """Read detections.csv (``detection_id, sensor_id, arrival_time`` and optional ``amplitude_db``,
    ``signal``).

    Rejects: missing or duplicate ids, unknown sensors, bad times, arrival times in the future
    (after ``now_s``, default the current time) or outside the sensor's service period, bad amplitudes
    or signals.
    """
    header, rows = _rows(path)
    rejects = _missing_columns(path, header, DETECTION_COLUMNS)
    empty = Detections(
        np.zeros(0, str), np.zeros(0, np.intp), np.zeros(0), np.zeros(0), np.zeros(0, np.intp),
        np.zeros(0, np.intp), rejects,
    )  # fmt: skip
    if rejects:
        return empty
    net = sensors.network
    now = dt.datetime.now(dt.UTC).timestamp() if now_s is None else now_s
    name = path.name
    ids: list[str] = []
    sens_ids: list[str] = []
    times: list[float] = []
    amps: list[float] = []
    sigs: list[int] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for line, r in rows:
        did = r.get("detection_id", "")

        def rej(fld: str, why: str, _line: int = line, _did: str = did) -> None:
            rejects.append(Reject(name, _line, _did, fld, why))

        if not did:
            rej("detection_id", "empty detection_id; give every detection a unique id")
            continue
        if did in seen:
            rej(
                "detection_id",
                f"duplicate detection_id {did!r} (first on line {seen[did]}); ids must be unique",
            )
            continue
        seen[did] = line
        sid = r.get("sensor_id", "")
        if not sid:
            rej("sensor_id", "empty sensor_id; name the sensor that made the detection")
            continue
        txt = r.get("arrival_time", "")
        try:
            t = parse_time_s(txt)
        except ValueError:
            rej(
                "arrival_time",
                f"arrival_time {txt!r} is not ISO 8601 UTC (e.g. 2025-03-01T12:00:00.123456Z)",
            )
            continue
        if t > now:
            rej(
                "arrival_time",
                f"arrival_time {txt} is in the future; check the sensor's clock and time zone",
            )
            continue
        a_txt = r.get("amplitude_db", "")
        a = _float(a_txt) if a_txt else math.nan
        if a is None:
            rej("amplitude_db", f"amplitude_db {a_txt!r} is not a number; leave it empty if unknown")
            continue
        s_txt = (r.get("signal", "") or "unknown").lower()
        if s_txt not in SIGNALS:
            rej("signal", f"signal {s_txt!r} is not one of {', '.join(SIGNALS)}")
            continue
        ids.append(did)
        sens_ids.append(sid)
        times.append(t)
        amps.append(a)
        sigs.append(SIGNALS.index(s_txt))
        lines.append(line)
    if net is None:
        rejects.extend(
            Reject(name, ln, d, "sensor_id", "no usable sensors; fix sensors.csv first")
            for d, ln in zip(ids, lines, strict=True)
        )
        return empty
    sens = net.index_of(np.array(sens_ids, dtype=str)) if ids else np.zeros(0, np.intp)
    t_arr = np.array(times, np.float64)
    keep = np.ones(len(ids), bool)
    for i in np.flatnonzero(sens < 0):  # row-level messages
        rejects.append(
            Reject(
                name,
                lines[i],
                ids[i],
                "sensor_id",
                f"unknown sensor {sens_ids[i]!r}: add it to sensors.csv or fix the id",
            )
        )
        keep[i] = False
    ok = sens >= 0
    inactive = np.zeros(len(ids), bool)
    inactive[ok] = (t_arr[ok] < sensors.commissioned_s[sens[ok]]) | (
        t_arr[ok] > sensors.decommissioned_s[sens[ok]]
    )
    for i in np.flatnonzero(inactive):
        rejects.append(
            Reject(
                name,
                lines[i],
                ids[i],
                "arrival_time",
                f"sensor {sens_ids[i]!r} was not in service at this time "
                "(see its commissioned_at / decommissioned_at)",
            )
        )
        keep[i] = False
    rejects.sort(key=lambda r: r.line)
    return Detections(
        np.array(ids, dtype=str)[keep], sens[keep].astype(np.intp), t_arr[keep],
        np.array(amps, np.float64)[keep], np.array(sigs, np.intp)[keep],
        np.array(lines, np.intp)[keep], rejects,
    )  # fmt: skip


def read_weather(path: Path) -> tuple[Weather | None, list[Reject]]:
    """Read weather.csv (``time, temperature_c``, optional ``wind_speed_mps, wind_from_deg`` and their
    uncertainties ``temperature_sigma_c, wind_sigma_mps``).

    Blank or missing: no wind; sigmas
    :data:`~truceline.core.acoustic.propagation.TOLD_TEMPERATURE_SIGMA_C` (2 deg C) and
    :data:`~truceline.core.acoustic.propagation.TOLD_WIND_SIGMA_MPS` (2 m/s per component). The told
    weather is a prior: the speed of sound and the wind are estimated around it within these sigmas.
    """
    header, rows = _rows(path)
    rejects = _missing_columns(path, header, ("time", "temperature_c"))
    if rejects:
        return None, rejects
    out: list[tuple[float, ...]] = []
    for line, r in rows:
        try:
            t = parse_time_s(r.get("time", ""))
        except ValueError:
            rejects.append(
                Reject(path.name, line, "", "time", "time is not ISO 8601 UTC (e.g. 2025-03-01T12:00Z)")
            )
            continue
        vals = []
        for col, default in (
            ("temperature_c", None),
            ("wind_speed_mps", 0.0),
            ("wind_from_deg", 0.0),
            ("temperature_sigma_c", TOLD_TEMPERATURE_SIGMA_C),
            ("wind_sigma_mps", TOLD_WIND_SIGMA_MPS),
        ):
            txt = r.get(col, "")
            v = _float(txt) if txt else default
            if v is None:
                rejects.append(Reject(path.name, line, "", col, f"{col} {txt!r} is not a number"))
                break
            if col.endswith(("sigma_c", "sigma_mps")) and v <= 0:
                rejects.append(
                    Reject(
                        path.name,
                        line,
                        "",
                        col,
                        f"{col} {txt!r} must be a positive uncertainty (1 sigma); leave it empty "
                        "for the default",
                    )
                )
                break
            if col == "wind_speed_mps" and v < 0:
                rejects.append(
                    Reject(
                        path.name,
                        line,
                        "",
                        col,
                        f"{col} {txt!r} is negative; give the speed and the direction the wind "
                        "blows from",
                    )
                )
                break
            vals.append(v)
        else:
            out.append((t, *vals))
    if not out:
        return None, rejects
    out.sort()
    arr = np.array(out)
    keep = np.r_[True, np.diff(arr[:, 0]) > 0]
    a = arr[keep]
    return Weather(a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5]), rejects


def write_events(
    path: Path,
    events: LocatedEvents,
    detection_id: NDArray[np.str_],
    *,
    attribution: Attribution | None = None,
) -> None:
    """Write events.csv: one row per event.

    An ``ambiguous`` event (a second mode of its likelihood, e.g. the mirror image across a
    near-linear array) keeps its most probable mode in ``lon``, ``lat`` and the covariance columns,
    and the other in ``alt_lon``, ``alt_lat``, ``alt_weight`` (its probability) and
    ``alt_cov_*_m2``; the attribution integrates over both.

    Rounds of one salvo (located events from one firing point, within their ellipses, seconds
    apart) share a ``salvo_id``: the ``event_id`` of the salvo's first round; ``salvo_size`` is its
    number of rounds. An event fired alone has an empty ``salvo_id`` and a ``salvo_size`` of 1.

    With an ``attribution``, each event also gets ``p_<party>`` for both parties (the probability
    that the party fired it: from its own position for a muzzle blast, from the muzzle blasts paired
    with it for an impact; blank when no launch point is known), the party named
    (``responsible``: ``undetermined`` between 0.2 and 0.8), the stated probability with its
    interval and ICD 203 term, and how the launch point was found (``launch_point``:
    ``muzzle_blast``, ``paired_impact:<event_id>`` or ``none``).
    """
    parties = [attribution.left, attribution.right] if attribution is not None else []
    extra = [
        *(f"p_{p}" for p in parties),
        *(ATTRIBUTION_COLUMNS if attribution is not None else ()),
    ]
    cols: list[list[str]] = []
    if attribution is not None:
        lo, hi = attribution.interval

        def fmt(a: NDArray[np.float64]) -> list[str]:
            return ["" if not math.isfinite(v) else f"{v:.4f}" for v in a.tolist()]

        launch = [
            m if m != "paired_impact" else f"paired_impact:E{b:06d}"
            for m, b in zip(attribution.method.tolist(), attribution.launch.tolist(), strict=True)
        ]
        cols = [
            *(fmt(attribution.p_party(p)) for p in parties),
            attribution.responsible.tolist(),
            fmt(attribution.probability),
            fmt(lo),
            fmt(hi),
            attribution.likelihood.tolist(),
            launch,
        ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*EVENT_COLUMNS, *extra])
        for i in range(len(events)):  # output formatting
            w.writerow(
                [
                    f"E{i:06d}",
                    format_time(float(events.emitted_at_s[i])),
                    f"{events.lon[i]:.7f}",
                    f"{events.lat[i]:.7f}",
                    f"{events.cov_m2[i, 0, 0]:.4g}",
                    f"{events.cov_m2[i, 0, 1]:.4g}",
                    f"{events.cov_m2[i, 1, 1]:.4g}",
                    f"{events.semi_major_m[i]:.2f}",
                    f"{events.semi_minor_m[i]:.2f}",
                    f"{events.orientation_deg[i]:.1f}",
                    int(events.n_sensors[i]),
                    f"{events.residual_rms_ms[i]:.2f}",
                    f"{events.c_mps[i]:.2f}",
                    SIGNALS[int(events.signal[i])],
                    safe_cell(" ".join(detection_id[events.detections[i]].tolist())),
                    *_alternative(events, i),
                    f"E{int(events.salvo[i]):06d}" if events.salvo[i] >= 0 else "",
                    int(events.salvo_size[i]),
                    *(c[i] for c in cols),
                ]
            )


def _alternative(events: LocatedEvents, i: int) -> list[str]:
    """``ambiguous`` and the second mode's columns of event ``i`` (blank when it has one mode)."""
    if not bool(events.ambiguous[i]):
        return ["false", "", "", "", "", "", ""]
    c = events.alt_cov_m2[i]
    return [
        "true",
        f"{events.alt_lon[i]:.7f}",
        f"{events.alt_lat[i]:.7f}",
        f"{events.alt_weight[i]:.4f}",
        f"{c[0, 0]:.4g}",
        f"{c[0, 1]:.4g}",
        f"{c[1, 1]:.4g}",
    ]


def write_rejects(
    path: Path,
    rejects: Sequence[Reject],
    unassigned: Unassigned | None = None,
    detection_id: NDArray[np.str_] | None = None,
    detection_line: NDArray[np.intp] | None = None,
    detections_file: str = "detections.csv",
) -> int:
    """Write every row left out (input rejects, and detections that fit no event) with its reason."""
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "line", "record", "field", "reason_code", "reason"])
        for r in rejects:
            w.writerow([safe_cell(c) for c in (r.file, r.line, r.record, r.field, "invalid", r.reason)])
            n += 1
        if unassigned is not None and detection_id is not None:
            for k, d in enumerate(unassigned.detection.tolist()):
                line = int(detection_line[d]) if detection_line is not None else ""
                w.writerow(
                    [
                        detections_file,
                        line,
                        detection_id[d],
                        "",
                        unassigned.reason[k],
                        unassigned.message[k],
                    ]
                )
                n += 1
    return n


# -- the store's records (truceline sensors import/detections, the demo) ---------------------------

#: sensors.csv / detections.csv columns and the API record fields they become
_SENSOR_RECORD = {
    "sensor_id": "id",
    "network": "network",
    "kind": "kind",
    "lon": "lon",
    "lat": "lat",
    "elevation_m": "elevation_m",
    "timing_sigma_ms": "timing_sigma_ms",
    "decommissioned_at": "retired_at",
}
_DETECTION_RECORD = {
    "sensor_id": "sensor_id",
    "detection_id": "detection_id",
    "arrival_time": "arrival_time",
    "signal": "signal",
    "amplitude_db": "amplitude_db",
}


def _records(path: Path, columns: dict[str, str]) -> list[dict[str, Any]]:
    """Rows as API records: known columns renamed, blanks left out (the record's default).

    Validation is the store's (``POST /api/v1/sensors`` and ``/detections``): one verdict per row.
    """
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return [
            {columns[k.strip()]: v.strip() for k, v in row.items() if k and k.strip() in columns and v}
            for row in bounded_csv(csv.DictReader(fh), path, _CELLS)
        ]


def sensor_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a sensors.csv as records of ``POST /api/v1/sensors``."""
    return _records(path, _SENSOR_RECORD)


def detection_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a detections.csv as records of ``POST /api/v1/detections``."""
    return _records(path, _DETECTION_RECORD)
