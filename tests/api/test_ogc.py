"""OGC API - Features under /ogc: the standard's documents, filters and paging checked against a
brute-force selection, the roles, and two real clients (GDAL's ogrinfo and OWSLib) on a live server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from truceline.services.agreement_store import AgreementCache
from truceline.services.ogc import CONFORMANCE

from ..live import need_tool, serve_app
from .conftest import DAY, Api, make_api, rec

ALL = ["incidents", "findings", "zones", "line", "sectors", "sensors"]
BOX = (36.4, 48.2, 37.2, 48.9)
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def records(n: int = 60) -> list[dict[str, Any]]:
    rng = np.random.default_rng(11)
    out = []
    for k in range(n):
        t = T0 + dt.timedelta(seconds=float(rng.uniform(0, 3 * 86400)))
        out.append(
            rec(
                k,
                lon=float(rng.uniform(36.0, 37.6)),
                lat=float(rng.uniform(47.9, 49.3)),
                kind=("armed_personnel", "explosion", "vehicle_movement")[k % 3],
                observed_at=t.isoformat().replace("+00:00", "Z"),
            )
        )
    return out


def brute(
    recs: list[dict[str, Any]],
    box: tuple[float, float, float, float],
    start: dt.datetime,
    end: dt.datetime,
) -> set[str]:
    w, s, e, n = box
    return {
        r["id"]
        for r in recs
        if w <= r["lon"] <= e
        and s <= r["lat"] <= n
        and start <= dt.datetime.fromisoformat(r["observed_at"].replace("Z", "+00:00")) <= end
    }


def load(api: Api, recs: list[dict[str, Any]]) -> None:
    for k in range(0, len(recs), 50):
        r = api.post("/incidents/batch", json={"incidents": recs[k : k + 50]})
        assert r.status_code == 200 and r.json()["accepted"] == len(recs[k : k + 50]), r.text


def ogc(api: Api, path: str, role: str | None = "admin", **kw: Any) -> Any:
    return api.client.get("/ogc" + path, headers=api.h(role), **kw)


def follow(api: Api, url: str, role: str = "admin") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every feature along the `next` links, and every page."""
    feats, pages = [], []
    while url:
        r = api.client.get(url.replace("http://testserver", ""), headers=api.h(role))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/geo+json")
        page = r.json()
        pages.append(page)
        feats.extend(page["features"])
        url = next((ln["href"] for ln in page["links"] if ln["rel"] == "next"), "")
    return feats, pages


def test_landing_and_conformance(api: Api) -> None:
    land = ogc(api, "", role=None).json()
    rels = {ln["rel"]: ln["href"] for ln in land["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= set(rels)
    assert rels["data"].endswith("/ogc/collections")
    desc = api.client.get(rels["service-desc"].replace("http://testserver", ""))
    assert desc.status_code == 200 and desc.json()["openapi"].startswith("3.0.")
    conf = ogc(api, "/conformance", role=None).json()["conformsTo"]
    assert {c.rsplit("/", 1)[-1] for c in conf} == {"core", "geojson", "oas30"} and conf == CONFORMANCE
    spec = api.client.get("/api/v1/openapi.json").json()
    assert "/ogc/collections/{collection_id}/items" in spec["paths"]


@pytest.mark.parametrize(
    ("role", "visible"),
    [
        ("admin", ALL),
        ("analyst", ALL),
        ("monitor", ALL),
        ("liaison", ["findings", "zones", "line", "sectors"]),
        ("sensor", []),
        ("public", []),
        (None, []),
    ],
)
def test_collections_follow_the_roles(api: Api, role: str | None, visible: list[str]) -> None:
    got = [c["id"] for c in ogc(api, "/collections", role=role).json()["collections"]]
    assert got == visible
    for cid in ALL:
        r = ogc(api, f"/collections/{cid}/items", role=role)
        if cid in visible:
            assert r.status_code == 200, r.text
        else:
            assert r.status_code == (401 if role is None else 403), (cid, r.text)


def test_items_filters_paging_and_counts(api: Api) -> None:
    recs = records()
    load(api, recs)
    start, end = T0 + dt.timedelta(hours=20), T0 + dt.timedelta(hours=60)
    want = brute(recs, BOX, start, end)
    assert 5 < len(want) < len(recs)
    dtq = f"{start.isoformat().replace('+00:00', 'Z')}/{end.isoformat().replace('+00:00', 'Z')}"
    url = f"/ogc/collections/incidents/items?bbox={','.join(map(str, BOX))}&datetime={dtq}&limit=4"
    feats, pages = follow(api, url)
    assert sorted(f["properties"]["report_id"] for f in feats) == sorted(want)  # each exactly once
    assert len(pages) == -(-len(want) // 4)
    for p in pages:
        assert p["numberMatched"] == len(want) and p["numberReturned"] == len(p["features"]) <= 4
    one = feats[0]
    assert one["geometry"]["type"] == "Point" and isinstance(one["id"], int)
    # Open intervals and instants.
    open_end = follow(
        api, f"/ogc/collections/incidents/items?datetime={dtq.split('/')[0]}/..&limit=1000"
    )[0]
    assert len(open_end) == len(brute(recs, (-180, -90, 180, 90), start, T0 + dt.timedelta(days=9)))
    t = recs[3]["observed_at"]
    instant = follow(api, f"/ogc/collections/incidents/items?datetime={t}")[0]
    assert [f["properties"]["report_id"] for f in instant] == [recs[3]["id"]]
    # Findings carry the incident's position; their count agrees with the REST API.
    fs, fpages = follow(api, "/ogc/collections/findings/items?limit=7")
    rest = api.get("/findings", params={"limit": 1000}).json()["items"]
    assert fpages[0]["numberMatched"] == len(rest) == len(fs) > 0
    assert {f["id"] for f in fs} == {x["pk"] for x in rest}


def test_liaison_sees_released_findings_only(api: Api) -> None:
    load(api, [rec(1), rec(2), rec(3, lon=36.9, lat=48.65)])
    inc = api.get("/incidents").json()["items"]
    pk = inc[0]["pk"]
    assert (
        api.post(f"/incidents/{pk}/review", json={"action": "verify"}, role="analyst").status_code == 200
    )
    assert (
        api.post(f"/incidents/{pk}/review", json={"action": "release"}, role="analyst").status_code
        == 200
    )
    mine = follow(api, "/ogc/collections/findings/items", role="liaison")[0]
    allf = follow(api, "/ogc/collections/findings/items", role="analyst")[0]
    assert len(allf) > len(mine) > 0
    assert all(f["properties"]["released_at"] for f in mine)
    assert all(
        f["properties"]["report_id"] is None and f["properties"]["incident_pk"] is None for f in mine
    )
    hidden = next(f for f in allf if not f["properties"]["released_at"])
    assert ogc(api, f"/collections/findings/items/{hidden['id']}", role="liaison").status_code == 404
    assert ogc(api, f"/collections/findings/items/{mine[0]['id']}", role="liaison").status_code == 200


def test_single_items_and_static_layers(api: Api) -> None:
    load(api, [rec(1, lat=49.0, lon=36.4), rec(2, lat=47.5, lon=37.0)])
    rows = {r["report_id"]: r["pk"] for r in api.get("/incidents").json()["items"]}
    one = ogc(api, f"/collections/incidents/items/{rows['r1']}").json()
    assert one["id"] == rows["r1"] and one["geometry"]["coordinates"] == [36.4, 49.0]
    assert {ln["rel"] for ln in one["links"]} == {"self", "collection"}
    # A monitor of the south sector does not see a northern incident: not found, not forbidden.
    assert (
        ogc(api, f"/collections/incidents/items/{rows['r1']}", role="monitor_south").status_code == 404
    )
    assert (
        ogc(api, f"/collections/incidents/items/{rows['r2']}", role="monitor_south").status_code == 200
    )
    zones = follow(api, "/ogc/collections/zones/items", role="liaison")[0]
    assert {f["id"] for f in zones} >= {"buffer:A", "buffer:B"}
    z = ogc(api, "/collections/zones/items/buffer:A", role="liaison").json()
    assert z["properties"]["side"] == "A" and z["geometry"]["type"] in ("Polygon", "MultiPolygon")
    sectors = ogc(api, "/collections/sectors/items?bbox=33,49,39,50").json()
    assert [f["id"] for f in sectors["features"]] == ["north"] and sectors["numberMatched"] == 1
    line = ogc(api, "/collections/line/items").json()
    assert line["numberMatched"] == 1 and line["features"][0]["geometry"]["type"] == "LineString"
    paged, pages = follow(api, "/ogc/collections/zones/items?limit=1")
    assert len(paged) == pages[0]["numberMatched"] == len(pages)
    for bad in (
        "/collections/nope/items",
        "/collections/incidents/items/999999",
        "/collections/zones/items/x",
    ):
        r = ogc(api, bad)
        assert r.status_code == 404 and r.json()["error"]["fix"], bad


def test_finding_items_carry_the_numbers(api: Api) -> None:
    load(api, [rec(1)])  # armed personnel in the buffer zone: a zone-ban finding
    (f,) = api.get("/findings").json()["items"]
    props = ogc(api, f"/collections/findings/items/{f['pk']}").json()["properties"]
    assert props["finding_zone"] == f["numbers"]["zone"] == "buffer"
    assert props["finding_distance_km"] == f["numbers"]["distance_km"] > 0
    assert props["finding_side_party"] == "B" and props["finding_limit_km"] is None


@pytest.mark.parametrize(
    "query",
    [
        "bbox=1,2,3",
        "bbox=10,60,20,50",
        "datetime=yesterday",
        "datetime=2025-03-02/2025-03-01",
        "colour=red",
        "limit=0",
        "limit=ten",
        "limit=100000",
        "offset=-1",
        "f=xml",
    ],
)
def test_bad_parameters_are_400(api: Api, query: str) -> None:
    r = ogc(api, f"/collections/incidents/items?{query}")
    assert r.status_code == 400 and r.json()["error"]["message"], r.text


# -- real clients on a live server --------------------------------------------------------------


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, sectored_dir: Path
) -> Iterator[tuple[str, Api, list[dict[str, Any]]]]:
    api = make_api(str(tmp_path_factory.mktemp("ogc") / "live.db"), sectored_dir, AgreementCache())
    recs = records(40)
    load(api, recs)
    with serve_app(api.client.app) as url:
        yield url, api, recs
    api.client.close()
    api.ctx.db.dispose()


def ogrinfo(api: Api, role: str, *args: str) -> str:
    exe = need_tool("ogrinfo", "gdal-bin")
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: Bearer {api.tokens[role]}"}
    out = subprocess.run([exe, "-ro", *args], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_gdal_lists_layers_and_reads_with_a_spatial_filter(
    live: tuple[str, Api, list[dict[str, Any]]],
) -> None:
    url, api, recs = live
    listing = ogrinfo(api, "admin", f"OAPIF:{url}/ogc")
    assert re.findall(r"^\d+: (\w+)", listing, re.M) == ALL
    liaison = ogrinfo(api, "liaison", f"OAPIF:{url}/ogc")
    assert re.findall(r"^\d+: (\w+)", liaison, re.M) == ["findings", "zones", "line", "sectors"]
    # A small page size makes GDAL follow several `next` links.
    text = ogrinfo(
        api,
        "admin",
        "-oo",
        "PAGE_SIZE=5",
        "-spat",
        *map(str, BOX),
        f"OAPIF:{url}/ogc",
        "incidents",
    )
    got = set(re.findall(r"report_id \(String\) = (\S+)", text))
    assert got == brute(recs, BOX, T0, T0 + dt.timedelta(days=9)) and len(got) > 5
    lon = [float(x) for x in re.findall(r"POINT \(([-\d.]+) [-\d.]+\)", text)]
    assert lon and all(BOX[0] <= x <= BOX[2] for x in lon)
    zones = ogrinfo(api, "liaison", "-so", f"OAPIF:{url}/ogc", "zones")
    assert "Feature Count: " in zones or "Geometry:" in zones


def test_owslib_reads_the_same(live: tuple[str, Api, list[dict[str, Any]]]) -> None:
    from owslib.ogcapi.features import Features

    url, api, recs = live
    w = Features(f"{url}/ogc", headers={"Authorization": f"Bearer {api.tokens['admin']}"})
    assert [c["id"] for c in w.collections()["collections"]] == ALL
    assert set(CONFORMANCE) <= set(w.conformance()["conformsTo"])
    want = brute(recs, BOX, T0, T0 + dt.timedelta(days=9))
    page = w.collection_items("incidents", bbox=list(BOX), limit=1000)
    assert page["numberMatched"] == page["numberReturned"] == len(want)
    assert {f["properties"]["report_id"] for f in page["features"]} == want
    one = w.collection_item("incidents", str(page["features"][0]["id"]))
    assert one["id"] == page["features"][0]["id"]
    assert w.api()["openapi"].startswith("3.0.")  # the service-desc OWSLib looks for
    assert set(w.collection_queryables("incidents")["properties"]) == {"geometry", "observed_at"}
    lia = Features(f"{url}/ogc", headers={"Authorization": f"Bearer {api.tokens['liaison']}"})
    assert [c["id"] for c in lia.collections()["collections"]] == [
        "findings",
        "zones",
        "line",
        "sectors",
    ]
    assert lia.collection_items("zones")["numberMatched"] >= 2
    assert DAY  # the shared fixtures' day is the agreement's test day


def test_the_ogc_api_definition_is_valid_openapi_30(api: Api) -> None:
    """The `oas30` conformance claim holds: /ogc/api is an OpenAPI 3.0 document (validated by
    openapi-spec-validator) of every /ogc route served, served as the landing page's service-desc."""
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.validators import OpenAPIV30SpecValidator

    r = api.client.get("/ogc/api")
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "application/vnd.oai.openapi+json"
    )
    spec = r.json()
    assert spec["openapi"] == "3.0.3"
    validate(spec, cls=OpenAPIV30SpecValidator)
    from truceline.api.routes.ogc import router

    served = {route.path for route in router.routes if getattr(route, "include_in_schema", False)}
    assert set(spec["paths"]) == served and "/ogc/collections/{collection_id}/queryables" in served
    text = json.dumps(spec)
    assert '"type": "null"' not in text and '"const"' not in text  # 3.1 forms rewritten
    limit = next(
        p
        for p in spec["paths"]["/ogc/collections/{collection_id}/items"]["get"]["parameters"]
        if p["name"] == "limit"
    )
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 10000


def test_queryables_are_a_json_schema_of_what_is_served(api: Api) -> None:
    import jsonschema

    coll = ogc(api, "/collections/incidents").json()
    link = next(ln for ln in coll["links"] if ln["rel"].endswith("/queryables"))
    r = api.client.get(link["href"].replace("http://testserver", ""), headers=api.h("admin"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    schema = r.json()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["properties"]["geometry"]["x-ogc-role"] == "primary-geometry"
    assert schema["properties"]["observed_at"]["format"] == "date-time"
    zones = ogc(api, "/collections/zones/queryables", role="liaison").json()
    assert set(zones["properties"]) == {"geometry"}  # no time on a static layer
    assert ogc(api, "/collections/incidents/queryables", role="liaison").status_code == 403
    assert ogc(api, "/collections/nope/queryables").status_code == 404


def test_landing_page_as_html(api: Api) -> None:
    for r in (
        api.client.get("/ogc?f=html"),
        api.client.get("/ogc", headers={"Accept": "text/html,application/xhtml+xml"}),
    ):
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "<h1>Truceline - OGC API Features</h1>" in r.text and "/ogc/collections" in r.text
    assert api.client.get("/ogc").headers["content-type"].startswith("application/json")
    links = {ln["rel"]: ln for ln in api.client.get("/ogc").json()["links"]}
    assert links["alternate"]["type"] == "text/html"
