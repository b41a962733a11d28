"""Planner services (``truceline plan`` and, later, the web view): load, call the core, return results.

:func:`compare_plan` reads the scenarios and the settlements and runs
:func:`truceline.core.planner.compare_scenarios`; :func:`load_history` reads an agreement's stored
incidents and findings as columns; :func:`replay_history` replays them under another scenario.
The caller owns the session (and its transaction); nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from truceline.core.incidents import IncidentBatch
from truceline.core.planner import (
    Comparison,
    ForceParameters,
    ReplayResult,
    Scenario,
    SensorParameters,
    compare_scenarios,
    replay,
)
from truceline.core.rules import Findings
from truceline.errors import ValidationError
from truceline.io.scenarios import load_scenarios
from truceline.io.settlements import load_settlements
from truceline.store.models import FindingRow, IncidentRow

__all__ = ["History", "compare_plan", "load_history", "read_sensor_layout", "replay_history"]


def read_sensor_layout(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sensor lon/lat from a ``sensors.csv`` (the acoustic pipeline's format) or a GeoJSON of points."""
    if path.suffix.lower() in (".geojson", ".json"):
        from truceline.io.agreement_files import read_features

        feats = read_features(path)
        pts = [f.geometry for f in feats if f.geometry.geom_type == "Point"]
        if len(pts) != len(feats):
            raise ValidationError(f"{path}: a sensor layout holds Points only")
        return np.array([p.x for p in pts]), np.array([p.y for p in pts])
    from truceline.io.acoustic_csv import read_sensors

    sens = read_sensors(path)
    if sens.network is None:
        raise ValidationError(f"{path}: no usable sensor (see the rejects: {len(sens.rejects)})")
    return sens.network.lon, sens.network.lat


def compare_plan(
    agreement: Path,
    scenario_ids: Sequence[str] = (),
    *,
    force: ForceParameters | None = None,
    sensors: SensorParameters | None = None,
    layout: Path | None = None,
    min_population: int = 1000,
) -> Comparison:
    """Compare the named scenarios of an agreement folder (all of them when none is named)."""
    scenarios = load_scenarios(agreement, list(scenario_ids) or None)
    area = scenarios[0].agreement.compiled(0).area
    x0, y0, x1, y1 = area.bounds
    places = load_settlements(min_population, (x0, y0, x1, y1))
    lay = read_sensor_layout(layout) if layout is not None else None
    return compare_scenarios(
        scenarios, places, force=force, sensors=sensors, layout=lay, min_population=min_population
    )


@dataclass(frozen=True, slots=True)
class History:
    """Stored incidents as columns, their stored findings (``incident`` indexes ``batch``)."""

    batch: IncidentBatch
    findings: Findings


_BLOCK = 100_000  # rows read and turned into arrays at a time (bounded memory)


def _driver_blocks(session: Session, q: Any) -> Iterator[list[tuple[Any, ...]]]:
    """Rows of a Core select straight from the driver's cursor, a block at a time.

    Plain tuples, no per-value result processing: reading millions of rows is dominated by that
    processing otherwise. Values come as the driver gives them (a SQLite timestamp is its text).
    """
    conn = session.connection()
    compiled = q.compile(dialect=conn.dialect)
    params = compiled.construct_params()
    if conn.dialect.name == "sqlite":  # dates as SQLAlchemy stores them there: ISO text
        params = {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in params.items()}
    args: Any = [params[k] for k in compiled.positiontup or ()] if compiled.positional else params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        while block := cursor.fetchmany(_BLOCK):
            yield block
    finally:
        cursor.close()


def _timestamps(values: np.ndarray) -> np.ndarray:
    """UTC ``datetime64[us]`` from driver values: ISO text (SQLite) or datetimes (PostgreSQL)."""
    if values.size and isinstance(values[0], str):
        try:
            return values.astype(str).astype("datetime64[us]")
        except ValueError:  # text with an offset: parse it properly
            values = np.array([dt.datetime.fromisoformat(v) for v in values.tolist()], dtype=object)
    naive = [
        t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None)
        for t in values.tolist()
    ]
    return np.array(naive, dtype="datetime64[us]")


def _columns(session: Session, q: Any, fields: list[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Run ``q`` and return its columns as arrays (``fields``: name and NumPy kind per column).

    Kinds: ``f8`` (None becomes NaN), ``i8``, ``str`` (strings; select them with COALESCE so that
    none is NULL) and ``ts`` (timestamps). Each block of rows becomes a structured array in one call.
    """
    layout = np.dtype([(n, "f8" if k == "f8" else "i8" if k == "i8" else "O") for n, k in fields])
    parts: dict[str, list[np.ndarray]] = {n: [] for n, _ in fields}
    for block in _driver_blocks(session, q):
        arr = np.array(block, dtype=layout)
        for n, k in fields:
            col = arr[n]
            if k == "str":
                col = col.astype(str)
            elif k == "ts":
                col = _timestamps(col)
            parts[n].append(col)
    empty = {"f8": np.zeros(0), "i8": np.zeros(0, np.int64), "str": np.zeros(0, dtype=str),
             "ts": np.zeros(0, dtype="datetime64[us]")}  # fmt: skip
    return {n: (np.concatenate(parts[n]) if parts[n] else empty[k]) for n, k in fields}


def load_history(session: Session, agreement_id: str, since: dt.date | None = None) -> History:
    """Read an agreement's incidents (from ``since`` on) and their findings as column arrays.

    Rows stream from the driver in blocks of 100,000 and become arrays block by block.
    """
    i = IncidentRow
    fields = [
        ("pk", "i8"), ("id", "str"), ("observed_at", "ts"), ("lon", "f8"), ("lat", "f8"),
        ("uncertainty_m", "f8"), ("kind", "str"), ("weapon_class", "str"), ("count", "i8"),
        ("party", "str"), ("origin_lon", "f8"), ("origin_lat", "f8"),
        ("origin_uncertainty_m", "f8"), ("bearing_deg", "f8"), ("source_type", "str"),
    ]  # fmt: skip
    q = (
        select(i.pk, i.report_id, i.observed_at, i.lon, i.lat, i.uncertainty_m, i.kind,
               func.coalesce(i.weapon_class, ""), i.count, func.coalesce(i.party, ""),
               i.origin_lon, i.origin_lat, i.origin_uncertainty_m, i.bearing_deg, i.source_type)
        .where(i.agreement_id == agreement_id)
        .order_by(i.pk)
    )  # fmt: skip
    if since is not None:
        q = q.where(i.day >= since)
    c = _columns(session, q, fields)
    pk = c.pop("pk")
    batch = IncidentBatch(**c)
    f = FindingRow
    fq = (
        select(f.incident_pk, f.rule_id, f.rule_type, f.responsible, f.probability)
        .join(i, f.incident_pk == i.pk)
        .where(i.agreement_id == agreement_id)
    )
    if since is not None:
        fq = fq.where(i.day >= since)
    fc = _columns(
        session, fq,
        [("pk", "i8"), ("rule_id", "str"), ("rule_type", "str"), ("responsible", "str"),
         ("probability", "f8")],
    )  # fmt: skip
    # pk is sorted (ORDER BY pk): each finding's incident is a binary search away.
    inc = np.searchsorted(pk, fc.pop("pk")).astype(np.intp)
    findings = Findings(incident=inc, explanation=np.full(inc.size, "", dtype=str), **fc)
    return History(batch, findings)


def replay_history(
    session: Session,
    scenarios: Sequence[Scenario],
    *,
    to: str,
    from_: str | None = None,
    since: dt.date | None = None,
    recompute: bool = False,
    threshold: float = 0.5,
) -> ReplayResult:
    """Replay the stored history of the agreement under scenario ``to``.

    The history is compared with its stored findings (made when it was ingested, under ``from_``;
    where the change cannot reach an incident its stored findings stand, see
    :func:`~truceline.core.planner.replay_findings`), or, with ``recompute``, with a fresh
    classification under ``from_``.
    """
    by_id = {s.id: s for s in scenarios}
    for sid in (to, from_):
        if sid is not None and sid not in by_id:
            raise ValidationError(f"no scenario {sid!r}; known: {', '.join(by_id)}")
    target = by_id[to]
    hist = load_history(session, target.agreement.id, since)
    if recompute:
        if from_ is None:
            raise ValidationError("--recompute needs --from SCENARIO to classify the history under")
        return replay(hist.batch, target.agreement, by_id[from_].agreement, threshold=threshold)
    # Knowing the scenario the stored findings were made under, only the incidents the change can
    # reach are classified again; without it, all of them.
    under = by_id[from_].agreement if from_ is not None else None
    return replay(hist.batch, target.agreement, hist.findings, stored_under=under, threshold=threshold)
