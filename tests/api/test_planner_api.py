"""The planner's API (the dashboard's planner view): the same comparison as ``truceline plan compare``.

Figures are checked against the service the CLI calls (same table, same numbers) and the shaded
land changing hands against an independent geodesic area (pyproj.Geod) of the polygons returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import shapely
from pyproj import Geod

from truceline.core.planner import SensorParameters
from truceline.report.planner import comparison_rows
from truceline.services.agreement_store import AgreementCache
from truceline.services.planner import compare_plan

from ..conftest import SMALL_LINE, SMALL_YAML, write_small_agreement
from .conftest import Api, make_api

# The middle vertex moved 0.3 deg east. The line runs south: B (left) holds the east, and the
# land the vertex sweeps passes from B to A. One area of application for both, so areas compare.
MOVED = [SMALL_LINE[0], [36.8, 49.0], *SMALL_LINE[2:]]
AREA = [[33.0, 50.0], [36.0, 50.0], [40.0, 50.0], [40.0, 46.0], [34.0, 46.8], [33.0, 46.8], [33.0, 50.0]]
SCENARIOS = """\
area_of_application: {file: area.geojson}
scenarios:
  - {id: as-is, name: The line as it is}
  - id: moved
    name: Line moved east, wider buffer
    line: {file: scenarios/moved.geojson}
    zones:
      - {id: buffer, bands: {A: [0, 20], B: [0, 20]}}
"""
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def planner_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_small_agreement(tmp_path_factory.mktemp("planner"), SMALL_YAML + SCENARIOS)
    (folder / "area.geojson").write_text(json.dumps({"type": "Polygon", "coordinates": [AREA]}))
    (folder / "scenarios").mkdir()
    (folder / "scenarios" / "moved.geojson").write_text(
        json.dumps({"type": "LineString", "coordinates": MOVED})
    )
    return folder


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, planner_dir: Path) -> Iterator[Api]:
    a = make_api(str(tmp_path_factory.mktemp("plan") / "plan.db"), planner_dir, AgreementCache())
    with a.client:
        yield a
    a.ctx.close()


def test_scenarios_are_listed_in_file_order(api: Api) -> None:
    r = api.get("/planner/scenarios", role="analyst")
    assert r.status_code == 200
    body = r.json()
    assert body["agreement"] == "small"
    assert [s["id"] for s in body["scenarios"]] == ["as-is", "moved"]
    assert body["scenarios"][1]["name"] == "Line moved east, wider buffer"


def test_compare_matches_the_cli_service_and_an_independent_area(api: Api, planner_dir: Path) -> None:
    r = api.get("/planner/compare", role="analyst", params={"a": "as-is", "b": "moved"})
    assert r.status_code == 200, r.text
    view = r.json()
    cli = compare_plan(planner_dir, ["as-is", "moved"], sensors=SensorParameters())
    assert view["rows"] == json.loads(json.dumps(comparison_rows(cli)))  # the CLI's table, cell by cell
    a, b = view["scenarios"]
    assert (a["id"], b["id"]) == ("as-is", "moved")
    for got, want in zip((a, b), cli.scenarios, strict=True):
        assert got["line_length_km"] == pytest.approx(want.line_length_km, abs=1e-9)
        assert got["area_km2"] == pytest.approx(want.area_km2)
        assert got["buffer_km2"] == pytest.approx(want.buffer_km2)
        assert got["force"]["personnel"] == want.force.personnel
        assert got["sensors"]["n_sensors"] == want.sensors.n_sensors  # type: ignore[union-attr]
    feats = view["geojson"]["features"]
    by_layer: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for f in feats:
        by_layer.setdefault(f["properties"]["layer"], []).append(f)
    assert sorted(f["properties"]["role"] for f in by_layer["line"]) == ["a", "b"]
    moved = next(f for f in by_layer["line"] if f["properties"]["role"] == "b")
    assert moved["geometry"]["coordinates"][1] == [36.8, 49.0]
    assert {(f["properties"]["role"], f["properties"]["side"]) for f in by_layer["buffer"]} == {
        ("a", "A"), ("a", "B"), ("b", "A"), ("b", "B")
    }  # fmt: skip
    # The land changing hands: B's side under the line as it is, A's under the moved line.
    (change,) = by_layer["change"]
    assert (change["properties"]["from_party"], change["properties"]["to_party"]) == ("B", "A")
    geom = shapely.geometry.shape(change["geometry"])
    area_km2 = abs(GEOD.geometry_area_perimeter(geom)[0]) / 1e6
    assert change["properties"]["area_km2"] == pytest.approx(area_km2, rel=1e-3)
    assert b["changed_km2"] == pytest.approx(area_km2, rel=1e-3)
    # The quadrilateral between the old and the new line (neighbours (36, 50) and (37.5, 48)).
    swept = shapely.Polygon([SMALL_LINE[0], SMALL_LINE[1], SMALL_LINE[2], MOVED[1]])
    assert area_km2 == pytest.approx(abs(GEOD.geometry_area_perimeter(swept)[0]) / 1e6, rel=0.01)
    assert geom.contains(shapely.Point(36.6, 49.0)) and not geom.contains(shapely.Point(36.4, 49.0))
    # A's buffer is 15 km as is, 20 km moved: the bigger band has the bigger area.
    assert b["buffer_km2"]["A"] > a["buffer_km2"]["A"]


def test_compare_is_cached_per_revision_and_pair(api: Api, planner_dir: Path) -> None:
    api.get("/planner/compare", role="admin", params={"a": "as-is", "b": "moved"})
    n = api.ctx.planner.computed
    again = api.get("/planner/compare", role="analyst", params={"a": "as-is", "b": "moved"})
    assert again.status_code == 200 and api.ctx.planner.computed == n  # no new computation
    # Defaults: the first scenario against the second (the same pair: cached).
    default = api.get("/planner/compare", role="analyst").json()
    assert [s["id"] for s in default["scenarios"]] == ["as-is", "moved"]
    assert api.ctx.planner.computed == n
    swapped = api.get("/planner/compare", role="analyst", params={"a": "moved", "b": "as-is"})
    assert swapped.status_code == 200 and api.ctx.planner.computed == n + 1
    (change,) = [
        f for f in swapped.json()["geojson"]["features"] if f["properties"]["layer"] == "change"
    ]
    assert (change["properties"]["from_party"], change["properties"]["to_party"]) == ("A", "B")
    # A new revision of the agreement (an amendment) is compared anew.
    files = {
        p.relative_to(planner_dir).as_posix(): p.read_text()
        for p in planner_dir.rglob("*")
        if p.is_file()
    }
    files["agreement.yaml"] = files["agreement.yaml"].replace(
        "name: The line as it is", "name: The line as it stands"
    )
    assert api.post("/agreements", json={"files": files}).status_code == 201
    renamed = api.get("/planner/compare", role="analyst", params={"a": "as-is", "b": "moved"}).json()
    assert renamed["scenarios"][0]["name"] == "The line as it stands"
    assert api.ctx.planner.computed == n + 2


def test_unknown_scenario_names_the_known_ones(api: Api) -> None:
    r = api.get("/planner/compare", role="analyst", params={"a": "as-is", "b": "nope"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["field"] == "b" and "as-is" in err["fix"] and "moved" in err["fix"]


@pytest.mark.parametrize("role", ["monitor", "liaison", "sensor", "public"])
def test_only_planners_see_it(api: Api, role: str) -> None:
    assert api.get("/planner/compare", role=role).status_code == 403
    assert api.get("/planner/scenarios", role=role).status_code == 403
    assert api.get("/planner/scenarios", role=None).status_code == 401
