"""Replay and scenario sweeps in blocks of days, in this process or on a Dask distributed cluster.

``truceline plan replay`` and ``truceline plan sweep`` run the stored history of an agreement under
one or many of its scenarios. The history is cut into blocks of whole days (:func:`day_blocks`,
at most ``max_rows`` incidents a block, or one day if a day holds more): the rules judge each
incident on its own except the daily count caps, so a block of whole days is replayed alone and
gives the violations of its incidents exactly as the whole history would. Each block is one task
(:func:`replay_block`): it reads its days' incidents and stored findings from the database, replays
them under every target scenario and returns counts only; the client adds them up
(:func:`~truceline.core.planner.merge_replays`). Memory is bounded by the block, whatever the
history's size.

Where the blocks run (:func:`run_sweep`):

- ``scheduler="tcp://HOST:8786"``: on that Dask cluster (its workers read the database themselves:
  give them a URL they can reach, PostgreSQL beyond one machine);
- else, in this process when the history fits in one block or ``workers == 1``;
- else on a :class:`distributed.LocalCluster` of ``workers`` processes (one thread each; default:
  the machine's cores), started and stopped here.

The same function replays each block on every path, so the results are the same.

The history may also come from a GeoParquet (or CSV) file of incidents (``history=PATH``, ``plan
replay --history FILE.parquet``): the client streams it through the columnar reader
(:mod:`truceline.io.columnar`: every row validated, each bad one named and left out, as ``import``
would), cuts it into the same blocks of whole days and ships each block's columns to a task;
memory stays bounded by a few blocks (at most two per worker are in flight). A file has no stored
findings: the baseline is a classification under ``from_`` (as ``recompute``), so the results
equal a replay of the database holding the same incidents with ``recompute``. The file must be in
day order (as ``export`` writes it), else a day could be split between blocks and its count caps
judged in pieces: such a file is refused, naming the first row out of order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import pickle
import resource
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from truceline.core.planner import (
    ReplayResult,
    Scenario,
    SensorParameters,
    accuracy_at,
    classify_by_days,
    compare_findings,
    merge_replays,
    replay_findings,
)
from truceline.core.rules import Findings
from truceline.errors import ValidationError
from truceline.io.incidents_io import Reject
from truceline.io.limits import DEFAULT_LIMITS, UploadLimits
from truceline.io.scenarios import load_scenarios_files
from truceline.services.planner import History, load_history
from truceline.store.db import make_engine, session_factory
from truceline.store.models import IncidentRow
from truceline.tasks import call_pickled

__all__ = [
    "ACOUSTIC_KINDS",
    "BLOCK_ROWS",
    "Block",
    "BlockJob",
    "BlockResult",
    "Layout",
    "LayoutResult",
    "SweepResult",
    "day_blocks",
    "file_blocks",
    "replay_block",
    "run_sweep",
]

BLOCK_ROWS = 200_000  # incidents a block: a worker peaks at ~0.7 GB (see BENCHMARKS.md)
#: The kinds of incident an acoustic network hears (a layout's sources in a sweep).
ACOUSTIC_KINDS = ("explosion", "small_arms_fire", "muzzle_flash", "projectile")


@dataclass(frozen=True, slots=True)
class Layout:
    """A sensor layout swept against the history: its name and its sensors' positions."""

    name: str
    lon: tuple[float, ...]
    lat: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class LayoutResult:
    """What a sensor layout would have made of the history's acoustic incidents
    (:data:`ACOUSTIC_KINDS`): heard by enough sensors, located within the target accuracy, and of
    those with a violation (P >= threshold in the baseline) how many were located."""

    sources: int = 0
    heard: int = 0
    located: int = 0
    violations: int = 0
    violations_located: int = 0

    def __add__(self, o: LayoutResult) -> LayoutResult:
        return LayoutResult(
            self.sources + o.sources, self.heard + o.heard, self.located + o.located,
            self.violations + o.violations, self.violations_located + o.violations_located,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Block:
    """Days ``since`` <= day < ``until`` of a history, holding ``n`` incidents."""

    since: dt.date
    until: dt.date
    n: int


@dataclass(frozen=True, slots=True)
class BlockJob:
    """One task: replay the block's days under each of ``targets`` (scenario ids)."""

    db_url: str
    files_key: str  # sha256 of the agreement's files: scenarios are loaded once per worker
    agreement_id: str
    targets: tuple[str, ...]
    from_: str | None
    recompute: bool
    threshold: float
    block: Block
    max_rows: int = BLOCK_ROWS
    layouts: tuple[Layout, ...] = ()
    sensors: SensorParameters | None = None


@dataclass(frozen=True, slots=True)
class BlockResult:
    """The block's result per target (in ``targets`` order) and what it cost where it ran."""

    results: tuple[ReplayResult, ...]
    n_incidents: int
    seconds: float
    read_seconds: float  # of which reading the block from the database
    cpu_seconds: float  # CPU time of the task's thread (what an idle core would take; a Dask
    # worker's own threads, heartbeats and the event loop, are left out)
    setup_cpu_seconds: float  # of which compiling the scenarios (a process's first task only)
    peak_rss_mb: float  # the peak resident memory of the process that ran it, so far
    where: str  # host:pid
    layouts: tuple[LayoutResult, ...] = ()  # per sensor layout of the job, in its order


@dataclass(frozen=True, slots=True)
class SweepResult:
    """The whole history's result per target scenario, and how it was computed."""

    results: dict[str, ReplayResult]
    mode: str  # "in-process", "local cluster of N workers" or "scheduler tcp://..."
    blocks: int
    workers: int  # distinct processes that ran blocks
    peak_rss_mb: float  # the largest peak resident memory of any of them
    block_seconds: tuple[float, ...]
    read_seconds: tuple[float, ...]
    cpu_seconds: tuple[float, ...]
    setup_cpu_seconds: tuple[float, ...]
    #: a history file's rows left out (each named: row, id, field, fix), and its rows read
    rejects: tuple[Reject, ...] = ()
    rows_read: int = 0
    layouts: dict[str, LayoutResult] | None = None  # per sensor layout swept, by name


def day_blocks(
    session: Session,
    agreement_id: str,
    since: dt.date | None = None,
    max_rows: int = BLOCK_ROWS,
) -> list[Block]:
    """The history cut into blocks of whole consecutive days, at most ``max_rows`` incidents each.

    One count per stored day (``GROUP BY day``, on the ``(agreement_id, day)`` index); a day
    holding more than ``max_rows`` is a block alone.
    """
    i = IncidentRow
    q = select(i.day, func.count()).where(i.agreement_id == agreement_id)
    if since is not None:
        q = q.where(i.day >= since)
    days = session.execute(q.group_by(i.day).order_by(i.day)).all()
    blocks: list[Block] = []
    start: dt.date | None = None
    last: dt.date | None = None
    n = 0
    for day, count in days:  # days (hundreds to thousands): not a hot path
        if start is not None and last is not None and n + count > max_rows:
            blocks.append(Block(start, last + dt.timedelta(days=1), n))
            start, n = None, 0
        if start is None:
            start = day
        last, n = day, n + int(count)
    if start is not None and last is not None:
        blocks.append(Block(start, last + dt.timedelta(days=1), n))
    return blocks


@dataclass(slots=True)
class FileRead:
    """What streaming a history file found so far: rows read, rows left out (named)."""

    rows: int = 0
    rejects: list[Reject] | None = None


def _days_of(t: Any) -> np.ndarray:
    """Each row's UTC day (days since 1970) of a validated table (naive UTC ``observed_at``)."""
    at = np.asarray(t.column("observed_at").to_numpy(), "datetime64[us]")
    return at.astype("datetime64[D]").astype(np.int64)


def file_blocks(
    path: Path,
    under: Any,
    *,
    since: dt.date | None = None,
    max_rows: int = BLOCK_ROWS,
    limits: UploadLimits = DEFAULT_LIMITS,
    found: FileRead | None = None,
) -> Iterator[tuple[Block, Any]]:
    """A history file (GeoParquet or CSV of incidents) as blocks of whole consecutive days, at most
    ``max_rows`` incidents each (a bigger day alone), with each block's validated columns.

    Read in the reader's blocks (bounded memory); rows the reader or the agreement ``under``
    refuses (as ``import`` would) are left out and named in ``found.rejects``. Days before
    ``since`` are skipped. Raises :class:`ValidationError` for a file not in day order.
    """
    import pyarrow as pa

    # here, not at the top: a Dask scheduler imports this module to read the tasks
    from truceline.io.columnar import ColumnarRead
    from truceline.services.adjudication import _batch as arrow_batch
    from truceline.services.adjudication import batch_rejects

    found = found if found is not None else FileRead()
    found.rejects = found.rejects if found.rejects is not None else []
    pending: list[Any] = []  # tables of the days not yet cut into a block
    pending_days: list[np.ndarray] = []
    last = np.iinfo(np.int64).min
    first_since = (since - dt.date(1970, 1, 1)).days if since is not None else None

    def cut(final: bool) -> Iterator[tuple[Block, Any]]:
        if not pending:
            return
        t = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
        days = np.concatenate(pending_days)
        pending.clear()
        pending_days.clear()
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        ends = np.r_[starts[1:], len(days)]
        whole = ends if final else ends[:-1]  # the last day may go on in the next read block
        lo = 0
        while True:
            ahead = whole[whole > lo]
            if ahead.size == 0:
                break
            fits = ahead[ahead - lo <= max_rows]
            if fits.size == 0:
                hi = int(ahead[0])  # a day bigger than a block: alone
            elif fits.size < ahead.size or final:
                hi = int(fits[-1])  # the next whole day would not fit: cut here
            else:
                break  # everything here fits: more days may join it
            d0, d1 = int(days[lo]), int(days[hi - 1])
            epoch = dt.date(1970, 1, 1)
            yield (
                Block(epoch + dt.timedelta(days=d0), epoch + dt.timedelta(days=d1 + 1), hi - lo),
                t.slice(lo, hi - lo),
            )
            lo = hi
        if lo < len(days):
            pending.append(t.slice(lo))
            pending_days.append(days[lo:])

    read = ColumnarRead(path, limits)
    for b in read:
        found.rejects.extend(b.rejects)
        found.rows = b.records or found.rows + len(b.incidents.rows) + len(b.rejects)
        t, rows = b.incidents.table, b.incidents.rows
        if t.num_rows == 0:
            continue
        ok, bad = batch_rejects(under, arrow_batch(t), rows)
        found.rejects.extend(bad)
        if not ok.all():
            t, rows = t.filter(pa.array(ok)), rows[ok]
        days = _days_of(t)
        back = np.flatnonzero(np.r_[days[0] < last, days[1:] < days[:-1]])
        if back.size:
            k = int(back[0])
            raise ValidationError(
                f"{path}: row {int(rows[k])} ({t.column('id')[k]}) is of a day before the row "
                "above it: a history is read in blocks of whole days, in day order",
                field="observed_at",
                fix="sort the file by observed_at (an `export` of the store is in day order)",
            )
        last = int(days[-1])
        if first_since is not None and days[0] < first_since:
            keep = days >= first_since
            t, days = t.filter(pa.array(keep)), days[keep]
            if t.num_rows == 0:
                continue
        pending.append(t)
        pending_days.append(days)
        yield from cut(final=False)
    yield from cut(final=True)
    found.rejects.sort(key=lambda r: r.row)


# -- on a worker -----------------------------------------------------------------------------------

_SCENARIOS: dict[str, list[Scenario]] = {}
_ENGINES: dict[str, Engine] = {}
_WARM: set[str] = set()  # agreements whose scenarios this process has compiled


def _scenarios(key: str, files: Mapping[str, bytes]) -> list[Scenario]:
    """The agreement's scenarios, loaded (and their zones compiled) once per process."""
    if key not in _SCENARIOS:
        if len(_SCENARIOS) >= 4:
            _SCENARIOS.pop(next(iter(_SCENARIOS)))
        _SCENARIOS[key] = load_scenarios_files(files)
    return _SCENARIOS[key]


def _engine(url: str) -> Engine:
    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def replay_block(job: BlockJob, files: Mapping[str, bytes], table: Any = None) -> BlockResult:
    """Replay one block of days under each target scenario (a task; runs wherever it is sent).

    Reads the block's incidents and stored findings; the baseline is the stored findings (made
    under ``from_`` when given: only the incidents the change can reach are classified again) or,
    with ``recompute``, a classification under ``from_`` made here, once for all targets.
    ``table``: the block's validated columns read from a history file (then the baseline is a
    classification under ``from_``).
    """
    t0, c0 = time.perf_counter(), time.thread_time()
    by_id = {s.id: s for s in _scenarios(job.files_key, files)}
    b = job.block
    if table is not None:
        from truceline.services.adjudication import _batch as arrow_batch

        if isinstance(table, bytes):  # shipped to a worker as Arrow IPC
            import pyarrow as pa

            table = pa.ipc.open_stream(table).read_all()
        hist = History(arrow_batch(table), Findings.empty())
        del table
    else:
        with session_factory(_engine(job.db_url))() as session:
            hist = load_history(session, job.agreement_id, b.since, b.until)
    t_read = time.perf_counter() - t0
    batch, n = hist.batch, len(hist.batch)
    c_setup = 0.0
    if n and job.files_key not in _WARM:  # the process's first task: compile every scenario's
        c1 = time.thread_time()  # zones and line index on one incident, timed apart
        one = batch.take(np.arange(1))
        for sid in {*job.targets, *([job.from_] if job.from_ else [])}:
            classify_by_days(by_id[sid].agreement, one)
        _WARM.add(job.files_key)
        c_setup = time.thread_time() - c1
    under = by_id[job.from_].agreement if job.from_ is not None else None
    stored = hist.findings
    if job.recompute and under is not None:
        stored = classify_by_days(under, batch, max_rows=job.max_rows)
    del hist
    lay = _layouts(job, batch, stored)
    out = []
    for t in job.targets:  # target scenarios (a handful to tens)
        to = by_id[t].agreement
        if under is not None:
            after = replay_findings(batch, under, to, stored, max_rows=job.max_rows).findings
        else:
            after = classify_by_days(to, batch, max_rows=job.max_rows)
        out.append(compare_findings(stored, after, n, threshold=job.threshold))
        del after
    return BlockResult(
        tuple(out),
        n,
        time.perf_counter() - t0,
        t_read,
        time.thread_time() - c0,
        c_setup,
        _peak_rss_mb(),
        f"{socket.gethostname()}:{os.getpid()}",
        lay,
    )


def _layouts(job: BlockJob, batch: Any, stored: Findings) -> tuple[LayoutResult, ...]:
    """Each sensor layout of the job against the block's acoustic incidents."""
    if not job.layouts:
        return ()
    p = job.sensors or SensorParameters()
    src = np.flatnonzero(np.isin(batch.kind, np.array(ACOUSTIC_KINDS)))
    violating = np.zeros(len(batch), bool)
    violating[stored.incident[stored.probability >= job.threshold]] = True
    bad = violating[src]
    out = []
    for lay in job.layouts:  # layouts (a handful to tens), each vectorised over the block
        acc = accuracy_at(lay.lon, lay.lat, batch.lon[src], batch.lat[src], p)
        ok = acc <= p.target_accuracy_m
        counts = (src.size, np.isfinite(acc).sum(), ok.sum(), bad.sum(), (ok & bad).sum())
        out.append(LayoutResult(*(int(c) for c in counts)))
    return tuple(out)


def _peak_rss_mb() -> float:
    """This process's peak resident memory (MB): ``VmHWM``, which, unlike ``ru_maxrss``, does not
    carry over the parent's peak into a process forked and exec'd from it (a local worker)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# -- on the client ---------------------------------------------------------------------------------


@contextmanager
def _client(scheduler: str | None, workers: int) -> Iterator[Any]:
    """A Dask client of the given scheduler, or of a local cluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="5s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise ValidationError(
                f"--scheduler {scheduler}: no Dask scheduler answers there ({exc}); start one "
                "(`dask scheduler`, workers with `dask worker tcp://HOST:8786`) or leave "
                "--scheduler out to run on this machine"
            ) from exc
        try:
            yield client
        finally:
            client.close()  # type: ignore[no-untyped-call]
        return
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    try:
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client
    finally:
        cluster.close()


def _ipc(table: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def run_sweep(
    db_url: str,
    files: Mapping[str, bytes],
    targets: Sequence[str],
    *,
    from_: str | None = None,
    since: dt.date | None = None,
    recompute: bool = False,
    threshold: float = 0.5,
    scheduler: str | None = None,
    workers: int | None = None,
    max_rows: int = BLOCK_ROWS,
    in_process: bool | None = None,
    history: Path | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
    layouts: Sequence[Layout] = (),
    sensors: SensorParameters | None = None,
) -> SweepResult:
    """The history of the agreement in ``files`` replayed under each of ``targets``: the stored
    one (``db_url``), or the incidents of the file ``history`` (GeoParquet or CSV; needs
    ``from_``, the baseline being a classification under it; ``db_url`` unused).

    ``files`` are the agreement folder's files by name (shipped to the workers once). See the
    module's doc for where the blocks run; ``in_process`` forces (True) or forbids (False) this
    process when no scheduler is given (default: decided as said there).

    ``layouts``: sensor layouts swept against the same history, block by block: for each, the
    acoustic incidents it would have heard and located within ``sensors.target_accuracy_m``
    (:class:`LayoutResult`).
    """
    scenarios = load_scenarios_files(files)
    by_id = {s.id: s for s in scenarios}
    if not targets:
        raise ValidationError("name at least one scenario to replay the history under")
    for sid in (*targets, from_):
        if sid is not None and sid not in by_id:
            raise ValidationError(f"no scenario {sid!r}; known: {', '.join(by_id)}")
    if history is not None and from_ is None:
        raise ValidationError(
            "--history needs --from SCENARIO: a file holds no findings, so the history is "
            "classified under that scenario for the baseline"
        )
    if recompute and from_ is None:
        raise ValidationError("--recompute needs --from SCENARIO to classify the history under")
    if workers is not None and workers < 1:
        raise ValidationError(f"--workers {workers}: give 1 or more")
    agreement_id = by_id[targets[0]].agreement.id
    key = hashlib.sha256(
        b"".join(k.encode() + b"\0" + hashlib.sha256(v).digest() for k, v in sorted(files.items()))
    ).hexdigest()
    found = FileRead()
    pieces: Iterator[tuple[Block, Any]]
    if history is not None:
        under = by_id[from_].agreement  # type: ignore[index]
        pieces = file_blocks(
            Path(history), under, since=since, max_rows=max_rows, limits=limits, found=found
        )
        recompute, db_url = True, ""
        n_pieces = None
    else:
        engine = make_engine(db_url)
        try:
            with session_factory(engine)() as session:
                blocks = day_blocks(session, agreement_id, since, max_rows)
        finally:
            engine.dispose()
        pieces = iter([(b, None) for b in blocks])
        n_pieces = len(blocks)
    n_workers = workers or os.cpu_count() or 1

    def job(b: Block) -> BlockJob:
        return BlockJob(db_url, key, agreement_id, tuple(targets), from_, recompute, threshold, b,
                        max_rows, tuple(layouts), sensors)  # fmt: skip

    parts: list[BlockResult] = []
    if in_process is None:
        in_process = n_workers == 1 or (n_pieces is not None and n_pieces <= 1)
    if scheduler is None and in_process:
        mode = "in-process"
        parts = [replay_block(job(b), files, t) for b, t in pieces]  # blocks one after the other
    else:
        mode = f"scheduler {scheduler}" if scheduler else f"local cluster of {n_workers} workers"
        from distributed import wait

        with _client(scheduler, n_workers) as client:
            # One future holding the whole mapping (a list of one; a dict would scatter per key).
            shipped = client.scatter([dict(files)], broadcast=True, hash=False)[0]
            if scheduler is not None:
                n_workers = max(len(client.scheduler_info().get("workers", {})), 1)
            # A file's blocks go through this process: at most two per worker in flight (memory);
            # the store's blocks are read by the workers, so all are submitted at once.
            limit = 2 * n_workers if history is not None else None
            running: set[Any] = set()

            def collect(done: Any) -> None:
                # reduced on the client as blocks finish; a future dropped is released
                running.difference_update(done)
                parts.extend(fut.result() for fut in done)

            for b, t in pieces:
                # a file's block goes to a worker as Arrow IPC bytes, scattered (not in the graph)
                data = client.scatter(_ipc(t), hash=False) if t is not None else None
                task = pickle.dumps((replay_block, (job(b),)))  # the scheduler sees bytes only
                running.add(client.submit(call_pickled, task, shipped, data, pure=False))
                del t, data
                if limit is not None and len(running) >= limit:
                    collect(wait(running, return_when="FIRST_COMPLETED").done)  # type: ignore[no-untyped-call]
            while running:
                collect(wait(running, return_when="FIRST_COMPLETED").done)  # type: ignore[no-untyped-call]
    results = {
        t: merge_replays([p.results[k] for p in parts])
        if parts
        else compare_findings(Findings.empty(), Findings.empty(), 0, threshold=threshold)
        for k, t in enumerate(targets)
    }
    return SweepResult(
        results=results,
        mode=mode,
        blocks=len(parts),
        workers=len({p.where for p in parts}),
        peak_rss_mb=max((p.peak_rss_mb for p in parts), default=0.0),
        block_seconds=tuple(p.seconds for p in parts),
        read_seconds=tuple(p.read_seconds for p in parts),
        cpu_seconds=tuple(p.cpu_seconds for p in parts),
        setup_cpu_seconds=tuple(p.setup_cpu_seconds for p in parts),
        rejects=tuple(found.rejects or ()),
        rows_read=found.rows,
        layouts={
            lay.name: sum((p.layouts[k] for p in parts), LayoutResult()) for k, lay in enumerate(layouts)
        }
        if layouts
        else None,
    )
