"""The patrols' tracks on the map (GET /dashboard/patrols), on SQLite and PostGIS: a line per
device in time order on the days asked for; the mission sees every track, a monitor the devices
of their own token, the parties' liaisons and the public none."""

from __future__ import annotations

import datetime as dt

from truceline.services.patrols import PatrolPosition, store_positions

from ..api.conftest import DAY, Api

T0 = dt.datetime.combine(DAY, dt.time(8), tzinfo=dt.UTC)


def _positions(uid: str, n: int, lon0: float, minutes: int = 10) -> list[PatrolPosition]:
    """A device driving east, one fix every ``minutes`` (given out of order)."""
    fixes = [
        PatrolPosition(
            uid=uid,
            cot_type="a-f-G-U-C",
            observed_at=T0 + dt.timedelta(minutes=minutes * k),
            lon=lon0 + 0.01 * k,
            lat=48.6,
            uncertainty_m=10.0,
            callsign=f"{uid.upper()}-1",
            group_name="Cyan",
        )
        for k in range(n)
    ]
    return fixes[::-1]


def _store(api: Api, who: str, fixes: list[PatrolPosition]) -> None:
    api.ctx.db.write(
        lambda s: store_positions(s, "small", fixes, submitted_by=who, now=T0 + dt.timedelta(days=1))
    )


def test_tracks_per_device_in_time_order_for_the_mission_only(api: Api) -> None:
    monitor = api.get("/me", role="monitor").json()["subject"]
    _store(api, "someone-else", _positions("alpha", 5, 36.9))
    _store(api, monitor, _positions("bravo", 3, 37.2))
    _store(api, "someone-else", _positions("charlie", 1, 37.5))
    fc = api.get("/dashboard/patrols", role="analyst", params={"start": str(DAY)}).json()
    by_uid = {f["properties"]["uid"]: f for f in fc["features"]}
    assert sorted(by_uid) == ["alpha", "bravo", "charlie"] and fc["truncated"] is False
    alpha = by_uid["alpha"]
    assert alpha["geometry"]["type"] == "LineString"
    lons = [x for x, _ in alpha["geometry"]["coordinates"]]
    assert lons == sorted(lons) and len(lons) == 5  # in time order, though stored newest first
    assert alpha["properties"]["positions"] == 5 and alpha["properties"]["callsign"] == "ALPHA-1"
    assert alpha["properties"]["first"] == "2025-03-01T08:00:00Z"
    assert alpha["properties"]["last"] == "2025-03-01T08:40:00Z"
    assert by_uid["charlie"]["geometry"]["type"] == "Point"  # one fix: a point
    # Other days: nothing; a day range that holds it: the same.
    other = api.get("/dashboard/patrols", role="analyst", params={"start": "2025-03-02"}).json()
    assert other["features"] == []
    span = {"start": "2025-02-28", "end": "2025-03-01"}
    assert len(api.get("/dashboard/patrols", role="analyst", params=span).json()["features"]) == 3
    cut = api.get("/dashboard/patrols", role="analyst", params={"start": str(DAY), "limit": 4}).json()
    assert cut["truncated"] is True and sum(f["properties"]["positions"] for f in cut["features"]) == 4
    # A monitor: the devices their own token reported.
    mine = api.get("/dashboard/patrols", role="monitor", params={"start": str(DAY)}).json()
    assert [f["properties"]["uid"] for f in mine["features"]] == ["bravo"]
    # The parties and the public: refused (signed out: not signed in).
    for role in ("liaison", "liaison_b", "public"):
        r = api.get("/dashboard/patrols", role=role, params={"start": str(DAY)})
        assert r.status_code == 403, role
    assert api.get("/dashboard/patrols", role=None, params={"start": str(DAY)}).status_code == 401
    bad = api.get("/dashboard/patrols", role="analyst", params={"start": str(DAY), "end": "2025-02-01"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "end"
