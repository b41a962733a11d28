"""Incident CSV files read as columns, in blocks (pyarrow), with exactly the row-by-row path's rejects.

:func:`truceline.io.incidents_io.read_incidents` reads a file into one Python object per row and
validates each with pydantic: right for a form or an upload of a few thousand rows, a minute and
gigabytes for a million. Here the file streams through pyarrow's CSV reader in blocks of bytes;
each block's cells are checked per column with vectorised tests that accept only values whose
meaning is certain (``2025-03-01T04:12:00Z``, ``37.5``, a known kind, text that needs no
stripping), and convert them as pydantic would. A row any of whose cells is not certainly good
(a bad value, or only an unusual spelling of a good one) goes through the row-by-row validator
(:func:`~truceline.io.incidents_io.validate_record`), so its reject (row, field, reason, fix) is
word for word the one the row-by-row path gives, and an unusual but good row is accepted as it
would be. Repeated ids are found across blocks with an index of their hashes checked exactly
(:class:`RepeatedIds`: the ids' text is kept compressed, read back where hashes match), so memory
grows by some 23 bytes per accepted row (20 in the index's arrays, 2.85 measured for compressed
ids like ``r123``) and is otherwise bounded by the block size, whatever the file's size. A
block's checks (:func:`check_block`) depend on no other block, so a reader may hand
them to other processes and keep only the index (:func:`read_raw`).

A file whose header has repeated or unreadable column names, or that is GeoJSON, is read by the
row-by-row path (:func:`read_blocks` gives it as one block).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numpy.typing import NDArray

from truceline.core.incidents import (
    OBSERVED_MAX,
    OBSERVED_MIN,
    Incident,
    Kind,
    SourceType,
    TimePrecision,
)
from truceline.errors import ValidationError
from truceline.io.csv_safe import read_cell
from truceline.io.incidents_io import (
    INCIDENT_FIELDS,
    ReadResult,
    Reject,
    check_header,
    conflicting_id,
    read_incidents,
    validate_record,
)
from truceline.io.limits import DEFAULT_LIMITS, UploadLimits, too_many_rows
from truceline.io.text_encoding import Detected, open_text

__all__ = [
    "BLOCK_BYTES",
    "CLASSIFY_SCHEMA",
    "PARQUET_SUFFIXES",
    "Block",
    "Checked",
    "ColumnarRead",
    "IncidentColumns",
    "RawBlock",
    "RepeatedIds",
    "check_block",
    "classification_arrow",
    "classification_csv",
    "geo_metadata",
    "incidents_of",
    "read_blocks",
    "read_raw",
    "write_lines",
]

#: Bytes of CSV per block (some 75,000 rows of plain incidents). ``classify`` holds several
#: blocks at once in three processes: 16 MB blocks peaked at 1.35 GB of PSS in all for a 1M-row
#: file, 8 MB ones at 0.97 GB, at the same CPU (issue 18, BENCHMARKS.md).
BLOCK_BYTES = 8 << 20
#: Bytes pyarrow's reader takes at a time (a block is several such reads, joined). Its streaming
#: reader reads up to 32 of them ahead in the background, whatever the consumer does: with reads
#: of a whole block, that was up to 512 MB of the file held ahead (all of a 1M-row file). Reads
#: stay longer than the longest row the cell limit allows (a row must fit in one read).
READ_BYTES = 1 << 20

#: Characters Python's ``str.strip()`` removes (pydantic's ``str_strip_whitespace``).
#: (every ``c`` with ``c.isspace()``; tests/io/test_columnar.py checks the list)
PY_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_PY_SPACE = pa.array(list(PY_SPACE))
_NUMBER = r"^-?[0-9]{1,15}(\.[0-9]{1,17})?$"
_TIME = (
    r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):"
    r"(?P<s>[0-9]{2})(?P<f>\.[0-9]{1,6})?(?P<z>Z|[+-][0-9]{2}:[0-9]{2})$"
)
_TEXT_MAX = {"id": 128, "weapon_class": 64, "party": 32, "narrative": 4000}
#: Numbers: (lowest, highest, highest excluded) as the model's bounds say.
_FLOATS: dict[str, tuple[float, float, bool]] = {
    "lon": (-180.0, 180.0, False),
    "lat": (-90.0, 90.0, False),
    "uncertainty_m": (0.0, 200_000.0, False),
    "origin_lon": (-180.0, 180.0, False),
    "origin_lat": (-90.0, 90.0, False),
    "origin_uncertainty_m": (0.0, 200_000.0, False),
    "bearing_deg": (0.0, 360.0, True),
}
_ENUMS = {
    "kind": [k.value for k in Kind],
    "source_type": [s.value for s in SourceType],
    "time_precision": [t.value for t in TimePrecision],
}
_DEFAULTS: dict[str, Any] = {
    name: f.default for name, f in Incident.model_fields.items() if not f.is_required()
}
_REQUIRED = frozenset(name for name, f in Incident.model_fields.items() if f.is_required())
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MIN_US = int((OBSERVED_MIN - _EPOCH).total_seconds()) * 10**6
_MAX_US = int((OBSERVED_MAX - _EPOCH).total_seconds()) * 10**6

_TYPES: dict[str, pa.DataType] = {
    "id": pa.string(),
    "observed_at": pa.timestamp("us"),
    "time_precision": pa.string(),
    "kind": pa.string(),
    "weapon_class": pa.string(),
    "count": pa.int64(),
    "party": pa.string(),
    "source_type": pa.string(),
    "reliability": pa.string(),
    "credibility": pa.int64(),
    "narrative": pa.string(),
    **{f: pa.float64() for f in _FLOATS},
}
#: The accepted incidents' columns, in :data:`~truceline.io.incidents_io.INCIDENT_FIELDS` order.
SCHEMA = pa.schema([(f, _TYPES[f]) for f in INCIDENT_FIELDS])


@dataclass(slots=True)
class IncidentColumns:
    """Accepted incidents as an Arrow table (:data:`SCHEMA`; null where a value is absent)."""

    table: pa.Table
    rows: NDArray[np.int64]  # each incident's 1-based data row


@dataclass(slots=True)
class Block:
    """One block of a file: its accepted incidents (ids new to the file), rejects, repeats."""

    incidents: IncidentColumns
    rejects: list[Reject] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    records: int = 0  # data rows of the file read so far, this block included
    bytes_read: int = 0  # bytes of the file read so far (for progress)


# -- vectorised checks ------------------------------------------------------------------------------


def _np(mask: pa.Array | pa.ChunkedArray) -> NDArray[np.bool_]:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _utf8(col: pa.Array) -> tuple[pa.Array, NDArray[np.bool_]]:
    """Binary cells as text, and which were valid UTF-8 (the others null)."""
    try:
        return col.cast(pa.string()), np.ones(len(col), bool)
    except pa.ArrowInvalid:  # a block holding a byte that is not UTF-8: find which cells
        ok = np.array([v is None or _is_utf8(v) for v in col.to_pylist()], dtype=bool)
        return pc.if_else(pa.array(ok), col, pa.nulls(len(col), pa.binary())).cast(pa.string()), ok


def _is_utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _blank(text: pa.Array) -> NDArray[np.bool_]:
    """Cells certainly empty once stripped (spaces and tabs only)."""
    blank: NDArray[np.bool_] = np.asarray(pc.binary_length(pc.fill_null(text, "")), np.int64) == 0
    spaced = _np(pc.or_(pc.starts_with(text, " "), pc.starts_with(text, "\t")))
    if spaced.any():  # the regular expression only where it can matter
        at = np.flatnonzero(spaced)
        blank[at] = _np(pc.match_substring_regex(text.take(pa.array(at)), r"^[ \t]*$"))
    return np.asarray(blank, dtype=bool)


def _plain_text(text: pa.Array, max_len: int) -> NDArray[np.bool_]:
    """Text pydantic takes unchanged: no stripping needed, no NUL, at most ``max_len`` characters,
    and not a spreadsheet-quoted formula (a leading ``'``, which :func:`read_cell` may drop)."""
    first = pc.utf8_slice_codeunits(text, 0, 1)
    last = pc.utf8_slice_codeunits(text, -1, sys.maxsize)
    ok = pc.invert(pc.is_in(first, value_set=_PY_SPACE))
    ok = pc.and_(ok, pc.invert(pc.is_in(last, value_set=_PY_SPACE)))
    ok = pc.and_(ok, pc.not_equal(first, "'"))
    ok = pc.and_(ok, pc.invert(pc.match_substring(text, "\x00")))
    ok = pc.and_(ok, pc.less_equal(pc.utf8_length(text), max_len))
    ok = pc.and_(ok, pc.greater(pc.utf8_length(text), 0))
    return _np(ok)


_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], np.int64)


def _days(y: NDArray[np.int64], m: NDArray[np.int64]) -> NDArray[np.int64]:
    """Days since 1970-01-01 of the first of month ``m`` (1-12) in year ``y`` (proleptic
    Gregorian; integer arithmetic, Hinnant's ``days_from_civil``)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * np.where(m > 2, m - 3, m + 9) + 2) // 5
    days: NDArray[np.int64] = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    return days


def _month_len(y: NDArray[np.int64], m: NDArray[np.int64]) -> NDArray[np.int64]:
    """Days in month ``m`` (1-12) of year ``y``."""
    leap = (y % 4 == 0) & ((y % 100 != 0) | (y % 400 == 0))
    days: NDArray[np.int64] = _MONTH_DAYS[m - 1] + ((m == 2) & leap)
    return days


def _utc_us(
    y: NDArray[np.int64],
    mo: NDArray[np.int64],
    d: NDArray[np.int64],
    hms: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    f: NDArray[np.int64],
    zone: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Microseconds since the epoch (UTC) of calendar fields, and which are a real time (a day the
    month has, hours below 24 ...) within the model's range."""
    h, mi, s = hms
    sign, zh, zm = zone
    good = (mo >= 1) & (mo <= 12) & (d >= 1) & (h <= 23) & (mi <= 59) & (s <= 59)
    good &= (zh <= 23) & (zm <= 59) & ~((sign < 0) & (zh == 0) & (zm == 0))
    good &= y >= 1
    mo_c = np.clip(mo, 1, 12)
    first = _days(y, mo_c)
    good &= d <= _month_len(y, mo_c)
    t = (first + d - 1) * 86_400_000_000 + ((h * 60 + mi) * 60 + s) * 1_000_000 + f
    t -= sign * (zh * 60 + zm) * 60_000_000
    good &= (t >= _MIN_US) & (t < _MAX_US)
    return np.where(good, t, 0), good


#: ``YYYY-MM-DDTHH:MM:SSZ``: which of its 20 bytes are digits, and the others.
_FIXED_DIGITS = np.array([i not in (4, 7, 10, 13, 16, 19) for i in range(20)])
_FIXED = np.frombuffer(b"0000-00-00T00:00:00Z", np.uint8)


def _fixed_times(text: pa.Array) -> tuple[NDArray[np.int64], NDArray[np.bool_], NDArray[np.bool_]]:
    """The common spelling ``2025-03-01T04:12:00Z`` read straight from the bytes: (microseconds,
    which are good times, which had that shape at all)."""
    n = len(text)
    us, ok = np.zeros(n, np.int64), np.zeros(n, bool)
    lens = np.asarray(pc.fill_null(pc.binary_length(text), 0), np.int64)
    shaped = lens == 20
    if not shaped.any():
        return us, ok, shaped
    at = np.flatnonzero(shaped)
    sub = text.take(pa.array(at)) if at.size < n else text
    bufs = sub.buffers()
    offs = np.frombuffer(bufs[1], np.int32)[sub.offset : sub.offset + len(sub) + 1]
    raw = np.frombuffer(bufs[2], np.uint8)[offs[0] : offs[-1]].reshape(-1, 20)
    dig = raw - np.uint8(48)  # wraps below "0": every non-digit byte is then > 9
    shape_ok = np.all(dig[:, _FIXED_DIGITS] <= 9, axis=1) & np.all(
        raw[:, ~_FIXED_DIGITS] == _FIXED[~_FIXED_DIGITS], axis=1
    )
    dig16 = dig.astype(np.int16)

    def num(a: int, b: int) -> NDArray[np.int64]:
        v = dig16[:, a].astype(np.int64)
        for k in range(a + 1, b):
            v = v * 10 + dig16[:, k]
        return v

    zero = np.zeros(len(raw), np.int64)
    t, good = _utc_us(
        num(0, 4), num(5, 7), num(8, 10), (num(11, 13), num(14, 16), num(17, 19)), zero,
        (zero + 1, zero, zero),
    )  # fmt: skip
    good &= shape_ok
    us[at], ok[at] = t, good
    shaped[at] = shape_ok
    return us, ok, shaped


def _times(text: pa.Array) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """RFC 3339 times with seconds and an offset as microseconds since the epoch (UTC), and which
    were such a time within the model's range."""
    us, ok, shaped = _fixed_times(text)
    if shaped.all():
        return us, ok
    rest = np.flatnonzero(~shaped)  # other spellings: a regular expression
    parts = pc.extract_regex(pc.fill_null(text.take(pa.array(rest)), ""), _TIME)
    matched = _np(pc.is_valid(parts))
    if not matched.any():
        return us, ok
    idx = rest[matched]
    sub = parts.filter(pa.array(matched))

    def num(name: str) -> NDArray[np.int64]:
        return np.asarray(pc.cast(pc.struct_field(sub, name), pa.int64()), dtype=np.int64)

    frac = pc.utf8_rpad(pc.utf8_slice_codeunits(pc.struct_field(sub, "f"), 1, 7), 6, "0")
    f = np.asarray(pc.cast(frac, pa.int64()), dtype=np.int64)
    z = pc.replace_substring(pc.struct_field(sub, "z"), "Z", "+00:00")
    zh = np.asarray(pc.cast(pc.utf8_slice_codeunits(z, 1, 3), pa.int64()), np.int64)
    zm = np.asarray(pc.cast(pc.utf8_slice_codeunits(z, 4, 6), pa.int64()), np.int64)
    sign = np.where(_np(pc.starts_with(z, "-")), -1, 1).astype(np.int64)
    t, good = _utc_us(num("y"), num("mo"), num("d"), (num("h"), num("mi"), num("s")), f, (sign, zh, zm))
    us[idx], ok[idx] = t, good
    return us, ok


def _floats(text: pa.Array, lo: float, hi: float, open_hi: bool) -> tuple[pa.Array, NDArray[np.bool_]]:
    shape = _np(pc.match_substring_regex(text, _NUMBER))
    vals = pc.cast(pc.if_else(pa.array(shape), text, "0"), pa.float64())
    v = np.asarray(vals.to_numpy(zero_copy_only=False), dtype=np.float64) + 0.0  # -0.0 == 0.0
    ok = shape & (v >= lo) & ((v < hi) if open_hi else (v <= hi))
    return pa.array(v), ok


class _Fast:
    """The certainly-good cells of one block, converted; ``ok`` marks the rows wholly such."""

    def __init__(self, batch: pa.RecordBatch, text: dict[str, pa.Array], utf8_ok: NDArray[np.bool_]):
        n = batch.num_rows
        self.ok = utf8_ok.copy()
        self.cols: dict[str, pa.Array] = {}
        for name in INCIDENT_FIELDS:
            col = text.get(name)
            if col is None:  # no such column: the default (a required one is in the header)
                self.cols[name] = (
                    pa.nulls(n, _TYPES[name])
                    if _DEFAULTS.get(name) is None
                    else pa.array(np.full(n, _DEFAULTS[name]), _TYPES[name])
                )
                continue
            blank = _blank(col)
            if name in _REQUIRED:
                self.ok &= ~blank
            default = _DEFAULTS.get(name)
            fill = (
                pa.nulls(n, _TYPES[name])
                if default is None
                else pa.array(np.full(n, default)).cast(_TYPES[name])
            )
            if blank.all():  # a column left empty (origins, bearings ...): nothing to convert
                self.cols[name] = fill
                continue
            value, good = self._convert(name, col)
            self.ok &= good | blank
            self.cols[name] = pc.if_else(pa.array(blank), fill, value) if blank.any() else value
        for name, col in text.items():  # a column the model does not know: refused unless blank
            if name not in _TYPES:
                self.ok &= _blank(col)
        pair = _np(pc.is_null(self.cols["origin_lon"])) != _np(pc.is_null(self.cols["origin_lat"]))
        self.ok &= ~pair

    @staticmethod
    def _convert(name: str, col: pa.Array) -> tuple[pa.Array, NDArray[np.bool_]]:
        if name in _TEXT_MAX:
            if name != "id":  # few distinct values (weapon classes, parties ...): each checked once
                enc = col.dictionary_encode()
                if len(enc.dictionary) * 4 <= len(col):
                    idx = np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)
                    return col, _plain_text(enc.dictionary, _TEXT_MAX[name])[idx]
            return col, _plain_text(col, _TEXT_MAX[name])
        if name in _FLOATS:
            return _floats(col, *_FLOATS[name])
        if name in _ENUMS:
            return col, _np(pc.is_in(col, value_set=pa.array(_ENUMS[name])))
        if name == "observed_at":
            us, ok = _times(col)
            return pa.array(us.view("datetime64[us]")), ok
        if name == "count":
            shape = _np(pc.match_substring_regex(col, r"^[1-9][0-9]{0,5}$"))
            v = np.asarray(pc.cast(pc.if_else(pa.array(shape), col, "1"), pa.int64()), dtype=np.int64)
            return pa.array(v), shape & (v <= 100_000)
        if name == "reliability":
            return col, _np(pc.match_substring_regex(col, r"^[A-F]$"))
        if name == "credibility":
            shape = _np(pc.match_substring_regex(col, r"^[1-6]$"))
            return pc.cast(pc.if_else(pa.array(shape), col, "6"), pa.int64()), shape
        raise AssertionError(name)  # pragma: no cover - every field has a check above


# -- exact repeats across blocks ---------------------------------------------------------------------

_P1, _P2 = 2_147_483_629, 2_147_483_587  # primes below 2**31


class _StringHash:
    """Polynomial hashes of byte strings modulo two primes with random bases, vectorised."""

    def __init__(self, seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        self.bases = (int(rng.integers(256, _P1 - 1)), int(rng.integers(256, _P2 - 1)))
        self.powers: list[NDArray[np.uint64]] = [np.ones(1, np.uint64), np.ones(1, np.uint64)]

    def _pow(self, k: int, n: int) -> NDArray[np.uint64]:
        p = self.powers[k]
        if p.size < n:
            mod, base = (_P1, _P2)[k], self.bases[k]
            out = np.empty(max(n, 2 * p.size), np.uint64)
            out[0] = 1
            for i in range(1, out.size):  # once per length ever seen (not per row)
                out[i] = (int(out[i - 1]) * base) % mod
            self.powers[k] = p = out
        return p

    def __call__(self, arr: pa.Array | pa.ChunkedArray) -> NDArray[np.uint64]:
        """One 64-bit hash per cell (null: a fixed value)."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        arr = pc.fill_null(arr.cast(pa.binary()), pa.scalar(b"\x00null", pa.binary()))
        n = len(arr)
        bufs = arr.buffers()
        offsets = np.frombuffer(bufs[1], np.int32)[arr.offset : arr.offset + n + 1].astype(np.int64)
        data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
        lens = np.diff(offsets)
        values = data[offsets[0] : offsets[-1]].astype(np.uint64)
        seg = np.repeat(np.arange(n), lens)
        pos = np.arange(values.size) - np.repeat(offsets[:-1] - offsets[0], lens)
        out = _mix(np.zeros(n, np.uint64), lens.astype(np.uint64))
        for k, mod in enumerate((_P1, _P2)):
            pw = self._pow(k, int(lens.max()) + 1 if n else 1)
            contrib = (values * pw[pos]) % np.uint64(mod)  # < 2**31 each: sums exact in float64
            sums = np.bincount(seg, weights=contrib.astype(np.float64), minlength=n)
            h = sums.astype(np.uint64) % np.uint64(mod)
            out = _mix(out, h)
        return out


def _mix(h: NDArray[np.uint64], v: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Fold ``v`` into ``h`` (splitmix64's finaliser; wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        x = (h ^ v) + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


class RepeatedIds:
    """The ids accepted so far in a file, to find a repeat anywhere in it.

    Kept in sorted arrays: each accepted id's 64-bit hash, its row and a hash of its record
    (20 bytes an id), and the ids' own text, compressed per block (a few bytes an id), read back
    only where a new id's hash matches an earlier one's, so a repeat is named only when its text
    is the same (two ids of equal hashes stay two ids). ``hash`` is the id hash every block's
    :class:`Checked` keys were made with (worker processes forked after this is made share it).
    """

    def __init__(self) -> None:
        self.hash = _StringHash()
        # runs, each sorted by hash: its ids' hashes, rows and records' content hashes; a run
        # at least twice as long as the next one (a new block's run is merged into the last
        # while that holds), so a block's merge copies ~log2(blocks) / 2 times the ids, not the
        # whole index every block (60 blocks: 6 GB copied at 10M rows), and a lookup searches
        # ~log2(blocks) runs
        self._runs: list[_Run] = []
        # per block of accepted ids: its first row, and (count, bytes of text, rows, id lengths,
        # id bytes) compressed
        self._first_rows: list[int] = []
        self._stored: list[tuple[int, int, bytes, bytes, bytes]] = []
        self._codec = pa.Codec("zstd") if pa.Codec.is_available("zstd") else None

    def _pack(self, values: NDArray[Any]) -> bytes:
        raw = values.tobytes()
        return raw if self._codec is None else bytes(self._codec.compress(raw, asbytes=True))

    def _unpack(self, packed: bytes, size: int, dtype: type) -> NDArray[Any]:
        raw = packed if self._codec is None else self._codec.decompress(packed, size, asbytes=True)
        return np.frombuffer(raw, dtype)

    def _store(self, rows: NDArray[np.int64], ids: pa.Array) -> None:
        """Keep a block's accepted rows and ids: the rows as steps from one to the next and the
        ids as their lengths and bytes, compressed (ids in file order, like ``r1001``, ``r1002``,
        take under a byte each; random ones, like UUIDs, about their entropy)."""
        offs, data = _bytes_of(ids)
        self._first_rows.append(int(rows[0]))
        self._stored.append(
            (
                int(rows.size),
                int(data.size),
                self._pack(np.diff(rows, prepend=0).astype(np.uint32)),
                self._pack(np.diff(offs).astype(np.uint32)),
                self._pack(data),
            )
        )

    def _texts(self, rows: list[int]) -> dict[int, str]:
        """The ids of earlier accepted rows (a few: repeats and hash collisions), by row."""
        out: dict[int, str] = {}
        firsts = np.asarray(self._first_rows, np.int64)
        by_block: dict[int, list[int]] = {}
        for r in rows:
            by_block.setdefault(int(np.searchsorted(firsts, r, side="right")) - 1, []).append(r)
        for b, want in by_block.items():
            n, size, steps, lengths, text = self._stored[b]
            stored_rows = np.cumsum(self._unpack(steps, 4 * n, np.uint32), dtype=np.int64)
            offs = np.r_[0, np.cumsum(self._unpack(lengths, 4 * n, np.uint32), dtype=np.int64)]
            data = self._unpack(text, size, np.uint8).tobytes()
            at = np.searchsorted(stored_rows, np.asarray(want, np.int64))
            for r, k in zip(want, at.tolist(), strict=True):
                out[r] = data[offs[k] : offs[k + 1]].decode("utf-8")
        return out

    def accept(self, checked: Checked) -> Block:
        """A checked block without the ids accepted before (in it or in earlier blocks): a
        repeat of the same record is listed, another record under a known id is refused."""
        t, rows = checked.table, checked.rows
        keep, dup_rejects, dups = self._split(t, rows, checked.key, checked.content)
        if not keep.all():
            t = t.filter(pa.array(keep))
            rows = rows[keep]
        rejects = checked.rejects
        if dup_rejects:
            rejects = sorted(rejects + dup_rejects, key=lambda r: r.row)
        duplicates = sorted(checked.duplicates + dups) if checked.duplicates else dups
        return Block(IncidentColumns(t, rows), rejects, duplicates, checked.records, checked.bytes_read)

    def _split(
        self,
        t: pa.Table,
        rows: NDArray[np.int64],
        key: NDArray[np.uint64],
        content: NDArray[np.uint64],
    ) -> tuple[NDArray[np.bool_], list[Reject], list[int]]:
        """Which of a block's accepted rows are new (the others are repeats or conflicts)."""
        n = t.num_rows
        keep = np.ones(n, bool)
        if n == 0:
            return keep, [], []
        ids = t.column("id").combine_chunks()
        rejects: list[Reject] = []
        dups: list[int] = []

        def texts(at: NDArray[np.intp]) -> dict[int, str]:
            """The ids at these positions (repeats only: a few) as Python text."""
            return dict(zip(at.tolist(), ids.take(pa.array(at)).to_pylist(), strict=True))

        # the block's keys in order, once: searching a sorted run of keys walks the index
        # forwards (in hash order the lookups missed the cache: 0.3 s a block of 170k in 1M)
        by_key = np.argsort(key, kind="stable")
        sorted_key = key[by_key]
        # 1) against earlier blocks
        earlier: list[tuple[int, int, int]] = []  # (position in the block, run, position in it)
        for r, (run_keys, _, _) in enumerate(self._runs):
            pos = np.empty(n, np.intp)
            pos[by_key] = np.searchsorted(run_keys, sorted_key)
            inside = np.flatnonzero(pos < run_keys.size)
            hits = inside[run_keys[pos[inside]] == key[inside]]
            ends = np.searchsorted(run_keys, key[hits], side="right")
            earlier += [  # every earlier id of the same hash (more than one only if they collide)
                (j, r, p)
                for j, e in zip(hits.tolist(), ends.tolist(), strict=True)
                for p in range(int(pos[j]), e)
            ]
        if earlier:
            id_list = texts(np.unique([j for j, _, _ in earlier]))
            first_ids = self._texts([int(self._runs[r][1][p]) for _, r, p in earlier])
            for j, r, p in sorted(earlier):  # repeats only: checked exactly, one by one
                first_row = int(self._runs[r][1][p])
                if not keep[j] or first_ids[first_row] != id_list[j]:
                    continue
                keep[j] = False
                if int(self._runs[r][2][p]) == int(content[j]):
                    dups.append(int(rows[j]))
                else:
                    rejects.append(conflicting_id(int(rows[j]), id_list[j], first_row))
        # 2) within the block: the first of each id stands
        order = by_key[keep[by_key]] if earlier else by_key  # the rows still kept, by key
        same = key[order][1:] == key[order][:-1]
        if same.any():
            twin = np.zeros(order.size, bool)
            twin[1:] |= same
            twin[:-1] |= same
            twins = np.sort(order[twin])
            id_list = texts(twins)
            first_of: dict[str, int] = {}
            for j in twins.tolist():
                rid = id_list[j]
                if rid not in first_of:
                    first_of[rid] = j
                    continue
                f = first_of[rid]
                keep[j] = False
                if content[f] == content[j]:
                    dups.append(int(rows[j]))
                else:
                    rejects.append(conflicting_id(int(rows[j]), rid, int(rows[f])))
        # 3) remember the new ones
        new = np.flatnonzero(keep)
        if new.size:
            self._store(rows[new], ids if new.size == n else ids.take(pa.array(new)))
            o = by_key[keep[by_key]]  # the new ones by key (stable: equal keys in row order)
            self._runs.append((key[o], rows[o].astype(np.uint32), content[o]))
            while len(self._runs) > 1 and self._runs[-2][0].size < 2 * self._runs[-1][0].size:
                self._runs[-2:] = [_merge_runs(*self._runs[-2:])]
        return keep, rejects, sorted(dups)


def _id_key(hasher: _StringHash, ids: pa.Array | pa.ChunkedArray) -> NDArray[np.uint64]:
    """The index's key of each id: its 64-bit hash (ids of equal keys are told apart by their
    text, :meth:`RepeatedIds.accept`)."""
    return hasher(ids)


_Run = tuple[NDArray[np.uint64], NDArray[np.uint32], NDArray[np.uint64]]


def _merge_runs(a: _Run, b: _Run) -> _Run:
    """Two runs of (keys, rows, content) sorted by key as one, each array made in turn (the copy
    a merge makes is one array's at a time, not all three)."""
    dest = np.searchsorted(a[0], b[0], side="right") + np.arange(b[0].size)
    from_a = np.ones(a[0].size + b[0].size, bool)
    from_a[dest] = False

    def merged(old: NDArray[Any], new: NDArray[Any]) -> NDArray[Any]:
        out = np.empty(from_a.size, old.dtype)
        out[from_a] = old
        out[dest] = new
        return out

    keys = merged(a[0], b[0])
    rows = merged(a[1], b[1])
    return keys, rows, merged(a[2], b[2])


def content_hash(hasher: _StringHash, t: pa.Table, key: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """A hash of every field of each record (``key``: its id's hash), equal for equal records."""
    h = key.copy()
    for name in INCIDENT_FIELDS:
        if name == "id":
            continue
        col = t.column(name).combine_chunks()
        if pa.types.is_string(col.type):  # each distinct text hashed once
            enc = pc.dictionary_encode(col)
            idx = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), np.int64)
            v = np.r_[hasher(enc.dictionary), np.uint64(0x6E756C6C)][idx]
        else:
            num = col.cast(pa.float64()) if pa.types.is_integer(col.type) else col
            if pa.types.is_timestamp(num.type):
                num = num.cast(pa.int64()).cast(pa.float64())
            f = np.asarray(pc.fill_null(num, np.inf).to_numpy(zero_copy_only=False), np.float64) + 0.0
            v = f.view(np.uint64)
        h = _mix(h, v)
    return h


# -- the file ----------------------------------------------------------------------------------------


def _record(
    header: list[str], cells: list[str | None], extra: bool, ignore: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A row's cells as :class:`csv.DictReader` and the row-by-row reader give them."""
    rec: dict[str, Any] = {
        h: read_cell(cells[k] if k < len(cells) else None) for k, h in enumerate(header)
    }
    for h in ignore:
        rec.pop(h, None)
    if extra:
        rec["__extra__"] = "too many cells"
    return rec


def _slow_table(incidents: list[Incident]) -> pa.Table:
    cols: dict[str, list[Any]] = {f: [] for f in INCIDENT_FIELDS}
    for inc in incidents:  # rows already known unusual or bad: a few, one by one
        for f in INCIDENT_FIELDS:
            v = getattr(inc, f)
            if f == "observed_at":
                v = v.replace(tzinfo=None)
            elif hasattr(v, "_value_"):
                v = v._value_
            cols[f].append(v)
    return pa.table({f: pa.array(cols[f], _TYPES[f]) for f in INCIDENT_FIELDS}, schema=SCHEMA)


@dataclass
class ColumnarRead:
    """A file being read in blocks; ``encoding`` as in :class:`~truceline.io.incidents_io.ReadResult`."""

    path: Path
    limits: UploadLimits = DEFAULT_LIMITS
    encoding_arg: str | None = None
    block_bytes: int = 0  # 0: BLOCK_BYTES
    #: columns left unread (an export's derived columns, recomputed on import)
    ignore: tuple[str, ...] = ()
    encoding: str = "UTF-8"
    encoding_detected: bool = False
    size: int = 0

    def __iter__(self) -> Iterator[Block]:
        return read_blocks(self)


def _header(path: Path, encoding: str | None) -> tuple[list[str], Detected]:
    fh, det = open_text(path, encoding)
    with fh:
        try:
            header = next(csv.reader(fh), [])
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"{path}: byte 0x{exc.object[exc.start]:02X} cannot be read as {det.name}",
                field="encoding",
                fix="name the file's encoding with --encoding (e.g. utf-8, cp1251, cp1252, latin-1)",
            ) from exc
    if not header:
        raise ValidationError(
            f"{path}: the file is empty; expected a header row with id, observed_at, lon, lat, kind, "
            "source_type"
        )
    check_header(path, header)
    return header, det


def _whole(read: ColumnarRead, old: ReadResult) -> Block:
    t = _slow_table(old.incidents)
    return Block(
        IncidentColumns(t, np.asarray(old.rows, np.int64)), old.rejects, old.duplicates, 0, read.size
    )


@dataclass(slots=True)
class RawBlock:
    """One block of a CSV file's cells as read (binary columns), not yet checked: what the
    reading process hands to :func:`check_block` (in a worker process, or itself)."""

    batch: pa.RecordBatch | None
    header: list[str]
    rows: NDArray[np.int64]  # each row's 1-based data row
    wrong_length: list[tuple[int, str]]  # rows of the wrong number of cells: (row, line)
    utf8: bool
    path: Path
    max_chars: int
    bytes_read: int
    ignore: tuple[str, ...] = ()


@dataclass(slots=True)
class Checked:
    """A block's rows checked (:func:`check_block`), repeated ids not yet removed
    (:meth:`RepeatedIds.accept`): the accepted rows in row order, the rejects, and each accepted
    row's id hash and content hash."""

    table: pa.Table
    rows: NDArray[np.int64]
    rejects: list[Reject]
    key: NDArray[np.uint64]
    content: NDArray[np.uint64]
    records: int = 0
    bytes_read: int = 0
    duplicates: list[int] = field(default_factory=list)  # found before (a file read whole)


def read_blocks(read: ColumnarRead) -> Iterator[Block]:
    """The file's blocks in order (see the module); raises as
    :func:`~truceline.io.incidents_io.read_incidents` does for a file refused whole."""
    seen = RepeatedIds()
    for raw in read_raw(read):
        yield seen.accept(check_block(raw, seen.hash))


def read_raw(read: ColumnarRead) -> Iterator[RawBlock | Block]:
    """The file's blocks in order, as read and not yet checked (a file read whole by the
    row-by-row path: one :class:`Block`, checked); each goes through :func:`check_block`, then
    :meth:`RepeatedIds.accept` in order, as :func:`read_blocks` does."""
    path = read.path
    if not path.exists():
        raise ValidationError(f"{path}: file not found")
    read.size = path.stat().st_size
    if read.size == 0:
        raise ValidationError(f"{path}: the file is empty; expected a header row or a FeatureCollection")
    if path.suffix.lower() in (".geojson", ".json"):
        yield _whole(read, read_incidents(path, read.limits, encoding=read.encoding_arg))
        return
    if path.suffix.lower() in PARQUET_SUFFIXES:
        yield from _parquet_blocks(read)
        return
    header, det = _header(path, read.encoding_arg)
    read.encoding, read.encoding_detected = det.name, det.how == "detected"
    if len(set(header)) != len(header) or any(not h for h in header):
        old = read_incidents(path, read.limits, encoding=read.encoding_arg)
        yield _whole(read, old)
        return
    max_chars = read.limits.max_csv_cell_chars
    try:
        yield from _batches(read, header, det)
    except pa.ArrowInvalid as exc:  # a row longer than a block: an unclosed quote
        raise _cell_error(path, str(exc).splitlines()[0], max_chars) from exc


def _batches(read: ColumnarRead, header: list[str], det: Detected) -> Iterator[RawBlock]:
    path, max_chars = read.path, read.limits.max_csv_cell_chars
    utf8 = det.codec in ("utf-8", "utf-8-sig")
    invalid: list[tuple[int, str]] = []

    def on_invalid(row: Any) -> str:
        invalid.append((int(row.number) - 1, row.text))
        return "skip"

    next_row = 1
    block_bytes = read.block_bytes or BLOCK_BYTES
    longest_row = len(header) * (4 * max_chars + 3) + 2  # every cell at the limit, quoted
    read_bytes = min(block_bytes, max(READ_BYTES, longest_row + 1024))
    per_block = max(1, round(block_bytes / read_bytes))
    with path.open("rb") as fh:
        reader = pacsv.open_csv(
            fh,
            read_options=pacsv.ReadOptions(
                block_size=read_bytes,
                use_threads=False,
                encoding="utf8" if utf8 else det.codec,
            ),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.binary() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )

        def next_block() -> pa.RecordBatch | None:
            """The next ``per_block`` reads' rows as one batch (None at the end)."""
            parts: list[pa.RecordBatch] = []
            while len(parts) < per_block:
                try:
                    parts.append(reader.read_next_batch())
                except StopIteration:
                    break
            if len(parts) <= 1:
                return parts[0] if parts else None
            cols = [pa.concat_arrays([b.column(i) for b in parts]) for i in range(parts[0].num_columns)]
            return pa.RecordBatch.from_arrays(cols, schema=parts[0].schema)

        while True:
            batch = next_block()
            n = batch.num_rows if batch is not None else 0
            # this block's data rows: the next n not taken by rows of the wrong length
            taken = [r for r, _ in invalid if r >= next_row]
            span = np.arange(next_row, next_row + n + len(taken), dtype=np.int64)
            rows = span[~np.isin(span, taken)][:n]
            last = int(rows[-1]) if n else (max(taken) if taken and batch is None else next_row - 1)
            mine = [(r, t) for r, t in invalid if r <= last]
            invalid[:] = [(r, t) for r, t in invalid if r > last]
            if batch is None and not mine:
                return
            if last > read.limits.max_import_rows:
                raise too_many_rows(path, read.limits)
            next_row = last + 1
            done = fh.tell() if batch is not None else read.size
            yield RawBlock(batch, header, rows, mine, utf8, path, max_chars, done, read.ignore)
            if batch is None:
                return


def _cell_error(path: Path, what: str, max_chars: int) -> ValidationError:
    """A file refused whole for a cell over the limit (as the row-by-row reader says it)."""
    return ValidationError(
        f"{path}: {what}; a cell may hold at most {max_chars} characters "
        "(setting uploads.max_csv_cell_chars)",
        field="uploads.max_csv_cell_chars",
        fix="check the file's quoting (an unclosed quote makes one huge cell), or split the long text",
    )


def _cell_limit(path: Path, col: pa.Array, max_chars: int) -> None:
    if len(col) and pc.max(pc.binary_length(col)).as_py() > max_chars:
        longest = max(len(v.decode("utf-8", "surrogateescape")) for v in col.to_pylist())
        if longest > max_chars:  # a block holding a cell of more bytes than allowed characters
            raise _cell_error(path, f"field larger than field limit ({max_chars})", max_chars)


def check_block(
    raw: RawBlock | Block, hasher: _StringHash, columns: tuple[str, ...] | None = None
) -> Checked:
    """Check one block's cells (see the module); ``hasher``: :attr:`RepeatedIds.hash` of the
    file's index; ``columns``: the accepted rows' columns to keep (default all of
    :data:`SCHEMA`; the content hash covers them all). Independent of every other block, so
    blocks may be checked in any process, in any order."""
    if isinstance(raw, Block):  # a file read whole, row by row: checked already
        t = raw.incidents.table
        key = _id_key(hasher, t.column("id"))
        content = content_hash(hasher, t, key)
        t = t.select(list(columns)) if columns is not None else t
        return Checked(
            t, raw.incidents.rows, raw.rejects, key, content, raw.records, raw.bytes_read, raw.duplicates
        )
    before = csv.field_size_limit(raw.max_chars)  # for the rows read one by one, as row by row
    try:
        t, rows, rejects, last = _check(raw)
    except csv.Error as exc:
        raise _cell_error(raw.path, str(exc), raw.max_chars) from exc
    finally:
        csv.field_size_limit(before)
    key = _id_key(hasher, t.column("id"))
    content = content_hash(hasher, t, key)
    if columns is not None:
        t = t.select(list(columns))
    return Checked(t, rows, rejects, key, content, last, raw.bytes_read)


def _check(raw: RawBlock) -> tuple[pa.Table, NDArray[np.int64], list[Reject], int]:
    batch, header, rows, wrong_length = raw.batch, raw.header, raw.rows, raw.wrong_length
    utf8, path, max_chars, ignore = raw.utf8, raw.path, raw.max_chars, raw.ignore
    n = batch.num_rows if batch is not None else 0
    text: dict[str, pa.Array] = {}
    valid = np.ones(n, bool)
    if batch is not None:
        for h in header:
            if h in ignore:
                continue
            col = batch.column(h)
            _cell_limit(path, col, max_chars)
            text[h], ok = _utf8(col)
            valid &= ok
    fast = _Fast(batch, text, valid) if batch is not None else None
    ok = fast.ok if fast is not None else np.zeros(0, bool)
    # rows not certainly good: their records, validated one by one as the row-by-row path does
    slow: list[tuple[int, dict[str, Any]]] = []
    if batch is not None and not ok.all():
        bad = np.flatnonzero(~ok)
        cells_of = {h: batch.column(h).take(pa.array(bad)).to_pylist() for h in header}
        for k, j in enumerate(bad.tolist()):
            cells = [
                cells_of[h][k].decode("utf-8", "surrogateescape" if utf8 else "strict") for h in header
            ]
            slow.append((int(rows[j]), _record(header, cells, False, ignore)))
    for r, line in wrong_length:
        cells = next(csv.reader(io.StringIO(line, newline="")), [])
        slow.append((r, _record(header, cells, len(cells) > len(header), ignore)))
    slow.sort(key=lambda x: x[0])
    rejects: list[Reject] = []
    good: list[Incident] = []
    good_rows: list[int] = []
    for r, rec in slow:
        v = validate_record(r, rec)
        if isinstance(v, Reject):
            rejects.append(v)
        else:
            good.append(v)
            good_rows.append(r)
    parts = []
    part_rows = []
    if fast is not None and ok.any():
        if ok.all():
            parts.append(pa.table({f: fast.cols[f] for f in INCIDENT_FIELDS}, schema=SCHEMA))
        else:
            keep = pa.array(np.flatnonzero(ok))
            parts.append(pa.table({f: fast.cols[f].take(keep) for f in INCIDENT_FIELDS}, schema=SCHEMA))
        part_rows.append(rows[ok])
    if good:
        parts.append(_slow_table(good))
        part_rows.append(np.asarray(good_rows, np.int64))
    if len(parts) == 1:
        t, all_rows = parts[0], part_rows[0]
    elif parts:
        t = pa.concat_tables(parts)
        all_rows = np.concatenate(part_rows)
        order = np.argsort(all_rows, kind="stable")
        t = t.take(pa.array(order))
        all_rows = all_rows[order]
    else:
        t = SCHEMA.empty_table()
        all_rows = np.zeros(0, np.int64)
    rejects.sort(key=lambda r: r.row)
    last = int(max([*rows.tolist()[-1:], *(r for r, _ in wrong_length)], default=0))
    return t, all_rows, rejects, last


# -- output ------------------------------------------------------------------------------------------

_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"


def _bytes_of(values: pa.Array) -> tuple[NDArray[np.int64], NDArray[np.uint8]]:
    """The offsets (from 0) and bytes of a text column without nulls."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.cast(pa.large_string()) if pa.types.is_string(values.type) else values
    bufs = values.buffers()
    offs = np.frombuffer(bufs[1], np.int64)[values.offset : values.offset + len(values) + 1]
    data = np.frombuffer(bufs[2], np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offs - offs[0], data[offs[0] : offs[-1]]


_FORMULA_BYTES = np.array([ord(c) for c in "=+-@\t\r"], np.uint8)
_QUOTE_BYTES = np.array([ord(c) for c in ',"\r\n'], np.uint8)


def _safe(values: pa.Array) -> pa.Array:
    """:func:`~truceline.io.csv_safe.safe_cell` over a text column."""
    offs, data = _bytes_of(values)
    nonempty = offs[1:] > offs[:-1]
    first = np.where(nonempty, data[np.minimum(offs[:-1], max(data.size - 1, 0))] if data.size else 0, 0)
    cand = nonempty & np.isin(first, _FORMULA_BYTES)
    if not cand.any():  # the usual case: no text starts like a formula
        return values
    at = pa.array(np.flatnonzero(cand))
    sub = values.take(at)
    risky = _np(pc.invert(pc.match_substring_regex(sub, _PLAIN_NUMBER)))
    risky_all = np.zeros(len(values), bool)
    risky_all[np.flatnonzero(cand)] = risky
    return pc.if_else(pa.array(risky_all), pc.binary_join_element_wise("'", values, ""), values)


def _joined(n: int, incident: NDArray[np.intp], values: NDArray[Any], sep: str) -> pa.Array:
    """Per incident, the values of its findings joined with ``sep`` ("" for none)."""
    offsets = np.searchsorted(incident, np.arange(n + 1)).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.string()))
    return pc.binary_join(lists, sep)


def _round(values: NDArray[np.float64], digits: int) -> NDArray[np.float64]:
    """Python's ``round(v, digits)`` of each value (correctly rounded: ``round(0.12345, 4)`` is
    0.1235, which ``np.round``, scaling first, makes 0.1234). ``np.round`` everywhere but within a
    few units in the last place of a half, where Python's round decides (a handful of values)."""
    out = np.round(values, digits)
    with np.errstate(invalid="ignore", over="ignore"):
        t = values * 10.0**digits
        near = np.abs(t - np.floor(t) - 0.5) <= 16 * np.spacing(np.abs(t))
    for k in np.flatnonzero(near).tolist():  # near a half only
        out[k] = round(float(values[k]), digits)
    return out


def _float_text(values: NDArray[np.float64]) -> pa.Array:
    """``repr`` of each float (Python's shortest round-trip text, ``3.0`` not ``3``): what
    ``csv.writer`` writes for a float, without a Python call per value."""
    text = pa.array(values).cast(pa.string())
    with np.errstate(invalid="ignore"):
        plain = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 1e16)
    if not plain.any():  # integral values print as "3": Python writes "3.0"
        return text
    return pc.if_else(pa.array(plain), pc.binary_join_element_wise(text, ".0", ""), text)


def _csv_cell(values: pa.Array) -> pa.Array:
    """Text as ``csv.writer`` writes it (minimal quoting: quoted when it holds , " CR or LF)."""
    _, data = _bytes_of(values)
    if not np.isin(data, _QUOTE_BYTES).any():  # the usual case: no cell needs quoting
        return values
    needs = _np(pc.match_substring_regex(values, '[,"\r\n]'))
    quoted = pc.binary_join_element_wise('"', pc.replace_substring(values, '"', '""'), '"', "")
    return pc.if_else(pa.array(needs), quoted, values)


def _categories(values: NDArray[Any]) -> tuple[list[str], NDArray[np.int64]]:
    """A text column of few distinct values (side, zones, sector) as its distinct values and each
    row's index into them (one conversion per distinct value, not per row)."""
    enc = pa.array(np.asarray(values).astype(str, copy=False)).dictionary_encode()
    return enc.dictionary.to_pylist(), np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)


def _cell_text(values: list[str]) -> list[str]:
    """A few texts as ``csv.writer`` writes them after :func:`~truceline.io.csv_safe.safe_cell`."""
    if not values:
        return []
    return [str(v) for v in _csv_cell(_safe(pa.array(values, pa.string()))).to_pylist()]


def classification_csv(ids: pa.Array, cls: Any) -> pa.Array:
    """:func:`~truceline.io.incidents_io.classification_rows` as CSV lines, byte for byte what
    ``csv.writer`` writes for them (with :func:`~truceline.io.csv_safe.safe_row`), built per
    column: the id and the two numbers per row; side, zones, sector and the two flags from the
    few distinct combinations they take; the five finding columns only for the incidents with
    findings (the others end in ``,,,,``)."""
    n = len(ids)
    if n == 0:
        return pa.array([], pa.string())
    # side; zones, sector, in_force, in_area: codes of their few distinct values
    side_v, side_i = _categories(cls.party_side)
    zone_v, zone_i = _categories(cls.zones)
    sect_v, sect_i = _categories(cls.sector)
    flags = np.asarray(cls.in_force, bool).astype(np.int64) * 2 + np.asarray(cls.in_area, bool)
    combo = (zone_i * len(sect_v) + sect_i) * 4 + flags
    uniq, mid_i = np.unique(combo, return_inverse=True)
    zone_t, sect_t, yes_no = _cell_text(zone_v), _cell_text(sect_v), ("False", "True")
    mid_v = [
        f"{zone_t[c // 4 // len(sect_v)]},{sect_t[c // 4 % len(sect_v)]},"
        f"{yes_no[c // 2 % 2]},{yes_no[c % 2]}"
        for c in uniq.tolist()
    ]
    # the findings' five columns (and the line's end), for the incidents that have findings
    f = cls.findings
    tail_v = [",,,,,\r\n"]
    tail_i = np.zeros(n, np.int64)
    if len(f):
        order = np.argsort(f.incident, kind="stable")
        inc = f.incident[order]
        has = np.unique(inc)
        local = np.searchsorted(has, inc)  # each finding's incident among those with findings
        m = has.size
        uniq_p, inv = np.unique(f.probability[order], return_inverse=True)  # formatted once each
        prob_text = np.array([f"{p:.3f}" for p in uniq_p.tolist()], dtype=object)[inv.reshape(-1)]
        parts = [
            _csv_cell(_safe(_joined(m, local, vals, sep)))
            for vals, sep in (
                (f.rule_id[order], ";"),
                (f.responsible[order], ";"),
                (prob_text, ";"),
                (f.likelihood[order], ";"),
                (f.explanation[order], " | "),
            )
        ]
        tails = pc.binary_join_element_wise(
            pc.binary_join_element_wise(pa.scalar(""), *parts, ","), pa.scalar("\r\n"), ""
        )
        tail_v = [*tails.to_pylist(), ",,,,,\r\n"]
        tail_i = np.full(n, m, np.int64)
        tail_i[has] = np.arange(m)
    cells = [
        _csv_cell(_safe(ids)),
        pa.array(_cell_text(side_v), pa.string()).take(pa.array(side_i)),
        _float_text(_round(cls.distance_km, 4)),
        _float_text(_round(cls.p_side, 4)),
        pa.array(mid_v, pa.string()).take(pa.array(mid_i.reshape(-1))),
    ]
    line = pc.binary_join_element_wise(*cells, ",")
    return pc.binary_join_element_wise(line, pa.array(tail_v, pa.string()).take(pa.array(tail_i)), "")


def write_lines(fh: Any, lines: pa.Array) -> None:
    """Write text lines (an Arrow string array, each with its line end) as one run of bytes."""
    if len(lines) == 0:
        return
    bufs = lines.buffers()
    offs = np.frombuffer(bufs[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
    fh.write(memoryview(bufs[2])[int(offs[0]) : int(offs[-1])])


# -- GeoParquet ---------------------------------------------------------------------------------------

#: Suffixes read and written as (Geo)Parquet.
PARQUET_SUFFIXES = (".parquet", ".geoparquet")
#: Rows per block of a Parquet file read.
PARQUET_ROWS = 100_000


def geo_metadata(column: str = "geometry", types: tuple[str, ...] = ("Point",)) -> bytes:
    """GeoParquet 1.1 file metadata: one WKB geometry column in WGS84 lon/lat (OGC:CRS84, the
    default when ``crs`` is left out)."""
    import json

    return json.dumps(
        {
            "version": "1.1.0",
            "primary_column": column,
            "columns": {column: {"encoding": "WKB", "geometry_types": list(types)}},
        }
    ).encode()


def _as_text(col: pa.Array) -> pa.Array:
    """A Parquet column as the text a CSV cell would hold (so one set of checks serves both)."""
    t = col.type
    if pa.types.is_timestamp(t):  # ISO 8601; "Z" only when the column is in a time zone
        fmt = "%Y-%m-%dT%H:%M:%S" + ("Z" if t.tz else "")
        col = pc.strftime(col.cast(pa.timestamp("us", t.tz or None)), format=fmt)
    elif pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        col = col.cast(pa.string())
    return pc.fill_null(col, "").cast(pa.binary())


def _parquet_blocks(read: ColumnarRead) -> Iterator[RawBlock]:
    """A (Geo)Parquet file of incidents in blocks of rows: its columns as the CSV's cells (lon and
    lat from a point geometry column when the file has none), through the same checks."""
    import json

    import pyarrow.parquet as pq
    import shapely

    path = read.path
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(f"{path}: not a Parquet file ({exc})", field="format") from exc
    meta = pf.schema_arrow.metadata or {}
    geo = json.loads(meta[b"geo"]) if b"geo" in meta else {}
    geom = geo.get("primary_column") if isinstance(geo, dict) else None
    names = [n for n in pf.schema_arrow.names if n != geom]
    from_geometry = geom is not None and not {"lon", "lat"} & set(names)
    header = names + (["lon", "lat"] if from_geometry else [])
    check_header(path, header)
    if pf.metadata.num_rows > read.limits.max_import_rows:
        raise too_many_rows(path, read.limits)
    first = 1
    done = 0
    for rb in pf.iter_batches(batch_size=PARQUET_ROWS):
        cols = {n: _as_text(rb.column(n)) for n in names}
        if from_geometry:
            pts = shapely.from_wkb(np.asarray(rb.column(geom).to_numpy(zero_copy_only=False)))
            point = (shapely.get_type_id(pts) == 0) & ~shapely.is_empty(pts)
            for name, get in (("lon", shapely.get_x), ("lat", shapely.get_y)):
                v = np.where(point, get(np.where(point, pts, None)), np.nan)
                text = pa.array(v).cast(pa.string())  # no point: an empty cell ("missing")
                cols[name] = pc.if_else(pa.array(np.isnan(v)), "", text).cast(pa.binary())
        batch = pa.RecordBatch.from_pydict(cols)
        rows = np.arange(first, first + rb.num_rows, dtype=np.int64)
        first += rb.num_rows
        done += rb.nbytes
        yield RawBlock(
            batch, header, rows, [], True, path, read.limits.max_csv_cell_chars, done, read.ignore
        )


def classification_arrow(
    ids: pa.Array, lon: NDArray[np.float64], lat: NDArray[np.float64], cls: Any
) -> pa.Table:
    """:func:`~truceline.io.incidents_io.classification_rows` as typed columns with the incident's
    point (WKB, GeoParquet's ``geometry``)."""
    import shapely

    n = len(ids)
    f = cls.findings
    order = np.argsort(f.incident, kind="stable")
    inc = f.incident[order]
    uniq, inv = np.unique(f.probability[order], return_inverse=True)
    prob_text = np.array([f"{p:.3f}" for p in uniq.tolist()], dtype=object)[inv.reshape(-1)]
    cols = {
        "id": ids,
        "side": pa.array(np.asarray(cls.party_side, dtype=str)),
        "distance_km": pa.array(_round(cls.distance_km, 4)),
        "p_side": pa.array(_round(cls.p_side, 4)),
        "zones": pa.array(np.asarray(cls.zones, dtype=object).astype(str)),
        "sector": pa.array(np.asarray(cls.sector, dtype=object).astype(str)),
        "in_force": pa.array(np.asarray(cls.in_force, bool)),
        "in_area": pa.array(np.asarray(cls.in_area, bool)),
        "findings": _joined(n, inc, f.rule_id[order], ";"),
        "responsible": _joined(n, inc, f.responsible[order], ";"),
        "probability": _joined(n, inc, prob_text, ";"),
        "likelihood": _joined(n, inc, f.likelihood[order], ";"),
        "explanation": _joined(n, inc, f.explanation[order], " | "),
        "geometry": pa.array(shapely.to_wkb(shapely.points(lon, lat)), pa.binary()),
    }
    return pa.table(cols, schema=CLASSIFY_SCHEMA)


#: The ``classify`` output as GeoParquet.
CLASSIFY_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("side", pa.string()),
        ("distance_km", pa.float64()),
        ("p_side", pa.float64()),
        ("zones", pa.string()),
        ("sector", pa.string()),
        ("in_force", pa.bool_()),
        ("in_area", pa.bool_()),
        ("findings", pa.string()),
        ("responsible", pa.string()),
        ("probability", pa.string()),
        ("likelihood", pa.string()),
        ("explanation", pa.string()),
        ("geometry", pa.binary()),
    ],
    metadata={b"geo": geo_metadata()},
)


def incidents_of(t: pa.Table) -> list[Incident]:
    """Accepted incidents' columns (already validated) as :class:`Incident` records, for the
    store, which keeps one per report (built without validating each again)."""
    enums = {"kind": Kind, "source_type": SourceType, "time_precision": TimePrecision}
    out = []
    for rec in t.to_pylist():
        rec["observed_at"] = rec["observed_at"].replace(tzinfo=dt.UTC)
        for k, e in enums.items():
            rec[k] = e(rec[k])
        out.append(Incident.model_construct(**rec))
    return out
