"""Ordinary parameters with hostile values: a 4xx naming the parameter, never a 500 (both databases)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from ..api.conftest import API, Api, rec
from .corpus import BAD_DETECTIONS, BAD_REQUESTS, BAD_SENSORS, BadRequest


def _send(
    api: Api, method: str, path: str, body: Any = None, role: str = "admin", raw: bytes | None = None
) -> Any:
    # json.dumps escapes lone surrogates as \ud800, as a hostile client would send them
    return api.client.request(
        method,
        path,
        content=raw if raw is not None else None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **api.h(role)},
    )


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in BAD_REQUESTS])
def test_a_hostile_parameter_gets_a_4xx_naming_it(api: Api, case: BadRequest) -> None:
    assert api.post("/incidents", json=rec(1)).status_code == 201  # pk 1 exists
    r = _send(api, case.method, case.path, case.body, case.role, case.raw)
    assert 400 <= r.status_code < 500, r.text
    err = r.json()["error"]
    assert err["field"] == case.field, err
    assert err["message"] and err["fix"], err


DEEP = [c for c in BAD_REQUESTS if c.name.startswith("deep-json-")]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in DEEP])
def test_deep_json_is_refused_naming_body_limit_and_setting_quickly(
    api: Api, case: BadRequest, caplog: pytest.LogCaptureFixture
) -> None:
    assert api.post("/incidents", json=rec(1)).status_code == 201
    t = time.perf_counter()
    r = _send(api, case.method, case.path, raw=case.raw)
    took = time.perf_counter() - t
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["message"] == (
        "body: nested more than 64 levels deep; the limit is 64 (setting uploads.max_depth)"
    ), err
    assert "uploads.max_depth" in err["fix"]
    assert took < 1.0, f"{case.name} took {took:.2f} s"
    assert "RecursionError" not in caplog.text and "Traceback" not in caplog.text
    # nesting within the limit still goes through (64 levels of arrays in a review comment: the
    # route's own validation answers, not the depth check)
    ok = _send(
        api, "POST", "/api/v1/incidents/1/review", raw=b'{"action": ' + b"[" * 63 + b"]" * 63 + b"}"
    )
    assert ok.status_code == 422 and ok.json()["error"]["field"] == "action", ok.text


@pytest.mark.parametrize("name,record,field", BAD_SENSORS, ids=[c[0] for c in BAD_SENSORS])
def test_a_bad_sensor_is_rejected_alone(api: Api, name: str, record: dict[str, Any], field: str) -> None:
    good = {"id": "S-good", "lon": 36.9, "lat": 48.6}
    r = _send(api, "POST", f"{API}/sensors", {"sensors": [good, record]})
    assert r.status_code == 200, r.text
    a, b = r.json()["results"]
    assert a["status"] == "created" and b["status"] == "rejected" and b["field"] == field, b
    ids = [f["properties"]["id"] for f in api.get("/sensors").json()["features"]]
    assert ids == ["S-good"]


@pytest.mark.parametrize("name,changes,field", BAD_DETECTIONS, ids=[c[0] for c in BAD_DETECTIONS])
def test_a_bad_detection_is_rejected_alone(
    api: Api, name: str, changes: dict[str, Any], field: str
) -> None:
    assert (
        api.post("/sensors", json={"sensors": [{"id": "S1", "lon": 36.9, "lat": 48.6}]}).status_code
        == 200
    )
    base = {"sensor_id": "S1", "arrival_time": "2025-03-01T10:00:00Z"}
    body = {"detections": [{**base, "detection_id": "good"}, {**base, **changes}]}
    r = _send(api, "POST", f"{API}/detections", body)
    assert r.status_code == 200, r.text
    a, b = r.json()["results"]
    assert a["status"] == "accepted" and b["status"] == "rejected" and b["field"] == field, b
    got = [d["detection_id"] for d in api.get("/detections").json()["items"]]
    assert got == ["good"]
