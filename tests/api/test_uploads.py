"""Resumable uploads of attachments (tus 1.0 core semantics), on both databases.

A file sent in five chunks, one of them lost on the way and another cut short, is resumed from the
offset the server reports (HEAD) and ends filed exactly as the multipart path files it: same hash,
same ledger entry kind and audit row. A wrong offset is a 409 naming the expected one; another
user cannot continue an upload; a declared SHA-256 the bytes do not match is refused with nothing
stored; a retried final chunk files nothing twice.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from truceline.services.agreement_store import AgreementCache
from truceline.store.models import AttachmentRow, AuditRow, LedgerEntryRow

from .conftest import API, Api, make_api, rec


@pytest.fixture()
def files_api(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> Iterator[Api]:
    a = make_api(
        db_url,
        sectored_dir,
        agreement_cache,
        attachments_dir=tmp_path / "files",
        attachment_chunk_bytes=64 * 1024,
    )
    with a.client:
        yield a
    a.ctx.close()


def _noise_jpeg(seed: int, size: tuple[int, int] = (240, 180)) -> bytes:
    """A photo of noise (it does not compress: tens of kilobytes)."""
    rnd = random.Random(seed)
    im = Image.frombytes("RGB", size, bytes(rnd.getrandbits(8) for _ in range(size[0] * size[1] * 3)))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _meta(**kv: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in kv.items())


def _begin(api: Api, pk: int, data: bytes, role: str = "analyst", **meta: str):  # type: ignore[no-untyped-def]
    return api.client.post(
        f"{API}/incidents/{pk}/uploads",
        headers={
            **api.h(role),
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Metadata": _meta(filename="crater.jpg", filetype="image/jpeg", **meta),
        },
    )


def _patch(api: Api, location: str, offset: int, chunk: bytes, role: str = "analyst"):  # type: ignore[no-untyped-def]
    return api.client.patch(
        location,
        content=chunk,
        headers={
            **api.h(role),
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
        },
    )


def _head(api: Api, location: str, role: str = "analyst"):  # type: ignore[no-untyped-def]
    return api.client.head(location, headers={**api.h(role), "Tus-Resumable": "1.0.0"})


def _blobs(root: Path) -> list[Path]:
    """Files in the content-addressed store (not the partial uploads under .uploads)."""
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and ".uploads" not in p.parts)


def test_five_chunks_interrupted_and_resumed_file_as_multipart_does(
    files_api: Api, tmp_path: Path
) -> None:
    api = files_api
    root = tmp_path / "files"
    data = _noise_jpeg(1)
    sha = hashlib.sha256(data).hexdigest()
    assert len(data) > 5 * 1024
    step = -(-len(data) // 5)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    assert len(chunks) == 5

    pk = api.post("/incidents", json=rec("up-1"), role="analyst").json()["pk"]
    r = _begin(api, pk, data, sha256=sha)
    assert r.status_code == 201, r.text
    loc = r.headers["Location"]
    assert loc.startswith("/api/v1/uploads/") and r.headers["Upload-Offset"] == "0"
    assert r.headers["Tus-Resumable"] == "1.0.0" and "Upload-Expires" in r.headers

    offset = 0
    for c in chunks[:2]:
        p = _patch(api, loc, offset, c)
        assert p.status_code == 204, p.text
        offset += len(c)
        assert p.headers["Upload-Offset"] == str(offset)
    # chunk 3 is lost; the client sends chunk 4 where it thinks it belongs: 409 naming the offset
    lost_at = offset
    wrong = _patch(api, loc, offset + len(chunks[2]), chunks[3])
    assert wrong.status_code == 409, wrong.text
    assert f"{lost_at} bytes have been received" in wrong.json()["error"]["message"]
    assert f"from offset {lost_at}" in wrong.json()["error"]["fix"]
    # a connection cut mid-chunk: what arrived is kept, and HEAD says how much
    half = len(chunks[2]) // 2
    assert _patch(api, loc, offset, chunks[2][:half]).status_code == 204
    h = _head(api, loc)
    assert h.status_code == 200 and h.headers["Upload-Length"] == str(len(data))
    offset = int(h.headers["Upload-Offset"])
    assert offset == lost_at + half
    assert _blobs(root) == []  # nothing in the store before the last byte
    # resume from there
    rest = data[offset:]
    p = _patch(api, loc, offset, rest[: len(chunks[2]) - half])
    assert p.status_code == 204
    offset += len(chunks[2]) - half
    p = _patch(api, loc, offset, chunks[3])
    assert p.status_code == 204
    offset += len(chunks[3])
    last = _patch(api, loc, offset, chunks[4])
    assert last.status_code == 201, last.text
    a = last.json()
    assert (a["sha256"], a["size_bytes"], a["media_type"]) == (sha, len(data), "image/jpeg")
    assert a["created"] is True and a["filename"] == "crater.jpg"
    assert last.headers["Upload-Offset"] == str(len(data))
    assert _blobs(root) == [root / sha[:2] / sha] and (root / sha[:2] / sha).read_bytes() == data
    assert not (root / ".uploads" / loc.rsplit("/", 1)[1] / "data").exists()  # partial bytes gone

    # the multipart path on another incident: the same hash, the same kind of ledger entry and audit
    pk2 = api.post("/incidents", json=rec("up-2"), role="analyst").json()["pk"]
    m = api.post(
        f"/incidents/{pk2}/attachments",
        role="analyst",
        files={"file": ("crater.jpg", data, "image/jpeg")},
    )
    assert m.status_code == 201, m.text
    (b,) = m.json()
    assert b["sha256"] == a["sha256"] and b["integrity"] == a["integrity"]
    with api.ctx.db.read() as s:
        for att in (a, b):
            entry = s.execute(
                select(LedgerEntryRow).where(LedgerEntryRow.ref == f"attachment:{att['pk']}")
            ).scalar_one()
            assert entry.kind == "attachment"
            assert json.loads(entry.body)["content"]["sha256"] == sha
            audit = s.execute(
                select(AuditRow).where(
                    AuditRow.entity == "attachment", AuditRow.entity_id == str(att["pk"])
                )
            ).scalar_one()
            assert audit.action == "file" and audit.after is not None
            assert audit.after["sha256"] == sha

    # the final chunk retried (its answer was lost): the same attachment, nothing filed twice
    again = _patch(api, loc, offset, chunks[4])
    assert again.status_code == 200, again.text
    assert again.json()["pk"] == a["pk"] and again.json()["created"] is False
    with api.ctx.db.read() as s:
        rows = s.execute(select(AttachmentRow).where(AttachmentRow.incident_pk == pk)).scalars().all()
        assert len(rows) == 1
        assert (
            len(
                s.execute(
                    select(LedgerEntryRow).where(LedgerEntryRow.ref == f"attachment:{a['pk']}")
                ).all()
            )
            == 1
        )
    # any other offset on a finished upload is a conflict
    assert _patch(api, loc, 0, chunks[0]).status_code == 409


def test_only_the_creator_may_continue(files_api: Api) -> None:
    api = files_api
    data = _noise_jpeg(2)
    pk = api.post("/incidents", json=rec("up-3"), role="analyst").json()["pk"]
    loc = _begin(api, pk, data).headers["Location"]
    assert _patch(api, loc, 0, data[:1000]).status_code == 204
    other = _patch(api, loc, 1000, data[1000:], role="admin")
    assert other.status_code == 404, other.text
    assert "of yours" in other.json()["error"]["message"]
    assert _head(api, loc, role="admin").status_code == 404
    assert _head(api, loc, role="liaison").status_code == 403  # may not attach at all
    assert _head(api, loc).headers["Upload-Offset"] == "1000"


def test_a_declared_hash_mismatch_is_refused_and_nothing_stored(files_api: Api, tmp_path: Path) -> None:
    api = files_api
    root = tmp_path / "files"
    data = _noise_jpeg(3)
    wrong = hashlib.sha256(data + b"x").hexdigest()
    pk = api.post("/incidents", json=rec("up-4"), role="analyst").json()["pk"]
    loc = _begin(api, pk, data, sha256=wrong).headers["Location"]
    half = len(data) // 2
    assert _patch(api, loc, 0, data[:half]).status_code == 204
    r = _patch(api, loc, half, data[half:])
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert hashlib.sha256(data).hexdigest() in err["message"] and wrong in err["message"]
    assert err["field"] == "Upload-Metadata.sha256"
    assert _blobs(root) == []
    assert list((root / ".uploads").iterdir()) == []  # the upload is discarded
    with api.ctx.db.read() as s:
        assert s.execute(select(AttachmentRow)).scalars().all() == []
    assert _head(api, loc).status_code == 404


def test_limits_expiry_and_bad_headers(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> None:
    api = make_api(
        db_url,
        sectored_dir,
        agreement_cache,
        attachments_dir=tmp_path / "files",
        attachment_chunk_bytes=8 * 1024,
        attachment_max_bytes={"analyst": 100_000, "monitor": 1_000},
        attachment_upload_expiry_hours=1,
    )
    with api.client:
        data = _noise_jpeg(4)
        assert 8 * 1024 < len(data) < 100_000
        pk = api.post("/incidents", json=rec("up-5"), role="analyst").json()["pk"]
        # per-role size limit, on the declared length
        big = _begin(api, pk, data, role="monitor")
        assert big.status_code == 413 and "role monitor may attach at most 1000" in big.text
        loc = _begin(api, pk, data).headers["Location"]
        # a chunk over attachment_chunk_bytes: 413 from the body limit, nothing written
        assert _patch(api, loc, 0, data[: 9 * 1024]).status_code == 413
        assert _head(api, loc).headers["Upload-Offset"] == "0"
        # bytes past the declared length
        short = _begin(api, pk, data[:100]).headers["Location"]
        over = _patch(api, short, 0, data[:200])
        assert over.status_code == 413 and "past the declared length of 100" in over.text
        # bad metadata
        bad = api.client.post(
            f"{API}/incidents/{pk}/uploads",
            headers={**api.h("analyst"), "Upload-Length": "10", "Upload-Metadata": "filename ***"},
        )
        assert bad.status_code == 422 and "Upload-Metadata" in bad.text
        # abandoned: an hour later the upload is gone, and swept on the next start
        api.clock.now += dt.timedelta(seconds=3601)
        assert _head(api, loc).status_code == 404
        _begin(api, pk, data)
        assert len(list((tmp_path / "files" / ".uploads").iterdir())) == 1
    api.ctx.close()


def test_filing_that_failed_for_a_passing_reason_is_retried_by_an_empty_patch(
    files_api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = files_api
    data = _noise_jpeg(5)
    pk = api.post("/incidents", json=rec("up-6"), role="analyst").json()["pk"]
    loc = _begin(api, pk, data).headers["Location"]
    real = api.ctx.db.write
    calls = {"n": 0}

    def failing_once(fn, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("the database is away")
        return real(fn, **kw)

    monkeypatch.setattr(api.ctx.db, "write", failing_once)
    with pytest.raises(OSError):
        _patch(api, loc, 0, data)
    assert _head(api, loc).headers["Upload-Offset"] == str(len(data))
    with api.ctx.db.read() as s:
        assert s.execute(select(AttachmentRow)).scalars().all() == []
    r = _patch(api, loc, len(data), b"")
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest() and r.json()["created"] is True


def test_a_small_last_chunk_is_on_the_disk_before_the_file_is_checked(
    files_api: Api, tmp_path: Path
) -> None:
    """A final chunk smaller than the file object's buffer (here 1.8 kB of a small photo) is read
    back with the rest, not left in the buffer: the file is filed, not refused as truncated."""
    from ..media_samples import photo

    api = files_api
    data = photo(size=(320, 240), seed=5)
    assert len(data) < 8192
    pk = api.post("/incidents", json=rec("up-small"), role="analyst").json()["pk"]
    loc = _begin(api, pk, data).headers["Location"]
    assert _patch(api, loc, 0, data[:1000]).status_code == 204
    done = _patch(api, loc, 1000, data[1000:])
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == hashlib.sha256(data).hexdigest()
