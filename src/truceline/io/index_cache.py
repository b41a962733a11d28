"""The line's search tables kept on disk, so a new process need not fill them again.

A :class:`~truceline.core.geodesy.LineIndex` fills, for each grid cell a point falls in, the
segments that may be nearest to it: on a big file about half of a cold ``classify``. This folder
keeps them as one ``.npz`` file per index, named by :meth:`LineIndex.state_key` (the line's
densified vertices, the index parameters and a format version), with a SHA-256 of its contents.
A file is read only, never changed in place: a process that filled more cells first takes the
cells of the file as it is now (another process may have written it since), then writes a new
file beside it and renames it over the old one (atomic; of two writers at the same moment the
last wins, and either file is whole). A file that cannot be read, fails its digest or does not
fit the index is ignored (with a warning) and the index fills its cells as it would without a
cache: results are the same either way, only the time differs.

The folder is capped (``max_bytes``, the setting ``index_cache_max_mb``, default 1 GB; a line's
file is tens of MB): each write prunes the least recently used files until the folder fits. A
file's last use is its access time, set explicitly when it is read (its modification time stays
the time it was written); the file just written is never pruned, even alone over the cap.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from truceline.core.geodesy import LineIndex

__all__ = ["DEFAULT_MAX_BYTES", "LineIndexCache", "default_cache_dir"]

log = logging.getLogger(__name__)

_ARRAYS = ("grid", "cells", "segs", "dists")
DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB: about fifteen lines' tables


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/truceline/line-index``, or ``~/.cache/truceline/line-index``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "truceline" / "line-index"


def _digest(key: str, arrays: dict[str, NDArray[np.generic]]) -> NDArray[np.uint8]:
    h = hashlib.sha256(key.encode())
    for name in _ARRAYS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8).copy()


class LineIndexCache:
    """A folder of line-index search tables (a :class:`~truceline.core.geodesy.LineIndexStore`).

    ``load`` fills each index handed to it from its file, if one fits; ``save`` writes the indexes
    that filled cells since, then prunes the folder to ``max_bytes`` (least recently used first).
    Neither raises for the cache's sake: a folder that cannot be read or written costs only time.
    """

    def __init__(self, folder: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes {max_bytes}: give 0 or more")
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self._seen: list[tuple[LineIndex, str, int]] = []
        #: What happened, for tests and logs: (state key, "hit" | "miss" | "bad: reason" | "saved")
        self.events: list[tuple[str, str]] = []

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def _read(self, key: str) -> dict[str, NDArray[np.generic]]:
        with self.path(key).open("rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {name: z[name] for name in _ARRAYS}
            stored = z["digest"]
        if not np.array_equal(stored, _digest(key, arrays)):
            raise ValueError("its digest does not match its contents")
        return arrays

    def load(self, index: LineIndex) -> None:
        key = index.state_key()
        path = self.path(key)
        try:
            took = index.import_state(self._read(key))
            self._used(path)
            self.events.append((key, "hit"))
            log.debug("line index %s: %d cells from %s", key[:12], took, path)
        except FileNotFoundError:
            self.events.append((key, "miss"))
        except Exception as exc:  # a cache must never stop the work: rebuild instead
            self.events.append((key, f"bad: {exc}"))
            log.warning("ignoring the line-index cache file %s (%s); it will be rebuilt", path, exc)
        self._seen.append((index, key, index.filled_cells))

    @staticmethod
    def _used(path: Path) -> None:
        """Mark a file used now: its access time (kept explicitly, whatever the mount's atime
        policy), its modification time left as written."""
        with contextlib.suppress(OSError):
            os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))

    def prune(self, keep: frozenset[Path] = frozenset()) -> list[Path]:
        """Remove the least recently used files until the folder's ``.npz`` files fit in
        ``max_bytes`` (``keep``: never removed); returns the files removed."""
        try:
            found = [(p, p.stat()) for p in self.folder.glob("*.npz")]
        except OSError:
            return []
        total = sum(st.st_size for _, st in found)
        removed: list[Path] = []
        # least recently used first: access time, then modification time (a file never read)
        for p, st in sorted(found, key=lambda f: (max(f[1].st_atime_ns, f[1].st_mtime_ns), f[0])):
            if total <= self.max_bytes:
                break
            if p in keep:
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                pass  # another process pruned it first
            except OSError as exc:
                log.warning("could not prune the line-index cache file %s (%s)", p, exc)
                continue
            total -= st.st_size
            removed.append(p)
            self.events.append((p.stem, "pruned"))
        return removed

    def save(self) -> int:
        """Write every index seen that filled cells since it was loaded, then prune the folder to
        ``max_bytes``; returns the files written."""
        written = 0
        wrote: set[Path] = set()
        for i, (index, key, at_load) in enumerate(self._seen):
            if index.filled_cells <= at_load:
                continue
            # another process (a sibling worker) may have written cells since our load: take
            # them first, so the file written holds both (rows already filled are kept)
            with contextlib.suppress(Exception):
                index.import_state(self._read(key))
            arrays = index.export_state()
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{key[:16]}-", suffix=".tmp", dir=self.folder)
                try:
                    with os.fdopen(fd, "wb") as fh:
                        np.savez(
                            fh,
                            allow_pickle=False,
                            digest=_digest(key, arrays),
                            grid=arrays["grid"],
                            cells=arrays["cells"],
                            segs=arrays["segs"],
                            dists=arrays["dists"],
                        )
                    os.replace(tmp, self.path(key))
                finally:
                    Path(tmp).unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not write the line-index cache in %s (%s)", self.folder, exc)
                continue
            self._seen[i] = (index, key, index.filled_cells)
            self.events.append((key, "saved"))
            wrote.add(self.path(key))
            written += 1
        if written:
            self.prune(keep=frozenset(wrote))
        return written
