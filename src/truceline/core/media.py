"""Evidence files: what their bytes are, and whether where and when they say they were made agrees
with the report they are filed on.

:func:`sniff` names a file's type from its first bytes (magic numbers), never from its name:
a ``photo.jpg`` that is a PDF is a PDF. :func:`check_declared` refuses a file whose declared type
(the upload's ``Content-Type``, the name's extension) is another than the bytes say.
:func:`consistency` compares a photo's own time and position (EXIF) with the report's, each with
its uncertainty, and explains a disagreement in words and numbers.
"""

from __future__ import annotations

import datetime as dt
import math
import mimetypes
from dataclasses import dataclass

from truceline.core.geodesy import GEOD
from truceline.core.times import as_utc
from truceline.errors import ValidationError

__all__ = [
    "CAMERA_STANDOFF_M",
    "MEDIA_TYPES",
    "PRECISION_S",
    "Consistency",
    "check_declared",
    "consistency",
    "sniff",
]

#: Every type an attachment may have: ``media type -> what it is`` (the refusal lists them).
MEDIA_TYPES: dict[str, str] = {
    "image/jpeg": "JPEG photo",
    "image/png": "PNG image",
    "image/webp": "WebP image",
    "image/gif": "GIF image",
    "image/tiff": "TIFF image",
    "image/heic": "HEIC photo",
    "image/avif": "AVIF image",
    "video/mp4": "MP4 video",
    "video/quicktime": "QuickTime (MOV) video",
    "video/webm": "WebM/Matroska video",
    "audio/mp4": "M4A audio",
    "audio/wav": "WAV audio",
    "audio/mpeg": "MP3 audio",
    "audio/ogg": "Ogg audio",
    "audio/flac": "FLAC audio",
    "application/pdf": "PDF document",
}

_HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"dash"}
_MP4_BRANDS |= {b"M4V ", b"3gp4", b"3gp5", b"3gp6", b"3g2a", b"MSNV", b"f4v "}

#: Names the same type goes by (``image/jpg``, ``audio/x-wav``...) -> the name used here.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/heif": "image/heic",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "audio/x-m4a": "audio/mp4",
    "video/x-matroska": "video/webm",
    "video/mov": "video/quicktime",
    "application/x-pdf": "application/pdf",
}
#: Declared types that say nothing (a client that does not know): not compared.
_UNSAID = {"", "application/octet-stream", "binary/octet-stream"}


def sniff(data: bytes) -> str | None:
    """The media type the bytes are, from their magic numbers; None when none is known."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"RIFF") and len(head) >= 12:
        return {b"WEBP": "image/webp", b"WAVE": "audio/wav"}.get(head[8:12])
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        brand = head[8:12]
        if brand in _HEIC_BRANDS:
            return "image/heic"
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        if brand in _MP4_BRANDS:
            return "video/mp4"
        return None
    if head.startswith(b"\x1aE\xdf\xa3"):
        return "video/webm"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    # an MPEG audio frame: 11 sync bits, a version other than "reserved", layer III
    if len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        version, layer = (head[1] >> 3) & 3, (head[1] >> 1) & 3
        if version != 1 and layer == 1 and (head[2] >> 4) not in (0, 15):
            return "audio/mpeg"
    return None


def _normal(media_type: str) -> str:
    t = media_type.split(";", 1)[0].strip().lower()
    return _ALIASES.get(t, t)


def check_declared(data: bytes, *, declared: str | None, filename: str) -> str:
    """The file's media type from its bytes; :class:`ValidationError` naming both types when the
    bytes are of no known type, or of another than ``declared`` or the name's extension says."""
    real = sniff(data)
    what = f"attachment {filename!r}"
    if real is None:
        raise ValidationError(
            f"{what}: its bytes are of no type an attachment may have (they begin "
            f"{data[:8].hex(' ') or 'with nothing'})",
            field="file",
            value=filename,
            fix="attach a photo, video, audio recording or PDF: "
            + ", ".join(f"{v} ({k})" for k, v in MEDIA_TYPES.items()),
        )
    said = _normal(declared or "")
    if said not in _UNSAID and said != real:
        raise ValidationError(
            f"{what} is declared {said} but its bytes are {MEDIA_TYPES[real]} ({real})",
            field="content_type",
            value=said,
            fix=f"send it as {real}, or check that it is the file you meant",
        )
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    by_name = _normal(guessed) if guessed else None
    if by_name in MEDIA_TYPES and by_name != real:
        raise ValidationError(
            f"{what}: its name says {by_name} but its bytes are {MEDIA_TYPES[real]} ({real})",
            field="filename",
            value=filename,
            fix="rename it to the type its bytes are, or check that it is the file you meant",
        )
    return real


#: What a report's stated time precision means, in seconds either side.
PRECISION_S = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
#: A photograph is taken from some distance of what it shows (a crater, a vehicle).
CAMERA_STANDOFF_M = 1000.0
#: Clocks of cameras and phones drift; a device's clock this far off is not a disagreement.
CLOCK_SLACK_S = 600.0
#: Evidence is often photographed after the fact (a crater the next morning): this long after the
#: report's time is consistent; before it (beyond its precision) is not.
AFTER_S = 72 * 3600.0
#: A camera time without a zone (EXIF DateTimeOriginal alone) may be any local time.
ZONE_SLACK_S = 14 * 3600.0


@dataclass(frozen=True, slots=True)
class Consistency:
    """Whether a file's own time and position agree with its report's.

    ``consistent`` None: the file states neither (nothing to compare). ``distance_m`` and
    ``time_diff_s`` (the file's time minus the report's) are None where the file does not say.
    """

    consistent: bool | None
    explanation: str
    distance_m: float | None = None
    time_diff_s: float | None = None


def _km(m: float) -> str:
    return f"{m / 1000:.1f} km" if m >= 1000 else f"{m:.0f} m"


def _span(s: float) -> str:
    a = abs(s)
    if a >= 86400:
        return f"{a / 86400:.1f} days"
    if a >= 3600:
        return f"{a / 3600:.1f} h"
    if a >= 60:
        return f"{a / 60:.0f} min"
    return f"{a:.0f} s"


def consistency(
    *,
    report_time: dt.datetime,
    time_precision: str,
    report_lon: float,
    report_lat: float,
    uncertainty_m: float,
    file_time: dt.datetime | None,
    file_time_zoned: bool = True,
    file_lon: float | None = None,
    file_lat: float | None = None,
    file_error_m: float | None = None,
) -> Consistency:
    """Compare a file's own time and position (EXIF) with its report's.

    Position: the geodesic distance (WGS84) from the reported position to where the file says it
    was made must be within 3 × the report's uncertainty (1 sigma, m) plus the file's own GPS
    error (``file_error_m``, 50 m when unsaid) plus :data:`CAMERA_STANDOFF_M`. Time: the file's
    time may be up to the report's precision plus :data:`CLOCK_SLACK_S` before the report's, and
    :data:`AFTER_S` after it; a camera time without a zone (``file_time_zoned`` False, naive
    ``file_time`` taken as UTC) widens both sides by :data:`ZONE_SLACK_S`.
    """
    parts: list[str] = []
    bad: list[str] = []
    distance = diff = None
    if file_lon is not None and file_lat is not None:
        if not (math.isfinite(file_lon) and math.isfinite(file_lat) and abs(file_lat) <= 90):
            bad.append(f"its GPS position ({file_lon}, {file_lat}) is not a position")
        else:
            _, _, distance = GEOD.inv(report_lon, report_lat, file_lon, file_lat)
            gps = 50.0 if file_error_m is None or not math.isfinite(file_error_m) else file_error_m
            tolerance = 3 * uncertainty_m + gps + CAMERA_STANDOFF_M
            where = f"taken {_km(distance)} from the reported position" + (
                f", beyond its {_km(uncertainty_m)} uncertainty (tolerance {_km(tolerance)}: "
                f"3 × uncertainty + {gps:.0f} m GPS error + {_km(CAMERA_STANDOFF_M)} from "
                "camera to subject)"
                if distance > tolerance
                else f", within its {_km(uncertainty_m)} uncertainty (tolerance {_km(tolerance)})"
            )
            (bad if distance > tolerance else parts).append(where)
    if file_time is not None:
        t = file_time if file_time.tzinfo else file_time.replace(tzinfo=dt.UTC)
        diff = (as_utc(t) - as_utc(report_time)).total_seconds()
        precision = PRECISION_S.get(time_precision, 60.0)
        zone = 0.0 if file_time_zoned else ZONE_SLACK_S
        before, after = precision + CLOCK_SLACK_S + zone, AFTER_S + precision + zone
        when = f"{_span(diff)} {'after' if diff >= 0 else 'before'} the reported time"
        zone_note = "" if file_time_zoned else " (the camera's time has no zone)"
        if diff < -before:
            bad.append(f"taken {when}{zone_note}, earlier than its {time_precision} precision allows")
        elif diff > after:
            bad.append(f"taken {when}{zone_note}, more than {_span(AFTER_S)} after the event")
        else:
            parts.append(f"taken {when}{zone_note}")
    if not bad and not parts:
        return Consistency(None, "the file states no time or position of its own", distance, diff)
    if bad:
        return Consistency(False, "; ".join(bad + parts), distance, diff)
    return Consistency(True, "; ".join(parts), distance, diff)
