"""Sensors and detections in the store, and locating stored detections as incidents."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from truceline.core.agreement import Agreement
from truceline.core.geodesy import GEOD
from truceline.io.agreement_files import load_agreement
from truceline.services.acoustic import simulate_acoustic
from truceline.services.agreement_store import AgreementCache
from truceline.services.audit import history

from .conftest import Api, make_api

START, END = "2025-01-01T05:00:00Z", "2025-01-01T07:00:00Z"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory, sectored_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("acoustic-api")
    agreement: Agreement = load_agreement(sectored_dir)
    simulate_acoustic(agreement, folder, seed=3, n_shots=10, duration_s=600.0)
    return folder


@pytest.fixture()
def api(db_url: str, sectored_dir: Path, agreement_cache: AgreementCache) -> Iterator[Api]:
    """The API with batches large enough for a whole network's detections."""
    a = make_api(db_url, sectored_dir, agreement_cache, max_batch=5000)
    with a.client:
        yield a
    a.ctx.close()


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _sensors(sim: Path) -> list[dict[str, Any]]:
    return [
        {
            "id": r["sensor_id"],
            "network": "line-net",
            "lon": float(r["lon"]),
            "lat": float(r["lat"]),
            "elevation_m": float(r["elevation_m"]),
            "timing_sigma_ms": float(r["timing_sigma_ms"]),
        }
        for r in _csv(sim / "sensors.csv")
    ]


def _detections(sim: Path) -> list[dict[str, Any]]:
    return [
        {
            "sensor_id": r["sensor_id"],
            "detection_id": r["detection_id"],
            "arrival_time": r["arrival_time"],
            "signal": r["signal"],
            "amplitude_db": float(r["amplitude_db"]),
        }
        for r in _csv(sim / "detections.csv")
    ]


def test_register_update_retire_and_geojson(api: Api, sim: Path) -> None:
    sensors = _sensors(sim)
    r = api.post("/sensors", json={"sensors": sensors}, role="sensor")
    assert r.status_code == 200 and r.json()["counts"] == {"created": len(sensors)}
    again = api.post("/sensors", json={"sensors": sensors}, role="sensor").json()
    assert again["counts"] == {"unchanged": len(sensors)}
    moved = {**sensors[0], "lon": sensors[0]["lon"] + 0.001, "retired_at": "2025-02-01T00:00:00Z"}
    bad = [
        {**sensors[1], "lat": 95},
        {k: v for k, v in sensors[2].items() if k != "lon"},
        {**sensors[3], "colour": "red"},
        "not an object",
        {**sensors[4], "id": "a\x00b"},
    ]
    res = api.post("/sensors", json={"sensors": [moved, *bad]}).json()
    verdicts = [(x["status"], x["field"]) for x in res["results"]]
    assert verdicts == [
        ("updated", None),
        ("rejected", "lat"),
        ("rejected", "lon"),
        ("rejected", "colour"),
        ("rejected", "record"),
        ("rejected", "id"),
    ]
    assert all(x["fix"] for x in res["results"][1:])
    with api.ctx.db.read() as s:
        h = history(s, "sensor", sensors[0]["id"])
    assert [a.action for a in h] == ["register", "update"]
    assert h[1].before is not None and h[1].after is not None
    assert h[1].before["lon"] == sensors[0]["lon"] and h[1].after["lon"] == moved["lon"]
    assert h[1].before["retired_at"] is None and h[1].after["retired_at"].startswith("2025-02-01")

    fc = api.get("/sensors", role="analyst").json()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == len(sensors)
    f0 = next(f for f in fc["features"] if f["properties"]["id"] == sensors[0]["id"])
    assert f0["type"] == "Feature" and f0["geometry"] == {
        "type": "Point",
        "coordinates": [moved["lon"], sensors[0]["lat"]],
    }
    assert f0["properties"]["status"] == "retired" and f0["properties"]["network"] == "line-net"
    assert {"id", "network", "kind", "status", "detections_24h"} <= set(f0["properties"])
    assert {f["properties"]["status"] for f in fc["features"][1:]} == {"active"}
    # the simulated network lies south of 48.5 N: the south monitor sees it, the north one nothing
    south = api.get("/sensors", role="monitor_south").json()["features"]
    assert len(south) == len(sensors) and api.get("/sensors", role="monitor").json()["features"] == []
    assert api.get("/sensors", role="liaison").status_code == 403
    assert api.get("/sensors", role="public").status_code == 403


def test_detections_idempotent_exact_and_paged(api: Api, sim: Path) -> None:
    api.post("/sensors", json={"sensors": _sensors(sim)}, role="sensor")
    dets = _detections(sim)[:40]
    first = api.post("/detections", json={"detections": dets}, role="sensor").json()
    assert first["counts"] == {"accepted": 40}
    pks = [x["pk"] for x in first["results"]]
    again = api.post("/detections", json={"detections": dets}, role="sensor").json()
    assert again["counts"] == {"duplicate": 40} and [x["pk"] for x in again["results"]] == pks
    changed = {**dets[0], "arrival_time": "2025-01-01T06:00:00.000001Z"}
    unknown = {**dets[1], "sensor_id": "S-NOPE"}
    future = {**dets[2], "detection_id": "late", "arrival_time": "2026-01-01T00:00:00Z"}
    naive = {**dets[3], "detection_id": "naive", "arrival_time": "2025-01-01T06:00:00"}
    res = api.post("/detections", json={"detections": [changed, unknown, future, naive]}).json()
    got = [(x["status"], x["field"]) for x in res["results"]]
    assert got == [
        ("rejected", "detection_id"),
        ("rejected", "sensor_id"),
        ("rejected", "arrival_time"),
        ("rejected", "arrival_time"),
    ]
    assert "POST /sensors" in res["results"][1]["fix"]
    # microseconds survive the round trip exactly
    stored = api.get("/detections", params={"limit": 1000}).json()["items"]
    by_id = {d["detection_id"]: d["arrival_time"] for d in stored}
    for d in dets:
        assert by_id[d["detection_id"]].replace("+00:00", "Z") == d["arrival_time"]
    # pages cover everything once; filters by sensor and time
    seen: list[int] = []
    cursor = None
    while True:
        page = api.get("/detections", params={"limit": 7, **({"cursor": cursor} if cursor else {})})
        body = page.json()
        seen += [d["pk"] for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(pks)
    sid = dets[0]["sensor_id"]
    one = api.get("/detections", params={"sensor": sid}).json()["items"]
    assert {d["sensor_id"] for d in one} == {sid} and len(one) == sum(
        d["sensor_id"] == sid for d in dets
    )
    t_mid = sorted(d["arrival_time"] for d in dets)[20]
    later = api.get("/detections", params={"start": t_mid, "limit": 1000}).json()["items"]
    assert len(later) == sum(d["arrival_time"] >= t_mid for d in dets)
    r = api.get("/detections", params={"start": "2025-01-01T06:00:00"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "start"
    # a detection in the last 24 h counts on the map
    recent = {"sensor_id": sid, "detection_id": "recent", "arrival_time": "2025-03-02T07:00:00Z"}
    assert api.post("/detections", json={"detections": [recent]}).json()["counts"] == {"accepted": 1}
    props = {f["properties"]["id"]: f["properties"] for f in api.get("/sensors").json()["features"]}
    assert props[sid]["detections_24h"] == 1 and sum(p["detections_24h"] for p in props.values()) == 1


def test_locate_stored_detections(api: Api, sim: Path) -> None:
    api.post("/sensors", json={"sensors": _sensors(sim)}, role="sensor")
    dets = _detections(sim)
    assert api.post("/detections", json={"detections": dets}, role="sensor").json()["counts"] == {
        "accepted": len(dets)
    }
    body = {"start": START, "end": END, "temperature_c": 15}
    assert api.post("/acoustic/locate", json=body, role="monitor").status_code == 403
    out = api.post("/acoustic/locate", json=body, role="analyst")
    assert out.status_code == 200, out.text
    res = out.json()
    truth = _csv(sim / "acoustic_truth.csv")
    assert res["detections"] == len(dets)
    assert res["events"] >= 0.9 * len(truth) and res["accepted"] == res["events"] - res["rejected"]
    made = [i for i in res["incidents"] if i["pk"] is not None]
    assert res["linked"] == sum(i["n_detections"] for i in made)
    # every simulated muzzle blast has a located incident within 300 m
    blasts = [t for t in truth if t["signal"] == "muzzle_blast"]
    lon = np.array([i["lon"] for i in made])
    lat = np.array([i["lat"] for i in made])
    near = 0
    for t in blasts:  # ten shots: scoring
        d = GEOD.inv(np.full(len(lon), float(t["lon"])), np.full(len(lon), float(t["lat"])), lon, lat)[2]
        near += bool(d.min() < 300)
    assert near >= 0.9 * len(blasts)
    # the incident shows its detections; the detections point back at it
    inc = made[0]
    detail = api.get(f"/incidents/{inc['pk']}", role="analyst").json()
    assert detail["source_type"] == "acoustic" and detail["submitted_by"].endswith(":analyst")
    assert len(detail["detections"]) == inc["n_detections"] >= 3
    linked = api.get("/detections", params={"associated": "true", "limit": 1000}).json()["items"]
    assert sum(d["incident_pk"] == inc["pk"] for d in linked) == inc["n_detections"]
    left = api.get("/detections", params={"associated": "false", "limit": 1000}).json()["items"]
    assert len(linked) + len(left) == len(dets) and len(left) == len(dets) - res["linked"]
    # a second call locates only what is still unassociated and makes nothing twice
    second = api.post("/acoustic/locate", json=body, role="analyst").json()
    assert second["detections"] == len(left) and second["accepted"] == 0


def test_locate_needs_a_network_and_a_sane_window(api: Api) -> None:
    body = {"start": START, "end": END}
    r = api.post("/acoustic/locate", json=body)
    assert r.status_code == 409 and r.json()["error"]["field"] == "sensors"
    r = api.post("/acoustic/locate", json={"start": END, "end": START})
    assert r.status_code in (409, 422)
    r = api.post("/acoustic/locate", json={**body, "temperature_c": 400})
    assert r.status_code == 422 and r.json()["error"]["field"] == "temperature_c"
    r = api.post("/acoustic/locate", json={**body, "temperature_c": 10, "wind_sigma_mps": 0})
    assert r.status_code == 422 and r.json()["error"]["field"] == "wind_sigma_mps"
    r = api.post("/acoustic/locate", json={"start": "2025-01-01T05:00:00", "end": END})
    assert r.status_code == 422 and r.json()["error"]["field"] == "start"


def _suite() -> Any:
    import importlib.util
    import sys

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "acoustic_cases.py"
    spec = importlib.util.spec_from_file_location("acoustic_cases", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["acoustic_cases"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_locate_shows_the_second_fix_and_the_salvo(api: Api, tmp_path: Path) -> None:
    """A straight road of sensors (mirror fixes) and salvos, made without truceline: the endpoint
    names each ambiguous event's second fix and each salvo's rounds."""
    ac = _suite()
    case = ac.Case("api", "road", "mixed", 3.0, "right", n_events=60, seed=81, road_jitter_m=10.0)
    ac.build(case, tmp_path)
    sensors = [{**s, "network": "road"} for s in _sensors(tmp_path)]
    assert api.post("/sensors", json={"sensors": sensors}, role="sensor").status_code == 200
    # the scene's day moved to one before the test server's clock
    dets = [
        {**d, "arrival_time": d["arrival_time"].replace("2025-06-01", "2025-02-01")}
        for d in _detections(tmp_path)
    ]
    r = api.post("/detections", json={"detections": dets}, role="sensor")
    assert r.json()["counts"] == {"accepted": len(dets)}
    body = {"start": "2025-02-01T05:00:00Z", "end": "2025-02-01T08:00:00Z"}
    out = api.post("/acoustic/locate", json=body, role="analyst")
    assert out.status_code == 200, out.text
    inc = out.json()["incidents"]
    amb = [i for i in inc if i["ambiguous"]]
    assert amb, "a straight road leaves some events on either side"
    for i in inc:
        if i["ambiguous"]:
            assert 0 < i["alt_weight"] <= 0.5
            # the second fix is the mirror image across the road (y = 0): the other side
            d = GEOD.inv(i["lon"], i["lat"], i["alt_lon"], i["alt_lat"])[2]
            assert d > 20.0
        else:
            assert i["alt_lon"] is None and i["alt_lat"] is None and i["alt_weight"] is None
    # the stored incident keeps its second fix as fields of its own (the map and the report draw
    # them), as the narrative states it: 6 decimals of a degree, 3 of the probability
    stored = [i for i in inc if i["pk"] is not None]
    assert any(i["ambiguous"] for i in stored)
    for i in stored:
        got = api.get(f"/incidents/{i['pk']}", role="analyst").json()
        assert got["ambiguous"] is i["ambiguous"]
        if i["ambiguous"]:
            assert got["alt_lon"] == pytest.approx(i["alt_lon"], abs=6e-7)
            assert got["alt_lat"] == pytest.approx(i["alt_lat"], abs=6e-7)
            assert got["alt_weight"] == pytest.approx(i["alt_weight"], abs=6e-4)
            assert "AMBIGUOUS: a second fix" in got["narrative"]
        else:
            assert got["alt_lon"] is None and got["alt_lat"] is None and got["alt_weight"] is None
    ids = {i["report_id"] for i in inc}
    salvo = [i for i in inc if i["salvo_report_id"]]
    assert len(salvo) >= 10, "the mixed scene fires salvos of 3-6 rounds"
    for i in salvo:
        assert i["salvo_report_id"] in ids and i["salvo_size"] >= 2
        assert sum(j["salvo_report_id"] == i["salvo_report_id"] for j in inc) == i["salvo_size"]
    assert all(i["salvo_size"] == 1 for i in inc if not i["salvo_report_id"])
