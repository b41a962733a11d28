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
