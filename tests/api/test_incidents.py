"""Submitting, listing and reading incidents through the API (SQLite and PostGIS)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from truceline.core.agreement import Agreement
from truceline.services.queries import encode_cursor

from ..core.test_rules import point_at
from .conftest import DAY, Api, rec


def test_submit_one_accepted_then_duplicate(api: Api) -> None:
    r = api.post("/incidents", json=rec(1), role="sensor")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "accepted" and body["findings"] == 1 and body["pk"] >= 1
    again = api.post("/incidents", json=rec(1), role="sensor")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["pk"] == body["pk"]
    assert len(api.get("/incidents").json()["items"]) == 1


def test_submit_one_rejections_name_field_value_fix(api: Api) -> None:
    r = api.post("/incidents", json=rec(1, lon="east"))
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["field"] == "lon" and err["value"] == "east" and "longitude" in err["fix"]
    missing = {k: v for k, v in rec(2).items() if k != "kind"}
    err = api.post("/incidents", json=missing).json()["error"]
    assert err["field"] == "kind" and "use one of" in err["fix"]
    # Same id, other content: reports are immutable.
    assert api.post("/incidents", json=rec(3)).status_code == 201
    err = api.post("/incidents", json=rec(3, lon=36.96)).json()["error"]
    assert err["status"] == 422 and err["field"] == "id" and "new id" in err["message"]
    # lon/lat swapped: outside the area of application, inside it when swapped back.
    err = api.post("/incidents", json=rec(4, lon=48.6, lat=36.95)).json()["error"]
    assert "swap" in err["message"]


def test_batch_reports_each_record(api: Api) -> None:
    api.post("/incidents", json=rec(1))
    records = [
        rec(1),  # already stored
        rec(2),
        rec(2),  # repeated in the same request
        rec(3, kind="meteor"),
        {"id": "x"},
        rec(4, weapon_class="laser"),
        "not an object",
        rec(5, lat=48.4),
    ]
    r = api.post("/incidents/batch", json={"incidents": records}, role="monitor")
    assert r.status_code == 200, r.text
    body = r.json()
    status = {x["index"]: x["status"] for x in body["results"]}
    assert status == {
        0: "duplicate",
        1: "accepted",
        2: "duplicate",
        3: "rejected",
        4: "rejected",
        5: "rejected",
        6: "rejected",
        7: "accepted",
    }
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 2, 4)
    why = {x["index"]: (x["field"], x["reason"]) for x in body["results"]}
    assert why[3][0] == "kind" and "meteor" in why[3][1]
    assert why[4][0] in ("observed_at", "lon", "lat", "kind", "source_type")
    assert why[5][0] == "weapon_class" and "laser" in why[5][1]


def test_batch_and_body_are_bounded(api: Api) -> None:
    r = api.post("/incidents/batch", json={"incidents": [rec(i) for i in range(51)]})
    assert r.status_code == 413 and r.json()["error"]["field"] == "incidents"
    big = {"incidents": [rec(1, narrative="x" * 3900)] * 3000}
    r = api.post("/incidents/batch", json=big)
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    assert api.get("/incidents").json()["items"] == []


def _ids(api: Api, role: str = "admin", **params: object) -> set[str]:
    r = api.get("/incidents", role=role, params=params)
    assert r.status_code == 200, r.text
    return {x["report_id"] for x in r.json()["items"]}


def test_list_filters(api: Api) -> None:
    t = "T10:00:00Z"
    records = [
        rec("a", lon=36.95, lat=48.6, party="B"),
        rec("b", lon=36.2, lat=47.2, kind="explosion", observed_at=f"{DAY}T03:00:00Z"),
        rec(
            "c",
            lon=37.4,
            lat=48.2,
            kind="heavy_weapon",
            weapon_class="tank",
            party="A",
            source_type="uav",
            day=DAY + dt.timedelta(days=1),
        ),
    ]
    assert api.post("/incidents/batch", json={"incidents": records}).json()["accepted"] == 3
    assert _ids(api) == {"a", "b", "c"}
    assert _ids(api, bbox="36.5,48.0,37.5,49.0") == {"a", "c"}
    assert _ids(api, bbox="36.0,47.0,36.5,47.5") == {"b"}
    assert _ids(api, start=f"{DAY}{t}", end=f"{DAY + dt.timedelta(days=1)}{t}") == {"a"}
    assert _ids(api, kind=["explosion", "heavy_weapon"]) == {"b", "c"}
    assert _ids(api, party="A") == {"c"}
    assert _ids(api, sector="south") == {"b", "c"}
    assert _ids(api, rule="bz-ban") == {"a"}
    assert _ids(api, source_type="uav") == {"c"}
    assert _ids(api, status="new") == {"a", "b", "c"}
    pk_a = api.get("/incidents", params={"party": "B"}).json()["items"][0]["pk"]
    api.post(f"/incidents/{pk_a}/review", json={"action": "verify"})
    assert _ids(api, status="verified") == {"a"}
    bad = api.get("/incidents", params={"bbox": "1,2,3"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "bbox"
    bad = api.get("/incidents", params={"start": "2025-03-01T00:00:00"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "start"


def test_bbox_across_the_antimeridian_is_split(api: Api) -> None:
    api.post("/incidents", json=rec("a"))
    assert _ids(api, bbox="170,40,40,50") == {"a"}  # 170E eastwards to 40E
    assert _ids(api, bbox="170,40,30,50") == set()


def test_cursor_pagination_visits_each_once(api: Api) -> None:
    records = [rec(i, lon=36.9 + i * 0.001) for i in range(23)]
    api.post("/incidents/batch", json={"incidents": records})
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/incidents", params=params).json()
        seen += [x["report_id"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 5 and sorted(seen) == sorted(r["id"] for r in records) and len(set(seen)) == 23
    bad = api.get("/incidents", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


def test_get_one_with_findings(api: Api) -> None:
    pk = api.post("/incidents", json=rec(1)).json()["pk"]
    r = api.get(f"/incidents/{pk}")
    assert r.status_code == 200
    body = r.json()
    assert body["report_id"] == "r1" and body["sector"] == "north" and body["side_party"] == "B"
    assert [f["rule_id"] for f in body["findings"]] == ["bz-ban"]
    assert body["findings"][0]["responsible"] == "B" and 0 < body["findings"][0]["probability"] <= 1
    assert api.get("/incidents/999999").status_code == 404


def test_findings_carry_their_numbers(api: Api, small: Agreement) -> None:
    """The numbers the engine gave a finding are stored and served (null for one without)."""
    lon, lat = point_at(small, 18.4, -1)  # A's side: the artillery limit is 25 km
    hw = rec(1, lon=lon, lat=lat, kind="heavy_weapon", weapon_class="art100", uncertainty_m=0)
    pk = api.post("/incidents", json=hw).json()["pk"]
    (f,) = api.get(f"/incidents/{pk}").json()["findings"]
    n = f["numbers"]
    assert f["rule_id"] == "wd-art" and "18.4 km" in f["explanation"]
    assert (n["limit_km"], n["side_party"], n["weapon_class"], n["distance_of"]) == (
        25.0,
        "A",
        "art100",
        "incident",
    )
    assert n["distance_km"] == pytest.approx(18.4, abs=1e-3)
    assert n["zone"] is None and n["counted"] is None and n["origin_method"] is None
    assert [x["numbers"] for x in api.get("/findings", params={"rule": "wd-art"}).json()["items"]] == [n]
    # a finding recorded before findings carried numbers
    api.ctx.db.write(lambda s: s.execute(text("update findings set numbers = null")))
    assert api.get(f"/incidents/{pk}").json()["findings"][0]["numbers"] is None
    assert api.get(f"/findings/{f['pk']}").json()["numbers"] is None


@pytest.mark.parametrize("role", ["admin", "analyst"])
def test_unknown_agreement_is_404_with_the_known_ones(api: Api, role: str) -> None:
    r = api.post("/incidents", json=rec(1), params={"agreement": "nope"}, role=role)
    assert r.status_code == 404 and "small" in r.json()["error"]["fix"]


@pytest.mark.parametrize(
    "extra",
    [
        {"uncertainty_m": 5e-324},  # found by schemathesis: a denormal sigma overflowed a division
        {"kind": "explosion", "bearing_deg": 359.9999999999999, "uncertainty_m": 1e-310},
        {"origin_lon": 36.0, "origin_lat": 48.0, "origin_uncertainty_m": 5e-324},
        {"count": 100_000, "uncertainty_m": 200_000},
    ],
)
def test_extreme_numbers_are_stored_not_500(api: Api, extra: dict[str, object]) -> None:
    r = api.post("/incidents", json=rec("x", **extra))
    assert r.status_code == 201, r.text


def test_text_a_database_cannot_keep_is_rejected_and_the_rest_lands(api: Api) -> None:
    # PostgreSQL refuses NUL in text and the rejects table bounds ids: each of these made the
    # whole batch fail with a 500 on PostGIS.
    records = [
        rec("nul\u0000id"),
        rec(2, narrative="before\u0000after"),
        rec("z" * 300),
        {**rec(4), "k" * 100: 1},
        rec(5, narrative="two lines\nand a tab\tare fine"),
    ]
    r = api.post("/incidents/batch", json={"incidents": records})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == ["rejected"] * 4 + ["accepted"]
    assert (res[0]["field"], res[1]["field"], res[2]["field"]) == ("id", "narrative", "id")
    assert "NUL" in res[0]["reason"] and "remove it" in res[1]["reason"]
    assert "128" in res[2]["reason"] and len(res[2]["reason"]) < 400  # the value shown is cut
    assert res[3]["field"] == "k" * 100 and "unknown field" in res[3]["reason"]
    one = api.post("/incidents", json=rec(6, party="A\u0000"))
    assert one.status_code == 422 and one.json()["error"]["field"] == "party"


def test_input_a_database_cannot_take_is_a_422_naming_it(api: Api) -> None:
    # Each of these was a 500 on PostGIS (found by schemathesis run against it): NUL in text,
    # keys beyond PostgreSQL's 32-bit integers.
    pk = api.post("/incidents", json=rec(1)).json()["pk"]
    for path, body, field in [
        (f"/incidents/{pk}/review", {"action": "verify", "comment": "a\u0000b"}, "comment"),
        (f"/incidents/{pk}/review", {"action": "verify", "findings": [2**40]}, "findings.0"),
        ("/tokens", {"role": "monitor", "name": "n\u0000"}, "name"),
    ]:
        r = api.post(path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["field"] == field
    r = api.get("/findings?sector=a%00b")
    assert r.status_code == 422 and r.json()["error"]["field"] == "sector"
    assert api.get("/incidents/%00").status_code == 422
    assert api.get(f"/incidents/{2**40}").status_code == 422
    assert api.get(f"/findings/{2**31}").status_code == 422
    assert api.get(f"/incidents?cursor={encode_cursor(2**40)}").status_code == 422


def test_an_incident_dated_after_2038_is_on_the_map(api: Api) -> None:
    # PostgreSQL's integer seconds end in January 2038: the map's times are 64-bit.
    assert api.post("/incidents", json=rec(1, day=dt.date(2040, 1, 1))).status_code == 201
    r = api.get("/dashboard/features")
    assert r.status_code == 200, r.text


def test_concurrent_single_submissions_share_commits(api: Api) -> None:
    """Many devices at once: each gets its own verdict; repeats are duplicates, never two rows."""
    from concurrent.futures import ThreadPoolExecutor

    records = [rec(i, lon=36.9 + i * 0.001) for i in range(40)] + [
        rec(i, lon=36.9 + i * 0.001) for i in range(10)
    ]
    with ThreadPoolExecutor(16) as pool:
        codes = list(
            pool.map(lambda r: api.post("/incidents", json=r, role="sensor").status_code, records)
        )
    assert codes.count(201) == 40 and codes.count(200) == 10
    assert len(api.get("/incidents", params={"limit": 1000}).json()["items"]) == 40
    assert api.get("/ledger/verify").json()["ok"]


def test_in_force_and_in_area_labels_filters_and_counts(api: Api) -> None:
    """The small agreement is in force from 2025-01-01. A report of 2024 and a CoT-like marker
    7,000+ km away are stored, labelled and judged by no rule; each filter and count sees them."""
    old, far = dt.date(2024, 6, 1), {"lon": -75.0, "lat": 40.0}
    records = [
        rec("now"),
        rec("old", day=old),
        rec("far", **far),
        rec("far-fom", kind="movement_restriction", **far),
    ]
    r = api.post("/incidents/batch", json={"incidents": records}, role="monitor")
    assert r.status_code == 200 and r.json()["accepted"] == 4, r.text
    items = {i["report_id"]: i for i in api.get("/incidents").json()["items"]}
    labels = {k: (i["in_force"], i["in_area"]) for k, i in items.items()}
    assert labels == {
        "now": (True, True),
        "old": (False, True),
        "far": (True, False),
        "far-fom": (True, False),
    }
    assert items["far"]["sector"] == "" and items["far"]["zones"] == [] and items["old"]["sector"] != ""
    judged = {i["report_id"] for i in api.get("/findings").json()["items"]}
    assert judged == {"now"}

    def ids(path: str, **params: object) -> set[str]:
        return {i["report_id"] for i in api.get(path, params=params).json()["items"]}

    assert ids("/incidents", in_area="false") == {"far", "far-fom"}
    assert ids("/incidents", in_force="false") == {"old"}
    assert ids("/incidents", in_force="true", in_area="true") == {"now"}
    s = api.get("/statistics/daily", params={"start": str(old), "end": str(DAY)}).json()
    by_day = {x["day"]: x for x in s}
    assert (by_day[str(DAY)]["incidents"], by_day[str(DAY)]["outside_area"]) == (1, 2)
    assert (by_day[str(old)]["incidents"], by_day[str(old)]["not_in_force"]) == (0, 1)
    feats = api.get("/dashboard/features", params={"in_area": "false"}).json()
    assert feats["incidents"]["n"] == 2 and not feats["findings"]["pk"]
    assert api.get("/dashboard/features", params={"in_force": "false"}).json()["incidents"]["n"] == 1
    draft = " ".join(api.get(f"/reports/{DAY}/draft", role="analyst").text.split())
    assert "2 reports outside the area of application" in draft


def test_withdrawn_reports_are_a_figure_of_the_statistics_and_the_report(api: Api) -> None:
    """ACLED's deletions applied (issue 16): a withdrawn report leaves the counts and shows as
    ``withdrawn`` in ``GET /statistics/daily`` and in the daily report, each on its own day."""
    r = api.post("/incidents/batch", json={"incidents": [rec("kept"), rec("gone"), rec("gone-2")]})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    deletions = {
        "status": 200,
        "data": [
            {"event_id_cnty": "gone", "deleted_timestamp": "1893456000"},
            {"event_id_cnty": "gone-2", "deleted_timestamp": "1893456000"},
        ],
    }
    r = api.post("/incidents/withdrawals", json=deletions, role="analyst")
    assert r.status_code == 200, r.text
    s = api.get("/statistics/daily", params={"start": str(DAY), "end": str(DAY)}).json()
    assert (s[0]["incidents"], s[0]["withdrawn"]) == (1, 2)
    draft = " ".join(api.get(f"/reports/{DAY}/draft", role="analyst").text.split())
    said = "Withdrawn by their source (not counted, no findings; kept with their history): 2 reports"
    assert said in draft
