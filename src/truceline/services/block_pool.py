"""Blocks of work done in worker processes, their results taken back in the order given.

A file classified in blocks (:func:`truceline.services.adjudication.classify_file`) is read by
one process, which keeps what must stay whole (the repeated-id index, the days held for count
caps) and writes the output; the checks of each block's cells, the rule engine and the output's
formatting, independent from block to block, run in worker processes, so two cores work at once
(threads did not help: most of the engine's time between numpy calls holds the GIL).

Workers are forked from the calling process, so they start with its imported modules and its
loaded state (the agreement, the line's search tables read from the cache) without copying or
importing anything again. Where ``fork`` does not exist (Windows, macOS by default) the pool
runs the work in the calling process instead: same results, one core.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import signal
import traceback
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["BlockPool", "WorkerError", "default_workers"]

T = TypeVar("T")
R = TypeVar("R")
M = TypeVar("M")

#: Most worker processes :func:`default_workers` picks: beyond this the reading process is the
#: bottleneck and more workers only hold more blocks in memory.
MAX_DEFAULT_WORKERS = 4
#: Seconds between checks that the workers are alive while a result is awaited.
_POLL_S = 1.0


def default_workers() -> int:
    """Worker processes by default: the cores this process may use, at most
    :data:`MAX_DEFAULT_WORKERS`; 0 (work in this process) on one core or without ``fork``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    if cores < 2 or "fork" not in mp.get_all_start_methods():
        return 0
    return min(cores, MAX_DEFAULT_WORKERS)


class WorkerError(RuntimeError):
    """A worker process failed (its traceback in the message) or died."""


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a :class:`WorkerError` carrying its traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return WorkerError(f"a worker process failed:\n{text}")
    return exc


def _serve(
    work: Callable[[Any], Any],
    finish: Callable[[], object] | None,
    tasks: Any,
    results: Any,
) -> None:
    """A worker's loop: take (number, item) until ``None``, put back (number, ok, result)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and ends us
    while (task := tasks.get()) is not None:
        seq, item = task
        try:
            results.put((seq, True, work(item)))
        except BaseException as exc:  # sent to the parent, raised there
            results.put((seq, False, _portable(exc)))
    if finish is not None:
        try:
            finish()
        except Exception as exc:
            results.put((-1, False, _portable(exc)))


class BlockPool(Generic[T, R, M]):
    """``work`` on items in ``workers`` forked processes (0: in this process), each result
    returned by :meth:`next` in the order the items were submitted, with the ``meta`` given
    beside the item (kept in this process, never sent).

    ``finish`` runs in each worker once its last item is done (e.g. to save what it cached).
    ``ahead``: items submitted and not yet taken back at most (default ``workers + 1``);
    :meth:`submit` first takes back results (into :meth:`next`'s queue) to stay within it, so
    memory holds a bounded number of blocks whatever the file's size.

    Use as a context manager: leaving it without :meth:`close` (an error) ends the workers.
    """

    def __init__(
        self,
        work: Callable[[T], R],
        workers: int,
        *,
        finish: Callable[[], object] | None = None,
        ahead: int | None = None,
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers {workers}: give 0 or more")
        if workers and "fork" not in mp.get_all_start_methods():  # pragma: no cover - not Linux
            workers = 0
        self.work = work
        self.workers = workers
        self.ahead = max(1, ahead if ahead is not None else workers + 1)
        self._meta: deque[tuple[int, M]] = deque()  # submitted, in order
        self._done: dict[int, R] = {}  # results come back in any order
        self._failed: dict[int, BaseException] = {}  # raised by next() in turn, as results are
        self._seq = 0
        self._procs: list[Any] = []
        if workers:
            ctx = mp.get_context("fork")
            self._tasks = ctx.Queue()
            self._results = ctx.Queue()
            with warnings.catch_warnings():
                # Python >= 3.12 warns on fork in a process with threads (a progress bar's, or
                # pyarrow's pools): the workers never touch what those threads hold
                warnings.simplefilter("ignore", DeprecationWarning)
                for _ in range(workers):
                    p = ctx.Process(
                        target=_serve, args=(work, finish, self._tasks, self._results), daemon=True
                    )
                    p.start()
                    self._procs.append(p)
        self._finish_here: Callable[[], object] | None = None if workers else finish

    def __enter__(self) -> BlockPool[T, R, M]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    @property
    def pending(self) -> int:
        """Items submitted whose results were not yet taken back by :meth:`next`."""
        return len(self._meta)

    def submit(self, item: T, meta: M) -> None:
        """Hand ``item`` to a worker (in this process: do it now)."""
        seq = self._seq
        self._seq += 1
        if not self.workers:
            self._done[seq] = self.work(item)
        else:
            while len(self._meta) - len(self._done) - len(self._failed) >= self.ahead:
                self._receive()
            self._tasks.put((seq, item))
        self._meta.append((seq, meta))

    def next(self) -> tuple[R, M]:
        """The oldest submitted item's result and its meta (waits for it)."""
        seq, meta = self._meta.popleft()
        while seq not in self._done and seq not in self._failed:
            self._receive()
        if seq in self._failed:
            raise self._failed.pop(seq)
        return self._done.pop(seq), meta

    def _receive(self) -> None:
        while True:
            try:
                seq, ok, value = self._results.get(timeout=_POLL_S)
                break
            except queue.Empty:
                dead = [p for p in self._procs if not p.is_alive()]
                if dead:
                    raise WorkerError(
                        f"a worker process ended unexpectedly (exit code {dead[0].exitcode}; "
                        "out of memory?)"
                    ) from None
        if not ok and seq < 0:  # a worker's ``finish``
            raise value
        if not ok:  # raised when its turn comes: the first block's failure is the one seen
            self._failed[seq] = value
        else:
            self._done[seq] = value

    def close(self) -> None:
        """Every result must have been taken; tell the workers to finish, and wait for them."""
        if not self.workers:
            if self._finish_here is not None:
                self._finish_here()
            return
        for _ in self._procs:
            self._tasks.put(None)
        for p in self._procs:
            p.join()
        failed = [p.exitcode for p in self._procs if p.exitcode]
        try:  # a failure in a worker's ``finish``
            _, ok, value = self._results.get_nowait()
        except queue.Empty:
            pass
        else:
            if not ok:
                raise value
        self._procs = []
        if failed:
            raise WorkerError(f"a worker process ended with exit code {failed[0]}")

    def terminate(self) -> None:
        """End the workers now (after an error; nothing more is taken back)."""
        for p in self._procs:
            p.terminate()
        for p in self._procs:
            p.join()
        self._procs = []
        if self.workers:
            self._tasks.cancel_join_thread()
            self._results.cancel_join_thread()
