"""Reading incident files: bad rows get a reason naming the row, field and fix; nothing else is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from truceline.errors import ValidationError
from truceline.io.incidents_io import INCIDENT_FIELDS, read_incidents

HEADER = "id,observed_at,lon,lat,uncertainty_m,kind,weapon_class,source_type\n"
GOOD = "g1,2025-03-01T10:00:00Z,36.9,48.5,200,heavy_weapon,art100,patrol\n"


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ("b1,2025-03-01T10:00:00Z,200,48.5,200,heavy_weapon,,patrol", "lon", "-180..180"),
        ("b1,2025-03-01T10:00:00Z,36.9,95,200,heavy_weapon,,patrol", "lat", "-90..90"),
        ("b1,2025-03-01T10:00:00Z,nan,48.5,200,heavy_weapon,,patrol", "lon", "finite"),
        ("b1,2025-03-01T10:00:00,36.9,48.5,200,heavy_weapon,,patrol", "observed_at", "UTC offset"),
        ("b1,yesterday,36.9,48.5,200,heavy_weapon,,patrol", "observed_at", "ISO 8601"),
        ("b1,2025-03-01T10:00:00Z,36.9,48.5,200,tank_sighting,,patrol", "kind", "use one of"),
        ("b1,2025-03-01T10:00:00Z,36.9,48.5,-5,heavy_weapon,,patrol", "uncertainty_m", "metres"),
        ("b1,2025-03-01T10:00:00Z,36.9,48.5,200,heavy_weapon,,rumour", "source_type", "use one of"),
        (",2025-03-01T10:00:00Z,36.9,48.5,200,heavy_weapon,,patrol", "id", "missing"),
        ("b1,2025-03-01T10:00:00Z,36.9,48.5,200,heavy_weapon,,patrol,extra", "", "more cells"),
        ("b1,2025-03-01T10:00:00Z,200,95,200,heavy_weapon,,patrol", "lon", "swapped"),
    ],
)
def test_bad_row_rejected_good_rows_kept(tmp_path: Path, row: str, field: str, words: str) -> None:
    res = read_incidents(write(tmp_path, HEADER + GOOD + row + "\n" + GOOD.replace("g1", "g2")))
    assert [i.id for i in res.incidents] == ["g1", "g2"]
    assert len(res.rejects) == 1
    r = res.rejects[0]
    assert r.row == 2 and r.field == field and words in r.reason, str(r)


def test_duplicate_ids(tmp_path: Path) -> None:
    other = GOOD.replace("36.9", "37.0")
    res = read_incidents(write(tmp_path, HEADER + GOOD + GOOD + other))
    assert len(res.incidents) == 1
    assert res.duplicates == [2]  # an identical resend is a duplicate, not an error
    assert res.rejects[0].row == 3 and "already used by row 1" in res.rejects[0].reason


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "empty"), ("id,lon,lat\n1,2,3\n", "missing column(s) observed_at")],
)
def test_unusable_files(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_incidents(write(tmp_path, text))


def test_geojson(tmp_path: Path) -> None:
    text = """{"type": "FeatureCollection", "features": [
      {"type": "Feature", "geometry": {"type": "Point", "coordinates": [36.9, 48.5]},
       "properties": {"id": "x", "observed_at": "2025-03-01T10:00:00Z", "kind": "explosion",
                      "source_type": "camera"}},
      {"type": "Feature", "geometry": null, "properties": {"id": "y"}}]}"""
    res = read_incidents(write(tmp_path, text, "in.geojson"))
    assert [i.id for i in res.incidents] == ["x"]
    assert res.incidents[0].lon == 36.9
    assert res.rejects[0].id == "y"


def test_fields_cover_the_issue() -> None:
    for f in (
        "id",
        "observed_at",
        "lon",
        "lat",
        "uncertainty_m",
        "kind",
        "weapon_class",
        "count",
        "origin_lon",
        "origin_lat",
        "origin_uncertainty_m",
        "bearing_deg",
        "source_type",
        "reliability",
        "credibility",
        "narrative",
    ):
        assert f in INCIDENT_FIELDS
