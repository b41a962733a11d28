"""Planner services (``truceline plan`` and, later, the web view): load, call the core, return results.

:func:`compare_plan` reads the scenarios and the settlements and runs
:func:`truceline.core.planner.compare_scenarios`; :func:`load_history` reads an agreement's stored
incidents and findings as columns; :func:`replay_history` replays them under another scenario.
The caller owns the session (and its transaction); nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
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


_FLOAT_NONE = np.nan


_BLOCK = 100_000  # rows read and turned into arrays at a time (bounded memory)


def _floats(v: tuple[object, ...]) -> np.ndarray:
    return np.array([_FLOAT_NONE if x is None else x for x in v], dtype=np.float64)


def _strs(v: tuple[object, ...]) -> np.ndarray:
    return np.array(["" if x is None else x for x in v], dtype=str)


def _utc_naive(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None)


def _read_blocks(session: Session, q: Any, n_cols: int) -> list[list[tuple[object, ...]]]:
    """The query's columns, a block of rows at a time (each block transposed to column tuples)."""
    out = []
    for part in session.execute(q.execution_options(yield_per=_BLOCK)).partitions(_BLOCK):
        out.append(list(zip(*part, strict=True)) if part else [()] * n_cols)
    return out


def load_history(session: Session, agreement_id: str, since: dt.date | None = None) -> History:
    """Read an agreement's incidents (from ``since`` on) and their findings as column arrays.

    Rows stream in blocks of 100,000 and become arrays block by block, so memory follows the arrays,
    not the rows.
    """
    cols = (
        IncidentRow.pk,
        IncidentRow.report_id,
        IncidentRow.observed_at,
        IncidentRow.lon,
        IncidentRow.lat,
        IncidentRow.uncertainty_m,
        IncidentRow.kind,
        IncidentRow.weapon_class,
        IncidentRow.count,
        IncidentRow.party,
        IncidentRow.origin_lon,
        IncidentRow.origin_lat,
        IncidentRow.origin_uncertainty_m,
        IncidentRow.bearing_deg,
        IncidentRow.source_type,
    )
    q = select(*cols).where(IncidentRow.agreement_id == agreement_id).order_by(IncidentRow.pk)
    if since is not None:
        q = q.where(IncidentRow.day >= since)
    floats = (3, 4, 5, 10, 11, 12, 13)
    strings = (1, 6, 7, 9, 14)
    blocks: list[dict[int, np.ndarray]] = []
    for c in _read_blocks(session, q, len(cols)):
        arr: dict[int, np.ndarray] = {k: _floats(c[k]) for k in floats}
        arr.update({k: _strs(c[k]) for k in strings})
        arr[0] = np.array(c[0], dtype=np.int64)
        arr[8] = np.array(c[8], dtype=np.int64)
        arr[2] = np.array([_utc_naive(t) for t in c[2]], dtype="datetime64[us]")
        blocks.append(arr)

    def col(k: int, empty: np.ndarray) -> np.ndarray:
        return np.concatenate([b[k] for b in blocks]) if blocks else empty

    e_f, e_s = np.zeros(0), np.zeros(0, dtype=str)
    pk = col(0, np.zeros(0, np.int64))
    batch = IncidentBatch(
        id=col(1, e_s),
        observed_at=col(2, np.zeros(0, "datetime64[us]")),
        lon=col(3, e_f),
        lat=col(4, e_f),
        uncertainty_m=col(5, e_f),
        kind=col(6, e_s),
        weapon_class=col(7, e_s),
        count=col(8, np.zeros(0, np.int64)),
        party=col(9, e_s),
        origin_lon=col(10, e_f),
        origin_lat=col(11, e_f),
        origin_uncertainty_m=col(12, e_f),
        bearing_deg=col(13, e_f),
        source_type=col(14, e_s),
    )
    fq = (
        select(FindingRow.incident_pk, FindingRow.rule_id, FindingRow.rule_type,
               FindingRow.responsible, FindingRow.probability)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(IncidentRow.agreement_id == agreement_id)
    )  # fmt: skip
    if since is not None:
        fq = fq.where(IncidentRow.day >= since)
    fb = _read_blocks(session, fq, 5)
    fpk = np.concatenate([np.array(c[0], dtype=np.int64) for c in fb]) if fb else np.zeros(0, np.int64)
    # pk is sorted (ORDER BY pk): each finding's incident is a binary search away.
    inc = np.searchsorted(pk, fpk).astype(np.intp)

    def fcol(k: int) -> np.ndarray:
        return np.concatenate([_strs(c[k]) for c in fb]) if fb else e_s

    findings = Findings(
        incident=inc,
        rule_id=fcol(1),
        rule_type=fcol(2),
        responsible=fcol(3),
        probability=(np.concatenate([_floats(c[4]) for c in fb]) if fb else e_f),
        explanation=np.full(inc.size, "", dtype=str),
    )
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
