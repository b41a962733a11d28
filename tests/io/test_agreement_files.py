"""The agreement loader reads files by name from memory: every format, nothing written to disk."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import shapely

from truceline.core.agreement import Agreement
from truceline.errors import AgreementError
from truceline.io.agreement_files import (
    files_of_folder,
    load_agreement,
    load_agreement_files,
    read_features,
)
from truceline.io.kml import write_kml

from ..conftest import SMALL_YAML, write_small_agreement


@pytest.fixture()
def no_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every temporary file or folder Python would make fails; returns the (empty) temp folder."""
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the agreement loader made a temporary file")

    for name in ("mkdtemp", "mkstemp", "TemporaryDirectory", "NamedTemporaryFile", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, refuse)
    return spare


def _line_as(folder: Path, small_dir: Path, suffix: str, driver: str | None) -> None:
    import geopandas as gpd

    line = gpd.read_file(small_dir / "line.geojson").to_crs(32637)  # reprojected when read
    (folder / "geo").mkdir()
    line.to_file(folder / "geo" / f"line{suffix}", **({"driver": driver} if driver else {}))


@pytest.mark.parametrize(("suffix", "driver"), [(".shp", None), (".gpkg", "GPKG")])
def test_pyogrio_formats_load_from_memory(
    tmp_path: Path,
    small_dir: Path,
    small: Agreement,
    no_temporary_files: Path,
    suffix: str,
    driver: str | None,
) -> None:
    folder = write_small_agreement(
        tmp_path / "a", SMALL_YAML.replace("line.geojson", f"geo/line{suffix}")
    )
    _line_as(folder, small_dir, suffix, driver)
    files = files_of_folder(folder)
    if suffix == ".shp":  # the shapefile's companions travel with it
        assert {"geo/line.shx", "geo/line.dbf", "geo/line.prj"} <= set(files)
    ag = load_agreement_files(files)
    want = small.compiled(0).line_length_km
    assert ag.compiled(0).line_length_km == pytest.approx(want, rel=1e-9)
    assert read_features(folder / "geo" / f"line{suffix}")[0].geometry.geom_type == "LineString"
    assert list(no_temporary_files.iterdir()) == []


def test_a_shapefile_without_its_index_is_named(tmp_path: Path, small_dir: Path) -> None:
    folder = write_small_agreement(tmp_path / "a", SMALL_YAML.replace("line.geojson", "geo/line.shp"))
    _line_as(folder, small_dir, ".shp", None)
    files = {k: v for k, v in files_of_folder(folder).items() if k != "geo/line.shx"}
    with pytest.raises(AgreementError, match=r"^geo/line\.shp: .*geo/line\.shx is missing"):
        load_agreement_files(files)


@pytest.mark.parametrize("suffix", [".kml", ".kmz"])
def test_kml_and_kmz_load_through_defusedxml(
    tmp_path: Path, small: Agreement, no_temporary_files: Path, suffix: str
) -> None:
    folder = write_small_agreement(tmp_path / "a", SMALL_YAML.replace("line.geojson", f"line{suffix}"))
    write_kml(
        folder / f"line{suffix}", [("line", "the line", {}, small.versions[0].line, None)], name="x"
    )
    ag = load_agreement_files(files_of_folder(folder))
    assert ag.versions[0].line.equals(small.versions[0].line)
    # A MultiGeometry of one kind is read as its Multi* geometry, as GDAL reads it.
    parts = shapely.MultiLineString([[(36, 50), (36.5, 49)], [(37.5, 48), (36, 47)]])
    write_kml(folder / f"two{suffix}", [("line", "two", {"id": "x"}, parts, None)], name="x")
    (two,) = read_features(folder / f"two{suffix}")
    assert two.geometry.geom_type == "MultiLineString" and two.geometry.equals(parts)
    assert two.properties == {"id": "x"}


def test_kml_with_entities_is_refused(small_dir: Path) -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "aaaa">]><kml>&a;</kml>'
    files = {
        **files_of_folder(small_dir),
        "agreement.yaml": SMALL_YAML.replace("line.geojson", "line.kml").encode(),
        "line.kml": bomb,
    }
    with pytest.raises(AgreementError, match=r"^line\.kml: .*DTD or entities"):
        load_agreement_files(files)


def test_errors_name_the_file_as_given(tmp_path: Path, small_dir: Path) -> None:
    """In memory: the name in the mapping; from a folder: under the folder, as the user gave it."""
    files = files_of_folder(small_dir)
    yml = SMALL_YAML.replace("line.geojson", "geometry/line.geojson").encode()
    bad = {**files, "agreement.yaml": yml, "geometry/line.geojson": b"{not json"}
    with pytest.raises(AgreementError, match=r"^geometry/line\.geojson: not valid GeoJSON"):
        load_agreement_files(bad)
    with pytest.raises(AgreementError, match=r"^geometry/line\.gpkg: cannot read the file \('geometry"):
        load_agreement_files(
            {**bad, "agreement.yaml": yml.replace(b".geojson", b".gpkg"), "geometry/line.gpkg": b"junk"}
        )
    with pytest.raises(AgreementError, match=r"^geometry/line\.geojson: file not found"):
        load_agreement_files({k: v for k, v in bad.items() if k != "geometry/line.geojson"})
    folder = write_small_agreement(tmp_path / "a")
    (folder / "line.geojson").write_text("{not json")
    with pytest.raises(AgreementError) as exc:
        load_agreement(folder)
    assert str(exc.value).startswith(f"{folder}/line.geojson: not valid GeoJSON")


def test_files_of_folder_leaves_out_hidden_files(tmp_path: Path) -> None:
    folder = write_small_agreement(tmp_path / "a")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    (folder / ".notes").write_text("x")
    (folder / "docs").mkdir()
    (folder / "docs" / "README.md").write_text("readme")
    assert sorted(files_of_folder(folder)) == [
        "agreement.yaml",
        "disengagement.geojson",
        "docs/README.md",
        "line.geojson",
    ]
    assert files_of_folder(folder / "agreement.yaml") == files_of_folder(folder)
    with pytest.raises(AgreementError, match=r"no agreement\.yaml in"):
        files_of_folder(tmp_path)
