"""``plan compare`` on scenarios given as control-of-territory maps (issue 16): the land figures are
the polygons' differences, not the sides of a line; ``--format json`` prints every figure.

The two hand-made maps differ by three rectangles whose geodesic areas are computed here with
pyproj directly (their lon/lat edges densified, as the files' straight edges mean).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod
from typer.testing import CliRunner

from truceline.cli import app

runner = CliRunner()
G = Geod(ellps="WGS84")


def _box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]


def _km2(x0: float, y0: float, x1: float, y1: float) -> float:
    """Geodesic area of a lon/lat box, its edges densified every 0.001 deg (independent of Truceline)."""
    xs = np.linspace(x0, x1, round((x1 - x0) / 0.001) + 1)
    ys = np.linspace(y0, y1, round((y1 - y0) / 0.001) + 1)
    ring = np.vstack(
        [
            np.column_stack([xs, np.full(xs.size, y0)]),
            np.column_stack([np.full(ys.size, x1), ys]),
            np.column_stack([xs[::-1], np.full(xs.size, y1)]),
            np.column_stack([np.full(ys.size, x0), ys[::-1]]),
        ]
    )
    area, _ = G.polygon_area_perimeter(ring[:, 0], ring[:, 1])
    return abs(area) / 1e6


def _fc(boxes: list[tuple[float, float, float, float]], **props: str) -> str:
    feats = [
        {"type": "Feature", "properties": dict(props),
         "geometry": {"type": "Polygon", "coordinates": [_box(*b)]}}
        for b in boxes
    ]  # fmt: skip
    return json.dumps({"type": "FeatureCollection", "features": feats})


#: W's ground in map A: the west half of the area (the line runs north along 31 E).
MAP_A = [(30.0, 48.0, 31.0, 49.0)]
#: Map B: W loses a strip in the south, gains a bulge in the middle and holds an island in E's ground.
LOST = (30.9, 48.0, 31.0, 48.2)
BULGE = (31.0, 48.3, 31.2, 48.6)
ISLAND = (31.5, 48.75, 31.6, 48.85)
MAP_B = [(30.0, 48.2, 31.0, 49.0), (30.0, 48.0, 30.9, 48.2), BULGE, ISLAND]


def _folder(tmp: Path) -> Path:
    ag = tmp / "ag"
    (ag / "maps").mkdir(parents=True)
    line = {"type": "LineString", "coordinates": [[31.0, 48.0], [31.0, 49.0]]}
    (ag / "line.geojson").write_text(json.dumps({"type": "Feature", "properties": {}, "geometry": line}))
    (ag / "area.geojson").write_text(_fc([(30.0, 48.0, 32.0, 49.0)]))
    (ag / "maps" / "a.geojson").write_text(_fc(MAP_A))
    # map B names the party on every polygon (holder given or not, the same ground)
    (ag / "maps" / "b.geojson").write_text(_fc(MAP_B, party="W"))
    (ag / "agreement.yaml").write_text(
        """id: hand
name: Hand-made
effective_from: 2025-01-01
parties: [{id: W, name: West}, {id: E, name: East}]
line: {file: line.geojson, left: W, right: E}
area_of_application: {file: area.geojson}
zones: [{id: buffer, type: band, bands: {W: [0, 5], E: [0, 5]}, buffer: true}]
rules: []
scenarios:
  - {id: a, name: Map A, territory: {file: maps/a.geojson, holder: W}}
  - {id: b, name: Map B, territory: {file: maps/b.geojson, holder: W}}
  - {id: line-only, name: The agreement's line}
"""
    )
    return ag


def test_plan_compare_land_from_the_maps_equals_the_polygon_difference(tmp_path: Path) -> None:
    ag = _folder(tmp_path)
    res = runner.invoke(app, ["plan", "compare", str(ag), "a", "b", "--no-sensors", "--format", "json"])
    assert res.exit_code == 0, res.output
    view = json.loads(res.output)
    a, b = view["scenarios"]
    assert a["land_from"] == "map" and b["land_from"] == "map"
    assert "geojson" not in view and view["rows"]  # the figures, and the table's rows
    to_w = next(c for c in b["changes"] if c["to_party"] == "W")
    to_e = next(c for c in b["changes"] if c["to_party"] == "E")
    gained = _km2(*BULGE) + _km2(*ISLAND)  # the island lies off the line: only the map has it
    assert to_w["area_km2"] == pytest.approx(gained, rel=1e-3)
    assert to_e["area_km2"] == pytest.approx(_km2(*LOST), rel=1e-3)
    total = _km2(30.0, 48.0, 32.0, 49.0)
    assert a["area_km2"]["W"] == pytest.approx(_km2(*MAP_A[0]), rel=1e-3)
    assert b["area_km2"]["W"] == pytest.approx(_km2(*MAP_A[0]) + gained - _km2(*LOST), rel=1e-3)
    assert b["area_km2"]["W"] + b["area_km2"]["E"] == pytest.approx(total, rel=1e-3)
    assert any("1 enclave(s)" in n for n in b["notes"])  # the island's ring is not part of the line


def test_plan_compare_a_map_against_the_agreements_line(tmp_path: Path) -> None:
    ag = _folder(tmp_path)
    res = runner.invoke(
        app, ["plan", "compare", str(ag), "line-only", "b", "--no-sensors", "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    ref, b = json.loads(res.output)["scenarios"]
    assert ref["land_from"] == "line" and b["land_from"] == "map"
    to_w = next(c for c in b["changes"] if c["to_party"] == "W")
    assert to_w["area_km2"] == pytest.approx(_km2(*BULGE) + _km2(*ISLAND), rel=1e-3)
    # HTML stays the default: a table on the terminal, the page written
    out = tmp_path / "plan.html"
    res = runner.invoke(app, ["plan", "compare", str(ag), "a", "b", "--no-sensors", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text().startswith("<!") and "land held and changing hands from" in res.output


def test_plan_compare_territory_errors(tmp_path: Path) -> None:
    ag = _folder(tmp_path)
    y = (ag / "agreement.yaml").read_text()
    y = y.replace("holder: W}}\n  - {id: line", "holder: X}}\n  - {id: line")
    (ag / "agreement.yaml").write_text(y)
    res = runner.invoke(app, ["plan", "compare", str(ag), "--no-sensors", "--format", "json"])
    assert res.exit_code != 0 and "scenarios[1].territory.holder" in res.output
    assert "holder 'X' is not a party" in res.output
    res = runner.invoke(app, ["plan", "compare", str(_folder(tmp_path / "2")), "--format", "xml"])
    assert res.exit_code == 2 and "html or json" in res.output
