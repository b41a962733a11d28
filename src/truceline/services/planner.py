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


def load_history(session: Session, agreement_id: str, since: dt.date | None = None) -> History:
    """Read an agreement's incidents (from ``since`` on) and their findings as column arrays."""
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
    rows = session.execute(q).all()
    c = list(zip(*rows, strict=True)) if rows else [()] * len(cols)

    def floats(v: tuple[object, ...]) -> np.ndarray:
        return np.array([_FLOAT_NONE if x is None else x for x in v], dtype=np.float64)

    def strs(v: tuple[object, ...]) -> np.ndarray:
        return np.array(["" if x is None else x for x in v], dtype=str)

    pk = np.array(c[0], dtype=np.int64)
    observed = np.array(
        [
            t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(dt.UTC).replace(tzinfo=None)
            for t in c[2]
        ],
        dtype="datetime64[us]",
    )
    batch = IncidentBatch(
        id=strs(c[1]),
        observed_at=observed,
        lon=floats(c[3]),
        lat=floats(c[4]),
        uncertainty_m=floats(c[5]),
        kind=strs(c[6]),
        weapon_class=strs(c[7]),
        count=np.array(c[8], dtype=np.int64),
        party=strs(c[9]),
        origin_lon=floats(c[10]),
        origin_lat=floats(c[11]),
        origin_uncertainty_m=floats(c[12]),
        bearing_deg=floats(c[13]),
        source_type=strs(c[14]),
    )
    fq = (
        select(FindingRow.incident_pk, FindingRow.rule_id, FindingRow.rule_type,
               FindingRow.responsible, FindingRow.probability)
        .join(IncidentRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(IncidentRow.agreement_id == agreement_id)
    )  # fmt: skip
    if since is not None:
        fq = fq.where(IncidentRow.day >= since)
    frows = session.execute(fq).all()
    fc = list(zip(*frows, strict=True)) if frows else [()] * 5
    fpk = np.array(fc[0], dtype=np.int64)
    # pk is sorted (ORDER BY pk): each finding's incident is a binary search away.
    inc = np.searchsorted(pk, fpk).astype(np.intp)
    findings = Findings(
        incident=inc,
        rule_id=strs(fc[1]),
        rule_type=strs(fc[2]),
        responsible=strs(fc[3]),
        probability=np.array(fc[4], dtype=np.float64),
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
