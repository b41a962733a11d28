"""The ledger through the API: proofs a liaison can check alone, roots for the public."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

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
    assert [c["day"] for c in closed] == ["2025-03-02"]
    roots = api.get("/ledger/roots", role=None).json()  # anyone may hold the roots
    assert roots == closed
    proof = api.get(f"/findings/{fpk}/proof", role="liaison").json()
    assert verify_proof(proof, root=roots[0]["root"]) == []
    assert '"report_hash"' in proof["entry"]["body"] and "narrative" not in proof["entry"]["body"]
    assert api.post("/ledger/close").json() == []  # nothing left to close
    v = api.get("/ledger/verify").json()
    assert v["ok"] and v["incidents"] == 2 and v["days_closed"] == 1
    # Submissions go on, into the new day.
    assert api.post("/incidents", json=rec(3, lon=36.97)).status_code == 201
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
            assert [c["day"] for c in closed] == ["2025-03-02"]
            roots = api.get("/ledger/roots", role=None).json()
            assert roots[0]["public_key"] == public
            problems, good, checked = verify_root_signatures(roots, public_key=public)
            assert problems == [] and good == 1 and checked
            assert api.post("/reports/2025-03-02/publish", role="analyst").status_code == 201
            html = api.get("/reports/2025-03-02", role=None).text
            assert public in html and "Mission's ledger key" in html
            assert api.get("/ledger/verify").json()["ok"]
    finally:
        api.ctx.close()
