"""Benchmark: ``plan replay`` and ``plan sweep`` in blocks of days on Dask (local clusters).

Two parts, each on a history stored in SQLite as ingest leaves it (generated with
``benchmarks/replay.py``'s vectorised generator, adjudicated under ``frozen``, bulk-written):

- ``replay`` (default ``--n 3000000`` over 365 days, ``--to admin-borders``): the history replayed
  from the store by :func:`truceline.services.sweep.run_sweep` on a local cluster of 1 worker and
  then of 2 workers (processes, one thread each), in the same run: wall time, the ratio (target
  >= 1.7x on two cores), and each worker's peak resident memory (target <= 2 GB); results equal.
- ``sweep`` (``--sweep-n`` incidents over 5 years, 10 candidate lines, each the ``frozen`` line
  with a 2-4 km bulge in a different tenth of it): the sweep at 1, 2 and 4 workers, and the model
  (see BENCHMARKS.md) fitted on the 1-worker run, its predictions printed beside the measurements
  (CPU time, which the machine's load does not change; wall time on an idle machine).

The history is built once into ``--dir`` (reused when there: building 3M takes minutes) and its
arrays freed before anything is measured. Run: ``make bench`` or
``.venv/bin/python benchmarks/replay_dask.py [--n N] [--sweep-n N] [--part replay|sweep|both]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from truceline.core.planner import classify_by_days  # noqa: E402
from truceline.io.agreement_files import files_of_folder  # noqa: E402
from truceline.io.scenarios import load_scenarios  # noqa: E402
from truceline.services.sweep import SweepResult, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
UKR = ROOT / "examples" / "ukraine-2024"
CORES = os.cpu_count() or 1


def build_store(db: Path, folder: Path, n: int, days: int) -> None:
    """``n`` incidents over ``days`` days adjudicated under ``frozen``, written to ``db``."""
    from replay import make_history, write_store  # benchmarks/replay.py

    if db.exists():
        print(f"  reusing {db}")
        return
    a = {s.id: s for s in load_scenarios(folder)}["frozen"].agreement
    t0 = time.perf_counter()
    hist = make_history(a, n, days=days)
    stored = classify_by_days(a, hist)
    tmp = db.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    write_store(tmp, a, hist, stored)
    tmp.rename(db)
    print(f"  built {db}: {n:,} incidents, {len(stored):,} findings in {time.perf_counter() - t0:.0f} s")
    del hist, stored
    gc.collect()


def sweep_folder(base: Path, out: Path, k: int = 10) -> list[str]:
    """The example agreement with ``k`` more candidate lines: the ``frozen`` line with a smooth bulge
    (2 to 4 km east, a sine over the bulge) in the ``i``-th of ``k`` stretches."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(base, out)
    line = json.loads((base / "line.geojson").read_text())
    feat = line["features"][0] if "features" in line else {"type": "Feature", "geometry": line}
    xy = np.array(feat["geometry"]["coordinates"], dtype=float)
    ids = []
    extra = []
    for i in range(k):
        lo, hi = i * len(xy) // k, (i + 1) * len(xy) // k
        t = np.zeros(len(xy))
        t[lo:hi] = np.sin(np.linspace(0, np.pi, hi - lo))
        bulge_km = 2.0 + 2.0 * i / max(k - 1, 1)
        moved = xy.copy()
        moved[:, 0] += t * bulge_km / (111.32 * np.cos(np.radians(moved[:, 1])))
        sid = f"bulge-{i}"
        geo = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"id": sid},
             "geometry": {"type": "LineString", "coordinates": moved.tolist()}}]}  # fmt: skip
        (out / "scenarios" / f"line-{sid}.geojson").write_text(json.dumps(geo))
        extra.append(
            f"  - id: {sid}\n    name: Bulge {i}\n    line: {{file: scenarios/line-{sid}.geojson}}\n"
        )
        ids.append(sid)
    with (out / "agreement.yaml").open("a") as f:
        f.write("".join(extra))
    return ids


def run(
    db: Path, folder: Path, targets: list[str], workers: int, rows: int
) -> tuple[float, SweepResult]:
    t0 = time.perf_counter()
    res = run_sweep(
        str(db), files_of_folder(folder), targets, from_="frozen", workers=workers, max_rows=rows,
        in_process=False,
    )  # fmt: skip
    return time.perf_counter() - t0, res


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def part_replay(tmp: Path, n: int, to: str) -> None:
    db = tmp / f"replay-{n}.db"
    print(f"replay of {n:,} incidents over 365 days under {to} (load {load()} on {CORES} cores)")
    build_store(db, UKR, n, 365)
    gc.collect()
    times: dict[int, float] = {}
    results: dict[int, SweepResult] = {}
    for w in (1, 2):
        print(f"  load before {w} worker(s): {load()}")
        times[w], results[w] = run(db, UKR, [to], w, 200_000)
        r = results[w]
        busy = sum(r.block_seconds)
        print(
            f"  {w} worker(s): {times[w]:.1f} s wall, {r.blocks} blocks, {r.workers} processes; "
            f"block time summed {busy:.1f} s (CPU {sum(r.cpu_seconds):.1f} s, reading "
            f"{sum(r.read_seconds):.1f} s); peak memory of "
            f"a worker {r.peak_rss_mb:,.0f} MB (target <= 2,048)"
        )
    same = results[1].results == results[2].results
    res = results[2].results[to]
    print(
        f"  2 workers vs 1: {times[1] / times[2]:.2f}x (target >= 1.7x); results equal: {same}; "
        f"violations {res.before:,} -> {res.after:,} ({res.new:,} new, {res.cleared:,} cleared); "
        f"load after: {load()}"
    )
    assert same


def part_sweep(tmp: Path, n: int, rows: int) -> None:
    folder = tmp / "ukraine-sweep"
    targets = sweep_folder(UKR, folder)
    db = tmp / f"sweep-{n}.db"
    print(
        f"sweep: {len(targets)} lines x 5 years, {n:,} incidents, blocks of <= {rows:,} "
        f"(load {load()} on {CORES} cores)"
    )
    build_store(db, folder, n, 5 * 365)
    gc.collect()
    measured: dict[int, tuple[float, SweepResult, float]] = {}
    for w in (1, 2, 4):
        other = os.getloadavg()[0]  # runnable processes of others, just before
        t, r = run(db, folder, targets, w, rows)
        measured[w] = (t, r, other)
        print(
            f"  {w} worker(s) (load before {other:.1f}): {t:.1f} s wall, {r.blocks} blocks on "
            f"{r.workers} processes, block time summed {sum(r.block_seconds):.1f} s (CPU "
            f"{sum(r.cpu_seconds):.1f} s, reading {sum(r.read_seconds):.1f} s), longest block "
            f"{max(r.block_seconds):.1f} s, peak memory of a worker {r.peak_rss_mb:,.0f} MB"
        )

    t1, r1, _ = measured[1]
    setup = sum(r1.setup_cpu_seconds)  # one process compiling the 10 lines (and frozen)
    work = sum(r1.cpu_seconds) - setup  # core-seconds of replay proper, all blocks
    start = t1 - sum(r1.block_seconds)  # client: cluster start, day counts, scheduling (wall)
    per = work / (n * len(targets))
    print(
        f"  model (fitted on 1 worker): CPU(w) = W + w * s, T(w) = S + s + ceil(B / min(w, cores)) "
        f"* W / B on an idle machine; W = {work:.1f} core-s of replay ({per * 1e6:.1f} us per "
        f"incident and "
        f"line), s = {setup:.1f} core-s per worker (compiling the scenarios), S = {start:.1f} s"
    )
    for w in (2, 4):
        t, r, other = measured[w]
        cpu = sum(r.cpu_seconds)
        pred = work + r.workers * setup
        idle = start + setup + math.ceil(r1.blocks / min(w, CORES)) * work / r1.blocks
        print(
            f"  {w} workers: CPU predicted {pred:.1f} core-s, measured {cpu:.1f} "
            f"({cpu / pred - 1:+.0%}; "
            f"setup measured {sum(r.setup_cpu_seconds):.1f}); wall on an idle machine {idle:.1f} s "
            f"predicted, {t:.1f} s measured at load {other:.1f}"
        )
        assert r.results == r1.results
    full = 3_000_000 * 5 * 10 * per
    blk = full / 75  # blocks of 200,000

    def minutes(w: int) -> float:
        return (start + setup + math.ceil(75 / w) * blk) / 60

    print(
        f"  a busy mission, 3,000,000 incidents a year x 5 years x 10 lines: W = {full / 3600:.1f} "
        f"core-hours in 75 blocks of 200,000; on w idle cores S + s + ceil(75 / w) * W / 75: "
        f"{minutes(2):.0f} min on 2, {minutes(16):.1f} min on 16, {minutes(64):.1f} min on 64 (before "
        f"the contention measured above); results equal at 1, 2, 4 workers: True; load after {load()}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["replay", "sweep", "both"], default="both")
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--to", default="admin-borders")
    ap.add_argument("--sweep-n", type=int, default=100_000)
    ap.add_argument("--sweep-rows", type=int, default=10_000, help="incidents per block (sweep)")
    ap.add_argument("--dir", type=Path, default=None, help="keep the built stores here (reused)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = args.dir or Path(t)
        tmp.mkdir(parents=True, exist_ok=True)
        if args.part in ("replay", "both"):
            part_replay(tmp, args.n, args.to)
        if args.part in ("sweep", "both"):
            part_sweep(tmp, args.sweep_n, args.sweep_rows)


if __name__ == "__main__":
    main()
