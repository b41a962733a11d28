"""Planner services on real data: the Ukraine example's scenarios, and a history replayed from SQLite."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyproj import Geod

from truceline.core.incidents import Incident, Kind, SourceType
from truceline.core.planner import Comparison, replay
from truceline.io.agreement_files import load_agreement
from truceline.io.scenarios import load_scenarios
from truceline.services.ingest import ingest_incidents
from truceline.services.planner import compare_plan, load_history, replay_history
from truceline.store.db import make_engine, session_factory, upgrade

from ..conftest import register_folder

G = Geod(ellps="WGS84")
UKRAINE = Path(__file__).resolve().parents[2] / "examples" / "ukraine-2024"


@pytest.fixture(scope="module")
def ukraine_plan() -> Comparison:
    return compare_plan(UKRAINE, min_population=15000, sensors=None)


def _faces_between(a: shapely.LineString, b: shapely.LineString) -> float:
    """Area (km2, pyproj.Geod) of the faces enclosed between two lines with common ends."""
    faces = shapely.get_parts(shapely.polygonize([shapely.union(a, b)]))
    return sum(abs(G.geometry_area_perimeter(shapely.orient_polygons(f))[0]) for f in faces) / 1e6


def test_example_lengths_and_changed_areas(ukraine_plan: Comparison) -> None:
    base = ukraine_plan.scenarios[0].scenario.agreement.versions[0].line
    for m in ukraine_plan.scenarios:
        line = m.scenario.agreement.versions[0].line
        xy = shapely.get_coordinates(line)
        assert m.line_length_km == pytest.approx(G.line_length(xy[:, 0], xy[:, 1]) / 1000.0, abs=0.01)
        if m is ukraine_plan.scenarios[0]:
            continue
        assert m.changed_km2 == pytest.approx(_faces_between(base, line), rel=1e-3)
        # What one party gains the other loses, inside the same area of application.
        ref = ukraine_plan.reference
        gain = {c.to_party: c.area_km2 for c in m.changes}
        for p in ("UA", "RU"):
            other = "RU" if p == "UA" else "UA"
            assert m.area_km2[p] - ref.area_km2[p] == pytest.approx(gain[p] - gain[other], abs=0.5)


def test_example_places_changing_hands(ukraine_plan: Comparison) -> None:
    _, admin, salient = ukraine_plan.scenarios

    def names(m, to):  # type: ignore[no-untyped-def]
        return {n for c in m.changes if c.to_party == to for n, _ in c.places.largest}

    assert {"Kramatorsk", "Slovyansk"} <= names(admin, "RU")
    assert "Vovchansk" in names(admin, "UA")
    assert "Selydove" in names(salient, "UA")
    assert not names(salient, "RU")
    # The salient scenario's 20 km buffer is larger on both sides and takes in Donetsk city.
    for p in ("UA", "RU"):
        assert salient.buffer_km2[p] > 1.25 * ukraine_plan.reference.buffer_km2[p]
    assert "Donetsk" in {n for n, _ in salient.in_buffer["RU"].largest}
    assert "Donetsk" not in {n for n, _ in ukraine_plan.reference.in_buffer["RU"].largest}


def _incidents(n: int, seed: int = 5) -> list[Incident]:
    """Armed personnel scattered 0-40 km either side of the small agreement's line."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(36.3, 37.2, n)
    lat = rng.uniform(48.2, 48.9, n)
    t0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    return [
        Incident(
            id=f"r{k}",
            observed_at=t0 + dt.timedelta(days=int(k % 20), minutes=k),
            lon=float(lon[k]),
            lat=float(lat[k]),
            uncertainty_m=200.0,
            kind=Kind.armed_personnel,
            source_type=SourceType.patrol,
        )
        for k in range(n)
    ]


def test_replay_from_the_store_matches_replay_in_memory(
    tmp_path: Path, small_dir: Path, db_url: str
) -> None:
    extra = (
        "\nscenarios:\n  - {id: signed, name: As signed}\n"
        "  - {id: wide, name: Wider buffer, zones: [{id: buffer, bands: {A: [0, 30], B: [0, 30]}}]}\n"
    )
    folder = tmp_path / "ag"
    folder.mkdir()
    for f in small_dir.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "agreement.yaml").write_text((small_dir / "agreement.yaml").read_text() + extra)
    ag = load_agreement(folder)
    scen = load_scenarios(folder)
    incs = _incidents(300)
    engine = make_engine(db_url)  # SQLite, and PostgreSQL + PostGIS (tests/pg.py)
    upgrade(engine)
    with session_factory(engine)() as session, session.begin():
        register_folder(session, folder)
        ingest_incidents(session, ag, incs, list(range(len(incs))), source="test")
    with session_factory(engine)() as session:
        hist = load_history(session, ag.id)
        assert len(hist.batch) == 300 and hist.findings.incident.size > 0
        assert hist.batch.id.tolist() == [i.id for i in incs]
        want = np.array([i.observed_at.replace(tzinfo=None) for i in incs], dtype="datetime64[us]")
        assert np.array_equal(hist.batch.observed_at, want)
        assert np.allclose(hist.batch.lon, [i.lon for i in incs]) and set(hist.batch.weapon_class) == {
            ""
        }
        res = replay_history(session, scen, to="wide", from_="signed")
        recomputed = replay_history(session, scen, to="wide", from_="signed", recompute=True)
        later = replay_history(session, scen, to="wide", since=dt.date(2025, 3, 11))
    engine.dispose()
    direct = replay(hist.batch, scen[1].agreement, scen[0].agreement)
    for r in (res, recomputed):
        assert (r.before, r.after, r.new, r.cleared) == (
            direct.before, direct.after, direct.new, direct.cleared,
        )  # fmt: skip
    assert res.new > 0 and res.cleared == 0
    assert later.n_incidents == sum(1 for i in incs if i.observed_at.date() >= dt.date(2025, 3, 11))
    assert 0 < later.n_incidents < 300
