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
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import resource
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from truceline.core.planner import (
    ReplayResult,
    Scenario,
    classify_by_days,
    compare_findings,
    merge_replays,
    replay_findings,
)
from truceline.core.rules import Findings
from truceline.errors import ValidationError
from truceline.io.scenarios import load_scenarios_files
from truceline.services.planner import load_history
from truceline.store.db import make_engine, session_factory
from truceline.store.models import IncidentRow

__all__ = [
    "BLOCK_ROWS",
    "Block",
    "BlockJob",
    "BlockResult",
    "SweepResult",
    "day_blocks",
    "replay_block",
    "run_sweep",
]

BLOCK_ROWS = 200_000  # incidents a block: a worker peaks at ~0.7 GB (see BENCHMARKS.md)


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


def replay_block(job: BlockJob, files: Mapping[str, bytes]) -> BlockResult:
    """Replay one block of days under each target scenario (a task; runs wherever it is sent).

    Reads the block's incidents and stored findings; the baseline is the stored findings (made
    under ``from_`` when given: only the incidents the change can reach are classified again) or,
    with ``recompute``, a classification under ``from_`` made here, once for all targets.
    """
    t0, c0 = time.perf_counter(), time.thread_time()
    by_id = {s.id: s for s in _scenarios(job.files_key, files)}
    b = job.block
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
    )


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
) -> SweepResult:
    """The stored history of the agreement in ``files`` replayed under each of ``targets``.

    ``files`` are the agreement folder's files by name (shipped to the workers once). See the
    module's doc for where the blocks run; ``in_process`` forces (True) or forbids (False) this
    process when no scheduler is given (default: decided as said there).
    """
    scenarios = load_scenarios_files(files)
    by_id = {s.id: s for s in scenarios}
    if not targets:
        raise ValidationError("name at least one scenario to replay the history under")
    for sid in (*targets, from_):
        if sid is not None and sid not in by_id:
            raise ValidationError(f"no scenario {sid!r}; known: {', '.join(by_id)}")
    if recompute and from_ is None:
        raise ValidationError("--recompute needs --from SCENARIO to classify the history under")
    if workers is not None and workers < 1:
        raise ValidationError(f"--workers {workers}: give 1 or more")
    agreement_id = by_id[targets[0]].agreement.id
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            blocks = day_blocks(session, agreement_id, since, max_rows)
    finally:
        engine.dispose()
    key = hashlib.sha256(
        b"".join(k.encode() + b"\0" + hashlib.sha256(v).digest() for k, v in sorted(files.items()))
    ).hexdigest()
    jobs = [
        BlockJob(db_url, key, agreement_id, tuple(targets), from_, recompute, threshold, b, max_rows)
        for b in blocks
    ]
    n_workers = workers or os.cpu_count() or 1
    parts: list[BlockResult] = []
    if in_process is None:
        in_process = n_workers == 1 or len(jobs) <= 1
    if scheduler is None and in_process:
        mode = "in-process"
        parts = [replay_block(j, files) for j in jobs]  # blocks one after the other
    else:
        mode = f"scheduler {scheduler}" if scheduler else f"local cluster of {n_workers} workers"
        from distributed import as_completed

        with _client(scheduler, n_workers) as client:
            # One future holding the whole mapping (a list of one; a dict would scatter per key).
            shipped = client.scatter([dict(files)], broadcast=True, hash=False)[0]
            futures = [client.submit(replay_block, j, shipped, pure=False) for j in jobs]
            for fut in as_completed(futures):  # type: ignore[no-untyped-call]  # reduced on the client as blocks finish
                parts.append(fut.result())
                fut.release()
    results = {
        t: merge_replays([p.results[k] for p in parts])
        if parts
        else compare_findings(Findings.empty(), Findings.empty(), 0, threshold=threshold)
        for k, t in enumerate(targets)
    }
    return SweepResult(
        results=results,
        mode=mode,
        blocks=len(jobs),
        workers=len({p.where for p in parts}),
        peak_rss_mb=max((p.peak_rss_mb for p in parts), default=0.0),
        block_seconds=tuple(p.seconds for p in parts),
        read_seconds=tuple(p.read_seconds for p in parts),
        cpu_seconds=tuple(p.cpu_seconds for p in parts),
        setup_cpu_seconds=tuple(p.setup_cpu_seconds for p in parts),
    )
