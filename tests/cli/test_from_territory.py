"""`truceline agreement from-territory` on hand-made control maps, through the command line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.geodesy import LocalFrame, geodesic_area_km2
from truceline.io.agreement_files import load_agreement

runner = CliRunner()

# A country 2 deg wide around 35E 48N: sea to the south (a wavy coast), land border elsewhere; a
# jagged front from the northern border down to the coast. West of it UA, east of it RU.
COAST_LON = np.linspace(34.0, 36.0, 81)


def _coast(lon: Any) -> Any:
    return 47.5 + 0.02 * np.sin(np.asarray(lon) * 10.0)


def _front() -> Any:
    rng = np.random.default_rng(3)
    lat = np.linspace(48.5, _coast(35.0), 120)
    lon = 35.0 + 0.05 * np.sin(lat * 40.0) + rng.normal(0.0, 0.004, lat.size)
    lon[:3], lon[-3:] = lon[2], lon[-3]  # it meets the border and the coast square on
    lat[-1] = _coast(lon[-1])
    return np.column_stack([lon, lat])


FRONT = _front()


def _territories(shift_m: float = 0.0) -> tuple[Any, Any]:
    """West (UA) and east (RU); the east moved ``shift_m`` east (a sliver gap between them)."""
    coast = np.column_stack([COAST_LON, _coast(COAST_LON)])
    west = shapely.Polygon(np.vstack([[[34.0, 48.5]], FRONT, coast[coast[:, 0] < FRONT[-1, 0]][::-1]]))
    east = shapely.Polygon(np.vstack([FRONT, coast[coast[:, 0] > FRONT[-1, 0]], [[36.0, 48.5]]]))
    if shift_m:
        dlon = shift_m / (111_320.0 * np.cos(np.radians(48.0)))
        east = shapely.affinity.translate(east, xoff=dlon)
    assert west.is_valid and east.is_valid
    return west, east


def _write(path: Path, feats: list[tuple[Any, dict[str, Any]]]) -> Path:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": p, "geometry": json.loads(shapely.to_geojson(g))}
            for g, p in feats
        ],
    }
    path.write_text(json.dumps(fc))
    return path


def _hausdorff_m(a: Any, b: Any) -> float:
    xy = np.vstack([shapely.get_coordinates(a), shapely.get_coordinates(b)])
    f = LocalFrame.centred_on(xy[:, 0], xy[:, 1])

    def to_xy(g: Any) -> Any:
        return shapely.transform(g, lambda c: np.column_stack(f.to_xy(c[:, 0], c[:, 1])))

    return float(shapely.hausdorff_distance(to_xy(a), to_xy(b), densify=0.1))


def _build(tmp_path: Path, control: Path, *args: str) -> tuple[Path, str]:
    out = tmp_path / "agreement"
    res = runner.invoke(
        app,
        [
            "agreement",
            "from-territory",
            str(control),
            "-o",
            str(out),
            "--effective-from",
            "2025-03-01",
            *args,
        ],
    )
    assert res.exit_code == 0, res.output
    return out, " ".join(res.output.split())


def _sides(folder: Path) -> dict[str, int]:
    ag = load_agreement(folder)
    cv = ag.compiled(0)
    # a town 30 km west of the front, one 30 km east, one on the coast east of it
    side = cv.side_of(np.array([34.6, 35.4, 35.8]), np.array([48.0, 48.0, 47.56]))
    return {"west": int(side[0]), "east": int(side[1]), "coast-east": int(side[2])}


def test_two_parties_jagged_front_and_a_coast(tmp_path: Path) -> None:
    west, east = _territories()
    control = _write(tmp_path / "control.geojson", [(east, {"party": "RU"}), (west, {"party": "UA"})])
    out, text = _build(tmp_path, control, "--parties", "UA,RU", "--buffer-km", "10,20")
    ag = load_agreement(out)
    assert (ag.left, ag.right) == ("UA", "RU")
    line = ag.versions[0].line
    # the line follows the front (simplified to 50 m), not the coast nor the northern border
    assert _hausdorff_m(line, shapely.LineString(FRONT)) < 100.0
    assert _sides(out) == {"west": 1, "east": -1, "coast-east": -1}
    # each side of the line is the party's territory (the map's areas, within 0.1 %)
    cv = ag.compiled(0)
    assert abs(geodesic_area_km2(cv.side_polygon(1)) / geodesic_area_km2(west) - 1) < 1e-3
    assert abs(geodesic_area_km2(cv.side_polygon(-1)) / geodesic_area_km2(east) - 1) < 1e-3
    bands = {z.id: z.bands for z in ag.versions[0].zones}
    assert bands == {"buffer-zone": {"UA": (0.0, 10.0), "RU": (0.0, 20.0)}}
    assert "left UA, right RU" in text
    check = runner.invoke(app, ["agreement", "check", str(out)])
    assert check.exit_code == 0, check.output
    flat = " ".join(check.output.split())
    got = re.search(r"each party's side of the line: UA ([\d,]+), RU ([\d,]+) km2", flat)
    assert got, flat
    ua, ru = (float(g.replace(",", "")) for g in got.groups())
    assert abs(ua / geodesic_area_km2(west) - 1) < 1e-3 and abs(ru / geodesic_area_km2(east) - 1) < 1e-3


def test_one_party_polygons_and_the_country_outline(tmp_path: Path) -> None:
    west, east = _territories()
    control = _write(tmp_path / "occupied.geojson", [(east, {"name": "occupied"})])
    country = _write(tmp_path / "country.geojson", [(shapely.union(west, east), {})])
    out, _ = _build(tmp_path, control, "--country", str(country), "--parties", "UA,RU", "--holder", "RU")
    line = load_agreement(out).versions[0].line
    assert _hausdorff_m(line, shapely.LineString(FRONT)) < 100.0
    assert _sides(out) == {"west": 1, "east": -1, "coast-east": -1}


def test_an_enclave_is_left_out_and_said(tmp_path: Path) -> None:
    west, east = _territories()
    enclave = shapely.Point(34.5, 48.0).buffer(0.05)
    ru = shapely.MultiPolygon([east, enclave])
    ua = shapely.difference(west, enclave)
    control = _write(tmp_path / "control.geojson", [(ua, {"party": "UA"}), (ru, {"party": "RU"})])
    out, text = _build(tmp_path, control)
    ag = load_agreement(out)
    assert (ag.left, ag.right) == ("UA", "RU")
    assert _hausdorff_m(ag.versions[0].line, shapely.LineString(FRONT)) < 100.0
    assert "Left out of the line: an enclave of" in text
    left_out = json.loads((out / "contact-left-out.geojson").read_text())["features"]
    assert [f["properties"]["kind"] for f in left_out] == ["enclave"]
    ring = shapely.from_geojson(json.dumps(left_out[0]["geometry"]))
    assert _hausdorff_m(ring, enclave.exterior) < 100.0


@pytest.mark.parametrize("shift_m", [50.0, -50.0])
def test_a_sliver_gap_or_overlap_of_50_m_is_closed(tmp_path: Path, shift_m: float) -> None:
    west, east = _territories(shift_m=shift_m)
    assert west.intersects(east) == (shift_m < 0)
    control = _write(tmp_path / "control.geojson", [(west, {"party": "UA"}), (east, {"party": "RU"})])
    out, text = _build(tmp_path, control, "--tolerance-m", "100")
    assert "Left out" not in text  # the gap closed: one line, nothing else
    line = load_agreement(out).versions[0].line
    assert line.geom_type == "LineString"
    assert _hausdorff_m(line, shapely.LineString(FRONT)) < 100.0
    assert _sides(out) == {"west": 1, "east": -1, "coast-east": -1}
    if shift_m < 0:
        return
    # the same gap with a tolerance of 10 m: the territories do not touch, said so
    res = runner.invoke(
        app,
        ["agreement", "from-territory", str(control), "-o", str(tmp_path / "b"), "--tolerance-m", "10"],
    )
    assert res.exit_code == 2 and "share no boundary" in res.output


def test_bad_maps_are_refused_with_the_fix(tmp_path: Path) -> None:
    west, east = _territories()
    three = _write(
        tmp_path / "three.geojson",
        [
            (west, {"party": "UA"}),
            (east, {"party": "RU"}),
            (shapely.box(36, 48, 36.1, 48.1), {"party": "X"}),
        ],
    )
    res = runner.invoke(app, ["agreement", "from-territory", str(three), "-o", str(tmp_path / "a")])
    assert (
        res.exit_code == 2 and "names 3 parties (UA, RU, X)" in res.output and "--parties" in res.output
    )
    nameless = _write(tmp_path / "nameless.geojson", [(east, {})])
    res = runner.invoke(app, ["agreement", "from-territory", str(nameless), "-o", str(tmp_path / "b")])
    assert res.exit_code == 2 and "--country" in res.output
    out, _ = _build(
        tmp_path, _write(tmp_path / "ok.geojson", [(west, {"party": "UA"}), (east, {"party": "RU"})])
    )
    res = runner.invoke(
        app, ["agreement", "from-territory", str(three), "-o", str(out), "--parties", "UA,RU"]
    )
    assert res.exit_code == 2 and "--force" in res.output


def test_a_geopackage_in_a_metric_crs(tmp_path: Path) -> None:
    """A GeoPackage in UTM 36N (as GIS tools save it): reprojected on reading."""
    from pyogrio.raw import write
    from pyproj import Transformer

    west, east = _territories()
    tr = Transformer.from_crs("EPSG:4326", "EPSG:32636", always_xy=True)
    polys = [
        shapely.transform(g, lambda c: np.column_stack(tr.transform(c[:, 0], c[:, 1])))
        for g in (west, east)
    ]
    gpkg = tmp_path / "control.gpkg"
    write(
        str(gpkg),
        shapely.to_wkb(np.array(polys, dtype=object)),
        [np.array(["UA", "RU"], dtype=object)],
        ["holder"],
        driver="GPKG",
        geometry_type="Polygon",
        crs="EPSG:32636",
    )
    out, _ = _build(tmp_path, gpkg, "--party-field", "holder")
    ag = load_agreement(out)
    assert (ag.left, ag.right) == ("UA", "RU")
    assert _hausdorff_m(ag.versions[0].line, shapely.LineString(FRONT)) < 100.0


def test_a_template_gives_zones_rules_and_sectors_and_cuts_the_area(tmp_path: Path) -> None:
    tpl = tmp_path / "template"
    tpl.mkdir()
    box = shapely.box(34.0, 47.9, 36.0, 48.6)
    _write(tpl / "area.geojson", [(box, {})])
    _write(tpl / "old-line.geojson", [(shapely.LineString([(35.0, 47.9), (35.0, 48.6)]), {})])
    _write(
        tpl / "sectors.geojson", [(shapely.box(34.8, 48.0, 35.2, 48.4), {"id": "s1", "nation": "FI"})]
    )
    (tpl / "agreement.yaml").write_text(
        "id: tpl\nname: Template accord\neffective_from: 2024-01-01\n"
        "parties: [{id: UA, name: Ukraine}, {id: RU, name: Russia}]\n"
        "line: {file: old-line.geojson, left: UA, right: RU}\n"
        "area_of_application: {file: area.geojson}\n"
        "zones: [{id: dmz, type: band, bands: {UA: [0, 2], RU: [0, 2]}, buffer: true}]\n"
        "rules: [{id: no-heavy, type: zone_ban, zone: dmz, kinds: [heavy_weapon]}]\n"
        "sectors: {file: sectors.geojson}\n"
    )
    west, east = _territories()
    control = _write(tmp_path / "control.geojson", [(west, {"party": "UA"}), (east, {"party": "RU"})])
    out, _ = _build(tmp_path, control, "--template", str(tpl))
    ag = load_agreement(out)
    v = ag.versions[0]
    assert ag.name == "Template accord" and [p.name for p in ag.parties] == ["Ukraine", "Russia"]
    assert [z.id for z in v.zones] == ["dmz"] and [r.id for r in v.rules] == ["no-heavy"]
    assert [s.id for s in ag.sectors] == ["s1"]
    assert not (out / "old-line.geojson").exists()
    # the line runs from the map's northern border to the template's southern edge, along the front
    lat = shapely.get_coordinates(v.line)[:, 1]
    assert abs(lat.max() - 48.5) < 0.002 and abs(lat.min() - 47.9) < 0.002
    front_in = shapely.intersection(shapely.LineString(FRONT), box)
    assert _hausdorff_m(v.line, front_in) < 100.0
    assert ag.area.within(box.buffer(1e-6))
