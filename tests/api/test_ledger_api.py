"""The ledger through the API: proofs a liaison can check alone, roots for the public."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest

from truceline.ledger_verify import verify_proof, verify_root_signatures
from truceline.services.agreement_store import AgreementCache
from truceline.services.ledger_keys import keygen

from .conftest import Api, make_api, rec


def test_released_finding_proof_for_a_liaison(api: Api) -> None:
    pk = api.post("/incidents", json=rec(1)).json()["pk"]
    api.post("/incidents", json=rec(2, lon=36.96))
    fpk = api.get(f"/incidents/{pk}").json()["findings"][0]["pk"]
    api.post(f"/incidents/{pk}/review", json={"action": "verify"})
    api.post(f"/incidents/{pk}/review", json={"action": "release"})
    r = api.get(f"/findings/{fpk}/proof", role="liaison")
    assert r.status_code == 409 and "not closed" in r.json()["error"]["message"]
    api.clock.now += dt.timedelta(days=1)
    closed = api.post("/ledger/close").json()
    # the day closed, and a checkpoint of the new day so far (it holds the day's closing)
    assert [(c["day"], c["checkpoint"]) for c in closed] == [("2025-03-02", False), ("2025-03-03", True)]
    roots = api.get("/ledger/roots", role=None).json()  # anyone may hold the roots
    assert roots == closed
    proof = api.get(f"/findings/{fpk}/proof", role="liaison").json()
    assert verify_proof(proof, root=roots[0]["root"]) == []
    # the liaison's proof commits to the incident key and the report's hash without showing them
    body = proof["entry"]["body"]
    content = json.loads(body)["content"]
    assert set(content["commitments"]) == {"incident", "report_hash"} and "openings" not in proof
    assert "incident" not in content and "report_hash" not in content and "narrative" not in body
    # the mission's staff get the same entry with the values opened, which the verifier checks
    staff = api.get(f"/findings/{fpk}/proof").json()
    assert staff["entry"] == proof["entry"] and verify_proof(staff, root=roots[0]["root"]) == []
    assert staff["openings"]["incident"]["value"] == pk
    report_hash = staff["openings"]["report_hash"]["value"]
    assert len(report_hash) == 64 and report_hash not in json.dumps(proof)
    forged = json.loads(json.dumps(staff))
    forged["openings"]["incident"]["value"] = pk + 1
    assert verify_proof(forged) == [f"the opened 'incident' ({pk + 1}) is not the value committed to"]
    assert api.post("/ledger/close").json() == []  # nothing left to close
    v = api.get("/ledger/verify").json()
    assert v["ok"] and v["incidents"] == 2 and v["days_closed"] == 1
    # Submissions go on, into the new day.
    assert api.post("/incidents", json=rec(3, lon=36.97)).status_code == 201
    assert api.get("/ledger/verify").json()["ok"]


def test_a_finding_recorded_before_commitments_has_no_proof_for_a_liaison(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its entry holds the incident key and the report's hash: the mission's staff get its proof
    (no openings: there is nothing to open); a liaison is refused, with the reason."""
    with monkeypatch.context() as m:  # ingest as before migration 0015
        m.setattr("truceline.store.incidents.new_salts", lambda n: [None] * n)
        pk = api.post("/incidents", json=rec(1)).json()["pk"]
    fpk = api.get(f"/incidents/{pk}").json()["findings"][0]["pk"]
    api.post(f"/incidents/{pk}/review", json={"action": "verify"})
    api.post(f"/incidents/{pk}/review", json={"action": "release"})
    api.clock.now += dt.timedelta(days=1)
    api.post("/ledger/close")
    staff = api.get(f"/findings/{fpk}/proof").json()
    assert verify_proof(staff) == [] and "openings" not in staff
    assert json.loads(staff["entry"]["body"])["content"]["incident"] == pk
    r = api.get(f"/findings/{fpk}/proof", role="liaison")
    assert r.status_code == 409 and "ask the mission" in r.json()["error"]["fix"], r.json()
    assert api.get("/ledger/verify").json()["ok"]


def test_days_closed_through_the_api_are_signed_and_reports_print_the_key(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> None:
    key = tmp_path / "mission.key"
    public = keygen(key)
    api = make_api(db_url, sectored_dir, agreement_cache, ledger_key=key)
    try:
        with api.client:
            api.post("/incidents", json=rec(1))
            api.clock.now += dt.timedelta(days=1)
            closed = api.post("/ledger/close").json()
            assert [c["day"] for c in closed] == ["2025-03-02", "2025-03-03"]  # and a checkpoint
            roots = api.get("/ledger/roots", role=None).json()
            assert roots[0]["public_key"] == public
            problems, good, checked = verify_root_signatures(roots, public_key=public)
            assert problems == [] and good == 2 and checked
            assert api.post("/reports/2025-03-02/publish", role="analyst").status_code == 201
            html = api.get("/reports/2025-03-02", role=None).text
            assert public in html and "Mission's ledger key" in html
            assert api.get("/ledger/verify").json()["ok"]
    finally:
        api.ctx.close()


def test_the_server_checkpoints_every_n_minutes_and_reports_print_the_latest_root(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> None:
    """With `ledger_checkpoint_minutes` set, the running server (its lifespan task) closes the
    ledger up to now on its own: a same-day proof verifies and the draft report prints the root."""
    key = tmp_path / "mission.key"
    public = keygen(key)
    api = make_api(
        db_url, sectored_dir, agreement_cache, ledger_key=key, ledger_checkpoint_minutes=0.002
    )
    try:
        with api.client:  # runs the lifespan
            pk = api.post("/incidents", json=rec(1)).json()["pk"]
            fpk = api.get(f"/incidents/{pk}").json()["findings"][0]["pk"]
            deadline = time.monotonic() + 30  # the first round runs 0.12 s after start
            while api.get(f"/findings/{fpk}/proof").status_code != 200:
                assert time.monotonic() < deadline, "no checkpoint within 30 s"
                time.sleep(0.05)
            roots = api.get("/ledger/roots", role=None).json()
            (cp,) = roots
            assert cp["checkpoint"] and cp["day"] == "2025-03-02" and cp["public_key"] == public
            proof = api.get(f"/findings/{fpk}/proof").json()
            assert verify_proof(proof, root=cp["root"], public_key=public) == []
            draft = api.get("/reports/2025-03-02/draft", role="analyst").text
            assert "Latest ledger root" in draft and cp["root"] in draft
            # idle: the next rounds add nothing
            time.sleep(0.5)
            assert api.get("/ledger/roots", role=None).json() == roots
            assert api.get("/ledger/verify").json()["ok"]
    finally:
        api.ctx.close()


def test_checkpoints_can_be_turned_off(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache
) -> None:
    api = make_api(db_url, sectored_dir, agreement_cache, ledger_checkpoint_minutes=0)
    try:
        with api.client:
            api.post("/incidents", json=rec(1))
            time.sleep(0.3)
            assert api.get("/ledger/roots", role=None).json() == []
    finally:
        api.ctx.close()
