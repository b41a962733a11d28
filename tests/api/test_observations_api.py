"""``POST /incidents/observations`` (issue 16): monitors' observations as they write them, an
observer with a direction arc, a distance range and a time window, through the API as
``import --format smm`` reads them; checked with pyproj directly."""

from __future__ import annotations

import datetime as dt

from pyproj import Geod

from .conftest import Api

G = Geod(ellps="WGS84")
OBSERVER = (36.90, 48.62)


def _obs(oid: str, **over: object) -> dict[str, object]:
    return {
        "id": oid,
        "observer_lon": OBSERVER[0],
        "observer_lat": OBSERVER[1],
        "observed_from": "2025-03-01T21:00:00+02:00",
        "observed_to": "2025-03-01T23:30:00+02:00",
        "bearing": "SE",
        "distance_min_km": 3,
        "distance_max_km": 5,
        "count": 3,
        "kind": "undetermined explosion",
        "source_type": "observation_post",
        **over,
    }


def test_observations_land_in_their_sector_and_bad_ones_alone_are_refused(api: Api) -> None:
    body = {
        "observations": [
            _obs("se"),
            _obs("w-to-n", bearing=None, bearing_from_deg=270, bearing_to_deg=0, kind="bursts"),
            _obs("no-distance", distance_max_km=None),
            _obs("reversed", observed_to="2025-03-01T20:00:00+02:00"),
            "not an object",
        ]
    }
    r = api.post("/incidents/observations", json=body, role="monitor")
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["accepted"], out["rejected"]) == (2, 3), out
    by = {x["id"]: x for x in out["results"]}
    assert [x["index"] for x in out["results"]] == [0, 1, 2, 3, 4]
    assert by["no-distance"]["field"] == "distance_max_km"
    assert by["reversed"]["field"] == "observed_to"
    assert out["results"][4]["status"] == "rejected"
    for rid, (a0, a1) in {"se": (123.75, 146.25), "w-to-n": (270.0, 360.0)}.items():
        inc = api.get(f"/incidents/{by[rid]['pk']}").json()
        az, _, dist = G.inv(OBSERVER[0], OBSERVER[1], inc["lon"], inc["lat"])
        assert a0 <= az % 360.0 <= a1 and 3000.0 <= dist <= 5000.0, (rid, az, dist)
        # the window's middle, 22:15 EET, in UTC
        t = dt.datetime.fromisoformat(inc["observed_at"].replace("Z", "+00:00"))
        assert t == dt.datetime(2025, 3, 1, 20, 15, tzinfo=dt.UTC)
        assert inc["uncertainty_m"] > 500.0  # the sector, not a point
    assert api.get(f"/incidents/{by['w-to-n']['pk']}").json()["kind"] == "small_arms_fire"
    # the same again: duplicates, nothing stored twice
    again = api.post("/incidents/observations", json={"observations": [_obs("se")]}, role="monitor")
    assert again.json()["duplicates"] == 1
