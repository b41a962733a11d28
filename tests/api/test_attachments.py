"""Evidence files through the API and the CLI, on both databases (issue 21's "done when").

An analyst attaches a geotagged photo taken 40 km from the incident: it is stored, hashed in the
ledger and flagged with the distance named; a liaison sees it only once released, and then without
its GPS tags; the standalone verifier checks the file's bytes against the ledger. A corrupt file is
refused with nothing stored, and the same bytes sent again are filed once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from pyproj import Geod
from typer.testing import CliRunner

import truceline.ledger_verify
from truceline.cli import app as cli_app
from truceline.services.agreement_store import AgreementCache

from ..media_samples import GPS_IFD, pdf, photo
from .conftest import DAY, Api, make_api, rec

LON, LAT = 36.95, 48.6  # rec()'s position; uncertainty 50 m
TAKEN = dt.datetime(2025, 3, 1, 10, 20, tzinfo=dt.UTC)  # rec()'s time is 10:00


@pytest.fixture()
def files_api(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> Iterator[Api]:
    a = make_api(db_url, sectored_dir, agreement_cache, attachments_dir=tmp_path / "files")
    with a.client:
        yield a
    a.ctx.close()


def _stored(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _north_40km() -> tuple[float, float]:
    lon, lat, _ = Geod(ellps="WGS84").fwd(LON, LAT, 0.0, 40_000.0)
    return lon, lat


def _attach(api: Api, pk: int, data: bytes, name: str, ctype: str, role: str = "analyst"):  # type: ignore[no-untyped-def]
    return api.post(f"/incidents/{pk}/attachments", role=role, files={"file": (name, data, ctype)})


def test_a_geotagged_photo_from_40_km_away(files_api: Api, tmp_path: Path, db_url: str) -> None:
    api = files_api
    root = tmp_path / "files"
    pk = api.post("/incidents", json=rec("att-1"), role="analyst").json()["pk"]
    lon, lat = _north_40km()
    jpeg = photo(lon=lon, lat=lat, taken=TAKEN)
    sha = hashlib.sha256(jpeg).hexdigest()

    r = _attach(api, pk, jpeg, "crater.jpg", "image/jpeg")
    assert r.status_code == 201, r.text
    (a,) = r.json()
    assert (a["sha256"], a["size_bytes"], a["media_type"]) == (sha, len(jpeg), "image/jpeg")
    assert a["created"] is True and a["filed_by"] and a["released"] is False
    assert a["consistent"] is False
    assert "taken 40.0 km from the reported position, beyond its 50 m uncertainty" in a["consistency"]
    assert "20 min after the reported time" in a["consistency"]
    assert abs(a["exif_lat"] - lat) < 1e-5 and abs(a["exif_lon"] - lon) < 1e-5
    assert a["c2pa"].startswith("c2pa: ")
    assert _stored(root) == [root / sha[:2] / sha] and (root / sha[:2] / sha).read_bytes() == jpeg

    # sent again (a retried upload): the same attachment, nothing new stored or ledgered
    again = _attach(api, pk, jpeg, "crater-retry.jpg", "image/jpeg")
    assert again.status_code == 201 and again.json()[0]["pk"] == a["pk"]
    assert again.json()[0]["created"] is False
    assert len(api.get(f"/incidents/{pk}/attachments").json()) == 1
    assert len(_stored(root)) == 1

    # the analyst downloads the file as filed
    got = api.get(f"/attachments/{sha}", role="analyst")
    assert got.status_code == 200 and got.content == jpeg
    assert got.headers["x-content-sha256"] == sha and got.headers["content-type"] == "image/jpeg"

    # not released: liaisons and the public see nothing
    for role in ("liaison", "public", None):
        assert api.get(f"/attachments/{sha}", role=role).status_code == 404, role
        listed = api.get(f"/incidents/{pk}/attachments", role=role)
        assert listed.status_code == 200 and listed.json() == [], role
    for role in ("liaison", "monitor"):
        assert api.post(f"/attachments/{a['pk']}/release", role=role).status_code == 403

    rel = api.post(f"/attachments/{a['pk']}/release", role="analyst")
    assert rel.status_code == 200, rel.text
    released = rel.json()
    assert released["released"] is True and released["keep_location"] is False
    assert released["released_sha256"] not in (None, sha)

    seen = api.get(f"/attachments/{sha}", role="liaison")
    assert seen.status_code == 200
    assert hashlib.sha256(seen.content).hexdigest() == released["released_sha256"]
    assert seen.headers["x-filed-sha256"] == sha
    assert "hash differs from the filed one" in seen.headers["x-location-removed"]
    with Image.open(io.BytesIO(seen.content)) as im:
        exif = im.getexif()
        assert not exif.get_ifd(GPS_IFD) and GPS_IFD not in exif
        assert exif[0x010F] == "TestCam"  # the rest of the metadata stays
        pixels = im.tobytes()
    with Image.open(io.BytesIO(jpeg)) as im:
        assert im.tobytes() == pixels  # the image itself untouched
    (shown,) = api.get(f"/incidents/{pk}/attachments", role="liaison").json()
    assert shown["exif_lon"] is None and shown["filed_by"] is None and shown["consistent"] is False

    # the daily report lists the day's files with their hashes (published: the released ones)
    draft = api.get(f"/reports/{DAY}/draft", role="analyst")
    assert draft.status_code == 200
    assert "Evidence files" in draft.text and sha in draft.text and "crater.jpg" in draft.text
    assert "40.0 km from the reported position" in draft.text and "inconsistent" in draft.text
    assert api.post(f"/reports/{DAY}/publish", role="analyst").status_code == 201
    published = api.get(f"/reports/{DAY}", role="liaison").text
    assert f"served: {released['released_sha256']}" in published and sha in published
    assert "crater.jpg" not in published  # the file's name is the mission's, not the parties'

    # the audit trail and the ledger hold the filing and the release
    hist = api.get(f"/incidents/{pk}/history", role="analyst")
    assert hist.status_code == 200
    v = api.get("/ledger/verify").json()
    assert v["ok"], v["problems"]

    # the day is closed; the filing's proof, then the standalone verifier on the file's bytes
    api.clock.now += dt.timedelta(days=1)
    assert api.post("/ledger/close").status_code == 200
    proof = tmp_path / "proof.json"
    out = CliRunner().invoke(
        cli_app, ["ledger", "proof", f"attachment:{a['pk']}", "-o", str(proof), "--db", db_url]
    )
    assert out.exit_code == 0, out.output
    assert json.loads(proof.read_text())["entry"]["kind"] == "attachment"
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    verifier = shutil.copy(truceline.ledger_verify.__file__, alone / "ledger_verify.py")
    evidence = tmp_path / "evidence.jpg"
    evidence.write_bytes(jpeg)

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-I", verifier, str(proof), "--attachment", str(path)],
            capture_output=True,
            text=True,
            cwd=alone,
            check=False,
        )

    ok = verify(evidence)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"the file is attachment {a['pk']} of incident {pk} as filed" in ok.stdout
    tampered = tmp_path / "tampered.jpg"
    tampered.write_bytes(jpeg[:-3] + bytes([jpeg[-3] ^ 1]) + jpeg[-2:])
    bad = verify(tampered)
    assert bad.returncode == 1 and "it is not the file recorded" in bad.stdout, bad.stdout


def test_a_corrupt_or_mislabelled_file_is_refused_and_nothing_stored(
    files_api: Api, tmp_path: Path
) -> None:
    api = files_api
    root = tmp_path / "files"
    pk = api.post("/incidents", json=rec("att-2"), role="analyst").json()["pk"]
    jpeg = photo(lon=LON, lat=LAT, taken=TAKEN, seed=3)
    before = api.get("/ledger/verify").json()["entries"]

    cut = _attach(api, pk, jpeg[: len(jpeg) * 2 // 3], "cut.jpg", "image/jpeg")
    assert cut.status_code == 422, cut.text
    assert "truncated or corrupt" in cut.json()["error"]["message"]
    wrong = _attach(api, pk, pdf(), "crater.jpg", "image/jpeg")
    assert wrong.status_code == 422
    assert "declared image/jpeg but its bytes are PDF document" in wrong.json()["error"]["message"]
    unknown = _attach(api, pk, b"MZ\x90\x00 not evidence", "a.exe", "application/octet-stream")
    assert unknown.status_code == 422 and "no type an attachment may have" in unknown.text
    # a batch with one bad file stores none of it
    both = api.post(
        f"/incidents/{pk}/attachments",
        role="analyst",
        files=[
            ("file", ("good.jpg", jpeg, "image/jpeg")),
            ("file", ("bad.jpg", jpeg[:200], "image/jpeg")),
        ],
    )
    assert both.status_code == 422
    assert _stored(root) == []
    assert api.get(f"/incidents/{pk}/attachments").json() == []
    assert api.get("/ledger/verify").json()["entries"] == before

    # a photo where and when the report says is consistent; a monitor's limit is per role
    fine = _attach(api, pk, jpeg, "here.jpg", "image/jpeg", role="monitor")
    assert fine.status_code == 201, fine.text
    assert fine.json()[0]["consistent"] is True
    assert "within its 50 m uncertainty" in fine.json()[0]["consistency"]
    assert _attach(api, pk, jpeg, "x.jpg", "image/jpeg", role="liaison").status_code == 403


def test_per_role_size_limits(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> None:
    api = make_api(
        db_url,
        sectored_dir,
        agreement_cache,
        attachments_dir=tmp_path / "files",
        attachment_max_bytes={"analyst": 100_000, "monitor": 1_000},
        max_request_bytes=4096,
    )
    with api.client:
        pk = api.post("/incidents", json=rec("att-3"), role="analyst").json()["pk"]
        jpeg = photo(seed=5, size=(800, 600))
        assert 4096 < len(jpeg) < 100_000
        big = _attach(api, pk, jpeg, "p.jpg", "image/jpeg", role="monitor")
        assert big.status_code == 413 and "the most role monitor may attach" in big.text
        # uploads may be larger than other requests (the largest a role may attach)
        assert _attach(api, pk, jpeg, "p.jpg", "image/jpeg").status_code == 201
        batch = {"incidents": [rec(f"pad-{k}", narrative="x" * 200) for k in range(20)]}
        assert api.post("/incidents/batch", json=batch, role="analyst").status_code == 413
        huge = photo(seed=6, size=(1600, 1200)) + bytes(200_000)
        assert _attach(api, pk, huge, "h.jpg", "image/jpeg").status_code == 413
    api.ctx.close()
    assert len(_stored(tmp_path / "files")) == 1


def test_cli_attach(files_api: Api, tmp_path: Path, db_url: str) -> None:
    api = files_api
    pk = api.post("/incidents", json=rec("att-4"), role="analyst").json()["pk"]
    lon, lat = _north_40km()
    f = tmp_path / "far.jpg"
    f.write_bytes(photo(lon=lon, lat=lat, taken=TAKEN, seed=7))
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(f.read_bytes()[:300])
    args = ["attach", "att-4", str(f), "--db", db_url, "--attachments-dir", str(tmp_path / "files")]
    runner = CliRunner()
    out = runner.invoke(cli_app, args, env={"COLUMNS": "300"})
    assert out.exit_code == 0, out.output
    assert f"{sha}  image/jpeg" in out.output
    assert "INCONSISTENT: taken 40.0 km from the reported position" in out.output
    again = runner.invoke(cli_app, [*args, str(broken)], env={"COLUMNS": "300"})
    assert again.exit_code == 1
    assert "filed before: unchanged" in again.output and "refused" in again.output
    assert "truncated or corrupt" in again.output
    listed = api.get(f"/incidents/{pk}/attachments").json()
    assert [x["sha256"] for x in listed] == [sha]
