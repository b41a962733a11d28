"""File formats: every format reads back what it wrote (bit for bit), ACLED maps with a report,
and hostile or broken files are refused with a reason."""

from __future__ import annotations

import csv
import datetime as dt
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truceline.core.incidents import Incident
from truceline.errors import ValidationError
from truceline.io.acled import ACLED_TYPES, GEO_PRECISION_SIGMA_M, KIND_TO_ACLED
from truceline.io.agreement_files import read_features
from truceline.io.formats import (
    DERIVED_COLUMNS,
    FORMATS,
    format_of,
    read_incident_file,
    write_geodata_file,
    write_incident_file,
)

SUFFIX = {
    "acled": "csv",
    "kmz": "kmz",
    "kml": "kml",
    "gpkg": "gpkg",
    "geojson": "geojson",
    "csv": "csv",
    "parquet": "parquet",
}


def export_record(inc: Incident, pk: int) -> dict[str, Any]:
    derived = {
        "pk": pk,
        "agreement_id": "small",
        "side_party": "B",
        "distance_km": 1 / 3,
        "p_side": 0.97,
        "zones": "buffer;limitation",
        "sector": "north",
        "status": "new",
        "findings": "bz-ban",
        "submitted_by": "token:tok_1:patrol-7",
        "received_at": "2025-03-02T08:00:00Z",
    }
    assert set(derived) == set(DERIVED_COLUMNS)
    return {**inc.model_dump(mode="json"), **derived}


def sample() -> list[Incident]:
    t0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)
    return [
        Incident(
            id="r1",
            observed_at=t0 + dt.timedelta(microseconds=123457),
            lon=36.95 + 1e-12,  # bits past any decimal rounding
            lat=48.6 / 3,
            uncertainty_m=50.123456789,
            kind="heavy_weapon",
            weapon_class="art100",
            party="A",
            source_type="patrol",
            reliability="B",
            credibility=2,
            narrative='tube artillery, "two guns" <near> the bridge & the road; ünïcode',
        ),
        Incident(
            id="r2/with,comma",
            observed_at=t0,
            time_precision="hour",
            lon=-0.1,
            lat=-33.9,
            kind="explosion",
            count=3,
            origin_lon=36.5,
            origin_lat=48.7,
            origin_uncertainty_m=900.0,
            bearing_deg=271.25,
            source_type="acoustic",
        ),
        Incident(id="r3", observed_at=t0, lon=179.999, lat=89.0, kind="drone_flight", source_type="uav"),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_the_same_incidents(tmp_path: Path, fmt: str) -> None:
    incs = sample()
    path = tmp_path / f"out.{SUFFIX[fmt]}"
    assert write_incident_file(path, [export_record(i, k) for k, i in enumerate(incs, 1)], fmt) == 3
    res = read_incident_file(path, fmt)
    assert res.read.rejects == [] and res.read.duplicates == []
    assert res.read.incidents == incs  # every field, every bit of every float
    if fmt == "acled":
        assert res.report is not None and not res.report.unmapped_types


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lon=st.floats(-180, 180, allow_nan=False),
    lat=st.floats(-90, 90, allow_nan=False),
    sigma=st.floats(0, 200_000, allow_nan=False),
    text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
)
def test_any_values_survive_kml_and_gpkg(
    tmp_path: Path, lon: float, lat: float, sigma: float, text: str
) -> None:
    inc = Incident(
        id="x",
        observed_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        lon=lon,
        lat=lat,
        uncertainty_m=sigma,
        kind="flare",
        source_type="camera",
        narrative=text,
    )
    for fmt in ("kml", "gpkg", "geojson", "csv", "parquet"):
        path = tmp_path / f"h.{fmt}"
        write_incident_file(path, [export_record(inc, 1)])
        assert read_incident_file(path).read.incidents == [inc], fmt


def acled_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    cols = [
        "event_id_cnty",
        "event_date",
        "time_precision",
        "event_type",
        "sub_event_type",
        "actor1",
        "actor2",
        "latitude",
        "longitude",
        "geo_precision",
        "source",
        "notes",
        "fatalities",
    ]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in cols})
    return path


def test_acled_mapping_and_report(tmp_path: Path) -> None:
    base = {"event_date": "2024-11-02", "latitude": "48.1", "longitude": "37.7", "source": "Ukrinform"}
    rows = [
        {
            **base,
            "event_id_cnty": "UKR1",
            "event_type": "Explosions/Remote violence",
            "sub_event_type": "Shelling/artillery/missile attack",
            "actor1": "Alpha",
            "geo_precision": "1",
            "time_precision": "1",
            "notes": "Shelling of the outskirts.",
            "fatalities": "2",
        },
        {
            **base,
            "event_id_cnty": "UKR2",
            "event_type": "Battles",
            "sub_event_type": "Armed clash",
            "actor1": "Military Forces of Somewhere",
            "geo_precision": "2",
            "time_precision": "2",
        },
        {
            **base,
            "event_id_cnty": "UKR3",
            "event_type": "Protests",
            "sub_event_type": "Peaceful protest",
        },
        {
            **base,
            "event_id_cnty": "UKR4",
            "event_type": "Strategic developments",
            "sub_event_type": "Disrupted weapons use",
            "geo_precision": "7",
            "time_precision": "3",
        },
        {
            **base,
            "event_type": "Explosions/Remote violence",
            "sub_event_type": "Air/drone strike",
            "geo_precision": "3",
            "event_date": "2 November 2024",
        },
        {
            **base,
            "event_id_cnty": "UKR6",
            "event_type": "Battles",
            "sub_event_type": "Armed clash",
            "event_date": "someday",
        },
    ]
    res = read_incident_file(acled_csv(tmp_path / "acled.csv", rows), "acled", parties={"Alpha": "A"})
    got = {i.id: i for i in res.read.incidents}
    assert set(got) >= {"UKR1", "UKR2", "UKR4"} and len(got) == 4
    assert got["UKR1"].kind == "explosion" and got["UKR1"].party == "A"
    assert got["UKR1"].uncertainty_m == GEO_PRECISION_SIGMA_M[1]
    assert got["UKR1"].observed_at == dt.datetime(2024, 11, 2, 12, tzinfo=dt.UTC)
    assert "fatalities: 2" in got["UKR1"].narrative and got["UKR1"].source_type == "open_source"
    assert got["UKR2"].kind == "small_arms_fire" and got["UKR2"].party is None
    assert got["UKR2"].uncertainty_m == GEO_PRECISION_SIGMA_M[2] and "week" in got["UKR2"].narrative
    assert got["UKR4"].kind == "projectile" and got["UKR4"].uncertainty_m == GEO_PRECISION_SIGMA_M[3]
    # The row without an id gets a stable one: importing the file twice gives the same ids.
    again = read_incident_file(tmp_path / "acled.csv", "acled")
    assert {i.id for i in again.read.incidents} == set(got)
    rejects = {r.id: r for r in res.read.rejects}
    assert rejects["UKR3"].field == "sub_event_type" and "Peaceful protest" in rejects["UKR3"].reason
    assert rejects["UKR6"].field == "event_date"
    rep = res.report
    assert rep is not None and rep.rows == 6
    assert rep.unmapped_types == {"Protests > Peaceful protest": 1}
    assert rep.coarse_time == {"week": 1, "month": 1}
    assert rep.unmapped_actors == {"Military Forces of Somewhere": 1}
    assert rep.geo_precision_default == 1
    text = "\n".join(rep.lines())
    assert "NOT MAPPED 1 x Protests > Peaceful protest" in text and "week" in text


def test_acled_tables_are_consistent() -> None:
    # Every kind exports to a pair; pairs that import map to a kind that exports back to them.
    for kind, (_, ev, sub) in KIND_TO_ACLED.items():
        back = ACLED_TYPES.get((ev, sub))
        assert back is None or KIND_TO_ACLED[back][1:] == (ev, sub) or back != kind


def test_format_detection() -> None:
    assert format_of("a.GPKG") == "gpkg" and format_of("a.json") == "geojson"
    assert format_of("a.csv", "acled") == "acled"
    with pytest.raises(ValidationError, match="suffix"):
        format_of("a.xlsx")
    with pytest.raises(ValidationError, match="unknown format"):
        format_of("a.csv", "shp")


def test_kml_with_entities_is_refused(tmp_path: Path) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>&b;</name></Placemark></kml>'
    )
    (tmp_path / "bomb.kml").write_text(bomb)
    with pytest.raises(ValidationError, match="DTD or entities"):
        read_incident_file(tmp_path / "bomb.kml")
    (tmp_path / "broken.kml").write_text("<kml><Placemark>")
    with pytest.raises(ValidationError, match="well-formed"):
        read_incident_file(tmp_path / "broken.kml")


def test_foreign_kml_and_kmz_placemarks(tmp_path: Path) -> None:
    """KML as Google Earth or QGIS writes it: SchemaData, TimeStamp, a line among the points."""
    doc = """<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2"><Document><Folder><name>sightings</name>
<Placemark><name>s1</name><TimeStamp><when>2025-03-01T04:00:00Z</when></TimeStamp>
 <ExtendedData><SchemaData schemaUrl="#s"><SimpleData name="kind">vehicle_movement</SimpleData>
 <SimpleData name="source_type">patrol</SimpleData></SchemaData></ExtendedData>
 <Point><coordinates>36.91,48.52,0</coordinates></Point></Placemark>
<Placemark><name>road</name><LineString><coordinates>36,48 37,49</coordinates></LineString></Placemark>
<Placemark><name>s3</name><Point><coordinates>36.9</coordinates></Point></Placemark>
</Folder></Document></kml>"""
    with zipfile.ZipFile(tmp_path / "f.kmz", "w") as z:
        z.writestr("doc.kml", doc)
    res = read_incident_file(tmp_path / "f.kmz")
    assert [(i.id, i.kind, i.lon, i.lat) for i in res.read.incidents] == [
        ("s1", "vehicle_movement", 36.91, 48.52)
    ]
    reasons = {r.id: r.reason for r in res.read.rejects}
    assert "LineString" in reasons["road"] and "lon,lat" in reasons["s3"]


def test_derived_columns_do_not_leak_into_incidents(tmp_path: Path) -> None:
    path = tmp_path / "x.geojson"
    write_incident_file(path, [export_record(sample()[0], 9)])
    doc = json.loads(path.read_text())
    assert doc["features"][0]["properties"]["zones"] == "buffer;limitation"
    assert read_incident_file(path).read.incidents == [sample()[0]]


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "kml", "kmz", "csv"])
def test_reference_geodata_formats(tmp_path: Path, fmt: str, small: Any) -> None:
    from truceline.io.features import zones_feature_collection

    fc = zones_feature_collection(small, small.effective_from)
    path = tmp_path / f"zones.{fmt}"
    assert write_geodata_file(path, fc) == len(fc["features"])
    if fmt == "csv":
        with path.open() as fh:
            rows = list(csv.DictReader(fh))
        assert {r["layer"] for r in rows} == {f["properties"]["layer"] for f in fc["features"]}
        assert all(r["wkt"] for r in rows)
        return
    if fmt == "gpkg":
        from pyogrio import list_layers

        assert {str(n) for n, _ in list_layers(path)} >= {"line", "zones"}
        return
    want = sorted(f["properties"]["layer"] for f in fc["features"])
    if fmt == "geojson":  # the agreement loader reads the exported file back
        assert sorted(str(f.properties.get("layer")) for f in read_features(path)) == want
        return
    from truceline.io.kml import read_kml

    pms = read_kml(path)
    assert sorted(p.folder for p in pms) == want == sorted(p.properties["layer"] for p in pms)
    line = next(p for p in pms if p.folder == "line")
    assert line.geometry.equals_exact(shapely.geometry.shape(fc["features"][0]["geometry"]), 0)


def test_acled_cannot_hold_zones(tmp_path: Path, small: Any) -> None:
    from truceline.io.features import zones_feature_collection

    with pytest.raises(ValidationError, match="events"):
        write_geodata_file(
            tmp_path / "z.csv", zones_feature_collection(small, small.effective_from), "acled"
        )
