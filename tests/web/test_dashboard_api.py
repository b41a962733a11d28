"""The dashboard's data routes on SQLite and PostGIS: counts that agree with the list endpoints,
exports that hold exactly the filtered set, what a liaison may see, the review queue's order,
withdrawal lines at their distance, and the page itself."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
from typing import Any

import numpy as np
import pytest
import shapely

from truceline.core.rules import NUMBER_FIELDS

from ..api.conftest import DAY, Api, rec


def _seed(api: Api) -> dict[str, int]:
    """Incidents on two days: zone-ban findings, fire across the line, a civilian casualty, tanks
    near the line, and reports that break no rule."""
    day2 = DAY + dt.timedelta(days=1)
    records = [
        rec("bz-1"),  # armed personnel in the buffer zone on B's side: a zone-ban finding
        rec("bz-2", lon=36.96, observed_at=f"{DAY}T06:00:00Z"),
        rec("bz-south", lat=48.4),
        rec("tank-1", kind="heavy_weapon", weapon_class="tank", lon=36.9, lat=48.62),
        rec("cas-1", kind="civilian_casualty", lon=36.93, lat=48.61),
        rec("quiet-1", kind="vehicle_movement", lon=38.9, lat=49.9, source_type="camera"),
        rec("quiet-2", kind="flare", lon=38.8, lat=49.8, day=day2),
        rec("bz-day2", day=day2, source_type="uav"),
    ]
    res = api.post("/incidents/batch", json={"incidents": records}).json()
    assert res["accepted"] == len(records), res
    return {r["id"]: r["pk"] for r in res["results"]}


def _features(api: Api, role: str = "analyst", **params: Any) -> dict[str, Any]:
    r = api.get("/dashboard/features", role=role, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _list_findings(api: Api, role: str = "analyst", **params: Any) -> list[dict[str, Any]]:
    return api.get("/findings", role=role, params={"limit": 1000, **params}).json()["items"]


def test_counts_agree_with_the_list_endpoints(api: Api) -> None:
    _seed(api)
    for params in (
        {"start": str(DAY), "end": str(DAY)},
        {},
        {"rule": "bz-ban"},
        {"start": str(DAY), "end": str(DAY), "sector": "south"},
    ):
        data = _features(api, **params)
        listed = _list_findings(api, **params)
        assert data["findings"]["n"] == len(listed) > 0, params
        assert sorted(data["findings"]["pk"]) == sorted(f["pk"] for f in listed)
    # Incidents without findings: those of the list endpoint that have no finding.
    data = _features(api, start=str(DAY), end=str(DAY))
    incidents = api.get("/incidents", params={"start": f"{DAY}T00:00:00Z", "end": f"{DAY}T23:59:59Z"})
    without = [
        i["pk"]
        for i in incidents.json()["items"]
        if not api.get(f"/incidents/{i['pk']}").json()["findings"]
    ]
    assert sorted(data["incidents"]["pk"]) == sorted(without) and without


def test_filters_narrow_and_are_and_ed(api: Api) -> None:
    pks = _seed(api)
    everything = _features(api)
    codes = everything["codes"]
    assert everything["findings"]["n"] > _features(api, start=str(DAY), end=str(DAY))["findings"]["n"]
    cas = _features(api, kind="civilian_casualty")  # no rule of the small agreement names it
    assert cas["findings"]["n"] == 0 and cas["incidents"]["pk"] == [pks["cas-1"]]
    assert {codes["kind"][k] for k in everything["findings"]["kind"]} >= {"armed_personnel"}
    # Two kinds OR-ed, comma-separated or repeated: the same answer.
    a = _features(api, kind="civilian_casualty,flare")
    b = api.get(
        "/dashboard/features", role="analyst", params=[("kind", "civilian_casualty"), ("kind", "flare")]
    )
    assert (
        a["findings"]["pk"] == b.json()["findings"]["pk"]
        and a["incidents"]["pk"] == b.json()["incidents"]["pk"]
    )
    assert pks["quiet-2"] in a["incidents"]["pk"]
    # A rule filter leaves no incident without findings; a source filter selects on the report.
    assert _features(api, rule="bz-ban")["incidents"]["n"] == 0
    uav = _features(api, source_type="uav")
    assert uav["findings"]["n"] >= 1
    assert {uav["codes"]["source"][s] for s in uav["findings"]["source"]} == {"uav"}
    # Status: verify one incident; the "verified" filter finds exactly its findings.
    api.post(f"/incidents/{pks['bz-1']}/review", json={"action": "verify"})
    verified = _features(api, status="verified")
    own = api.get(f"/incidents/{pks['bz-1']}").json()["findings"]
    assert sorted(verified["findings"]["pk"]) == sorted(f["pk"] for f in own)
    new = _features(api, status="new")
    assert not set(new["findings"]["pk"]) & set(verified["findings"]["pk"])
    assert api.get("/dashboard/features", role="analyst", params={"status": "bogus"}).status_code == 422
    assert (
        api.get(
            "/dashboard/features", role="analyst", params={"start": "2025-03-02", "end": "2025-03-01"}
        ).status_code
        == 422
    )


def test_timeline_counts_every_day_with_the_filter(api: Api) -> None:
    _seed(api)
    tl = api.get("/dashboard/timeline", role="analyst").json()
    assert tl["days"] == [str(DAY), str(DAY + dt.timedelta(days=1))]
    for k, day in enumerate(tl["days"]):
        d = _features(api, start=day, end=day)
        assert tl["findings"][k] == d["findings"]["n"] and tl["incidents"][k] == d["incidents"]["n"]
    # The features' histogram ignores the dates but keeps the other filters.
    h = _features(api, start=str(DAY), end=str(DAY), rule="bz-ban")["histogram"]
    assert sum(h["findings"]) == _features(api, rule="bz-ban")["findings"]["n"]


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_export_is_exactly_the_filtered_set(api: Api, fmt: str) -> None:
    _seed(api)
    for params in (
        {"start": str(DAY), "end": str(DAY)},
        {"rule": "bz-ban"},
        {"kind": "flare,vehicle_movement"},
    ):
        data = _features(api, **params)
        r = api.get("/export", role="analyst", params={**params, "format": fmt})
        assert r.status_code == 200, r.text
        assert "attachment" in r.headers["content-disposition"]
        if fmt == "csv":
            rows = list(csv.DictReader(io.StringIO(r.text)))
            findings = [int(x["finding_pk"]) for x in rows if x["record"] == "finding"]
            incidents = [int(x["incident_pk"]) for x in rows if x["record"] == "incident"]
        else:
            assert r.headers["content-type"].startswith("application/geo+json")
            fc = json.loads(r.text)
            findings = [
                f["properties"]["finding_pk"]
                for f in fc["features"]
                if f["properties"]["record"] == "finding"
            ]
            incidents = [
                f["properties"]["incident_pk"]
                for f in fc["features"]
                if f["properties"]["record"] == "incident"
            ]
            for f in fc["features"]:
                lon, lat = f["geometry"]["coordinates"]
                assert 30 < lon < 40 and 45 < lat < 51
        assert findings == sorted(data["findings"]["pk"]), params
        assert incidents == sorted(data["incidents"]["pk"]), params


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
def test_export_carries_each_findings_numbers(api: Api, fmt: str) -> None:
    """Columns finding_<number>, the same numbers the API serves (empty for incidents)."""
    _seed(api)
    r = api.get("/export", role="analyst", params={"format": fmt})
    assert r.status_code == 200, r.text
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(r.text)))
    else:
        rows = [f["properties"] for f in json.loads(r.text)["features"]]
    found = [x for x in rows if x["record"] == "finding"]
    assert found and any(x["record"] == "incident" for x in rows)
    for x in rows:
        served = (
            api.get(f"/findings/{x['finding_pk']}").json()["numbers"] if x["record"] == "finding" else {}
        )
        for k in NUMBER_FIELDS:
            want, got = served.get(k), x[f"finding_{k}"]
            if fmt == "csv" and isinstance(want, float):
                got = float(got)
            assert got == (("" if fmt == "csv" else None) if want is None else want), (x, k)
    by_rule = {x["rule_id"]: x for x in found}
    assert by_rule["bz-ban"]["finding_zone"] == "buffer"  # the zone bans of the seed
    assert float(by_rule["wd-tank"]["finding_limit_km"]) == 10.0  # the tank on B's side


def test_unknown_agreement_is_not_found(api: Api) -> None:
    for path in ("/dashboard/features", "/dashboard/timeline", "/export"):
        r = api.get(path, role="analyst", params={"agreement": "nöne"})
        assert r.status_code == 404 and r.json()["error"]["field"] == "agreement", path


def test_liaison_sees_released_findings_only_without_report_fields(api: Api) -> None:
    pks = _seed(api)
    assert _features(api, role="liaison")["findings"]["n"] == 0
    api.post(f"/incidents/{pks['bz-1']}/review", json={"action": "verify"})
    api.post(f"/incidents/{pks['bz-1']}/review", json={"action": "release"})
    released = [f["pk"] for f in api.get(f"/incidents/{pks['bz-1']}").json()["findings"]]
    data = _features(api, role="liaison")
    assert sorted(data["findings"]["pk"]) == sorted(released)
    assert data["findings"]["incident"] is None and data["findings"]["source"] is None
    assert data["incidents"]["n"] == 0
    assert sum(api.get("/dashboard/timeline", role="liaison").json()["findings"]) == len(released)
    # Nor through the export, nor by asking for the incidents or filtering by source.
    text = api.get("/export", role="liaison", params={"format": "csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(int(r["finding_pk"]) for r in rows) == sorted(released)
    assert all(r["incident_pk"] == "" and r["report_id"] == "" and r["narrative"] == "" for r in rows)
    assert _features(api, role="liaison", incidents="true")["incidents"]["n"] == 0
    r = api.get("/dashboard/features", role="liaison", params={"source_type": "patrol"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "source_type"
    assert api.get("/dashboard/queue", role="liaison").status_code == 403
    assert api.get("/export", role=None).status_code == 401  # exports need a token


@pytest.mark.parametrize("role", ["public", None, "liaison", "liaison_b"])
def test_the_published_map_holds_released_findings_only(api: Api, role: str | None) -> None:
    """Signed out (the public, a journalist) or a party's liaison: the map of what the mission has
    published, the released findings at their positions, nothing unreleased, no raw report."""
    pks = _seed(api)
    empty = _features(api, role=role)
    assert empty["findings"]["n"] == empty["incidents"]["n"] == 0
    assert api.get("/dashboard/timeline", role=role).json()["days"] == []
    for action in ("verify", "release"):
        api.post(f"/incidents/{pks['bz-1']}/review", json={"action": action})
    api.post(f"/incidents/{pks['bz-2']}/review", json={"action": "verify"})  # verified, unreleased
    inc = api.get(f"/incidents/{pks['bz-1']}").json()
    released = sorted(f["pk"] for f in inc["findings"])
    everything = _features(api, role="analyst")
    unreleased = sorted(set(everything["findings"]["pk"]) - set(released))
    assert released and unreleased
    data = _features(api, role=role, incidents="true")
    assert sorted(data["findings"]["pk"]) == released
    assert data["findings"]["lon"] == [round(inc["lon"], 5)] * len(released)  # positions as released
    assert data["findings"]["incident"] is None and data["findings"]["source"] is None
    assert data["incidents"]["n"] == 0
    assert sum(api.get("/dashboard/timeline", role=role).json()["findings"]) == len(released)
    # One released finding opens as released; an unreleased one does not exist for this caller.
    f = api.get(f"/findings/{released[0]}", role=role).json()
    assert "narrative" not in f and f["report_id"] is None and f["source_type"] is None
    for pk in unreleased:
        assert api.get(f"/findings/{pk}", role=role).status_code == 404
    # Raw reports, the queue, the incidents' list: not for these callers.
    for path in ("/incidents", f"/incidents/{pks['bz-1']}", "/dashboard/queue"):
        assert api.get(path, role=role).status_code in (401, 403), path


def test_the_layers_draw_on_an_empty_database_and_the_first_view_is_the_area(api: Api) -> None:
    """Nothing stored yet: the legend and the agreement's layers (line, zones, sectors) are there
    for every role with a map, and the legend gives the area of application for the first view."""
    for role in ("analyst", "public", None, "liaison"):
        legend = api.get("/dashboard/legend", role=role).json()
        w, s, e, n = legend["area_bbox"]
        lw, ls, le, ln = legend["bbox"]
        assert w <= lw < le <= e and s <= ls < ln <= n  # the area holds the line
        fc = api.get("/dashboard/layers", role=role).json()
        layers = {f["properties"]["layer"] for f in fc["features"]}
        assert {"line", "zone", "sector"} <= layers, (role, layers)
    with api.ctx.db.read() as s:
        ag = api.ctx.agreements.get(s, "small")
    area = ag.version_at(ag.effective_from).area
    assert legend["area_bbox"] == [round(float(v), 5) for v in shapely.bounds(area)]


def test_monitor_sees_own_sector(api: Api) -> None:
    _seed(api)
    mine = _features(api, role="monitor")
    codes = mine["codes"]["sector"]
    assert mine["findings"]["n"] > 0
    assert {codes[s] for s in mine["findings"]["sector"] + mine["incidents"]["sector"]} <= {"north", ""}


def test_review_queue_most_serious_then_oldest(api: Api) -> None:
    pks = _seed(api)
    q = api.get("/dashboard/queue", role="analyst").json()
    items = q["items"]
    assert q["total"] == len(items) == len(pks)
    tiers = [i["tier"] for i in items]
    assert tiers == sorted(tiers)
    by_id = {i["report_id"]: i for i in items}
    assert by_id["cas-1"]["tier"] == 1  # a civilian casualty, though no rule names it
    assert by_id["tank-1"]["tier"] == 1  # a tank well inside its withdrawal line
    assert by_id["bz-1"]["tier"] == 2  # a likely zone-ban violation
    assert {i["report_id"] for i in items if i["tier"] == 4} == {"quiet-1", "quiet-2"}
    for a, b in itertools.pairwise(items):
        if a["tier"] == b["tier"]:
            assert (a["received_at"], a["observed_at"]) <= (b["received_at"], b["observed_at"])
    # A reviewed incident leaves the queue.
    api.post(f"/incidents/{pks['cas-1']}/review", json={"action": "verify"})
    after = api.get("/dashboard/queue", role="analyst").json()
    assert after["total"] == q["total"] - 1 and "cas-1" not in {i["report_id"] for i in after["items"]}
    assert sum(after["by_tier"].values()) == after["total"]


def test_withdrawal_lines_lie_at_their_distance(api: Api) -> None:
    fc = api.get("/dashboard/layers", role="analyst", params={"date": str(DAY)}).json()
    with api.ctx.db.read() as s:
        ag = api.ctx.agreements.get(s, "small")
    cv = ag.version_at(DAY)
    lines = [f for f in fc["features"] if f["properties"]["layer"] == "withdrawal"]
    # wd-art 25 km both sides; wd-tank 15 km (A) and 10 km (B), in force since 2025-02-01.
    assert sorted((f["properties"]["side"], f["properties"]["distance_km"]) for f in lines) == [
        ("A", 15.0),
        ("A", 25.0),
        ("B", 10.0),
        ("B", 25.0),
    ]
    for f in lines:
        g = f["geometry"]
        parts = g["coordinates"] if g["type"] == "MultiLineString" else [g["coordinates"]]
        xy = np.array([p for part in parts for p in part])
        side, near = cv.locate(xy[:, 0], xy[:, 1])
        want = f["properties"]["distance_km"] * 1000
        assert np.all(np.abs(near.distance_m - want) < 10.0), (
            f["properties"]["id"],
            np.abs(near.distance_m - want).max(),
        )
        # On the party's side; a part's two ends may touch the line's extension past its ends,
        # where the sides meet.
        interior = np.concatenate(
            [
                np.arange(1, len(p) - 1) + k
                for p, k in zip(parts, np.cumsum([0] + [len(p) for p in parts[:-1]]), strict=True)
            ]
        )
        assert np.all(side[interior] == ag.side_of_party(f["properties"]["side"]))
    # Before the tanks' rule starts, only the artillery line is drawn.
    early = api.get("/dashboard/layers", role="analyst", params={"date": "2025-01-15"}).json()
    assert {
        f["properties"]["distance_km"]
        for f in early["features"]
        if f["properties"]["layer"] == "withdrawal"
    } == {25.0}
    legend = api.get("/dashboard/legend", role="liaison", params={"date": str(DAY)}).json()
    assert {r["id"] for r in legend["rules"]} >= {"wd-art", "bz-ban"} and legend["left"] == "B"
    zones = [f for f in fc["features"] if f["properties"]["layer"] == "zone"]
    assert {f["properties"]["zone"] for f in zones} == {"buffer", "limitation", "disengagement"}


def _outline_m(geometry: dict[str, Any]) -> Any:
    """A layer's geometry in Web Mercator metres (the web map's plane); a polygon's rings as lines,
    so that a distance to it is a distance to its outline."""
    from pyproj import Transformer

    to_m = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    g = shapely.geometry.shape(geometry)
    if g.geom_type in ("Polygon", "MultiPolygon"):
        g = g.boundary
    return shapely.transform(g, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))


def test_layers_for_a_zoom_are_simplified_within_half_a_pixel(api: Api) -> None:
    """With ``zoom`` the same features come in the same order, with fewer vertices where they are
    closer than a pixel, each outline within half a pixel of the full one; a zoom no map has is
    refused."""
    full = api.get("/dashboard/layers", role="analyst", params={"date": str(DAY)}).json()
    n_full = sum(
        shapely.get_num_coordinates(shapely.geometry.shape(f["geometry"])) for f in full["features"]
    )
    for zoom, most in ((5, 0.5), (13, 1.0)):
        got = api.get("/dashboard/layers", role="analyst", params={"date": str(DAY), "zoom": zoom})
        fc = got.json()
        assert [f["properties"] for f in fc["features"]] == [f["properties"] for f in full["features"]]
        half_pixel_m = 0.5 * 2 * np.pi * 6378137.0 / 256 / 2**zoom
        for a, b in zip(full["features"], fc["features"], strict=True):
            assert a["geometry"]["type"] == b["geometry"]["type"]
            d = shapely.hausdorff_distance(_outline_m(a["geometry"]), _outline_m(b["geometry"]))
            assert d <= half_pixel_m * 1.0001, (zoom, a["properties"], d, half_pixel_m)
        n = sum(
            shapely.get_num_coordinates(shapely.geometry.shape(f["geometry"])) for f in fc["features"]
        )
        assert n <= most * n_full, (zoom, n, n_full)
    bad = api.get("/dashboard/layers", role="analyst", params={"date": str(DAY), "zoom": 25})
    assert bad.status_code == 422 and "zoom" in bad.text


def test_layers_hide_observation_posts_from_liaisons(api: Api) -> None:
    # The small agreement has no posts; give the cached layers one to see the filter work.
    fc = api.get("/dashboard/layers", role="analyst").json()
    assert all(f["properties"]["layer"] != "observation_post" for f in fc["features"])
    from truceline.services.agreement import agreement_layers

    with api.ctx.db.read() as s:
        ag = api.ctx.agreements.get(s, "small")
    cached = agreement_layers(ag, ag.effective_from)
    post = {
        "type": "Feature",
        "properties": {"layer": "observation_post", "id": "op-x"},
        "geometry": {"type": "Point", "coordinates": [36.5, 49.0]},
    }
    cached["features"].append(post)
    try:
        seen = {
            f["properties"]["id"]
            for f in api.get("/dashboard/layers", role="analyst").json()["features"]
        }
        hidden = {
            f["properties"]["id"]
            for f in api.get("/dashboard/layers", role="liaison").json()["features"]
        }
        assert "op-x" in seen and "op-x" not in hidden
    finally:
        cached["features"].remove(post)


def test_big_answers_are_gzipped(sqlite_api: Api) -> None:
    api = sqlite_api
    r = api.client.get(
        "/api/v1/dashboard/layers", headers={**api.h("analyst"), "Accept-Encoding": "gzip"}
    )
    assert r.headers.get("content-encoding") == "gzip" and r.json()["type"] == "FeatureCollection"


def test_draft_pdf(sqlite_api: Api) -> None:
    api = sqlite_api
    _seed(api)
    r = api.get(f"/reports/{DAY}/draft/pdf", role="analyst")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-") and b"%%EOF" in r.content[-1024:]
    assert api.get(f"/reports/{DAY}/pdf", role="public").status_code == 404  # not published yet
    assert api.post(f"/reports/{DAY}/publish", role="analyst").status_code == 201
    p = api.get(f"/reports/{DAY}/pdf", role=None)
    assert p.status_code == 200 and p.content.startswith(b"%PDF-")
    assert p.headers["x-content-sha256"] == api.get("/reports", role=None).json()[0]["sha256"]


def test_the_page_and_its_files(sqlite_api: Api) -> None:
    c = sqlite_api.client
    page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "'unsafe-eval'" not in csp
    assert '<script type="module" src="/static/app.js?v=' in page.text
    js = c.get("/static/app.js", headers={"Accept-Encoding": "gzip"})
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert js.headers["content-encoding"] == "gzip"
    again = c.get("/static/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
    assert c.get("/static/countries-10m.json").json()["type"] == "Topology"
    for bad in ("../web/pages.py", "%2e%2e/pages.py", ".hidden", "nope.js", "images/../../pages.py"):
        r = c.get(f"/static/{bad}")
        assert r.status_code == 404, bad
        assert r.json()["error"]["status"] == 404


def _scatter(api: Api, n: int = 200, seed: int = 5) -> None:
    """``n`` reports spread over the small agreement's area, in batches (some break a rule)."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(35.5, 38.5, n)
    lat = rng.uniform(47.8, 49.8, n)
    kinds = rng.choice(["armed_personnel", "vehicle_movement", "flare", "explosion"], n)
    recs = [
        rec(f"sc-{k}", lon=round(float(x), 5), lat=round(float(y), 5), kind=str(c))
        for k, (x, y, c) in enumerate(zip(lon, lat, kinds, strict=True))
    ]
    for k in range(0, n, 50):
        assert api.post("/incidents/batch", json={"incidents": recs[k : k + 50]}).json()["accepted"]


@pytest.mark.parametrize("zoom", [4, 7, 10])
def test_clusters_count_what_the_features_hold_per_cell(api: Api, zoom: int) -> None:
    """The database's GROUP BY on the snapped grid: each cell's counts are those of the single
    points in it (from /dashboard/features), by party, rule and kind; totals match."""
    _seed(api)
    _scatter(api)
    feats = _features(api)
    c = api.get("/dashboard/clusters", role="analyst", params={"zoom": zoom}).json()
    size = 360 / 2**zoom * 64 / 256
    assert c["cell_deg"] == pytest.approx(size)
    F, Q, codes = feats["findings"], feats["incidents"], feats["codes"]
    assert sum(c["findings"]) == F["n"] > 0 and sum(c["incidents"]) == Q["n"] > 0
    cell_of = {(gx, gy): k for k, (gx, gy) in enumerate(zip(c["gx"], c["gy"], strict=True))}
    want_f = np.zeros(c["n"], dtype=int)
    want_i = np.zeros(c["n"], dtype=int)
    want_rule: dict[str, np.ndarray] = {}
    for cols, want in ((F, want_f), (Q, want_i)):
        for k in range(cols["n"]):
            cell = (int((cols["lon"][k] + 180) // size), int((cols["lat"][k] + 90) // size))
            want[cell_of[cell]] += 1
            if cols is F:
                r = codes["rule"][F["rule"][k]]
                want_rule.setdefault(r, np.zeros(c["n"], dtype=int))[cell_of[cell]] += 1
    assert c["findings"] == want_f.tolist() and c["incidents"] == want_i.tolist()
    assert {r: v.tolist() for r, v in want_rule.items()} == c["by_rule"]
    for k in range(c["n"]):  # each cell's mean position lies in the cell
        assert c["gx"][k] * size - 180 <= c["lon"][k] <= (c["gx"][k] + 1) * size - 180 + 1e-5
    assert sum(map(sum, c["by_party"].values())) == F["n"]
    assert sum(map(sum, c["by_kind"].values())) == F["n"] + Q["n"]
    # The same filters as the map: one rule, one kind.
    one = api.get("/dashboard/clusters", role="analyst", params={"zoom": zoom, "rule": "bz-ban"}).json()
    assert sum(one["findings"]) == _features(api, rule="bz-ban")["findings"]["n"]
    assert sum(one["incidents"]) == 0


def test_clusters_and_points_in_a_box_for_each_audience(api: Api) -> None:
    pks = _seed(api)
    _scatter(api, 100)
    for action in ("verify", "release"):
        api.post(f"/incidents/{pks['bz-1']}/review", json={"action": action})
    released = len(api.get(f"/incidents/{pks['bz-1']}").json()["findings"])
    for role in ("public", None, "liaison", "liaison_b"):
        c = api.get("/dashboard/clusters", role=role, params={"zoom": 6}).json()
        assert sum(c["findings"]) == released and sum(c["incidents"]) == 0, role
    # Zoomed in: the single points in the view only, at most `limit` of them.
    box = "36.9,48.55,37.0,48.65"
    inside = _features(api, bbox=box)
    lons = inside["findings"]["lon"] + inside["incidents"]["lon"]
    lats = inside["findings"]["lat"] + inside["incidents"]["lat"]
    assert lons and all(36.9 <= x <= 37.0 for x in lons) and all(48.55 <= y <= 48.65 for y in lats)
    everything = _features(api)
    assert inside["findings"]["n"] < everything["findings"]["n"]
    cut = _features(api, limit=3)
    assert cut["truncated"] and cut["findings"]["n"] + cut["incidents"]["n"] == 3
    r = api.get("/dashboard/clusters", role="analyst", params={"zoom": 6, "bbox": "1,2,3"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "bbox"
    assert api.get("/dashboard/clusters", role="analyst").status_code == 422  # zoom is needed
