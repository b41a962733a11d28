"""Evidence files made here, with Pillow alone (no sample from elsewhere): photos with or without
EXIF time and GPS tags, and files of other kinds by their magic numbers."""

from __future__ import annotations

import datetime as dt
import io
import struct

from PIL import Image

EXIF_IFD, GPS_IFD = 0x8769, 0x8825


def _dms(deg: float) -> tuple[float, float, float]:
    a = abs(deg)
    d = int(a)
    m = int((a - d) * 60)
    s = round((a - d - m / 60) * 3600, 4)
    return (float(d), float(m), s)


def photo(
    *,
    lon: float | None = None,
    lat: float | None = None,
    taken: dt.datetime | None = None,
    fmt: str = "JPEG",
    size: tuple[int, int] = (64, 48),
    seed: int = 0,
) -> bytes:
    """A small photo; with ``lon``/``lat`` a GPS IFD (and GPS time when ``taken`` is given),
    with ``taken`` DateTimeOriginal and its offset (UTC)."""
    im = Image.new("RGB", size, ((37 * seed) % 256, 90, 160))
    for x in range(0, size[0], 7):  # some structure, so the JPEG is not trivial
        im.putpixel((x, (x * 3 + seed) % size[1]), (255, 255, 0))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    if taken is not None:
        sub = exif.get_ifd(EXIF_IFD)
        sub[0x9003] = taken.strftime("%Y:%m:%d %H:%M:%S")
        sub[0x9011] = "+00:00"
    if lon is not None and lat is not None:
        gps = exif.get_ifd(GPS_IFD)
        gps[0] = b"\x02\x03\x00\x00"
        gps[1] = "N" if lat >= 0 else "S"
        gps[2] = _dms(lat)
        gps[3] = "E" if lon >= 0 else "W"
        gps[4] = _dms(lon)
        if taken is not None:
            t = taken.astimezone(dt.UTC)
            gps[7] = (float(t.hour), float(t.minute), float(t.second))
            gps[29] = t.strftime("%Y:%m:%d")
    buf = io.BytesIO()
    im.save(buf, fmt, exif=exif.tobytes())
    return buf.getvalue()


def wav(seconds: float = 0.1, rate: int = 8000) -> bytes:
    n = int(seconds * rate)
    data = b"\x00\x00" * n
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def mp4() -> bytes:
    ftyp = struct.pack(">I4s4sI4s4s", 24, b"ftyp", b"isom", 512, b"isom", b"mp41")
    mdat = struct.pack(">I4s", 16, b"mdat") + b"\x00" * 8
    return ftyp + mdat
