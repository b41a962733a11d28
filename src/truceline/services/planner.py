"""Planner services (``truceline plan`` and the dashboard's planner view): load, call the core, return.

:func:`compare_plan` reads the scenarios and the settlements and runs
:func:`truceline.core.planner.compare_scenarios`; :func:`load_history` reads an agreement's stored
incidents and findings as columns; :func:`replay_history` replays them under another scenario.
For the server, :class:`PlannerCache` keeps the comparisons of stored agreements (by revision and
scenario pair) and :func:`comparison_view` turns one into the page's JSON: the CLI's table, the
figures as numbers, and the lines, buffer zones and land changing hands as GeoJSON.
The caller owns the session (and its transaction); nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
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
from truceline.io.scenarios import load_scenarios, load_scenarios_files
from truceline.io.settlements import data_limits, load_settlements
from truceline.store.columns import read_columns
from truceline.store.models import FindingRow, IncidentRow

__all__ = [
    "History",
    "PlannerCache",
    "compare_plan",
    "comparison_view",
    "load_history",
    "read_sensor_layout",
    "replay_history",
]


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
    agreement: Path | Mapping[str, bytes],
    scenario_ids: Sequence[str] = (),
    *,
    force: ForceParameters | None = None,
    sensors: SensorParameters | None = None,
    layout: Path | None = None,
    min_population: int = 1000,
) -> Comparison:
    """Compare the named scenarios of an agreement (all of them when none is named).

    ``agreement`` is its folder or its files by name (a stored revision's).
    """
    ids = list(scenario_ids) or None
    scenarios = (
        load_scenarios_files(agreement, ids)
        if isinstance(agreement, Mapping)
        else load_scenarios(agreement, ids)
    )
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


def load_history(
    session: Session,
    agreement_id: str,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> History:
    """Read an agreement's incidents (days ``since`` <= day < ``until``) and their findings as columns.

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
    if until is not None:
        q = q.where(i.day < until)
    c = read_columns(session, q, fields)
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
    if until is not None:
        fq = fq.where(i.day < until)
    fc = read_columns(
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


# -- the server's planner view ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScenarioInfo:
    id: str
    name: str
    description: str


class PlannerCache:
    """Comparisons of stored agreements by (content hash of the revision, scenario A, scenario B).

    A comparison takes seconds (settlements, geodesic zones, the acoustic plan); the page asks for
    the same pair again on every reload. At most ``size`` comparisons are kept (least recently used
    go first); concurrent requests for one pair compute it once.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._done: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self._busy: dict[tuple[str, ...], threading.Lock] = {}
        self.computed = 0  # comparisons made (tests read it to see the cache work)

    def _get(self, key: tuple[str, ...], make: Any) -> Any:
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            busy = self._busy.setdefault(key, threading.Lock())
        with busy:
            with self._lock:
                if key in self._done:
                    return self._done[key]
            value = make()
            with self._lock:
                self._done[key] = value
                self._busy.pop(key, None)
                while len(self._done) > self._size:
                    self._done.popitem(last=False)
        return value

    def scenarios(self, revision: str, files: Mapping[str, bytes]) -> list[ScenarioInfo]:
        """The agreement's scenarios, in file order."""

        def make() -> list[ScenarioInfo]:
            return [ScenarioInfo(sc.id, sc.name, sc.description) for sc in load_scenarios_files(files)]

        out: list[ScenarioInfo] = self._get(("scenarios", revision), make)
        return out

    def comparison(
        self, revision: str, files: Mapping[str, bytes], a: str, b: str
    ) -> tuple[Comparison, dict[str, Any]]:
        """Scenario ``b`` against ``a`` (default planning parameters) and its page JSON."""

        def make() -> tuple[Comparison, dict[str, Any]]:
            comp = compare_plan(files, [a, b], sensors=SensorParameters())
            self.computed += 1
            return comp, comparison_view(comp)

        out: tuple[Comparison, dict[str, Any]] = self._get(("compare", revision, a, b), make)
        return out


def _geometry(geom: Any, digits: int = 5) -> dict[str, Any]:
    """GeoJSON of a shapely geometry, lon/lat rounded to ``digits`` (5: about a metre)."""
    return shapely.geometry.mapping(shapely.set_precision(geom, 10.0**-digits))  # type: ignore[no-any-return]


def _places(pc: Any) -> dict[str, int]:
    return {"settlements": pc.count, "population": pc.population}


def comparison_view(c: Comparison) -> dict[str, Any]:
    """The planner page's JSON for a comparison of two (or more) scenarios.

    ``scenarios``: per scenario its id, name, description and figures as numbers (km, km2,
    persons); ``rows``: the table ``truceline plan compare`` prints (same labels, same
    formatting); ``geojson``: a FeatureCollection whose features carry ``properties.layer``:
    ``line`` and ``buffer`` (per scenario, by ``role`` a, b, ...; buffers per ``side``),
    ``change`` (land one party holds under the first scenario and the other under this one:
    ``from_party``, ``to_party``, ``area_km2``, settlements, population) and ``place`` (the largest
    settlements changing hands, with ``to_party``).
    """
    from truceline.report.planner import comparison_rows  # matplotlib: only when asked

    ref = c.reference
    ag = ref.scenario.agreement
    roles = "abcdefghij"
    scen: list[dict[str, Any]] = []
    feats: list[dict[str, Any]] = []
    for k, m in enumerate(c.scenarios):
        sc, role = m.scenario, roles[k % len(roles)]
        cv = sc.agreement.compiled(len(sc.agreement.versions) - 1)
        feats.append(
            {
                "type": "Feature",
                "properties": {"layer": "line", "role": role, "scenario": sc.id, "name": sc.name,
                               "length_km": round(m.line_length_km, 3)},
                "geometry": _geometry(cv.version.line),
            }
        )  # fmt: skip
        zone = next((z for z in cv.version.zones if z.id == m.buffer_zone), None)
        if zone is not None:
            for side, geom in cv.zone_polygons(zone).items():
                party = ag.party_on_side(side)
                if geom.is_empty:
                    continue
                feats.append(
                    {
                        "type": "Feature",
                        "properties": {"layer": "buffer", "role": role, "scenario": sc.id,
                                       "zone": zone.id, "name": zone.name, "side": party,
                                       "area_km2": round(m.buffer_km2.get(party, 0.0), 3)},
                        "geometry": _geometry(geom),
                    }
                )  # fmt: skip
        for ch in m.changes:
            if ch.area_km2 <= 0 or ch.geometry is None or ch.geometry.is_empty:
                continue
            feats.append(
                {
                    "type": "Feature",
                    "properties": {"layer": "change", "role": role, "scenario": sc.id,
                                   "from_party": ch.from_party, "to_party": ch.to_party,
                                   "area_km2": round(ch.area_km2, 3), **_places(ch.places)},
                    "geometry": _geometry(ch.geometry),
                }
            )  # fmt: skip
            for i in ch.places.index:
                feats.append(
                    {
                        "type": "Feature",
                        "properties": {"layer": "place", "role": role, "scenario": sc.id,
                                       "name": str(c.places.name[i]),
                                       "population": int(c.places.population[i]),
                                       "from_party": ch.from_party, "to_party": ch.to_party},
                        "geometry": {"type": "Point", "coordinates": [
                            round(float(c.places.lon[i]), 5), round(float(c.places.lat[i]), 5)]},
                    }
                )  # fmt: skip
        force = m.force
        sens = m.sensors
        scen.append(
            {
                "id": sc.id,
                "name": sc.name,
                "description": sc.description,
                "role": role,
                "line_length_km": m.line_length_km,
                "land_from": m.land_from,
                "notes": list(sc.notes),
                "area_km2": m.area_km2,
                "changes": [
                    {"from_party": ch.from_party, "to_party": ch.to_party, "area_km2": ch.area_km2,
                     **_places(ch.places), "largest": [list(x) for x in ch.places.largest]}
                    for ch in m.changes
                ],
                "changed_km2": m.changed_km2,
                "buffer_zone": m.buffer_zone,
                "buffer_km2": m.buffer_km2,
                "in_buffer": {p: _places(pc) for p, pc in m.in_buffer.items()},
                "withdrawal": [
                    {"party": w.party, "distance_km": w.distance_km, "rules": list(w.rule_ids),
                     **_places(w.places)}
                    for w in m.withdrawal
                ],
                "force": {
                    "personnel": force.personnel,
                    "observation_posts": force.observation_posts,
                    "patrols_on_duty": force.patrols_on_duty,
                    "line_km": force.line_km,
                    "troops_per_km": force.parameters.troops_per_km,
                    "sectors": [
                        {"sector": f.sector, "nation": f.nation, "line_km": f.line_km,
                         "personnel": f.personnel, "observation_posts": f.observation_posts}
                        for f in force.sectors
                    ],
                },
                "sensors": None if sens is None else {
                    "n_sensors": sens.n_sensors,
                    "spacing_km": sens.spacing_km,
                    "covered_fraction": sens.covered_fraction,
                    "gap_km": sens.gap_km,
                    "target_accuracy_m": sens.parameters.target_accuracy_m,
                },
            }
        )  # fmt: skip
    x0, y0, x1, y1 = shapely.bounds(
        shapely.union_all([m.scenario.agreement.versions[-1].line for m in c.scenarios])
    )
    return {
        "agreement": {
            "id": ag.id,
            "name": ag.name,
            "left": ag.left,
            "right": ag.right,
            "parties": [{"id": p.id, "name": p.name} for p in ag.parties],
        },
        "scenarios": scen,
        "rows": comparison_rows(c),
        "bbox": [round(float(v), 5) for v in (x0, y0, x1, y1)],
        "min_population": c.min_population,
        "data_limits": data_limits(c.min_population),
        "geojson": {"type": "FeatureCollection", "features": feats},
    }
