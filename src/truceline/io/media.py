"""Reading evidence files: whether they are whole, what they say about themselves (EXIF time and
GPS position, C2PA content credentials), and a copy without their location.

Images are read with Pillow. A file that cannot be decoded to its end (a truncated upload, a
corrupt photo) is refused with the decoder's reason (:func:`check_whole`). A location is removed
(:func:`strip_location`) by rewriting the metadata only, never the pixels: a JPEG's EXIF segment
is written again without its GPS directory and its XMP packets (which may hold a location too)
are dropped; every other byte stays as filed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import io
import math
import re
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFile, UnidentifiedImageError

from truceline.errors import ValidationError

__all__ = [
    "STRIPPABLE",
    "FileMetadata",
    "c2pa_status",
    "check_whole",
    "read_metadata",
    "strip_location",
]

#: Types Pillow decodes here (to check them whole and read their EXIF).
_PILLOW = {"image/jpeg", "image/png", "image/webp", "image/gif", "image/tiff"}
#: Types whose location :func:`strip_location` can remove.
STRIPPABLE = frozenset({"image/jpeg", "image/png"})

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825


def _refuse(filename: str, media_type: str, reason: str) -> ValidationError:
    return ValidationError(
        f"attachment {filename!r} ({media_type}) is truncated or corrupt: {reason}; nothing was stored",
        field="file",
        value=filename,
        fix="send the whole file again (check the copy on the device)",
    )


def _boxes_whole(data: bytes) -> str | None:
    """ISO base media (MP4, MOV, HEIC): the reason the top-level boxes do not tile the file."""
    at, n = 0, len(data)
    while at < n:
        if n - at < 8:
            return f"{n - at} stray bytes after the last box"
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            if n - at < 16:
                return "a box's 64-bit size is cut off"
            (size,) = struct.unpack_from(">Q", data, at + 8)
            header = 16
        elif size == 0:
            return None  # the last box runs to the end
        if size < header:
            return f"box {kind!r} at byte {at} has an impossible size {size}"
        if at + size > n:
            return f"box {kind.decode('latin-1')!r} needs {at + size - n} more bytes than the file has"
        at += size
    return None


_STRICT = threading.Lock()


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """Pillow refusing truncated images while we check one. WeasyPrint, imported by the PDF
    report, sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` for the whole process at import, after
    which a half-uploaded JPEG decodes "whole", its missing rows grey."""
    with _STRICT:
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def check_whole(data: bytes, media_type: str, *, filename: str) -> str:
    """Refuse (:class:`ValidationError`, the reason named) a file that does not decode to its end;
    returns what was checked, for the record ("decoded by Pillow", "not checked for ...")."""
    if media_type in _PILLOW:
        try:
            with warnings.catch_warnings(), _strict_decoding():
                # a corrupt EXIF block ("Corrupt EXIF data", "Truncated File Read") is metadata,
                # not pixels: the image is judged by its decoding
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    im.verify()
                with Image.open(io.BytesIO(data)) as im:  # verify() leaves it unusable
                    im.load()
        except (OSError, SyntaxError, ValueError, UnidentifiedImageError, struct.error) as exc:
            raise _refuse(filename, media_type, f"Pillow cannot decode it ({exc})") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValidationError(
                f"attachment {filename!r} is refused: {exc}",
                field="file",
                value=filename,
                fix="send an image of at most Pillow's MAX_IMAGE_PIXELS pixels",
            ) from None
        return "decoded whole by Pillow"
    if media_type in ("video/mp4", "video/quicktime", "audio/mp4", "image/heic", "image/avif"):
        reason = _boxes_whole(data)
        if reason is not None:
            raise _refuse(filename, media_type, reason)
        return "its boxes tile the file"
    if media_type == "audio/wav":
        (size,) = struct.unpack_from("<I", data, 4) if len(data) >= 8 else (0,)
        if size + 8 > len(data):
            raise _refuse(
                filename, media_type, f"its header promises {size + 8} bytes, it has {len(data)}"
            )
        return "its RIFF size matches"
    if media_type == "application/pdf":
        if b"%%EOF" not in data[-2048:]:
            raise _refuse(filename, media_type, "it has no %%EOF marker at its end")
        return "it ends with %%EOF"
    return f"not checked whole (no decoder here for {media_type})"


@dataclass(frozen=True, slots=True)
class FileMetadata:
    """What a file says about itself. ``time``: when it was made (UTC when ``time_zoned``; else
    the camera's local time, naive); ``lon``/``lat``: WGS84 from its GPS tags; ``gps_error_m``:
    the GPS's own horizontal error when it states one."""

    time: dt.datetime | None = None
    time_zoned: bool = False
    lon: float | None = None
    lat: float | None = None
    gps_error_m: float | None = None
    has_location: bool = False


def _ratio(v: Any) -> float:
    return float(v)


def _dms(value: Any, ref: Any, negative: str) -> float | None:
    try:
        d, m, s = (_ratio(x) for x in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    deg = d + m / 60 + s / 3600
    if not math.isfinite(deg):
        return None
    return -deg if str(ref).strip().upper().startswith(negative) else deg


_EXIF_TIME = re.compile(r"^(\d{4}):(\d\d):(\d\d) (\d\d):(\d\d):(\d\d)")
_OFFSET = re.compile(r"^([+-])(\d\d):(\d\d)$")


def _exif_time(text: Any, offset: Any = None) -> tuple[dt.datetime | None, bool]:
    m = _EXIF_TIME.match(str(text or "").strip())
    if m is None:
        return None, False
    try:
        y, mo, d, h, mi, s = (int(g) for g in m.groups())
        t = dt.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None, False
    o = _OFFSET.match(str(offset or "").strip())
    if o is None:
        return t, False
    sign = -1 if o.group(1) == "-" else 1
    tz = dt.timezone(sign * dt.timedelta(hours=int(o.group(2)), minutes=int(o.group(3))))
    return t.replace(tzinfo=tz).astimezone(dt.UTC), True


def _gps_time(gps: Any) -> dt.datetime | None:
    date, hms = gps.get(29), gps.get(7)
    if date is None or hms is None:
        return None
    try:
        y, mo, d = (int(x) for x in str(date).strip().split(":"))
        h, mi, s = (_ratio(x) for x in hms)
        return dt.datetime(y, mo, d, tzinfo=dt.UTC) + dt.timedelta(hours=h, minutes=mi, seconds=s)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None


def read_metadata(data: bytes, media_type: str) -> FileMetadata:
    """The EXIF time and GPS position of an image (nothing for other types or images without)."""
    if media_type not in _PILLOW:
        return FileMetadata()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # corrupt EXIF: what can be read of it
            with Image.open(io.BytesIO(data)) as im:
                exif = im.getexif()
                sub = exif.get_ifd(_EXIF_IFD)
                gps = exif.get_ifd(_GPS_IFD)
    except (OSError, SyntaxError, ValueError, struct.error):
        return FileMetadata()
    t, zoned = _exif_time(sub.get(0x9003) or exif.get(0x0132), sub.get(0x9011) or sub.get(0x9010))
    gps_t = _gps_time(gps)
    if gps_t is not None:  # satellites' time, UTC: better than the camera's clock
        t, zoned = gps_t, True
    lat = _dms(gps.get(2), gps.get(1), "S") if gps.get(2) is not None else None
    lon = _dms(gps.get(4), gps.get(3), "W") if gps.get(4) is not None else None
    err = gps.get(31)
    try:
        err_m = None if err is None else _ratio(err)
    except (TypeError, ValueError, ZeroDivisionError):
        err_m = None
    return FileMetadata(
        time=t,
        time_zoned=zoned,
        lon=lon if lat is not None else None,
        lat=lat if lon is not None else None,
        gps_error_m=err_m,
        has_location=bool(gps) or _has_xmp(data),
    )


_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT = b"http://ns.adobe.com/xmp/extension/\x00"


def _has_xmp(data: bytes) -> bool:
    return _XMP_JPEG in data[:65536] or b"XML:com.adobe.xmp" in data[:65536]


def _exif_without_gps(data: bytes) -> bytes | None:
    """The file's EXIF (TIFF bytes with the ``Exif\\0\\0`` header) without its GPS directory;
    None when it has no EXIF."""
    with warnings.catch_warnings():
        # corrupt EXIF: what Pillow reads of it is written back, the rest (and GPS) is dropped
        warnings.simplefilter("ignore", UserWarning)
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
            if not len(exif):
                return None
            for ifd in (_EXIF_IFD, 0xA005):
                if ifd in exif:
                    exif.get_ifd(ifd)  # loaded, so that it is written back
            exif.pop(_GPS_IFD, None)
            return exif.tobytes()


def _strip_jpeg(data: bytes) -> bytes:
    exif = _exif_without_gps(data)
    out = bytearray(data[:2])
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xDA or marker == 0xD9:  # start of scan: the rest is image data
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            out += data[at : at + 2]
            at += 2
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        payload = data[at + 4 : at + 2 + length]
        seg = data[at : at + 2 + length]
        at += 2 + length
        if marker == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            if exif is not None:
                out += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
            continue
        if marker == 0xE1 and payload.startswith((_XMP_JPEG, _XMP_EXT)):
            continue  # XMP may hold a location (exif:GPSLatitude): dropped whole
        out += seg
    out += data[at:]
    return bytes(out)


def _strip_png(data: bytes) -> bytes:
    exif = _exif_without_gps(data)
    out = bytearray(data[:8])
    at = 8
    while at + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, at)
        kind = data[at + 4 : at + 8]
        body = data[at + 8 : at + 8 + length]
        chunk = data[at : at + 12 + length]
        at += 12 + length
        if kind == b"eXIf":
            if exif is not None:
                tiff = exif[6:] if exif.startswith(b"Exif\x00\x00") else exif
                crc = zlib.crc32(b"eXIf" + tiff) & 0xFFFFFFFF
                out += struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", crc)
            continue
        if kind in (b"iTXt", b"tEXt", b"zTXt") and body.split(b"\x00", 1)[0] in (
            b"XML:com.adobe.xmp",
            b"Raw profile type exif",
            b"Raw profile type APP1",
        ):
            continue
        out += chunk
    out += data[at:]
    return bytes(out)


def strip_location(data: bytes, media_type: str) -> bytes:
    """The file without its location metadata (EXIF GPS, XMP), its pixels untouched.

    Only :data:`STRIPPABLE` types; :class:`ValidationError` for the rest (video and audio keep
    their location in containers this does not rewrite).
    """
    if media_type == "image/jpeg":
        return _strip_jpeg(data)
    if media_type == "image/png":
        return _strip_png(data)
    raise ValidationError(
        f"location metadata cannot be removed from {media_type} here",
        field="keep_location",
        value=False,
        fix="check the file carries no location and release it with keep_location=true, or "
        "attach a JPEG or PNG export of it",
    )


def c2pa_status(data: bytes, media_type: str) -> str:
    """C2PA content credentials: read and validated with ``c2pa-python`` when it is installed;
    the result in one line ("c2pa: none", "c2pa: valid ...", "c2pa: invalid ...")."""
    try:
        c2pa: Any = importlib.import_module("c2pa")
    except ImportError:
        return "c2pa: not checked (reader not installed)"
    try:
        reader = c2pa.Reader.try_create(media_type, io.BytesIO(data))
    except Exception as exc:
        return f"c2pa: invalid (the manifest cannot be read: {str(exc)[:200]})"
    if reader is None:
        return "c2pa: none (the file carries no content credentials)"
    try:
        state = str(reader.get_validation_state() or "unknown")
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
    finally:
        reader.close()
    signer = (manifest.get("signature_info") or {}).get("issuer") or "an unnamed signer"
    failures = []
    if isinstance(results, dict):
        active = results.get("activeManifest") or {}
        failures = [f.get("code", "?") for f in active.get("failure") or []]
    tail = f"; failures: {', '.join(failures)}" if failures else ""
    return f"c2pa: {state.lower()} (signed by {signer}){tail}"
