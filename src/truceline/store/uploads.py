"""Partial uploads on disk: the bytes of a resumable upload while they arrive.

Each upload is a directory ``root/<id>/`` holding ``info.json`` (who started it, for which
incident, the declared length, name, type and SHA-256, when it started) and ``data`` (the bytes
received so far: its size is the upload's offset). A chunk is appended to ``data`` and flushed to
the disk before the offset is reported, so an offset answered survives a crash. ``done.json``
records the attachment an upload became (a retried final chunk is answered from it). Holding
:meth:`UploadArea.lock` serialises the chunks of one upload across threads and processes.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from truceline.errors import ConflictError, NotFoundError

__all__ = ["UploadArea"]

_ID_CHARS = frozenset("0123456789abcdef")


class UploadArea:
    """A directory of partial uploads (by default ``<attachments_dir>/.uploads``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _dir(self, upload_id: str) -> Path:
        if len(upload_id) != 32 or not set(upload_id) <= _ID_CHARS:
            raise NotFoundError(
                f"no upload {upload_id[:40]!r}",
                field="id",
                value=upload_id[:40],
                fix="use the Location answered when the upload was created",
            )
        return self.root / upload_id

    def create(self, info: dict[str, Any]) -> str:
        """A new upload with ``info``; its id (32 hex digits, unguessable)."""
        upload_id = secrets.token_hex(16)
        d = self._dir(upload_id)
        d.mkdir(parents=True)
        (d / "data").touch()
        tmp = d / ".info.json"
        tmp.write_text(json.dumps(info))
        tmp.replace(d / "info.json")
        return upload_id

    def info(self, upload_id: str) -> dict[str, Any] | None:
        """The upload's info, or None when there is no such upload."""
        try:
            data: dict[str, Any] = json.loads((self._dir(upload_id) / "info.json").read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        return data

    def offset(self, upload_id: str) -> int:
        try:
            return (self._dir(upload_id) / "data").stat().st_size
        except FileNotFoundError:
            return 0

    def done(self, upload_id: str) -> dict[str, Any] | None:
        """What a finished upload became (``done.json``), or None."""
        try:
            data: dict[str, Any] = json.loads((self._dir(upload_id) / "done.json").read_text())
        except FileNotFoundError:
            return None
        return data

    def data_path(self, upload_id: str) -> Path:
        return self._dir(upload_id) / "data"

    @contextmanager
    def lock(self, upload_id: str) -> Iterator[None]:
        """Hold the upload (a PATCH at a time); a second holder is refused with 409."""
        path = self._dir(upload_id) / "info.json"
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise NotFoundError(
                f"no upload {upload_id}", field="id", value=upload_id, fix="start a new upload"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConflictError(
                    f"upload {upload_id} is receiving another chunk",
                    field="id",
                    value=upload_id,
                    fix="send one chunk at a time: wait for the answer, then HEAD for the offset",
                ) from None
            yield
        finally:
            os.close(fd)  # releases the lock

    @contextmanager
    def appender(self, upload_id: str, offset: int) -> Iterator[Any]:
        """The data file opened for writing at ``offset`` (its end); flushed and fsynced on exit."""
        with open(self._dir(upload_id) / "data", "r+b") as fh:
            fh.seek(offset)
            fh.truncate()
            try:
                yield fh
            finally:
                fh.flush()
                os.fsync(fh.fileno())

    def finish(self, upload_id: str, result: dict[str, Any]) -> None:
        """Record what the upload became and drop its bytes (they are in the store now)."""
        d = self._dir(upload_id)
        tmp = d / ".done.json"
        tmp.write_text(json.dumps(result))
        tmp.replace(d / "done.json")
        (d / "data").unlink(missing_ok=True)

    def discard(self, upload_id: str) -> None:
        shutil.rmtree(self._dir(upload_id), ignore_errors=True)

    def sweep(self, started_before: dt.datetime) -> int:
        """Remove uploads started before ``started_before`` (abandoned or long finished)."""
        if not self.root.is_dir():
            return 0
        removed = 0
        for d in self.root.iterdir():
            if not d.is_dir():
                continue
            try:
                started = dt.datetime.fromisoformat(json.loads((d / "info.json").read_text())["started"])
            except (OSError, ValueError, KeyError):
                # half-created (no info yet): old by its directory's time
                try:
                    started = dt.datetime.fromtimestamp(d.stat().st_mtime, dt.UTC)
                except FileNotFoundError:
                    continue  # removed meanwhile (another worker's sweep)
            if started < started_before:
                shutil.rmtree(d, ignore_errors=True)
                removed += 1
        return removed
