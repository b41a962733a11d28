"""The review workflow and its audit trail."""

from __future__ import annotations

from .conftest import Api, rec


def _submit(api: Api, i: int = 1) -> tuple[int, list[int]]:
    pk = api.post("/incidents", json=rec(i)).json()["pk"]
    return pk, [f["pk"] for f in api.get(f"/incidents/{pk}").json()["findings"]]


def test_verify_release_then_reject_is_recorded(api: Api) -> None:
    pk, fpks = _submit(api)
    assert fpks
    r = api.post(
        f"/incidents/{pk}/review", json={"action": "verify", "comment": "seen on camera"}, role="analyst"
    )
    assert r.status_code == 200, r.text
    assert r.json()["incident"]["status"] == "verified"
    assert {f["status"] for f in r.json()["findings"]} == {"verified"}
    r = api.post(f"/incidents/{pk}/review", json={"action": "release"}, role="analyst")
    assert r.status_code == 200 and r.json()["findings"][0]["released_at"] is not None
    api.clock.now = api.clock.now.replace(hour=12)
    r = api.post(f"/incidents/{pk}/review", json={"action": "reject", "comment": "duplicate of r9"})
    assert r.status_code == 200
    detail = api.get(f"/incidents/{pk}").json()
    assert detail["status"] == "rejected"
    assert detail["findings"][0]["status"] == "rejected" and detail["findings"][0]["released_at"] is None

    hist = api.get(f"/incidents/{pk}/history", role="analyst").json()
    inc = [h for h in hist if h["entity"] == "incident"]
    assert [(h["action"], h["before"], h["after"]) for h in inc] == [
        ("verify", {"status": "new"}, {"status": "verified"}),
        ("reject", {"status": "verified"}, {"status": "rejected"}),
    ]
    assert inc[0]["actor"].endswith(":analyst") and inc[0]["role"] == "analyst"
    assert inc[1]["actor"].endswith(":admin") and inc[1]["comment"] == "duplicate of r9"
    assert inc[1]["at"].startswith("2025-03-02T12:00")
    fin = [h["action"] for h in hist if h["entity"] == "finding"]
    assert fin == ["verify", "release", "reject"]


def test_send_back_and_rules(api: Api) -> None:
    pk, _ = _submit(api)
    r = api.post(f"/incidents/{pk}/review", json={"action": "send_back"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "comment"
    r = api.post(f"/incidents/{pk}/review", json={"action": "release"})
    assert r.status_code == 409 and "verify" in r.json()["error"]["fix"]
    r = api.post(f"/incidents/{pk}/review", json={"action": "send_back", "comment": "which weapon?"})
    assert r.status_code == 200 and r.json()["incident"]["status"] == "sent_back"
    again = api.post(f"/incidents/{pk}/review", json={"action": "send_back", "comment": "again"})
    assert again.status_code == 409
    r = api.post(f"/incidents/{pk}/review", json={"action": "verify", "findings": [999999]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "findings"
    r = api.post(f"/incidents/{pk}/review", json={"action": "dance"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "action"
    assert api.post("/incidents/999999/review", json={"action": "verify"}).status_code == 404


def test_review_a_subset_of_findings(api: Api) -> None:
    # A tank in the buffer zone near the disengagement area: several findings.
    pk = api.post(
        "/incidents", json=rec(7, lon=36.73, lat=48.77, kind="heavy_weapon", weapon_class="tank")
    ).json()["pk"]
    findings = api.get(f"/incidents/{pk}").json()["findings"]
    assert len(findings) >= 2
    first = findings[0]["pk"]
    r = api.post(f"/incidents/{pk}/review", json={"action": "verify", "findings": [first]})
    statuses = {f["pk"]: f["status"] for f in api.get(f"/incidents/{pk}").json()["findings"]}
    assert r.status_code == 200 and statuses[first] == "verified"
    assert all(s == "open" for k, s in statuses.items() if k != first)


def test_per_finding_decisions_keep_the_incident_in_the_queue_until_all_are_decided(api: Api) -> None:
    pk = api.post(
        "/incidents", json=rec(8, lon=36.73, lat=48.77, kind="heavy_weapon", weapon_class="tank")
    ).json()["pk"]
    fpks = [f["pk"] for f in api.get(f"/incidents/{pk}").json()["findings"]]
    assert len(fpks) >= 2
    first, rest = fpks[0], fpks[1:]
    r = api.post(
        f"/incidents/{pk}/review",
        role="analyst",
        json={"action": "verify", "comment": "seen on two cameras", "findings": [first]},
    )
    assert r.status_code == 200 and r.json()["changes"] == 1
    detail = api.get(f"/incidents/{pk}").json()
    assert detail["status"] == "new"  # the other findings still await review
    assert pk in {it["pk"] for it in api.get("/dashboard/queue", params={"limit": 500}).json()["items"]}
    r = api.post(f"/incidents/{pk}/review", json={"action": "reject", "findings": rest})
    assert r.status_code == 422 and r.json()["error"]["field"] == "comment"
    r = api.post(
        f"/incidents/{pk}/review", json={"action": "reject", "comment": "not a tank", "findings": rest}
    )
    assert r.status_code == 200
    detail = api.get(f"/incidents/{pk}").json()
    # All decided: the incident is verified (one finding is), each finding keeps its own decision.
    assert detail["status"] == "verified"
    assert {f["pk"]: f["status"] for f in detail["findings"]} == {
        first: "verified",
        **dict.fromkeys(rest, "rejected"),
    }
    hist = api.get(f"/incidents/{pk}/history").json()
    mine = [h for h in hist if h["entity"] == "finding" and h["entity_id"] == str(first)]
    assert [(h["action"], h["comment"], h["actor"]) for h in mine] == [
        ("verify", "seen on two cameras", mine[0]["actor"])
    ] and "analyst" in mine[0]["actor"]
    entries = api.get("/ledger/verify").json()
    assert entries["ok"], entries
