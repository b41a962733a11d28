"""The attachment store: files kept by the SHA-256 of their bytes, behind one small interface.

:class:`BlobStore` is all the rest of Truceline knows: ``put(bytes) -> sha256`` and
``open(sha256) -> bytes``. :class:`LocalStore` keeps them in a directory (``ab/cdef...``);
an object store (S3, MinIO) is another class with the same two methods.

- Identical bytes are stored once (the key is their hash).
- Nothing is half-stored: bytes go to a temporary file in the same directory, are flushed to the
  disk, then renamed onto their name (atomic on POSIX), so a crash leaves either the whole file
  or none.
- Every read re-hashes the bytes; a file whose bytes no longer match its name raises
  :class:`CorruptBlobError` naming both hashes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from truceline.errors import NotFoundError, TrucelineError

__all__ = ["BlobStore", "CorruptBlobError", "LocalStore", "is_sha256"]


class CorruptBlobError(TrucelineError):
    """A stored file whose bytes no longer hash to its name (altered or damaged on disk)."""

    status_code = 500


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


class BlobStore(Protocol):
    """Where attachments' bytes live, by their SHA-256 (hex)."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (once); returns its SHA-256."""
        ...

    def open(self, sha256: str) -> bytes:
        """The bytes stored under ``sha256``, verified against it."""
        ...

    def exists(self, sha256: str) -> bool: ...


class LocalStore:
    """A directory of files named by their SHA-256 (``root/ab/abcdef...``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise NotFoundError(
                f"{sha256[:80]!r} is not a SHA-256",
                field="sha256",
                value=sha256[:80],
                fix="give the 64 lowercase hex digits the attachment was filed under",
            )
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).is_file()

    def put(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if path.is_file() and path.stat().st_size == len(data):
            return sha  # stored already (its hash is checked when it is read)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha

    def open(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(
                f"the attachment store has no file {sha256}",
                field="sha256",
                value=sha256,
                fix=f"check the store's directory ({self.root}); the file may have been deleted",
            ) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise CorruptBlobError(
                f"attachment {sha256} is corrupt: its stored bytes hash to {actual}",
                field="sha256",
                value=sha256,
                fix=f"restore {path} from a backup; its ledger entry names the right hash",
            )
        return data
