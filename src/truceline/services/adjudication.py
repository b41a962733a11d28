"""Adjudicating a batch of incidents: the checks that need the agreement, then the rule engine.

Shared by the CLI's ``classify`` and ingest (CLI and server); the result as a table is
:func:`truceline.io.incidents_io.classification_rows`.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely
from numpy.typing import NDArray

from truceline.core.agreement import Agreement, RuleType
from truceline.core.incidents import Incident, IncidentBatch
from truceline.core.rules import Classification, classify
from truceline.io.columnar import (
    CLASSIFY_SCHEMA,
    SCHEMA,
    Block,
    Checked,
    ColumnarRead,
    RepeatedIds,
    check_block,
    classification_arrow,
    classification_csv,
    read_raw,
    write_lines,
)
from truceline.io.csv_safe import safe_cell, safe_row
from truceline.io.incidents_io import (
    CLASSIFY_COLUMNS,
    Reject,
    classification_rows,
    read_incidents,
    write_rejects,
)
from truceline.io.index_cache import DEFAULT_MAX_BYTES, LineIndexCache

__all__ = [
    "Adjudication",
    "FileClassification",
    "adjudicate",
    "agreement_rejects",
    "batch_rejects",
    "classify_file",
]


@dataclass(frozen=True, slots=True)
class Adjudication:
    """Incidents that passed the agreement-level checks, their classification, and the rest."""

    incidents: list[Incident]
    rows: list[int]
    classification: Classification
    rejects: list[Reject]
    batch: IncidentBatch  # ``incidents`` as columns, as classified


def agreement_rejects(
    agreement: Agreement, incidents: Sequence[Incident], rows: Sequence[int]
) -> tuple[list[int], list[Reject]]:
    """Checks that need the agreement: known weapon classes, positions that look swapped.

    Returns the positions (into ``incidents``) that pass, and the rejects.
    """
    if not incidents:
        return [], []
    known = agreement.weapon_class_ids
    wcs = [i.weapon_class or "" for i in incidents]
    lon = np.array([i.lon for i in incidents])
    lat = np.array([i.lat for i in incidents])
    area = agreement.compiled(0).area
    inside = shapely.contains_xy(area, lon, lat)
    # a set lookup per record (the records are Python objects here already): cheaper than np.isin
    bad_wc = np.fromiter((w != "" and w not in known for w in wcs), dtype=bool, count=len(wcs))
    if inside.all():  # the usual case: nothing can look swapped
        swapped = np.zeros(len(incidents), dtype=bool)
    else:
        swapped_inside = shapely.contains_xy(area, lat, lon) & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
        swapped = ~inside & swapped_inside & ~bad_wc
    names = ", ".join(sorted(known)) or "none defined"
    rejects: list[Reject] = []
    for k in np.flatnonzero(bad_wc | swapped).tolist():  # messages for the bad records only
        inc = incidents[k]
        if bad_wc[k]:
            reason = (
                f"unknown weapon class {inc.weapon_class!r} for agreement {agreement.id}; "
                f"use one of: {names}"
            )
            rejects.append(Reject(rows[k], inc.id, "weapon_class", reason))
        else:
            reason = (
                f"position lon {inc.lon}, lat {inc.lat} is outside the area of application but "
                "inside it with lon and lat swapped; swap the columns"
            )
            rejects.append(Reject(rows[k], inc.id, "lon", reason))
    keep = np.flatnonzero(~(bad_wc | swapped)).tolist()
    return keep, rejects


def adjudicate(agreement: Agreement, incidents: Sequence[Incident], rows: Sequence[int]) -> Adjudication:
    """Validate against the agreement, then run the vectorised rule engine on the batch."""
    keep, rejects = agreement_rejects(agreement, incidents, rows)
    good = [incidents[k] for k in keep]
    good_rows = [rows[k] for k in keep]
    batch = IncidentBatch.from_incidents(good)
    return Adjudication(good, good_rows, classify(agreement, batch), rejects, batch)


# -- files of any size, in blocks ---------------------------------------------------------------------


@dataclass(slots=True)
class FileClassification:
    """What :func:`classify_file` did."""

    classified: int = 0
    findings: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first few (all are in the file)
    n_rejects: int = 0
    duplicates: int = 0
    encoding: str = "UTF-8"
    encoding_detected: bool = False
    #: read whole, in memory: out of day order under an agreement with count caps
    whole: bool = False


def _batch(t: pa.Table) -> IncidentBatch:
    """The engine's columns of accepted incidents (absent values as the engine wants them)."""

    def num(name: str) -> NDArray[np.float64]:
        return np.asarray(
            pc.fill_null(t.column(name), np.nan).to_numpy(zero_copy_only=False), np.float64
        )

    def text(name: str) -> NDArray[np.str_]:
        col = pc.fill_null(t.column(name), "").combine_chunks()
        if name == "id":
            return np.asarray(col.to_numpy(zero_copy_only=False)).astype(str)
        enc = col.dictionary_encode()  # a few distinct values: converted once each
        values = np.asarray(enc.dictionary.to_numpy(zero_copy_only=False)).astype(str)
        return values[np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)]

    return IncidentBatch(
        id=text("id"),
        observed_at=np.asarray(t.column("observed_at").to_numpy(), "datetime64[us]"),
        lon=num("lon"),
        lat=num("lat"),
        uncertainty_m=num("uncertainty_m"),
        kind=text("kind"),
        weapon_class=text("weapon_class"),
        count=np.asarray(t.column("count").to_numpy(), np.int64),
        party=text("party"),
        origin_lon=num("origin_lon"),
        origin_lat=num("origin_lat"),
        origin_uncertainty_m=num("origin_uncertainty_m"),
        bearing_deg=num("bearing_deg"),
        source_type=text("source_type"),
    )


def batch_rejects(
    agreement: Agreement, batch: IncidentBatch, rows: NDArray[np.int64]
) -> tuple[NDArray[np.bool_], list[Reject]]:
    """:func:`agreement_rejects` on columns: which incidents pass, and the rejects of the others."""
    n = len(batch)
    if n == 0:
        return np.ones(0, bool), []
    known = agreement.weapon_class_ids
    area = agreement.compiled(0).area
    inside = shapely.contains_xy(area, batch.lon, batch.lat)
    bad_wc = (batch.weapon_class != "") & ~np.isin(
        batch.weapon_class, np.array(sorted(known), dtype=str)
    )
    if inside.all():
        swapped = np.zeros(n, dtype=bool)
    else:
        lon, lat = batch.lon, batch.lat
        swapped_inside = shapely.contains_xy(area, lat, lon) & (np.abs(lat) <= 180) & (np.abs(lon) <= 90)
        swapped = ~inside & swapped_inside & ~bad_wc
    names = ", ".join(sorted(known)) or "none defined"
    rejects: list[Reject] = []
    for k in np.flatnonzero(bad_wc | swapped).tolist():  # messages for the bad records only
        rid, row = str(batch.id[k]), int(rows[k])
        if bad_wc[k]:
            reason = (
                f"unknown weapon class {str(batch.weapon_class[k])!r} for agreement {agreement.id}; "
                f"use one of: {names}"
            )
            rejects.append(Reject(row, rid, "weapon_class", reason))
        else:
            reason = (
                f"position lon {float(batch.lon[k])}, lat {float(batch.lat[k])} is outside the area of "
                "application but inside it with lon and lat swapped; swap the columns"
            )
            rejects.append(Reject(row, rid, "lon", reason))
    return ~(bad_wc | swapped), rejects


class _UnsortedError(Exception):
    """A report of a day already classified turned up (count caps need each day whole)."""


def _has_caps(agreement: Agreement) -> bool:
    return any(r.type == RuleType.count_cap for v in agreement.versions for r in v.rules)


def classify_file(
    agreement: Agreement,
    read: ColumnarRead,
    output: Path,
    rejects_path: Path,
    *,
    fmt: str = "csv",
    progress: Callable[[int, int, int], None] | None = None,
    index_cache: Path | None = None,
    workers: int | None = None,
    index_cache_max_bytes: int = DEFAULT_MAX_BYTES,
) -> FileClassification:
    """Classify an incident file of any size in blocks (:mod:`truceline.io.columnar`), writing one
    output row per accepted incident and the rejects sorted by row, as :func:`adjudicate` and
    ``classify`` do for a file in memory; ``progress(rows, bytes, size)`` after each block.
    ``fmt``: ``"csv"`` or ``"parquet"`` (GeoParquet: the same columns, typed, and each
    incident's point).

    Count caps sum each day's reports: a block's last day waits for the next block. A file not in
    day order (a day reappearing after a later one) under an agreement with count caps is read
    again whole, in memory, so its results stay exact.

    ``index_cache``: a folder where the line's search tables are kept between processes
    (:mod:`truceline.io.index_cache`), pruned to ``index_cache_max_bytes`` (least recently used
    files first); the output is the same with or without it.

    ``workers``: processes (forked from this one) that check the blocks' cells, then run the
    agreement-level checks, the rule engine and the output's formatting on them, while this
    process reads the next ones, keeps the repeated-id index and writes the results in order
    (:class:`~truceline.services.block_pool.BlockPool`); 0: all in this process. Default
    (``None``): :func:`~truceline.services.block_pool.default_workers`, the cores available up to
    4. Each worker keeps the line's search tables it filled in ``index_cache`` when it ends. The
    output is the same whatever the number.
    """
    from truceline.services.block_pool import default_workers

    cache = LineIndexCache(index_cache, index_cache_max_bytes) if index_cache is not None else None
    if cache is not None:
        agreement.use_index_store(cache)
    n_workers = default_workers() if workers is None else workers
    try:
        try:
            res = _classify_blocks(
                agreement, read, output, rejects_path, progress, fmt, n_workers,
                cache.save if cache is not None and n_workers else None,
            )  # fmt: skip
        except _UnsortedError:
            res = _classify_whole(agreement, read, output, rejects_path, fmt)
        if cache is not None:
            cache.save()
        return res
    finally:
        if cache is not None:
            agreement.use_index_store(None)


#: Columns the rule engine reads (the others stay in the reading process).
_ENGINE_COLUMNS = (
    "id", "observed_at", "lon", "lat", "uncertainty_m", "kind", "weapon_class", "count", "party",
    "origin_lon", "origin_lat", "origin_uncertainty_m", "bearing_deg", "source_type",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Engined:
    """What the engine made of one block: the output rows (CSV bytes or a GeoParquet table),
    how many, their findings, and the rows the agreement-level checks refused."""

    rows_out: bytes | pa.Table
    classified: int
    findings: int
    rejects: list[Reject]


#: Blocks in the pipeline beyond one per worker process (read or done, waiting), each held in
#: the reading process.
SPARE_BLOCKS = 2

#: Incidents the rule engine takes at a time: its arrays for one report take ~2 kB in all (300 MB
#: for a block of 170,000), so a block is classified in pieces of about this many (whole days).
ENGINE_ROWS = 40_000


def _pieces(day: NDArray[np.int64], size: int, whole_days: bool) -> list[tuple[int, int]]:
    """Cuts of ``range(len(day))`` into runs of about ``size`` rows; with ``whole_days``, cut only
    where every row before has an earlier day than every row after (count caps sum a day)."""
    n = day.size
    if n <= size:
        return [(0, n)]
    if whole_days:
        ok = np.maximum.accumulate(day)[:-1] < np.minimum.accumulate(day[::-1])[::-1][1:]
        cuts = np.flatnonzero(ok) + 1  # a piece may start at these rows
    else:
        cuts = np.arange(1, n)
    if cuts.size == 0:  # one day (or days interleaved) throughout: one piece
        return [(0, n)]
    # at each multiple of ``size``, the first allowed cut from there on (or the last one)
    at = np.unique(cuts[np.minimum(np.searchsorted(cuts, np.arange(size, n, size)), cuts.size - 1)])
    bounds = [0, *at.tolist(), n]
    return list(itertools.pairwise(bounds))


def _engine_block(
    agreement: Agreement, fmt: str, item: tuple[pa.Table, NDArray[np.int64]], caps: bool = True
) -> _Engined:
    """The agreement-level checks, the rule engine and the output rows of one block's incidents
    (every day of the block whole: count caps sum a day), in pieces of :data:`ENGINE_ROWS`."""
    t, rows = item
    if t.num_rows == 0:
        return _Engined(b"" if fmt != "parquet" else CLASSIFY_SCHEMA.empty_table(), 0, 0, [])
    day = (
        np.asarray(t.column("observed_at").to_numpy(), "datetime64[us]")
        .astype("datetime64[D]")
        .astype(np.int64)
    )
    parts = [
        _engine_piece(agreement, fmt, t.slice(a, b - a), rows[a:b])
        for a, b in _pieces(day, ENGINE_ROWS, caps)
    ]
    if len(parts) == 1:
        return parts[0]
    out: bytes | pa.Table
    if fmt == "parquet":
        out = pa.concat_tables([p.rows_out for p in parts if isinstance(p.rows_out, pa.Table)])
    else:
        out = b"".join(p.rows_out for p in parts if isinstance(p.rows_out, bytes))
    return _Engined(
        out,
        sum(p.classified for p in parts),
        sum(p.findings for p in parts),
        [r for p in parts for r in p.rejects],
    )


def _engine_piece(agreement: Agreement, fmt: str, t: pa.Table, rows: NDArray[np.int64]) -> _Engined:
    batch = _batch(t)
    ok, rejects = batch_rejects(agreement, batch, rows)
    if ok.all():
        sub, ids = batch, t.column("id").combine_chunks()
    else:
        idx = np.flatnonzero(ok)
        sub, ids = batch.take(idx), t.column("id").take(pa.array(idx)).combine_chunks()
    cls = classify(agreement, sub)
    if fmt == "parquet":
        table = classification_arrow(ids, sub.lon, sub.lat, cls)
        return _Engined(table, len(sub), len(cls.findings), rejects)
    lines = classification_csv(ids, cls)
    if len(lines):
        offs = np.frombuffer(lines.buffers()[1], np.int32)[lines.offset : lines.offset + len(lines) + 1]
        text = bytes(memoryview(lines.buffers()[2])[int(offs[0]) : int(offs[-1])])
    else:
        text = b""
    return _Engined(text, len(sub), len(cls.findings), rejects)


def _block_work(
    agreement: Agreement, fmt: str, caps: bool, hasher: Any, item: tuple[str, Any]
) -> Checked | _Engined:
    """What a worker does with an item: ``("check", raw block)``: the intake's checks
    (:func:`~truceline.io.columnar.check_block`, the engine's columns kept); ``("engine",
    (table, rows))``: the agreement-level checks, the rule engine and the output rows."""
    what, payload = item
    if what == "check":
        return check_block(payload, hasher, _ENGINE_COLUMNS)
    return _engine_block(agreement, fmt, payload, caps)


def _classify_blocks(
    agreement: Agreement,
    read: ColumnarRead,
    output: Path,
    rejects_path: Path,
    progress: Callable[[int, int, int], None] | None,
    fmt: str,
    workers: int = 0,
    finish: Callable[[], object] | None = None,
) -> FileClassification:
    """The file in blocks through three stages, each block in turn: its cells read here, checked
    in a worker, its repeated ids removed here (the index of the file's ids stays whole in this
    process), classified in a worker, written here in the order read."""
    import functools

    import pyarrow.parquet as pq

    from truceline.services.block_pool import BlockPool

    caps = _has_caps(agreement)
    out = FileClassification()
    tmp_out = output.with_name(output.name + ".part")
    tmp_rej = rejects_path.with_name(rejects_path.name + ".part")
    # incidents (and the intake's rejects) of a day not yet known whole: held for the next block
    pending: pa.Table | None = None
    pending_rows = np.zeros(0, np.int64)
    pending_rejects: list[Reject] = []
    done_day = np.iinfo(np.int64).min  # days before this one are classified
    for i in range(len(agreement.versions)):  # made here once: the workers start with them
        agreement.compiled(i).prepare_lookups()
    seen = RepeatedIds()  # its id hash made before the workers start: they share it
    work = functools.partial(_block_work, agreement, fmt, caps, seen.hash)
    # blocks in the pipeline at once (read, being checked or classified, not yet written)
    in_flight = workers + SPARE_BLOCKS if workers else 1
    try:
        with (
            tmp_out.open("wb") as fo,
            tmp_rej.open("w", newline="", encoding="utf-8") as fr,
            BlockPool[tuple[str, Any], Any, list[Reject] | None](work, workers, finish=finish) as pool,
        ):
            parquet = pq.ParquetWriter(fo, CLASSIFY_SCHEMA) if fmt == "parquet" else None
            if parquet is None:
                fo.write((",".join(CLASSIFY_COLUMNS) + "\r\n").encode())
            wr = csv.writer(fr)
            wr.writerow(["row", "id", "field", "reason"])

            def emit(done: _Engined, intake_rejects: list[Reject]) -> None:
                """Write a classified block: its rows, then its rejects (the intake's and the
                agreement's, in row order)."""
                if parquet is not None:
                    assert isinstance(done.rows_out, pa.Table)
                    parquet.write_table(done.rows_out)
                else:
                    assert isinstance(done.rows_out, bytes)
                    fo.write(done.rows_out)
                out.classified += done.classified
                out.findings += done.findings
                every = sorted(intake_rejects + done.rejects, key=lambda r: r.row)
                for r in every:
                    wr.writerow([r.row, safe_cell(r.id), safe_cell(r.field), safe_cell(r.reason)])
                out.n_rejects += len(every)
                out.rejects.extend(every[: max(0, 10 - len(out.rejects))])

            def flush(
                t: pa.Table, rows: NDArray[np.int64], rejects: list[Reject], upto: int | None
            ) -> None:
                """Hand the engine the incidents before day ``upto`` (with the rejects of their
                rows); the rest, and the rejects from their first row on, wait."""
                nonlocal pending, pending_rows, pending_rejects
                cut = t.num_rows
                if upto is not None and cut:
                    day = (
                        np.asarray(t.column("observed_at").to_numpy(), "datetime64[us]")
                        .astype("datetime64[D]")
                        .astype(np.int64)
                    )
                    at = np.flatnonzero(day >= upto)[:1]
                    if at.size:
                        cut = int(at[0])
                        if (day[cut:] < upto).any():
                            raise _UnsortedError
                now_rejects = rejects
                if cut < t.num_rows:
                    first_held = int(rows[cut])
                    now_rejects = [r for r in rejects if r.row < first_held]
                    pending_rejects = [r for r in rejects if r.row >= first_held]
                    pending, pending_rows = t.slice(cut), rows[cut:]
                else:
                    pending, pending_rows, pending_rejects = None, rows[:0], []
                now = t.slice(0, cut).select(list(_ENGINE_COLUMNS))
                pool.submit(("engine", (now, rows[:cut])), now_rejects)

            def checked(block: Block) -> None:
                """A checked block, its repeated ids removed: to the engine (a held day waits)."""
                nonlocal pending, pending_rows, pending_rejects, done_day
                out.duplicates += len(block.duplicates)
                t, rows = block.incidents.table, block.incidents.rows
                if caps and len(rows):
                    day = (
                        np.asarray(t.column("observed_at").to_numpy(), "datetime64[us]")
                        .astype("datetime64[D]")
                        .astype(np.int64)
                    )
                    if day.min() < done_day:
                        raise _UnsortedError
                    last_day = int(day.max())
                else:
                    last_day = None
                if caps and not len(rows):  # nothing accepted: a held day may go on next block
                    pending_rejects = pending_rejects + block.rejects
                    if progress is not None:
                        progress(block.records, block.bytes_read, read.size)
                    return
                held = pending_rejects
                if pending is not None:
                    t = pa.concat_tables([pending, t])
                    rows = np.concatenate([pending_rows, rows])
                flush(t, rows, held + block.rejects, last_day)
                if last_day is not None:
                    done_day = max(done_day, last_day)
                if progress is not None:
                    progress(block.records, block.bytes_read, read.size)

            def take() -> None:
                """The oldest item's result: a checked block goes on to the engine, a
                classified one is written."""
                result, intake_rejects = pool.next()
                if intake_rejects is None:
                    checked(seen.accept(result))
                else:
                    emit(result, intake_rejects)

            for raw in read_raw(read):
                pool.submit(("check", raw), None)
                while pool.pending >= in_flight:
                    take()
            while pool.pending:  # the last checked blocks, then the last classified ones
                take()
            if pending is not None or pending_rejects:
                flush(
                    pending if pending is not None else SCHEMA.empty_table(),
                    pending_rows,
                    pending_rejects,
                    None,
                )
                while pool.pending:
                    take()
            pool.close()
            if parquet is not None:
                parquet.close()
        tmp_out.replace(output)
        tmp_rej.replace(rejects_path)
    finally:
        tmp_out.unlink(missing_ok=True)
        tmp_rej.unlink(missing_ok=True)
    out.encoding, out.encoding_detected = read.encoding, read.encoding_detected
    return out


def _classify_whole(
    agreement: Agreement, read: ColumnarRead, output: Path, rejects_path: Path, fmt: str
) -> FileClassification:
    """The file whole, in memory (out of day order under count caps)."""
    import pyarrow.parquet as pq

    from truceline.io.columnar import PARQUET_SUFFIXES, IncidentColumns

    if read.path.suffix.lower() in PARQUET_SUFFIXES:  # read in blocks, then classified whole
        blocks = list(read)
        t = pa.concat_tables([b.incidents.table for b in blocks])
        cols = IncidentColumns(t, np.concatenate([b.incidents.rows for b in blocks]))
        res_rejects = [r for b in blocks for r in b.rejects]
        dups = sum(len(b.duplicates) for b in blocks)
        batch = _batch(cols.table)
        ok, agr = batch_rejects(agreement, batch, cols.rows)
        idx = np.flatnonzero(ok)
        sub = batch.take(idx)
        cls = classify(agreement, sub)
        ids = cols.table.column("id").take(pa.array(idx)).combine_chunks()
        if fmt == "parquet":
            pq.write_table(classification_arrow(ids, sub.lon, sub.lat, cls), output)
        else:
            with output.open("wb") as fo:
                fo.write((",".join(CLASSIFY_COLUMNS) + "\r\n").encode())
                write_lines(fo, classification_csv(ids, cls))
        every = sorted(res_rejects + agr, key=lambda r: r.row)
        write_rejects(rejects_path, every)
        return FileClassification(len(sub), len(cls.findings), every[:10], len(every), dups, whole=True)
    res = read_incidents(read.path, read.limits, encoding=read.encoding_arg)
    adj = adjudicate(agreement, res.incidents, res.rows)
    rows = classification_rows(adj.incidents, adj.classification)
    if fmt == "parquet":
        ids = pa.array([i.id for i in adj.incidents], pa.string())
        b = adj.batch
        pq.write_table(classification_arrow(ids, b.lon, b.lat, adj.classification), output)
    else:
        with output.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(CLASSIFY_COLUMNS))
            w.writeheader()
            w.writerows(safe_row(r) for r in rows)
    every = sorted(res.rejects + adj.rejects, key=lambda r: r.row)
    write_rejects(rejects_path, every)
    return FileClassification(
        classified=len(rows),
        findings=len(adj.classification.findings),
        rejects=every[:10],
        n_rejects=len(every),
        duplicates=len(res.duplicates),
        encoding=res.encoding,
        encoding_detected=res.encoding_detected,
        whole=True,
    )
