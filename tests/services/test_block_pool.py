"""The block pool: results in submission order, failures raised in the caller, workers ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from truceline.services.block_pool import BlockPool, WorkerError, default_workers


def _slow_square(x: int) -> int:
    time.sleep(0.02 * (x % 3))  # later items often finish first
    return x * x


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_results_come_back_in_submission_order(workers: int) -> None:
    got = []
    with BlockPool(_slow_square, workers) as pool:
        for x in range(20):
            pool.submit(x, f"meta {x}")
            if pool.pending > 4:
                got.append(pool.next())
        while pool.pending:
            got.append(pool.next())
        pool.close()
    assert got == [(x * x, f"meta {x}") for x in range(20)]


class _UnpicklableError(Exception):
    def __init__(self, what: str, extra: object) -> None:  # pickling passes one argument only
        super().__init__(what)
        self.extra = extra


def _fails_on_3(x: int) -> int:
    if x == 3:
        raise _UnpicklableError("three", object())
    if x == 5:
        raise ValueError("five")
    return x


@pytest.mark.parametrize("workers", [0, 2])
def test_a_failure_is_raised_in_the_caller(workers: int) -> None:
    with BlockPool(_fails_on_3, workers) as pool:
        for x in range(3):
            pool.submit(x, None)
        assert [pool.next()[0] for _ in range(3)] == [0, 1, 2]
        if workers:  # raised in the worker, shown here with its traceback
            pool.submit(3, None)
            with pytest.raises(WorkerError, match="three"):
                pool.next()
        pool2 = BlockPool(_fails_on_3, workers)
        with pool2, pytest.raises(ValueError, match="five"):
            pool2.submit(5, None)
            pool2.next()


def _dies(x: int) -> int:
    os._exit(3)


def test_a_worker_that_dies_is_noticed() -> None:
    with BlockPool(_dies, 1) as pool:
        pool.submit(1, None)
        with pytest.raises(WorkerError, match="exit code 3"):
            pool.next()


def test_finish_runs_in_every_worker(tmp_path: Path) -> None:
    def finish() -> None:
        (tmp_path / str(os.getpid())).touch()

    with BlockPool(_slow_square, 2, finish=finish) as pool:
        pool.submit(2, None)
        assert pool.next() == (4, None)
        pool.close()
    assert len(list(tmp_path.iterdir())) == 2
    with BlockPool(_slow_square, 0, finish=finish) as pool:
        pool.close()
    assert (tmp_path / str(os.getpid())).exists()


def test_default_workers_uses_the_cores_up_to_four() -> None:
    cores = len(os.sched_getaffinity(0))
    assert default_workers() == (0 if cores < 2 else min(cores, 4))
