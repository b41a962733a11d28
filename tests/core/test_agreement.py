"""Agreement loading and validation: each error names the file, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from truceline.errors import AgreementError
from truceline.io.agreement_files import load_agreement

from ..conftest import SMALL_YAML, write_small_agreement


def test_examples_load(ukraine, korea) -> None:  # type: ignore[no-untyped-def]
    cv = ukraine.compiled(0)
    assert 900 < cv.line_length_km < 1400
    assert len(ukraine.sectors) >= 5
    assert 200 < korea.compiled(0).line_length_km < 300


@pytest.mark.parametrize(
    ("edit", "field", "words"),
    [
        (lambda y: y.replace("left: B", "left: Z"), "line.left", "unknown party"),
        (lambda y: y.replace("A: [0, 15]", "A: [0, -15]"), "zones[0]", "negative"),
        (
            lambda y: y.replace("zone: buffer, kinds", "zone: nowhere, kinds"),
            "zone",
            "unknown zone",
        ),
        (
            lambda y: y.replace(
                "weapon_classes: [art100], distance_km: 25",
                "weapon_classes: [nuke], distance_km: 25",
            ),
            "weapon_classes",
            "unknown weapon class",
        ),
        (
            lambda y: y.replace("effective_from: 2025-01-01", "effective_from: soon"),
            "effective_from",
            "YYYY-MM-DD",
        ),
        (  # fusion's per-source error models are checked like the rest of the agreement
            lambda y: y + "fusion:\n  sources:\n    patrol: {position_floor_m: -5, clock_sigma_s: 30}\n",
            "fusion.sources.patrol.position_floor_m",
            "greater than or equal to 0",
        ),
        (
            lambda y: y + "fusion: {link_threshold: 0.5, offer_threshold: 0.6}\n",
            "fusion",
            "offer_threshold must be below link_threshold",
        ),
        (  # PostgreSQL cannot store NUL: refused where it is
            lambda y: y.replace("{id: B, name: Bravo}", '{id: B, name: "Bra\\0vo"}'),
            "parties[1].name",
            "NUL",
        ),
    ],
)
def test_validation_messages(tmp_path: Path, edit, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    folder = write_small_agreement(tmp_path / "a", edit(SMALL_YAML))
    with pytest.raises(AgreementError) as exc:
        load_agreement(folder)
    msg = str(exc.value)
    assert "agreement.yaml" in msg and field in msg and words in msg


def test_self_intersecting_line(tmp_path: Path) -> None:
    folder = write_small_agreement(tmp_path / "a")
    (folder / "line.geojson").write_text(
        json.dumps({"type": "LineString", "coordinates": [[36, 50], [37, 48], [37, 49], [36, 48]]})
    )
    with pytest.raises(AgreementError, match="intersects itself near lon"):
        load_agreement(folder)


def test_not_lonlat(tmp_path: Path) -> None:
    folder = write_small_agreement(tmp_path / "a")
    (folder / "line.geojson").write_text(
        json.dumps({"type": "LineString", "coordinates": [[400000, 5500000], [410000, 5400000]]})
    )
    with pytest.raises(AgreementError, match=r"line\.geojson.*not WGS84 lon/lat"):
        load_agreement(folder)


def test_sector_must_touch_line(tmp_path: Path) -> None:
    folder = write_small_agreement(tmp_path / "a", SMALL_YAML + "sectors: {file: sectors.geojson}\n")
    far = [[20, 40], [21, 40], [21, 41], [20, 41], [20, 40]]
    (folder / "sectors.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"id": "far", "nation": "X"},
                        "geometry": {"type": "Polygon", "coordinates": [far]},
                    }
                ],
            }
        )
    )
    with pytest.raises(AgreementError, match="sector 'far' does not touch the line"):
        load_agreement(folder)


def test_other_formats_through_pyogrio(tmp_path: Path, small_dir: Path) -> None:
    """A GeoPackage line (written by pyogrio) loads like the GeoJSON one."""
    import geopandas as gpd

    folder = write_small_agreement(tmp_path / "a", SMALL_YAML.replace("line.geojson", "line.gpkg"))
    gpd.read_file(small_dir / "line.geojson").to_file(folder / "line.gpkg", driver="GPKG")
    ag = load_agreement(folder)
    assert ag.compiled(0).line_length_km == pytest.approx(
        load_agreement(small_dir).compiled(0).line_length_km
    )


def test_side_of_agrees_with_exact_sides(ukraine) -> None:  # type: ignore[no-untyped-def]
    """The polygon-based side (for Monte Carlo) matches the geodesic one away from the line."""
    import numpy as np

    cv = ukraine.compiled(0)
    rng = np.random.default_rng(5)
    minx, miny, maxx, maxy = cv.area.bounds
    lon, lat = rng.uniform(minx, maxx, 20_000), rng.uniform(miny, maxy, 20_000)
    exact, dist = cv.sides(lon, lat)
    fast = cv.side_of(lon, lat)
    away = dist > 1.0
    assert (exact[away] == fast[away]).all()
    assert (fast != 0).sum() > 5_000


def test_fusion_settings_from_the_agreement(tmp_path: Path) -> None:
    """A source type named in ``fusion.sources`` gets its own model; the others keep theirs."""
    from truceline.core.fusion import DEFAULT_SOURCES

    extra = (
        "fusion:\n  link_threshold: 0.95\n  sources:\n"
        "    patrol: {position_floor_m: 400, clock_sigma_s: 60, prompt_share: 0.2, delay_max_s: 1200}\n"
    )
    ag = load_agreement(write_small_agreement(tmp_path / "a", SMALL_YAML + extra))
    assert ag.fusion.link_threshold == 0.95
    assert (
        ag.fusion.source("patrol").delay_max_s == 1200 and ag.fusion.source("patrol").prompt_share == 0.2
    )
    assert ag.fusion.source("camera") == DEFAULT_SOURCES["camera"]
    assert (
        load_agreement(write_small_agreement(tmp_path / "b")).fusion.source("patrol")
        == DEFAULT_SOURCES["patrol"]
    )


# -- the line's ends and parts ---------------------------------------------------------------


def _ukraine_copy(
    tmp_path: Path, coords: list[list[float]] | list[list[list[float]]], multi: bool = False
) -> Path:
    """The Ukraine example with its line replaced (its area of application kept)."""
    import shutil

    from ..conftest import EXAMPLES

    folder = tmp_path / "ua"
    shutil.copytree(EXAMPLES / "ukraine-2024", folder)
    geom = {"type": "MultiLineString" if multi else "LineString", "coordinates": coords}
    (folder / "line.geojson").write_text(
        json.dumps({"type": "Feature", "properties": {}, "geometry": geom})
    )
    text = (folder / "agreement.yaml").read_text()
    (folder / "agreement.yaml").write_text(text.split("\nscenarios:")[0] + "\n")  # scenarios: own lines
    return folder


def _example_line() -> list[list[float]]:
    from ..conftest import EXAMPLES

    fc = json.loads((EXAMPLES / "ukraine-2024" / "line.geojson").read_text())
    return fc["features"][0]["geometry"]["coordinates"]


def test_a_line_ending_inside_the_area_is_refused_with_the_end_named(tmp_path: Path) -> None:
    """A line that stops ~100 km short of the area's boundary (as a line derived from territory
    polygons did, leaving Belgorod on the wrong side)."""
    from shapely.geometry import Point

    from truceline.core.agreement import line_ends

    line = _example_line()
    k = next(i for i, (x, y) in enumerate(line) if Point(x, y).distance(Point(line[0])) > 1.2)
    short = line[k:]
    folder = _ukraine_copy(tmp_path, short)
    with pytest.raises(AgreementError) as err:
        load_agreement(folder)
    msg = str(err.value)
    assert f"line's start (lon {short[0][0]:.4f}, lat {short[0][1]:.4f})" in msg
    assert "inside the area of application" in msg and "extend: azimuth" in msg
    assert "line's end (" not in msg  # the other end reaches the boundary
    yaml = (folder / "agreement.yaml").read_text()
    (folder / "agreement.yaml").write_text(
        yaml.replace("  left: RU", "  extend: azimuth\n  left: RU", 1)
    )
    ag = load_agreement(folder)
    start, end = line_ends(ag, ag.versions[0].line)
    assert 60 < start.inside_km < 200 and end.inside_km <= 1.0
    assert "continued along its azimuth" in start.assumption(ag.line_extends)


def test_line_parts_must_join(tmp_path: Path) -> None:
    line = _example_line()
    half = len(line) // 2
    joined = _ukraine_copy(tmp_path / "j", [line[: half + 1], line[half:]], multi=True)
    ag = load_agreement(joined)
    assert ag.compiled(0).line_length_km == pytest.approx(
        load_agreement(_ukraine_copy(tmp_path / "o", line)).compiled(0).line_length_km
    )
    reversed_part = _ukraine_copy(tmp_path / "r", [line[: half + 1], line[half:][::-1]], multi=True)
    with pytest.raises(AgreementError, match="2 parts that do not join end to end"):
        load_agreement(reversed_part)
    gap = _ukraine_copy(tmp_path / "g", [line[:half], line[half + 2 :]], multi=True)
    with pytest.raises(AgreementError, match=r"part 2 starts at lon [\d.]+, lat [\d.]+, [\d.]+ km away"):
        load_agreement(gap)


def test_default_area_needs_an_extension_rule(tmp_path: Path) -> None:
    plain = SMALL_YAML.replace(", extend: azimuth}", "}")
    with pytest.raises(AgreementError, match=r"default area of application.*extend: azimuth"):
        load_agreement(write_small_agreement(tmp_path / "a", plain))
    with pytest.raises(AgreementError, match="unknown `extend`"):
        load_agreement(
            write_small_agreement(tmp_path / "b", SMALL_YAML.replace("extend: azimuth", "extend: far"))
        )
