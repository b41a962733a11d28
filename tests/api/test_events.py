"""Fused events: reports of one event linked on ingest; analysts split and merge them."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select

from truceline.core.geodesy import GEOD
from truceline.services.audit import history
from truceline.store.models import LedgerEntryRow

from .conftest import Api, rec


def _blast(name: str, *, source: str, lon: float = 37.1, lat: float = 48.6, **kw: Any) -> dict[str, Any]:
    return rec(name, lon=lon, lat=lat, kind="explosion", source_type=source, uncertainty_m=100, **kw)


def _pk(r: Any) -> int:
    assert r.status_code in (200, 201), r.text
    return int(r.json()["pk"])


def _event_of(api: Api, pk: int) -> int | None:
    return api.get(f"/incidents/{pk}").json()["event_id"]


def _three(api: Api, lon: float = 37.1, lat: float = 48.6) -> tuple[int, int, int, int]:
    """One explosion seen by a camera (admin), heard by a patrol (monitor, 150 m off, 20 s late)
    and by another patrol (analyst); returns the event and the three reports."""
    _, lat2, _ = GEOD.fwd(lon, lat, 0.0, 150.0)
    a = _pk(api.post("/incidents", json=_blast(f"cam-{lon}", source="camera", lon=lon, lat=lat)))
    b = _pk(
        api.post(
            "/incidents",
            json=_blast(
                f"pat-{lon}", source="patrol", lon=lon, lat=float(lat2),
                observed_at="2025-03-01T10:00:20Z", time_precision="second",
            ),
            role="monitor",
        )
    )  # fmt: skip
    c = _pk(
        api.post(
            "/incidents", json=_blast(f"op-{lon}", source="observation_post", lon=lon, lat=lat),
            role="analyst",
        )
    )  # fmt: skip
    ev = _event_of(api, a)
    assert ev is not None
    return ev, a, b, c


def test_reports_of_one_event_are_linked(api: Api) -> None:
    ev, a, b, c = _three(api)
    assert _event_of(api, b) == ev and _event_of(api, c) == ev
    detail = api.get(f"/incidents/{a}").json()
    linked = detail["linked_reports"]
    assert [x["pk"] for x in linked] == [c, b]  # nearest first
    assert linked[1]["source_type"] == "patrol" and linked[1]["submitted_by"].endswith(":monitor")
    assert abs(linked[1]["distance_m"] - 150.0) < 0.5 and linked[1]["time_offset_s"] == 20.0
    event = api.get(f"/events/{ev}").json()
    assert [m["pk"] for m in event["members"]] == [a, b, c]
    assert event["n_reports"] == 3 and event["n_sources"] == 3 and event["origin"] == "fusion"
    # the fused position lies between the reports: the inverse-covariance mean, each report's
    # stated 100 m raised to its source's floor (patrols and posts: 250 m)
    from truceline.core.fusion import DEFAULT_SOURCES

    w = (
        1.0
        / np.maximum(
            100.0,
            [DEFAULT_SOURCES[s].position_floor_m for s in ("camera", "patrol", "observation_post")],
        )
        ** 2
    )
    _, _, d = GEOD.inv(37.1, 48.6, event["lon"], event["lat"])
    assert abs(d - 150.0 * w[1] / w.sum()) < 1.0
    # far away, or another kind (small-arms fire is no explosion; a muzzle flash may be one heard
    # from afar), or the same source again: not linked
    far = _pk(api.post("/incidents", json=_blast("far", source="uav", lon=37.4)))
    assert _event_of(api, far) is None
    flash = _pk(
        api.post("/incidents", json={**_blast("flash", source="uav"), "kind": "small_arms_fire"})
    )
    assert _event_of(api, flash) is None
    assert api.get(f"/incidents/{far}").json()["linked_reports"] == []
    # a fourth source joins the event
    uav = _pk(api.post("/incidents", json=_blast("uav", source="uav"), role="analyst"))
    assert _event_of(api, uav) == ev
    assert api.get(f"/events/{ev}").json()["n_reports"] == 4
    # the camera again, at the same place and time: the links are weighed again as one batch
    # would weigh them, and the event keeps one report per source, at most one of the two camera
    # reports. The two are alike: which of them is the event's, the reports cannot decide (each
    # is one under a one-to-one matching of the sources' reports with probability about 1/2), so
    # neither is linked by a guess, and each is offered to an analyst with the event
    again = _pk(api.post("/incidents", json=_blast("cam-again", source="camera")))
    after = api.get(f"/events/{ev}").json()
    members = {m["pk"] for m in after["members"]}
    assert after["n_reports"] == len(members) and {b, c, uav} <= members
    assert len(members & {a, again}) <= 1
    listed = api.get("/duplicates", role="analyst").json()
    offered = listed["items"] if isinstance(listed, dict) else listed
    pairs = [({d["a"]["pk"], d["b"]["pk"]}, d["probability"]) for d in offered]
    assert {a, again} - members <= set().union(*(k for k, _ in pairs))
    assert all(0.3 < p < 0.7 for k, p in pairs if k & {a, again})


def test_split_then_merge_audited_and_in_the_ledger(api: Api) -> None:
    ev, a, b, c = _three(api)
    r = api.post(f"/events/{ev}/split", json={"incidents": [b], "comment": "patrol heard another"})
    assert r.status_code == 200, r.text
    out = r.json()
    kept, new = out["events"]
    assert kept["id"] == ev and [m["pk"] for m in kept["members"]] == [a, c]
    assert new["id"] != ev and [m["pk"] for m in new["members"]] == [b]
    assert new["origin"] == "split" and kept["n_reports"] == 2
    with api.ctx.db.read() as s:
        h = history(s, "event", ev)
        hn = history(s, "event", new["id"])
    assert h[-1].action == "split" and h[-1].comment == "patrol heard another"
    assert h[-1].before is not None and h[-1].after is not None
    assert h[-1].before["members"] == [a, b, c] and h[-1].after["members"] == [a, c]
    assert hn[-1].before is None and hn[-1].after == {**hn[-1].after, "members": [b]}
    assert sorted(out["audit"]) == sorted([h[-1].pk, hn[-1].pk])
    assert api.get("/ledger/verify").json()["ok"]
    # a later report of the same event does not undo the analyst's split
    late = _pk(api.post("/incidents", json=_blast("uav-late", source="uav"), role="analyst"))
    assert _event_of(api, late) == ev and _event_of(api, b) == new["id"]

    r = api.post("/events/merge", json={"events": [new["id"], ev], "comment": "one shell after all"})
    assert r.status_code == 200, r.text
    keep, gone = r.json()["events"]
    assert keep["id"] == ev and [m["pk"] for m in keep["members"]] == sorted([a, b, c, late])
    assert gone["id"] == new["id"] and gone["members"] == [] and gone["merged_into"] == ev
    with api.ctx.db.read() as s:
        h = history(s, "event", ev)
        q = select(LedgerEntryRow).where(LedgerEntryRow.ref == f"event:{ev}")
        entry = s.execute(q.order_by(LedgerEntryRow.seq)).scalars().all()
    assert h[-1].action == "merge" and h[-1].before["members"] == [a, c, late]  # type: ignore[index]
    assert [e.kind for e in entry] == ["review", "review"]
    assert '"action":"merge"' in entry[-1].body and f'"event:{new["id"]}":[{b}]' in entry[-1].body
    verified = api.get("/ledger/verify").json()
    assert verified["ok"] and not verified["problems"]
    assert api.get(f"/events/{new['id']}").json()["merged_into"] == ev


def test_split_and_merge_refuse_what_makes_no_sense(api: Api) -> None:
    ev, a, b, c = _three(api)
    other, *_ = _three(api, lon=37.3)
    r = api.post(f"/events/{ev}/split", json={"incidents": [a, 999_999]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "incidents"
    assert r.json()["error"]["value"] == "[999999]"  # echoed as text
    r = api.post(f"/events/{ev}/split", json={"incidents": [a, b, c]})
    assert r.status_code == 409 and "empty" in r.json()["error"]["message"]
    r = api.post(f"/events/{ev}/split", json={"incidents": []})
    assert r.status_code == 422
    assert api.post("/events/424242/split", json={"incidents": [a]}).status_code == 404
    assert api.post("/events/merge", json={"events": [ev, ev]}).status_code == 422
    r = api.post("/events/merge", json={"events": [ev, 424242]})
    assert r.status_code == 404 and r.json()["error"]["value"] == "[424242]"
    assert api.post("/events/merge", json={"events": [ev, other]}).status_code == 200
    r = api.post("/events/merge", json={"events": [other, ev]})
    assert r.status_code == 409 and r.json()["error"]["field"] == "events"
    for role in ("monitor", "liaison", "sensor"):
        assert api.post(f"/events/{ev}/split", json={"incidents": [a]}, role=role).status_code == 403


def test_monitors_see_events_of_their_sector_only(api: Api) -> None:
    ev, *_ = _three(api)  # 48.6 N: the north sector
    south, *_ = _three(api, lon=37.3, lat=48.3)
    assert api.get(f"/events/{ev}", role="monitor").status_code == 200
    assert api.get(f"/events/{south}", role="monitor").status_code == 404
    assert api.get(f"/events/{south}", role="monitor_south").status_code == 200
    assert api.get(f"/events/{ev}", role="liaison").status_code == 403
    assert api.get("/events/424242", role="analyst").status_code == 404
    # an event across the sector line is hidden from both monitors; linked reports follow the scope
    x = _pk(api.post("/incidents", json=_blast("x-n", source="camera", lon=37.6, lat=48.5004)))
    y = _pk(
        api.post(
            "/incidents", json=_blast("x-s", source="patrol", lon=37.6, lat=48.4996), role="analyst"
        )
    )
    ev_x = _event_of(api, x)
    assert ev_x is not None and _event_of(api, y) == ev_x
    assert api.get(f"/events/{ev_x}", role="monitor").status_code == 404
    assert api.get(f"/events/{ev_x}", role="monitor_south").status_code == 404
    assert api.get(f"/incidents/{x}", role="monitor").json()["linked_reports"] == []
    assert [r["pk"] for r in api.get(f"/incidents/{x}").json()["linked_reports"]] == [y]


def test_a_batch_links_among_itself_and_to_stored_reports(api: Api) -> None:
    """Many reports in one batch: candidates from the KD-tree, pairs within the window only."""
    rng = np.random.default_rng(1)
    n = 30
    lon = 36.9 + rng.uniform(0, 0.6, n)
    lat = 48.55 + rng.uniform(0, 0.4, n)
    minute = rng.integers(0, 600, n)
    cams = [
        _blast(f"c{k}", source="camera", lon=float(lon[k]), lat=float(lat[k]),
               observed_at=f"2025-03-01T{minute[k] // 60:02d}:{minute[k] % 60:02d}:00Z")
        for k in range(n)
    ]  # fmt: skip
    res = api.post("/incidents/batch", json={"incidents": cams}).json()
    assert res["accepted"] == n
    pks = [r["pk"] for r in res["results"]]
    assert all(_event_of(api, p) is None for p in pks)  # one source: never one event
    pats = [{**c, "id": f"p{k}", "source_type": "patrol"} for k, c in enumerate(cams)]
    res = api.post("/incidents/batch", json={"incidents": pats}, role="analyst").json()
    events = [_event_of(api, r["pk"]) for r in res["results"]]
    assert events == [_event_of(api, p) for p in pks]  # each patrol report joins its camera
    assert len(set(events)) == n and None not in events


def test_linking_is_idempotent_and_one_report_per_source(api: Api) -> None:
    """Resending stored reports changes no event; no automatic event holds a source twice."""
    rng = np.random.default_rng(7)
    n = 24
    lon = 36.9 + rng.uniform(0, 0.2, n)
    lat = 48.55 + rng.uniform(0, 0.1, n)
    recs = [
        _blast(f"{src}{k}", source=src, lon=float(lon[k]), lat=float(lat[k]))
        for k in range(n)
        for src in ("camera", "uav")
    ]
    first = api.post("/incidents/batch", json={"incidents": recs}).json()
    before = {r["pk"]: _event_of(api, r["pk"]) for r in first["results"]}
    again = api.post("/incidents/batch", json={"incidents": recs}).json()
    assert again["duplicates"] == len(recs)
    assert {r["pk"]: _event_of(api, r["pk"]) for r in again["results"]} == before
    by_event: dict[int, list[str]] = {}
    for r in api.get("/incidents", params={"limit": 1000}).json()["items"]:
        if r["event_id"] is not None:
            by_event.setdefault(r["event_id"], []).append(f"{r['source_type']}:{r['submitted_by']}")
    assert by_event and all(len(v) == len(set(v)) for v in by_event.values())


def test_possible_duplicates_are_offered_with_their_probability_and_reasons(api: Api) -> None:
    """A camera sees an explosion; a patrol writes down one 1.2 km off and 8 minutes later, with
    an 800 m uncertainty: maybe the same, maybe not. Fusion does not guess: the pair is offered
    to analysts with its probability, and each incident says why."""
    _, lat2, _ = GEOD.fwd(37.1, 48.6, 0.0, 1200.0)
    cam = _pk(api.post("/incidents", json=_blast("dup-cam", source="camera")))
    pat = _pk(
        api.post(
            "/incidents",
            json={
                **_blast("dup-pat", source="patrol", lat=float(lat2)),
                "uncertainty_m": 800, "observed_at": "2025-03-01T10:08:00Z",
            },
            role="monitor",
        )
    )  # fmt: skip
    assert _event_of(api, cam) is None and _event_of(api, pat) is None  # not linked: uncertain
    page = api.get("/duplicates").json()
    pair = [d for d in page["items"] if {d["a"]["pk"], d["b"]["pk"]} == {cam, pat}]
    assert len(pair) == 1, page
    p = pair[0]["probability"]
    assert 0.1 <= p < 0.9
    assert pair[0]["reason"]["sources"] and abs(pair[0]["reason"]["distance_m"] - 1200.0) < 5.0
    assert abs(pair[0]["reason"]["time_apart_s"]) == 480.0
    # the incident says so too
    why = api.get(f"/incidents/{cam}").json()["fusion"]
    assert [(w["status"], w["other_pk"]) for w in why] == [("possible", pat)]
    assert why[0]["probability"] == p and why[0]["reason"]["link_threshold"] == 0.9
    # analysts only; a monitor may not read the queue
    assert api.get("/duplicates", role="monitor").status_code == 403
    assert api.get("/duplicates", params={"min_probability": 0.95}).json()["items"] == []


def test_a_link_carries_its_probability_on_the_incident(api: Api) -> None:
    _, a, b, c = _three(api)
    why = api.get(f"/incidents/{b}").json()["fusion"]
    linked = [w for w in why if w["status"] == "linked"]
    assert linked and all(w["probability"] >= 0.9 for w in linked)
    assert {w["other_pk"] for w in linked} <= {a, c}
    assert linked[0]["reason"]["kinds"] == ["explosion", "explosion"]


def test_an_analyst_answers_a_possible_duplicate_and_later_batches_keep_it(api: Api) -> None:
    """Linked by an analyst: both reports in one event (audited), gone from the queue, and a later
    report near them does not undo it; dismissed: gone from the queue, nothing linked."""
    _, lat2, _ = GEOD.fwd(37.1, 48.6, 0.0, 1200.0)
    late = {"uncertainty_m": 800, "observed_at": "2025-03-01T10:08:00Z"}
    cam = _pk(api.post("/incidents", json=_blast("q-cam", source="camera")))
    pat = _pk(api.post("/incidents", json={**_blast("q-pat", source="patrol", lat=float(lat2)), **late}))
    item = next(
        d for d in api.get("/duplicates").json()["items"] if {d["a"]["pk"], d["b"]["pk"]} == {cam, pat}
    )
    assert (
        api.post(f"/duplicates/{item['pk']}/decide", json={"same": True}, role="monitor").status_code
        == 403
    )
    r = api.post(f"/duplicates/{item['pk']}/decide", json={"same": True, "comment": "same crater"})
    assert r.status_code == 200, r.text
    ev = r.json()["events"][0]["id"]
    assert r.json()["audit"] and _event_of(api, cam) == ev == _event_of(api, pat)
    assert all(
        {d["a"]["pk"], d["b"]["pk"]} != {cam, pat} for d in api.get("/duplicates").json()["items"]
    )
    # a later report of another source nearby: the analyst's event stands
    _pk(api.post("/incidents", json=_blast("q-uav", source="uav"), role="analyst"))
    assert _event_of(api, cam) == ev == _event_of(api, pat)
    # another uncertain pair, dismissed
    lon3 = 37.3
    _, lat3, _ = GEOD.fwd(lon3, 48.6, 0.0, 1200.0)
    cam2 = _pk(api.post("/incidents", json=_blast("q-cam2", source="camera", lon=lon3)))
    pat2 = _pk(
        api.post(
            "/incidents", json={**_blast("q-pat2", source="patrol", lon=lon3, lat=float(lat3)), **late}
        )
    )
    item = next(
        d for d in api.get("/duplicates").json()["items"] if {d["a"]["pk"], d["b"]["pk"]} == {cam2, pat2}
    )
    r = api.post(f"/duplicates/{item['pk']}/decide", json={"same": False})
    assert r.status_code == 200 and r.json()["events"] == [] and r.json()["audit"]
    assert _event_of(api, cam2) is None and _event_of(api, pat2) is None
    assert all(d["pk"] != item["pk"] for d in api.get("/duplicates").json()["items"])
    assert api.post("/duplicates/999999/decide", json={"same": True}).status_code == 404


def test_server_settings_override_the_agreements_fusion_parameters(
    db_url: str, sectored_dir: Any
) -> None:
    """A server's ``fusion`` settings win over the agreement's (and the defaults): here a patrol's
    clock and the thresholds; the fields not named stay the agreement's. The pair's reason on
    the incident carries the thresholds in force."""
    import pytest

    from truceline.core.fusion import DEFAULT_SOURCES, FusionSettings
    from truceline.services.agreement_store import AgreementCache
    from truceline.settings import load_settings

    from .conftest import make_api

    over = {
        "link_threshold": 0.95,
        "offer_threshold": 0.05,
        "sources": {"patrol": {"clock_sigma_s": 5.0}},
    }
    a = make_api(db_url, sectored_dir, AgreementCache(over), fusion=over)
    with a.client:
        cam = _pk(a.post("/incidents", json=_blast("ov-cam", source="camera")))
        _, lat2, _ = GEOD.fwd(37.1, 48.6, 0.0, 1200.0)
        pat = _pk(
            a.post(
                "/incidents",
                json={**_blast("ov-pat", source="patrol", lat=float(lat2)), "uncertainty_m": 800,
                      "observed_at": "2025-03-01T10:08:00Z"},
                role="monitor",
            )
        )  # fmt: skip
        why = a.get(f"/incidents/{cam}").json()["fusion"]
        assert why and why[0]["other_pk"] == pat
        assert why[0]["reason"]["link_threshold"] == 0.95
        assert why[0]["reason"]["offer_threshold"] == 0.05
    a.ctx.close()
    merged = FusionSettings().overridden(over)
    assert merged.source("patrol").clock_sigma_s == 5.0
    assert merged.source("patrol").delay_max_s == DEFAULT_SOURCES["patrol"].delay_max_s
    assert merged.source("camera") == DEFAULT_SOURCES["camera"]
    with pytest.raises(Exception, match=r"fusion\.link_threshold"):
        load_settings(db="x.db", fusion={"link_threshold": 2.0})
