"""Evidence files on incidents, with a chain of custody.

Filing (:func:`file_attachment`): the type is detected from the bytes and must agree with what the
upload declared; the file must decode to its end; its EXIF time and GPS position are compared
with the report's (:func:`truceline.core.media.consistency`); C2PA content credentials are read
when the reader is installed. Only then are the bytes stored (content-addressed: identical bytes
once) and the row written with its ledger entry (kind ``attachment``: the SHA-256, the report's
content hash, who filed it and when) and an audit row. A refused file leaves nothing behind.
Filing the same bytes on the same incident again returns the attachment already filed.

Release (:func:`release`): liaisons and the public see an attachment only once released, and
then without its location metadata (EXIF GPS, XMP) unless the analyst keeps it; the copy served
has its own hash, recorded in the release's ledger entry beside the filed one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from truceline.core.media import MEDIA_TYPES, check_declared, consistency
from truceline.core.times import as_utc
from truceline.errors import ConflictError, NotFoundError, PayloadTooLargeError, ValidationError
from truceline.io.media import STRIPPABLE, c2pa_status, check_whole, read_metadata, strip_location
from truceline.services.audit import record_change
from truceline.services.auth import Principal, Role
from truceline.services.queries import get_incident
from truceline.store import ledger
from truceline.store.attachments import BlobStore, CorruptBlobError, is_sha256
from truceline.store.models import AttachmentRow, IncidentRow

__all__ = [
    "Filed",
    "Served",
    "Upload",
    "clean_filename",
    "day_attachments",
    "file_attachment",
    "file_attachments",
    "get_file",
    "list_attachments",
    "max_bytes_for",
    "release",
    "released_only",
]


@dataclass(frozen=True, slots=True)
class Filed:
    """An attachment and whether this call filed it (False: the same bytes were filed before)."""

    row: AttachmentRow
    created: bool


@dataclass(frozen=True, slots=True)
class Served:
    """The bytes a caller is given: ``sha256`` theirs, ``filed_sha256`` the file as filed (they
    differ when the location was removed on release)."""

    data: bytes
    media_type: str
    sha256: str
    filed_sha256: str
    location_removed: bool


def released_only(who: Principal) -> bool:
    """Liaisons and the public see released attachments only."""
    return who.scope.released_only or who.role in (Role.liaison, Role.public)


def max_bytes_for(limits: Mapping[str, int], who: Principal) -> int:
    """The largest file ``who``'s role may attach (0: none)."""
    return int(limits.get(who.role.value, 0))


def _finite(v: float | None) -> float | None:
    return v if v is not None and math.isfinite(v) else None


@dataclass(frozen=True, slots=True)
class Upload:
    """One file as received: its bytes, its name and the type it was declared as (None: unsaid)."""

    data: bytes
    filename: str
    declared_type: str | None = None


#: Control characters (NUL, escape sequences, new lines) and the bidirectional overrides and
#: isolates that make ``a\u202egpj.exe`` read as ``aexe.jpg``: dropped from file names.
_HIDDEN = {
    **{c: None for c in range(0x20)},
    0x7F: None,
    **{c: None for c in range(0x80, 0xA0)},
    **{c: None for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)},
}


def clean_filename(name: str) -> str:
    """A file name as it is stored and shown: without control or bidirectional-override
    characters, a byte that was not UTF-8 (a lone surrogate) as its ``\\udcxx`` escape, at most
    255 characters."""
    return name.translate(_HIDDEN).encode("utf-8", "backslashreplace").decode("utf-8")[:255]


def _examine(u: Upload, who: Principal, max_bytes: int) -> tuple[str, str, str]:
    """(name, media type, how it was checked whole); refuses a file too large, of an unknown or
    mislabelled type, truncated or corrupt."""
    name = clean_filename(u.filename or "")
    if len(u.data) > max_bytes:
        raise PayloadTooLargeError(
            f"attachment {name!r} is {len(u.data)} bytes; role {who.role.value} may attach at "
            f"most {max_bytes}",
            field="file",
            value=len(u.data),
            fix="send a smaller file, or ask an analyst to attach it (setting attachment_max_bytes)",
        )
    if not u.data:
        raise ValidationError(f"attachment {name!r} is empty", field="file", fix="send the file's bytes")
    media_type = check_declared(u.data, declared=u.declared_type, filename=name)
    return name, media_type, check_whole(u.data, media_type, filename=name)


def file_attachments(
    session: Session,
    store: BlobStore,
    incident_pk: int,
    uploads: Sequence[Upload],
    *,
    actor: Principal,
    now: dt.datetime,
    max_bytes: int,
) -> list[Filed]:
    """File several files on one incident: every file is checked before any is stored, so one
    refused file leaves nothing of the others either; flushes."""
    incident = get_incident(session, incident_pk, scope=actor.scope)
    examined = [_examine(u, actor, max_bytes) for u in uploads]
    return [
        _file(session, store, incident, u.data, name, media_type, integrity, actor=actor, now=now)
        for u, (name, media_type, integrity) in zip(uploads, examined, strict=True)
    ]


def file_attachment(
    session: Session,
    store: BlobStore,
    incident_pk: int,
    data: bytes,
    *,
    filename: str,
    declared_type: str | None,
    actor: Principal,
    now: dt.datetime,
    max_bytes: int,
) -> Filed:
    """File ``data`` on incident ``incident_pk`` (see the module's docstring); flushes."""
    (filed,) = file_attachments(
        session,
        store,
        incident_pk,
        [Upload(data, filename, declared_type)],
        actor=actor,
        now=now,
        max_bytes=max_bytes,
    )
    return filed


def _file(
    session: Session,
    store: BlobStore,
    incident: IncidentRow,
    data: bytes,
    name: str,
    media_type: str,
    integrity: str,
    *,
    actor: Principal,
    now: dt.datetime,
) -> Filed:
    sha = hashlib.sha256(data).hexdigest()
    existing = session.execute(
        select(AttachmentRow).where(
            AttachmentRow.incident_pk == incident.pk, AttachmentRow.sha256 == sha
        )
    ).scalar_one_or_none()
    if existing is not None:
        return Filed(existing, False)
    meta = read_metadata(data, media_type)
    verdict = consistency(
        report_time=incident.observed_at,
        time_precision=incident.time_precision,
        report_lon=incident.lon,
        report_lat=incident.lat,
        uncertainty_m=incident.uncertainty_m,
        file_time=meta.time,
        file_time_zoned=meta.time_zoned,
        file_lon=meta.lon,
        file_lat=meta.lat,
        file_error_m=meta.gps_error_m,
    )
    c2pa = c2pa_status(data, media_type)
    # the row and its entry are written only once the bytes are whole in the store
    if (stored := store.put(data)) != sha:
        raise CorruptBlobError(
            f"the attachment store kept {name!r} as {stored}, not as its SHA-256 {sha}",
            field="file",
            fix="check the attachment store's implementation (put must return the bytes' SHA-256)",
        )
    exif_time = meta.time
    if exif_time is not None and exif_time.tzinfo is None:
        exif_time = exif_time.replace(tzinfo=dt.UTC)  # the camera's clock, zone unknown
    row = AttachmentRow(
        incident_pk=incident.pk,
        sha256=sha,
        size_bytes=len(data),
        media_type=media_type,
        filename=name,
        filed_by=actor.subject,
        filed_at=now,
        integrity=integrity[:128],
        exif_time=exif_time,
        exif_lon=_finite(meta.lon),
        exif_lat=_finite(meta.lat),
        consistent=verdict.consistent,
        consistency=verdict.explanation,
        c2pa=c2pa,
        released=False,
        keep_location=False,
    )
    session.add(row)
    session.flush()
    ledger.append(
        session,
        [("attachment", f"attachment:{row.pk}", ledger.attachment_content(row, incident.content_hash))],
        now=now,
    )
    record_change(
        session,
        actor=actor,
        entity="attachment",
        entity_id=row.pk,
        action="file",
        now=now,
        before=None,
        after={"incident": incident.pk, "sha256": sha, "filename": name, "media_type": media_type},
    )
    return Filed(row, True)


def _row(session: Session, pk: int) -> AttachmentRow:
    row = session.get(AttachmentRow, pk)
    if row is None:
        raise NotFoundError(
            f"no attachment {pk}",
            field="pk",
            value=pk,
            fix="list an incident's attachments (GET /api/v1/incidents/{pk}/attachments)",
        )
    return row


def list_attachments(session: Session, incident_pk: int, *, who: Principal) -> list[AttachmentRow]:
    """The attachments of an incident ``who`` may see (liaisons and the public: released ones)."""
    q = select(AttachmentRow).where(AttachmentRow.incident_pk == incident_pk)
    if released_only(who):
        q = q.where(AttachmentRow.released.is_(True))
    else:
        get_incident(session, incident_pk, scope=who.scope)  # 404 outside a monitor's sector
    return list(session.execute(q.order_by(AttachmentRow.pk)).scalars())


def get_file(session: Session, store: BlobStore, sha256: str, *, who: Principal) -> Served:
    """The bytes filed (or released) under ``sha256``, verified against their hash on the way out.

    Liaisons and the public get a released attachment only, as released (location removed
    unless kept); others get the file as filed.
    """
    sha = sha256.lower()
    missing = NotFoundError(
        f"no attachment {sha[:64]} that you may see",
        field="sha256",
        value=sha[:64],
        fix="list an incident's attachments for their hashes",
    )
    if not is_sha256(sha):
        raise missing
    rows = list(
        session.execute(
            select(AttachmentRow)
            .where(or_(AttachmentRow.sha256 == sha, AttachmentRow.released_sha256 == sha))
            .order_by(AttachmentRow.pk)
        ).scalars()
    )
    if released_only(who):
        rows = [r for r in rows if r.released]
        if not rows:
            raise missing
        r = rows[0]
        served = r.released_sha256 or r.sha256
        return Served(
            store.open(served), r.media_type, served, r.sha256, location_removed=served != r.sha256
        )
    if who.scope.restricted:
        rows = [r for r in rows if _visible(session, r.incident_pk, who)]
    if not rows:
        raise missing
    r = rows[0]
    return Served(store.open(sha), r.media_type, sha, r.sha256, location_removed=sha != r.sha256)


def _visible(session: Session, incident_pk: int, who: Principal) -> bool:
    try:
        get_incident(session, incident_pk, scope=who.scope)
    except NotFoundError:
        return False
    return True


def release(
    session: Session,
    store: BlobStore,
    pk: int,
    *,
    keep_location: bool = False,
    actor: Principal,
    now: dt.datetime,
    comment: str = "",
) -> AttachmentRow:
    """Release attachment ``pk`` to liaisons and the public: its location metadata removed (the
    copy stored under its own hash) unless ``keep_location``; ledgered and audited; flushes.

    Releasing again with the same choice changes nothing; with another, it is refused (what the
    parties were shown stays on the record).
    """
    row = _row(session, pk)
    if row.released:
        if bool(row.keep_location) == keep_location:
            return row
        raise ConflictError(
            f"attachment {pk} was released {'with' if row.keep_location else 'without'} its "
            "location already",
            field="keep_location",
            value=keep_location,
            fix="what the parties were given stays on the record; file a new attachment",
        )
    data = store.open(row.sha256)  # verified against its hash
    if keep_location:
        served = row.sha256
    elif row.media_type in STRIPPABLE:
        served = store.put(strip_location(data, row.media_type))
    elif (
        row.media_type in MEDIA_TYPES
        and row.media_type.startswith("image/")
        and not (read_metadata(data, row.media_type).has_location)
    ):
        served = row.sha256  # an image that carries no location
    else:
        strip_location(data, row.media_type)  # raises, naming the type and the fix
        served = row.sha256
    before: dict[str, object] = {"released": False, "keep_location": bool(row.keep_location)}
    row.released = True
    row.keep_location = keep_location
    row.released_sha256 = served
    row.released_at = now
    row.released_by = actor.subject
    session.flush()
    # the report hash the file was filed against (the report may have been revised since)
    filed = json.loads(ledger.entry_of(session, f"attachment:{row.pk}").body)["content"]
    report_hash = str(filed.get("report_hash", ""))
    ledger.append(
        session,
        [("attachment", f"attachment:{row.pk}", ledger.attachment_content(row, report_hash))],
        now=now,
    )
    record_change(
        session,
        actor=actor,
        entity="attachment",
        entity_id=row.pk,
        action="release",
        now=now,
        before=before,
        after={
            "released": True,
            "keep_location": keep_location,
            "released_sha256": served,
            "released_at": as_utc(now).isoformat(),
        },
        comment=comment,
    )
    return row


def day_attachments(
    session: Session, incident_pks: Sequence[int], *, released: bool = False
) -> list[AttachmentRow]:
    """The attachments of these incidents (``released``: released ones only), by incident."""
    if not incident_pks:
        return []
    q = select(AttachmentRow).where(AttachmentRow.incident_pk.in_(list(incident_pks)))
    if released:
        q = q.where(AttachmentRow.released.is_(True))
    return list(session.execute(q.order_by(AttachmentRow.incident_pk, AttachmentRow.pk)).scalars())
