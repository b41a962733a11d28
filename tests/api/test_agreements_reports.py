"""Agreements and zones, statistics, reports, health, settings and the error shape."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from truceline.core.geodesy import geodesic_area_km2
from truceline.errors import ValidationError
from truceline.io.agreement_files import files_of_folder
from truceline.services.agreement_store import files_hash
from truceline.settings import load_settings

from ..conftest import DISENGAGEMENT, SMALL_LINE, SMALL_YAML
from .conftest import DAY, Api, rec


def test_agreements_versions_zones(api: Api) -> None:
    ags = api.get("/agreements", role="liaison").json()
    assert [a["id"] for a in ags] == ["small"] and ags[0]["revisions"] == 1
    detail = api.get("/agreements/small").json()
    assert [v["effective_from"] for v in detail["versions"]] == ["2025-01-01", "2025-06-01"]
    assert {s["id"] for s in detail["sectors"]} == {"north", "south"}
    assert api.get("/agreements/small/versions").json()[1]["index"] == 1
    # the territory figures `agreement check` prints: each party's side of the line (km2)
    v0 = detail["versions"][0]
    assert set(v0["territory_km2"]) == {"A", "B"} and all(x > 0 for x in v0["territory_km2"].values())
    assert sum(v0["territory_km2"].values()) == pytest.approx(v0["area_km2"], rel=1e-6)
    with api.ctx.db.read() as session:
        ag = api.ctx.agreement(session, "small")
    cv = ag.compiled(0)
    side = {ag.party_on_side(k): geodesic_area_km2(cv.side_polygon(k)) for k in (1, -1)}
    assert v0["territory_km2"] == pytest.approx(side, rel=1e-9)
    fc = api.get("/agreements/small/zones", params={"date": "2025-03-01"}).json()
    assert fc["type"] == "FeatureCollection"
    assert {f["properties"]["side"] for f in fc["features"] if f["properties"]["layer"] == "zone"} == {
        "A",
        "B",
    }
    assert api.get("/agreements/nope").status_code == 404


def _files(yaml_text: str = SMALL_YAML) -> dict[str, str]:
    return {
        "agreement.yaml": yaml_text,
        "line.geojson": json.dumps({"type": "LineString", "coordinates": SMALL_LINE}),
        "disengagement.geojson": json.dumps({"type": "Polygon", "coordinates": [DISENGAGEMENT]}),
    }


def test_upload_create_amend_identical(api: Api) -> None:
    other = SMALL_YAML.replace("id: small", "id: other")
    r = api.post("/agreements", json={"files": _files(other)})
    assert r.status_code == 201, r.text
    assert r.json()["revision"] == 1 and r.json()["created"]
    same = api.post("/agreements", json={"files": _files(other)}).json()
    assert same["revision"] == 1 and not same["created"]
    amended = api.post(
        "/agreements", json={"files": _files(other.replace("max_count: 5", "max_count: 3"))}
    )
    assert amended.json()["revision"] == 2 and amended.json()["agreement"]["revisions"] == 2
    # Two agreements now: incident calls must say which.
    r = api.post("/incidents", json=rec(1))
    assert r.status_code == 422 and r.json()["error"]["field"] == "agreement"
    assert api.post("/incidents", json=rec(1), params={"agreement": "other"}).status_code == 201
    hist = [a for a in api.get("/agreements").json() if a["id"] == "other"]
    assert hist[0]["revisions"] == 2


def test_upload_errors_name_the_file_and_field(api: Api) -> None:
    bad = _files(
        SMALL_YAML.replace(
            "line: {file: line.geojson, left: B, right: A, extend: azimuth}",
            "line: {file: line.geojson, left: C, right: A, extend: azimuth}",
        )
    )
    err = api.post("/agreements", json={"files": bad}).json()["error"]
    assert err["status"] == 422 and "line.left" in err["message"] and "/tmp" not in err["message"]
    err = api.post("/agreements", json={"files": {"line.geojson": "{}"}}).json()["error"]
    assert "agreement.yaml" in err["message"]
    err = api.post("/agreements", json={"files": {**_files(), "../x": "a"}}).json()["error"]
    assert err["field"] == "files"
    err = api.post("/agreements", json={"files": _files(), "files_base64": {"a.gpkg": "!!"}}).json()[
        "error"
    ]
    assert err["field"] == "files_base64.a.gpkg"


def test_statistics_and_reports(api: Api) -> None:
    api.post(
        "/incidents/batch",
        json={"incidents": [rec(1), rec(2, lat=48.4), rec(3, kind="explosion", lon=36.2, lat=47.2)]},
    )
    stats = api.get("/statistics/daily", params={"start": str(DAY), "end": str(DAY)}).json()
    assert len(stats) == 1
    s = stats[0]
    assert s["incidents"] == 3 and s["incidents_by_sector"] == {"north": 1, "south": 2}
    assert s["findings_by_rule"] == {"bz-ban": 2} and s["violations_by_party"] == {"A": 1, "B": 1}
    bad = api.get("/statistics/daily", params={"start": str(DAY), "end": "2025-02-01"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "end"

    assert api.get(f"/reports/{DAY}", role=None).status_code == 404
    draft = api.get(f"/reports/{DAY}/draft", role="analyst")
    assert draft.status_code == 200 and draft.headers["content-type"].startswith("text/html")
    pub = api.post(f"/reports/{DAY}/publish", role="analyst")
    assert pub.status_code == 201
    again = api.post(f"/reports/{DAY}/publish", role="analyst")
    assert again.status_code == 409
    got = api.get(f"/reports/{DAY}", role=None)
    assert got.status_code == 200 and got.headers["x-content-sha256"] == pub.json()["sha256"]
    assert [r["day"] for r in api.get("/reports", role=None).json()] == [str(DAY)]


def test_health_ready(api: Api) -> None:
    assert api.get("/health", role=None).json()["status"] == "ok"
    ready = api.get("/ready", role=None).json()
    assert ready["status"] == "ready" and ready["schema_at_head"]


def test_error_shape_for_bad_requests(api: Api) -> None:
    r = api.client.post(
        "/api/v1/incidents",
        content=b"{not json",
        headers={**api.h("admin"), "content-type": "application/json"},
    )
    assert r.status_code == 422 and "valid JSON" in r.json()["error"]["fix"]
    r = api.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]["fix"]
    r = api.client.get("/api/v1/incidents", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = api.client.get("/api/v1/incidents", headers={"Authorization": "Bearer tl_forged"})
    assert r.status_code == 401 and r.json()["error"]["message"] == "unknown API token"
    r = api.get("/incidents/0")
    assert r.status_code == 422 and r.json()["error"]["field"] == "pk"
    r = api.client.post(
        "/api/v1/incidents", content=b"x", headers={**api.h("admin"), "content-length": "abc"}
    )
    assert r.status_code == 400


def test_settings_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "truceline.toml"
    cfg.write_text('[server]\nport = 9001\nhost = "0.0.0.0"\nmax_batch = 10\n')
    monkeypatch.setenv("TRUCELINE_PORT", "9002")
    s = load_settings(cfg, max_batch=20)
    assert (s.host, s.port, s.max_batch) == ("0.0.0.0", 9002, 20)
    monkeypatch.setenv("TRUCELINE_CONFIG", str(cfg))
    monkeypatch.delenv("TRUCELINE_PORT")
    assert load_settings().port == 9001
    cfg.write_text("colour = 'red'\n")
    with pytest.raises(ValidationError, match="colour"):
        load_settings(cfg)
    with pytest.raises(ValidationError, match="not found"):
        load_settings(tmp_path / "missing.toml")


def test_clock_marks_receipt(api: Api) -> None:
    api.clock.now = dt.datetime(2025, 3, 5, 6, 7, 8, tzinfo=dt.UTC)
    pk = api.post("/incidents", json=rec(1)).json()["pk"]
    assert api.get(f"/incidents/{pk}").json()["received_at"].startswith("2025-03-05T06:07:08")


def test_published_report_holds_released_findings_only(api: Api) -> None:
    """What the parties and the public read: the findings released to them, and a count of the rest."""
    pks = [
        api.post("/incidents", json=rec(f"pub-{i}", lat=48.6 + i / 100)).json()["pk"] for i in range(3)
    ]
    for action in ("verify", "release"):
        r = api.post(f"/incidents/{pks[0]}/review", json={"action": action}, role="analyst")
        assert r.status_code == 200, r.text
    api.post(f"/incidents/{pks[1]}/review", json={"action": "verify"}, role="analyst")  # not released

    draft = api.get(f"/reports/{DAY}/draft", role="analyst").text
    assert "Internal draft" in draft and all(f"pub-{i}" in draft for i in range(3))
    preview = api.get(f"/reports/{DAY}/draft", role="analyst", params={"released_only": True}).text
    assert api.post(f"/reports/{DAY}/publish", role="analyst").status_code == 201
    published = api.get(f"/reports/{DAY}", role=None).text
    released = api.get(f"/incidents/{pks[0]}").json()["findings"][0]["pk"]
    for html in (preview, published):
        assert "Published edition" in html and "Internal draft" not in html
        assert f"finding {released}" in html and "2 other findings of the day" in html
        # what a liaison may not see is not published either: the reporter's ids and the source
        assert not any(f"pub-{i}" in html for i in range(3)) and "Patrol" not in html


def test_upload_of_the_configured_folder_changes_nothing(api: Api, sectored_dir: Path) -> None:
    """The server registered its folder as an upload of the same files would be: one content hash."""
    files = files_of_folder(sectored_dir)
    r = api.post("/agreements", json={"files": {k: v.decode() for k, v in files.items()}}).json()
    assert not r["created"] and r["revision"] == 1 and r["agreement"]["revisions"] == 1
    assert r["agreement"]["content_hash"] == files_hash(files)


def test_uploads_never_touch_the_file_system(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Uploads are read in memory, binary formats too: no temporary file or folder is made, and an
    error names the file as the user named it."""
    import base64
    import tempfile

    import geopandas as gpd
    import shapely

    made = tmp_path / "made"
    made.mkdir()
    line = gpd.GeoDataFrame(geometry=[shapely.LineString(SMALL_LINE)], crs="EPSG:4326")
    line.to_crs(32637).to_file(made / "line.gpkg", driver="GPKG")
    area = gpd.GeoDataFrame(geometry=[shapely.Polygon(DISENGAGEMENT)], crs="EPSG:4326")
    area.to_file(made / "disengagement.shp")
    binary = {f"geometry/{p.name}": base64.b64encode(p.read_bytes()).decode() for p in made.iterdir()}
    yaml_text = (
        SMALL_YAML.replace("id: small", "id: mem")
        .replace("file: line.geojson", "file: geometry/line.gpkg")
        .replace("file: disengagement.geojson", "file: geometry/disengagement.shp")
    )
    spare = tmp_path / "tmp"
    spare.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spare))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("an upload made a temporary file")

    for name in ("mkdtemp", "mkstemp", "TemporaryDirectory", "NamedTemporaryFile", "TemporaryFile"):
        monkeypatch.setattr(tempfile, name, refuse)

    good = api.post("/agreements", json={"files": {"agreement.yaml": yaml_text}, "files_base64": binary})
    assert good.status_code == 201, good.text
    assert good.json()["created"] and good.json()["agreement"]["id"] == "mem"
    projected = json.dumps({"type": "LineString", "coordinates": [[400000, 5500000], [410000, 5400000]]})
    bad_json = api.post(
        "/agreements",
        json={
            "files": {
                "agreement.yaml": yaml_text.replace("geometry/line.gpkg", "geometry/line.geojson"),
                "geometry/line.geojson": projected,
            },
            "files_base64": binary,
        },
    ).json()["error"]
    assert bad_json["status"] == 422
    assert bad_json["message"].startswith("geometry/line.geojson, field line.file: coordinates")
    junk = base64.b64encode(b"not a geopackage").decode()
    bad_gpkg = api.post(
        "/agreements",
        json={
            "files": {"agreement.yaml": yaml_text},
            "files_base64": {**binary, "geometry/line.gpkg": junk},
        },
    ).json()["error"]
    assert bad_gpkg["message"].startswith(
        "geometry/line.gpkg: cannot read the file ('geometry/line.gpkg'"
    )
    assert "/vsi" not in bad_gpkg["message"] and "/tmp" not in bad_gpkg["message"]
    assert list(spare.iterdir()) == []
