"""Resumable uploads of attachments (the semantics of the tus 1.0 core protocol).

:func:`begin` checks the incident (and the caller's sector), the declared length against the
role's limit and the declared SHA-256's form, and opens an upload. :func:`chunk` holds the upload
for one PATCH, refusing another caller (404: uploads are private to their creator), an expired
upload (404), an offset other than the bytes received (409, naming the expected offset), and bytes
past the declared length (413). Chunks are written to disk as they arrive: a partial upload is
never held in memory. :func:`complete`, once the last byte has arrived, hashes the file from
disk, checks it against the declared SHA-256, and files it through
:func:`truceline.services.attachments.file_attachments`, the multipart path's own function (same
checks, ledger entry and audit row). A refused file is discarded with its upload: nothing is
half-stored. A finished upload remembers its attachment, so a retried final chunk files nothing
again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from truceline.core.times import as_utc
from truceline.errors import (
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    TrucelineError,
    ValidationError,
)
from truceline.services import attachments
from truceline.services.auth import Principal
from truceline.services.queries import get_incident
from truceline.store.attachments import BlobStore, is_sha256
from truceline.store.db import Database
from truceline.store.models import AttachmentRow
from truceline.store.uploads import UploadArea

__all__ = ["Chunk", "UploadState", "begin", "chunk", "complete", "status"]


@dataclass(frozen=True, slots=True)
class UploadState:
    id: str
    incident_pk: int
    length: int
    offset: int
    filename: str
    expires: dt.datetime
    #: the attachment's pk once the upload is filed (None while bytes are missing)
    attachment_pk: int | None = None


def _expires(info: dict[str, Any], expiry: dt.timedelta) -> dt.datetime:
    return dt.datetime.fromisoformat(str(info["started"])) + expiry


def begin(
    db: Database,
    area: UploadArea,
    incident_pk: int,
    *,
    length: int,
    filename: str,
    declared_sha256: str | None,
    declared_type: str | None,
    actor: Principal,
    now: dt.datetime,
    max_bytes: int,
    expiry: dt.timedelta,
) -> UploadState:
    """Open an upload of ``length`` bytes for incident ``incident_pk``; sweeps expired ones."""
    with db.read() as s:
        get_incident(s, incident_pk, scope=actor.scope)  # 404 outside a monitor's sector
    name = (filename or "").replace("\x00", "")[:255]
    if length > max_bytes:
        raise PayloadTooLargeError(
            f"attachment {name!r} is declared {length} bytes; role {actor.role.value} may attach "
            f"at most {max_bytes}",
            field="Upload-Length",
            value=length,
            fix="send a smaller file, or ask an analyst to attach it (setting attachment_max_bytes)",
        )
    if length < 1:
        raise ValidationError(
            f"attachment {name!r} is declared {length} bytes",
            field="Upload-Length",
            value=length,
            fix="declare the file's size in bytes (at least 1)",
        )
    sha = declared_sha256.lower() if declared_sha256 else None
    if sha is not None and not is_sha256(sha):
        raise ValidationError(
            f"the declared SHA-256 of {name!r} is not 64 hex digits",
            field="Upload-Metadata.sha256",
            value=declared_sha256[:80] if declared_sha256 else None,
            fix="send the file's SHA-256 as 64 hex digits, or leave it out",
        )
    start = as_utc(now)
    area.sweep(start - expiry)
    info = {
        "incident_pk": incident_pk,
        "subject": actor.subject,
        "length": length,
        "filename": name,
        "sha256": sha,
        "declared_type": declared_type,
        "started": start.isoformat(),
    }
    upload_id = area.create(info)
    return UploadState(upload_id, incident_pk, length, 0, name, _expires(info, expiry))


def _own(
    area: UploadArea, upload_id: str, actor: Principal, now: dt.datetime, expiry: dt.timedelta
) -> dict[str, Any]:
    """The upload's info, if ``actor`` started it and it has not expired (else 404)."""
    info = area.info(upload_id)
    missing = NotFoundError(
        f"no upload {upload_id} of yours",
        field="id",
        value=upload_id,
        fix="an upload is continued by whoever started it, within attachment_upload_expiry_hours; "
        "start a new one (POST /incidents/{pk}/uploads)",
    )
    if info is None or info.get("subject") != actor.subject:
        raise missing
    if as_utc(now) >= _expires(info, expiry):
        area.discard(upload_id)
        raise missing
    return info


def _state(area: UploadArea, upload_id: str, info: dict[str, Any], expiry: dt.timedelta) -> UploadState:
    done = area.done(upload_id)
    length = int(info["length"])
    return UploadState(
        upload_id,
        int(info["incident_pk"]),
        length,
        length if done is not None else area.offset(upload_id),
        str(info["filename"]),
        _expires(info, expiry),
        int(done["attachment_pk"]) if done is not None else None,
    )


def status(
    area: UploadArea, upload_id: str, *, actor: Principal, now: dt.datetime, expiry: dt.timedelta
) -> UploadState:
    """The upload's offset (HEAD)."""
    return _state(area, upload_id, _own(area, upload_id, actor, now, expiry), expiry)


class Chunk:
    """One PATCH's hold on an upload: :meth:`write` the bytes as they arrive."""

    def __init__(self, upload_id: str, info: dict[str, Any], offset: int, fh: BinaryIO | None) -> None:
        self.id = upload_id
        self.info = info
        self.length = int(info["length"])
        self.offset = offset
        self._fh = fh

    @property
    def finished_before(self) -> bool:
        """The upload was filed already (this is a retried final chunk)."""
        return self._fh is None

    def write(self, data: bytes) -> None:
        if self._fh is None or not data:
            return
        if self.offset + len(data) > self.length:
            raise PayloadTooLargeError(
                f"upload {self.id}: the chunk goes past the declared length of {self.length} bytes",
                field="body",
                value=self.offset + len(data),
                fix=f"send the {self.length - self.offset} bytes left, from offset {self.offset}",
            )
        self._fh.write(data)
        self.offset += len(data)

    def flush(self) -> None:
        """Everything written so far on the disk (before the file is read back whole)."""
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())


@contextmanager
def chunk(
    area: UploadArea,
    upload_id: str,
    *,
    offset: int,
    chunk_length: int | None,
    actor: Principal,
    now: dt.datetime,
    expiry: dt.timedelta,
) -> Iterator[Chunk]:
    """Hold upload ``upload_id`` for a chunk starting at ``offset`` (see the module's docstring).

    On a finished upload a chunk ending at its length (a retried final chunk) is accepted without
    writing anything (:attr:`Chunk.finished_before`); any other offset is refused with 409.
    """
    info = _own(area, upload_id, actor, now, expiry)
    with area.lock(upload_id):
        length = int(info["length"])
        done = area.done(upload_id)
        current = length if done is not None else area.offset(upload_id)
        retried_last = done is not None and chunk_length is not None and offset + chunk_length == length
        if offset != current and not retried_last:
            raise ConflictError(
                f"upload {upload_id}: the chunk starts at offset {offset}, but {current} bytes "
                "have been received",
                field="Upload-Offset",
                value=offset,
                fix=f"send the bytes from offset {current} (HEAD the upload for its offset)",
            )
        if done is not None:
            yield Chunk(upload_id, info, length, None)
            return
        with area.appender(upload_id, current) as fh:
            yield Chunk(upload_id, info, current, fh)


def complete(
    db: Database,
    store: BlobStore,
    area: UploadArea,
    part: Chunk,
    *,
    actor: Principal,
    now: dt.datetime,
    max_bytes: int,
) -> attachments.Filed:
    """File a fully received upload (call while holding its :func:`chunk`); a refused file is
    discarded with its upload."""
    if part.finished_before:
        done = area.done(part.id) or {}
        with db.read() as s:
            row = s.get(AttachmentRow, int(done.get("attachment_pk", 0)))
            if row is None:
                raise NotFoundError(
                    f"upload {part.id} was filed as an attachment that is gone",
                    field="id",
                    value=part.id,
                    fix="start a new upload",
                )
            s.expunge(row)
        return attachments.Filed(row, False)
    info = part.info
    path = area.data_path(part.id)
    part.flush()  # the last chunk's bytes may still sit in the file object's buffer
    try:
        with open(path, "rb") as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
        declared = info.get("sha256")
        if declared and declared != sha:
            raise ValidationError(
                f"attachment {info['filename']!r}: its bytes hash to {sha}, not to the declared "
                f"SHA-256 {declared}; nothing was stored",
                field="Upload-Metadata.sha256",
                value=declared,
                fix="the file changed or a chunk was damaged in transit: upload it again",
            )
        # the whole-file checks (type, decoding to its end, EXIF, C2PA) read the file's bytes,
        # bounded by the role's limit (checked when the upload began and on every chunk)
        upload = attachments.Upload(path.read_bytes(), str(info["filename"]), info.get("declared_type"))
        incident_pk = int(info["incident_pk"])
        filed = db.write(
            lambda s: attachments.file_attachments(
                s, store, incident_pk, [upload], actor=actor, now=now, max_bytes=max_bytes
            )[0]
        )
    except TrucelineError:
        area.discard(part.id)
        raise
    area.finish(part.id, {"attachment_pk": filed.row.pk, "sha256": filed.row.sha256})
    return filed
