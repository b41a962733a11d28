"""Evidence files read with Pillow: whole or not, their EXIF, a copy without their location;
and the content-addressed store's atomic writes and verified reads."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from PIL import Image

from truceline.errors import ValidationError
from truceline.io import media
from truceline.store.attachments import CorruptBlobError, LocalStore

from ..media_samples import GPS_IFD, mp4, pdf, photo, wav

T = dt.datetime(2025, 3, 1, 10, 5, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_exif_time_and_gps_are_read_and_removed(fmt: str) -> None:
    data = photo(lon=-3.70379, lat=-40.4168, taken=T, fmt=fmt)
    mt = f"image/{fmt.lower()}"
    m = media.read_metadata(data, mt)
    assert m.time == T and m.time_zoned and m.has_location
    assert m.lon == pytest.approx(-3.70379, abs=1e-6) and m.lat == pytest.approx(-40.4168, abs=1e-6)
    stripped = media.strip_location(data, mt)
    assert stripped != data
    media.check_whole(stripped, mt, filename="s")
    s = media.read_metadata(stripped, mt)
    assert s.lon is None and s.lat is None and not s.has_location
    assert s.time == T  # DateTimeOriginal stays (GPS time went with the GPS directory)
    with Image.open(io.BytesIO(stripped)) as a, Image.open(io.BytesIO(data)) as b:
        assert GPS_IFD not in a.getexif() and a.tobytes() == b.tobytes()


def test_truncated_and_corrupt_files_are_refused_with_the_reason() -> None:
    jpeg = photo(taken=T, size=(200, 150))
    for cut in (jpeg[: len(jpeg) // 2], jpeg[:-2]):
        with pytest.raises(ValidationError, match="truncated or corrupt"):
            media.check_whole(cut, "image/jpeg", filename="c.jpg")
    # data after the image (a phone's "motion photo" video) is allowed; an end-of-image marker
    # before the image data (a thumbnail's) does not hide a cut scan
    thumb = Image.new("RGB", (8, 8))
    tb = io.BytesIO()
    thumb.save(tb, "JPEG")
    assert media.check_whole(jpeg + b"trailer: a motion photo's video", "image/jpeg", filename="m")
    with_thumb = jpeg[:2] + b"\xff\xfe" + (len(tb.getvalue()) + 2).to_bytes(2, "big") + tb.getvalue()
    with_thumb += jpeg[2:]
    media.check_whole(with_thumb, "image/jpeg", filename="t.jpg")
    with pytest.raises(ValidationError, match="image file is truncated"):
        media.check_whole(with_thumb[:-2], "image/jpeg", filename="t.jpg")
    png = photo(fmt="PNG")
    broken = png[:40] + bytes([png[40] ^ 0xFF]) + png[41:]  # a flipped byte: the CRC fails
    with pytest.raises(ValidationError, match="Pillow cannot decode it"):
        media.check_whole(broken, "image/png", filename="b.png")
    with pytest.raises(ValidationError, match="more bytes than the file has"):
        media.check_whole(mp4()[:-4], "video/mp4", filename="v.mp4")
    with pytest.raises(ValidationError, match="header promises"):
        media.check_whole(wav()[:-10], "audio/wav", filename="a.wav")
    with pytest.raises(ValidationError, match="no %%EOF"):
        media.check_whole(pdf()[:-7], "application/pdf", filename="d.pdf")
    assert "not checked whole" in media.check_whole(b"OggS" + bytes(30), "audio/ogg", filename="o")


def test_location_cannot_be_removed_from_video() -> None:
    with pytest.raises(ValidationError, match="cannot be removed from video/mp4") as e:
        media.strip_location(mp4(), "video/mp4")
    assert "keep_location" in (e.value.fix or "")


def test_c2pa_is_reported_honestly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert media.c2pa_status(photo(), "image/jpeg").startswith("c2pa: none")

    def missing(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr("truceline.io.media.importlib.import_module", missing)
    assert media.c2pa_status(photo(), "image/jpeg") == "c2pa: not checked (reader not installed)"


def test_the_store_keeps_bytes_once_and_verifies_every_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp_path)
    data = photo()
    sha = store.put(data)
    assert sha == hashlib.sha256(data).hexdigest() and store.put(data) == sha
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [sha]  # no temp file left
    assert store.open(sha) == data
    (tmp_path / sha[:2] / sha).write_bytes(data[:-1] + b"\x00")
    with pytest.raises(CorruptBlobError, match=f"attachment {sha} is corrupt: its stored bytes hash to"):
        store.open(sha)


def test_truncated_images_are_refused_after_weasyprint_is_imported() -> None:
    """WeasyPrint (the PDF report) lets Pillow load truncated images process-wide: not here."""
    import weasyprint  # noqa: F401  (its import sets PIL.ImageFile.LOAD_TRUNCATED_IMAGES)
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES
    jpeg = photo(taken=T, size=(200, 150))
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        media.check_whole(jpeg[: len(jpeg) // 2], "image/jpeg", filename="cut.jpg")
    assert ImageFile.LOAD_TRUNCATED_IMAGES  # left as WeasyPrint wants it
