"""A front in several separate pieces (issue 16): ``agreement from-territory`` keeps every piece as a
part of the line with its sides, places take the side of the ground they lie in (``classify``), and
``agreement check`` refuses pieces without sides or with one reversed, naming the part.

The map: the jagged front of ``test_from_territory`` broken by 26 lakes (ground neither party
holds), so the two territories share 27 separate pieces of boundary.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import shapely
from typer.testing import CliRunner

from truceline.cli import app
from truceline.io.agreement_files import load_agreement

from .test_from_territory import FRONT, _build, _territories, _write

runner = CliRunner()

LAKE_LAT = np.linspace(48.45, 47.6, 26)


def _front_lon(lat: np.ndarray) -> np.ndarray:
    order = np.argsort(FRONT[:, 1])
    return np.asarray(np.interp(lat, FRONT[order, 1], FRONT[order, 0]), dtype=np.float64)


def _map(tmp_path: Path) -> Path:
    west, east = _territories()
    lakes = shapely.union_all(
        [shapely.box(x - 0.03, y - 0.004, x + 0.03, y + 0.004)
         for x, y in zip(_front_lon(LAKE_LAT), LAKE_LAT, strict=True)]
    )  # fmt: skip
    ua, ru = shapely.difference(west, lakes), shapely.difference(east, lakes)
    return _write(tmp_path / "control.geojson", [(ua, {"party": "UA"}), (ru, {"party": "RU"})])


def _towns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Towns 3 and 25 km either side of the front at every lake (off the ends of the pieces) and
    between lakes; the side each lies on (+1 UA west, -1 RU east)."""
    lat = np.concatenate([LAKE_LAT, (LAKE_LAT[:-1] + LAKE_LAT[1:]) / 2.0])
    dlon = np.array([-0.34, -0.04, 0.04, 0.34])  # ~25 and ~3 km at 48 N
    lon = (_front_lon(lat)[:, None] + dlon[None, :]).ravel()
    side = np.tile(np.where(dlon < 0, 1, -1), lat.size)
    return lon, np.repeat(lat, dlon.size), side


def test_a_front_in_27_pieces_keeps_every_piece_with_its_sides(tmp_path: Path) -> None:
    out, text = _build(tmp_path, _map(tmp_path), "--parties", "UA,RU")
    assert "The front is in 27 separate pieces" in text, text
    line = load_agreement(out).versions[0].line
    assert line.geom_type == "MultiLineString" and len(line.geoms) == 27
    # every town on its side, through `classify` (the rule engine's sides)
    lon, lat, side = _towns()
    reports = tmp_path / "towns.csv"
    with reports.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "observed_at", "lon", "lat", "uncertainty_m", "kind", "source_type"])
        for k in range(lon.size):
            w.writerow([f"t{k}", "2025-03-02T10:00:00Z", f"{lon[k]:.5f}", f"{lat[k]:.5f}", 50,
                        "armed_personnel", "patrol"])  # fmt: skip
    res = runner.invoke(app, ["classify", str(out), str(reports), "-o", str(tmp_path / "c.csv")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader((tmp_path / "c.csv").read_text().splitlines()))
    got = np.array([1 if r["side"] == "UA" else -1 if r["side"] == "RU" else 0 for r in rows])
    assert len(rows) == lon.size and np.array_equal(got, side), np.flatnonzero(got != side)
    check = runner.invoke(app, ["agreement", "check", str(out)])
    assert check.exit_code == 0, check.output
    flat = " ".join(check.output.split())
    assert "27 separate parts" in flat and "the sides are the ground each party holds" in flat


def test_pieces_without_sides_or_with_one_reversed_are_refused(tmp_path: Path) -> None:
    out, _ = _build(tmp_path, _map(tmp_path), "--parties", "UA,RU")
    fc = json.loads((out / "line.geojson").read_text())
    parts = fc["features"][0]["geometry"]["coordinates"]
    assert len(parts) == 27
    yaml_text = (out / "agreement.yaml").read_text()
    # the 27 pieces passed as one line, without the parties' ground: refused, with the fix
    (out / "agreement.yaml").write_text(yaml_text.replace("  sides:\n    file: territory.geojson\n", ""))
    res = runner.invoke(app, ["agreement", "check", str(out)])
    flat = " ".join(res.output.split())
    assert res.exit_code != 0 and "27 parts that do not join end to end" in flat, flat
    assert "sides: {file: territory.geojson}" in flat
    # with the ground, one piece digitised the other way: refused, the piece named
    (out / "agreement.yaml").write_text(yaml_text)
    parts[4] = parts[4][::-1]
    (out / "line.geojson").write_text(json.dumps(fc))
    res = runner.invoke(app, ["agreement", "check", str(out)])
    flat = " ".join(res.output.split())
    assert res.exit_code != 0 and "part 5 of 27 of the line" in flat, flat
    assert "has RU's ground on its left, but the line's left is UA" in flat
