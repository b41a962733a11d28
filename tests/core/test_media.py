"""Types from bytes, declared types checked, and a file's own time and place against its report."""

from __future__ import annotations

import datetime as dt

import pytest
from pyproj import Geod

from truceline.core.media import check_declared, consistency, sniff
from truceline.errors import ValidationError

from ..media_samples import mp4, pdf, photo, wav

T = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (photo(), "image/jpeg"),
        (photo(fmt="PNG"), "image/png"),
        (photo(fmt="WEBP"), "image/webp"),
        (photo(fmt="GIF"), "image/gif"),
        (photo(fmt="TIFF"), "image/tiff"),
        (wav(), "audio/wav"),
        (pdf(), "application/pdf"),
        (mp4(), "video/mp4"),
        (b"\x00\x00\x00\x18ftypqt  \x00\x00\x00\x00qt  ", "video/quicktime"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "image/heic"),
        (b"OggS\x00\x02" + bytes(20), "audio/ogg"),
        (b"ID3\x04\x00" + bytes(20), "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + bytes(20), "audio/mpeg"),
        (b"fLaC" + bytes(20), "audio/flac"),
        (b"MZ\x90\x00", None),
        (b"", None),
        (b"\x00\x00\x00\x18ftypzzzz", None),
    ],
)
def test_the_type_comes_from_the_bytes(data: bytes, expected: str | None) -> None:
    assert sniff(data) == expected


def test_declared_types_are_checked_against_the_bytes() -> None:
    assert check_declared(photo(), declared="image/jpg", filename="a.jpeg") == "image/jpeg"
    assert check_declared(photo(), declared="application/octet-stream", filename="blob") == "image/jpeg"
    with pytest.raises(ValidationError, match=r"declared image/png but its bytes are JPEG photo"):
        check_declared(photo(), declared="image/png", filename="a.png")
    with pytest.raises(ValidationError, match=r"its name says image/jpeg but its bytes are PDF"):
        check_declared(pdf(), declared=None, filename="crater.jpg")
    with pytest.raises(ValidationError, match=r"no type an attachment may have .*4d 5a") as e:
        check_declared(b"MZ\x90\x00rest", declared=None, filename="x.exe")
    assert "JPEG photo (image/jpeg)" in (e.value.fix or "")


def _at(distance_m: float, azimuth: float = 45.0) -> tuple[float, float]:
    lon, lat, _ = Geod(ellps="WGS84").fwd(36.95, 48.6, azimuth, distance_m)
    return lon, lat


def _check(distance_m: float, uncertainty_m: float = 500.0, **kw: object):  # type: ignore[no-untyped-def]
    lon, lat = _at(distance_m)
    args = {"file_time": T, "file_lon": lon, "file_lat": lat, **kw}
    return consistency(
        report_time=T,
        time_precision="minute",
        report_lon=36.95,
        report_lat=48.6,
        uncertainty_m=uncertainty_m,
        **args,  # type: ignore[arg-type]
    )


def test_a_photo_40_km_away_is_flagged_with_the_distance_named() -> None:
    c = _check(40_200.0)
    assert c.consistent is False
    assert c.explanation.startswith(
        "taken 40.2 km from the reported position, beyond its 500 m uncertainty"
    )
    assert c.distance_m == pytest.approx(40_200.0, abs=0.01)


@pytest.mark.parametrize(
    ("distance_m", "ok"), [(0.0, True), (2_500.0, True), (2_600.0, False), (100_000.0, False)]
)
def test_the_position_tolerance(distance_m: float, ok: bool) -> None:
    # 3 x 500 m + 50 m (GPS error unsaid) + 1 km camera standoff = 2,550 m
    assert _check(distance_m).consistent is ok


@pytest.mark.parametrize(
    ("offset", "precision", "zoned", "ok"),
    [
        (dt.timedelta(minutes=-5), "minute", True, True),  # within precision + clock slack
        (dt.timedelta(minutes=-30), "minute", True, False),
        (dt.timedelta(minutes=-30), "hour", True, True),
        (dt.timedelta(hours=-5), "minute", False, True),  # a camera time without a zone
        (dt.timedelta(hours=48), "minute", True, True),  # photographed after the fact
        (dt.timedelta(days=5), "minute", True, False),
    ],
)
def test_the_time_tolerance(offset: dt.timedelta, precision: str, zoned: bool, ok: bool) -> None:
    t = T + offset
    c = consistency(
        report_time=T,
        time_precision=precision,
        report_lon=36.95,
        report_lat=48.6,
        uncertainty_m=50.0,
        file_time=t if zoned else t.replace(tzinfo=None),
        file_time_zoned=zoned,
    )
    assert c.consistent is ok, c.explanation
    assert c.time_diff_s == pytest.approx(offset.total_seconds())


def test_a_file_that_says_nothing_is_neither() -> None:
    c = consistency(
        report_time=T,
        time_precision="minute",
        report_lon=36.95,
        report_lat=48.6,
        uncertainty_m=50.0,
        file_time=None,
    )
    assert c.consistent is None and "no time or position" in c.explanation
