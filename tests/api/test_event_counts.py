"""Counts: a report of "12 explosions" is one report that stands for twelve; an event counts the
most any of its reports says, the rounds of a barrage stay apart, and the daily figures count
explosions in events (not reports). Small mixes written here, through the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from truceline.core.geodesy import GEOD
from truceline.store import ledger
from truceline.store.models import EventRow, IncidentRow

from .conftest import DAY, Api

LAT = 48.6
#: one round of the barrage every km to the east, a minute apart
ROUNDS = [GEOD.fwd(37.1, LAT, 90.0, 1000.0 * k)[:2] for k in range(3)]


def _r(
    rid: str, lon: float, lat: float, minute: int, second: int, source: str, **kw: Any
) -> dict[str, Any]:
    s = 60 * minute + second
    return {
        "id": rid, "observed_at": f"{DAY}T10:{s // 60:02d}:{s % 60:02d}Z", "time_precision": "second",
        "lon": lon, "lat": lat, "kind": "explosion", "source_type": source, **kw,
    }  # fmt: skip


def _post(api: Api, recs: list[dict[str, Any]], role: str = "admin") -> None:
    r = api.post("/incidents/batch", json={"incidents": recs}, role=role)
    assert r.status_code in (200, 201), r.text


def _mix(api: Api, op_count: int) -> None:
    """A barrage of three rounds (each fixed by the acoustic network and a camera, round 2 also
    heard by a patrol 400 m-uncertain); a patrol's "12 explosions" and an observation post's
    ``op_count`` 200 m off, 30 s later; a lone camera report of 3 explosions; a report of armed
    personnel (an event, no explosion)."""
    mine: list[dict[str, Any]] = []
    for k, (lon, lat) in enumerate(ROUNDS):
        mine.append(_r(f"ac{k}", float(lon), float(lat), 0, 60 * k, "acoustic", uncertainty_m=5))
        mine.append(
            _r(f"cam{k}", float(lon) + 0.0002, float(lat), 0, 60 * k + 2, "camera", uncertainty_m=25)
        )
    mine.append(_r("lone", 37.1, 48.75, 40, 0, "camera", uncertainty_m=25, count=3))
    mine.append(_r("troops", 37.1, 48.8, 50, 0, "patrol", uncertainty_m=50, kind="armed_personnel"))
    _post(api, mine)
    lon1, lat1 = ROUNDS[1]
    _post(
        api,
        [_r("pat-r1", float(lon1), float(lat1) + 0.0004, 1, 20, "patrol", uncertainty_m=400)],
        "monitor",
    )
    lat_a = 48.65
    _, lat_b, _ = GEOD.fwd(37.1, lat_a, 0.0, 200.0)
    _post(api, [_r("pat-12", 37.1, lat_a, 30, 0, "patrol", uncertainty_m=250, count=12)], "monitor")
    _post(
        api,
        [_r("op", 37.1, float(lat_b), 30, 30, "observation_post", uncertainty_m=250, count=op_count)],
        "analyst",
    )


def _events(api: Api) -> dict[str, tuple[int | None, int | None]]:
    """Each report's event and that event's count."""
    with api.ctx.db.read() as s:
        rows = s.execute(
            select(IncidentRow.report_id, IncidentRow.event_id, EventRow.count).join(
                EventRow, EventRow.pk == IncidentRow.event_id, isouter=True
            )
        ).all()
    return {rid: (ev, n) for rid, ev, n in rows}


def _stats(api: Api) -> dict[str, Any]:
    s = api.get("/statistics/daily", params={"start": str(DAY), "end": str(DAY)})
    assert s.status_code == 200, s.text
    return dict(s.json()[0])


def test_an_event_counts_the_most_its_reports_say_and_rounds_stay_apart(api: Api) -> None:
    _mix(api, op_count=10)
    ev = _events(api)
    # the barrage: three events of one explosion each, the patrol in round 2's
    rounds = [ev[f"ac{k}"][0] for k in range(3)]
    assert None not in rounds and len(set(rounds)) == 3
    assert all(ev[f"cam{k}"] == ev[f"ac{k}"] for k in range(3))
    assert ev["pat-r1"][0] == rounds[1]
    assert [ev[f"ac{k}"][1] for k in range(3)] == [1, 1, 1]
    # "12 explosions" and "10 explosions" of one event: it counts 12, not 2 reports nor 22
    assert ev["pat-12"][0] is not None and ev["pat-12"] == ev["op"] and ev["op"][1] == 12
    assert ev["lone"][0] is None
    detail = api.get(f"/events/{ev['op'][0]}")
    assert detail.status_code == 200 and detail.json()["count"] == 12, detail.text
    s = _stats(api)
    assert s["incidents"] == 11
    assert (s["events"], s["explosion_events"], s["explosions"]) == (6, 5, 3 + 12 + 3)
    draft = " ".join(api.get(f"/reports/{DAY}/draft", role="analyst").text.split())
    assert '18</div><div class="l">explosions in 6 events' in draft


def test_counts_far_apart_are_not_linked_automatically(api: Api) -> None:
    """The same two reports, but one says 1 explosion and the other 12: as near in place and
    time, they are less likely one event; the pair is left to an analyst."""
    _mix(api, op_count=1)
    ev = _events(api)
    assert ev["pat-12"][0] is None and ev["op"][0] is None
    dups = api.get("/duplicates", role="analyst")
    assert dups.status_code == 200, dups.text
    s = _stats(api)
    assert (s["events"], s["explosions"]) == (7, 3 + 12 + 1 + 3)


def test_ledger_verify_checks_event_counts(api: Api) -> None:
    """An event's count follows from its reports' counts and its members, which the ledger
    holds: `ledger verify` finds an event whose count was changed."""
    _mix(api, op_count=10)
    with api.ctx.db.read() as s:
        assert ledger.verify(s).ok
    ev = _events(api)["op"][0]
    with api.ctx.db.write_engine.begin() as c:
        c.execute(text("UPDATE events SET count = 22 WHERE pk = :e"), {"e": ev})
    with api.ctx.db.read() as s:
        out = ledger.verify(s)
    said = [p.message for p in out.problems]
    assert any(f"event {ev} counts 22" in d and "say 12" in d for d in said), said
