"""Why the association does not start from a coarse space-time grid vote (issue 14, session 5).

The vote: every detection back-projected onto a grid of candidate source cells (travel time at the
told speed of sound to each cell within the hearing range), its implied emission time binned
(bins as wide as a cell's spread of travel times, sqrt(2) h / c, plus 0.1 s), and the distinct
sensors counted in each (cell, time bin). A vote is useful when the cells holding >= k sensors are
few beside the true events'. This script measures it on one minute of the stress suite's sector
scene (33 sensors 5 km apart, 50 events a minute, 5 % false detections), built here with the
suite's own generator: cells with >= k sensors against the events of that minute, and the CPU
time of the vote.

Run: ``.venv/bin/python benchmarks/acoustic_vote_density.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import acoustic_cases as ac


def _seconds(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - ac.START


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("out/acoustic_vote"))
    ap.add_argument("--start", type=float, default=300.0, help="the minute's start (s into the scene)")
    args = ap.parse_args()
    case = next(c for c in ac.CASES if c.name == "sector-50-per-min")
    folder = args.out / case.name
    meta = ac.build(case, folder)
    sxy = np.array(meta["sensor_xy_m"])  # type: ignore[arg-type]
    c = float(meta["c_mps"])  # type: ignore[arg-type]
    rows = ac._read(folder / "detections.csv")
    d_s = np.array([int(r["sensor_id"][1:]) for r in rows])
    d_t = np.array([_seconds(r["arrival_time"]) for r in rows])
    tev = ac._read(folder / "truth_events.csv")
    ex = np.array([float(r["x_m"]) for r in tev])
    ey = np.array([float(r["y_m"]) for r in tev])
    et = np.array([_seconds(r["emitted_at"]) for r in tev])
    w0, span, hear_m = args.start, 60.0, 15_000.0
    sel = (d_t >= w0) & (d_t < w0 + span + 15.0)
    ds, dtt = d_s[sel], d_t[sel]
    evs = np.flatnonzero((et >= w0 + 15.0) & (et < w0 + span - 15.0))  # all their arrivals inside
    x0, x1, y0, y1 = ac.source_box("sector")
    print(f"{len(ds)} detections, {len(evs)} events emitted in the middle 30 s of the minute")
    print("| cell | cells | time bin | votes | cell-bins with >= 5 / 8 / 10 / 12 sensors | "
          "true events' own cell-bin: median sensors, >= 10 | vote CPU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for h in (1000.0, 500.0, 250.0):
        t_cpu = time.process_time()
        gx = np.arange(x0 - 2000, x1 + 2000, h) + h / 2
        gy = np.arange(y0 - 2000, y1 + 2000, h) + h / 2
        cx, cy = (a.ravel() for a in np.meshgrid(gx, gy))
        dist = np.hypot(cx[None, :] - sxy[:, 0, None], cy[None, :] - sxy[:, 1, None])
        width = np.sqrt(2) * h / c + 0.1
        counts = {}
        votes = 0
        for off in (0.0, 0.5):  # two bin grids, half a bin apart
            t0 = dtt[:, None] - dist[ds] / c  # (detection, cell) implied emission times
            inr = dist[ds] <= hear_m
            b = np.floor((t0 - w0) / width + off).astype(np.int64)
            key = np.arange(len(cx))[None, :] * 100_000 + b
            per = np.unique(key[inr] * 64 + np.broadcast_to(ds[:, None], key.shape)[inr])
            counts[off] = np.unique(per // 64, return_counts=True)  # distinct sensors per cell-bin
            votes = int(inr.sum())
        cpu = time.process_time() - t_cpu
        cb, cnt = counts[0.0]
        above = " / ".join(str(int(np.sum(cnt >= k))) for k in (5, 8, 10, 12))
        cell = (np.floor((ey[evs] - (y0 - 2000)) / h).astype(np.int64) * len(gx)
                + np.floor((ex[evs] - (x0 - 2000)) / h).astype(np.int64))  # fmt: skip
        best = np.zeros(len(evs), np.int64)
        for off, (cb, cnt) in counts.items():
            kk = cell * 100_000 + np.floor((et[evs] - w0) / width + off).astype(np.int64)
            pos = np.clip(np.searchsorted(cb, kk), 0, len(cb) - 1)
            best = np.maximum(best, np.where(cb[pos] == kk, cnt[pos], 0))
        hits = f"{np.median(best):.0f}, {int(np.sum(best >= 10))} of {len(evs)}"
        print(f"| {h:.0f} m | {len(cx)} | {width:.2f} s | {votes:,} | {above} | {hits} | {cpu:.2f} s |")
    print(json.dumps({"load_average": [round(x, 1) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
