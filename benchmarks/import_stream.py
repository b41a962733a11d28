"""Benchmark: ``truceline import`` of a big CSV into SQLite streams in blocks: peak memory at N vs
3N rows (flat, not growing with the file).

For each size (default 1,000,000 and 3,000,000 rows): a CSV of plain incidents in day order over
90 days with ``--bad`` spoiled rows, written with numpy by ``benchmarks/classify.py``'s generator
(not Truceline's simulator or writers); then the command a user types, under ``/usr/bin/time -v``:
``truceline import FILE -a examples/ukraine-2024 --db NEW.db --rejects REJECTS.csv``. Printed per
size: wall time, rows/s, peak resident memory (``Maximum resident set size``), the counts the
command reports (checked: every good row accepted, every spoiled row rejected and named); then the
ratio of the peaks (the baseline is the smaller file: 1.0 is flat).

Run: ``.venv/bin/python benchmarks/import_stream.py [--sizes 1000000,3000000] [--bad 1000]
[--dir DIR]`` (``--dir`` keeps the CSVs for a rerun).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify import write_csv
from truceline.io.agreement_files import load_agreement

ROOT = Path(__file__).resolve().parents[1]
UKR = ROOT / "examples" / "ukraine-2024"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run_import(src: Path, db: Path, rejects: Path) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory (MB, from /usr/bin/time -v) and the command's output."""
    exe = shutil.which("truceline", path=str(Path(sys.executable).parent)) or "truceline"
    cmd = ["/usr/bin/time", "-v", exe, "import", str(src),
           "-a", str(UKR), "--db", str(db), "--rejects", str(rejects)]  # fmt: skip
    env = {**os.environ, "COLUMNS": "400"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    took = time.perf_counter() - t0
    if proc.returncode:
        print(proc.stdout[-2000:], proc.stderr[-3000:])
        raise SystemExit(f"import failed ({proc.returncode})")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    assert m, proc.stderr[-2000:]
    return took, int(m.group(1)) / 1024, " ".join(proc.stdout.split())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,3000000")
    ap.add_argument("--bad", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    ag = load_agreement(UKR)
    with tempfile.TemporaryDirectory() as t:
        work = args.dir or Path(t)
        work.mkdir(parents=True, exist_ok=True)
        peaks = {}
        for n in sizes:
            src = work / f"import-{n}.csv"
            if not src.exists():
                part = src.with_suffix(".part")
                write_csv(ag, part, n, args.bad)
                part.rename(src)
            db, rej = work / f"import-{n}.db", work / f"import-{n}.rejects.csv"
            for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), rej):
                p.unlink(missing_ok=True)
            before = load()
            took, peak, out = run_import(src, db, rej)
            with rej.open(encoding="utf-8") as fh:
                named = [r for r in csv.DictReader(fh) if r["field"] and r["row"]]
            acc = int(re.search(r"(\d+) accepted", out).group(1))  # type: ignore[union-attr]
            bad = int(re.search(r"(\d+) rejected", out).group(1))  # type: ignore[union-attr]
            blocks = re.search(r"in (\d+) block", out)
            peaks[n] = peak
            print(
                f"{n:,} rows ({src.stat().st_size / 1e6:,.0f} MB): {took:.0f} s, {n / took:,.0f} "
                f"rows/s, peak RSS {peak:,.0f} MB; {acc:,} accepted, {bad:,} rejected ({len(named):,} "
                f"named in the rejects file), {blocks.group(1) if blocks else '?'} blocks; load "
                f"{before} before, {load()} after"
            )
            assert acc + bad == n and len(named) == bad, out
            db.unlink(missing_ok=True)
        lo, hi = min(sizes), max(sizes)
        print(
            f"peak RSS {hi:,} rows / {lo:,} rows: {peaks[hi] / peaks[lo]:.2f} "
            f"({peaks[hi]:,.0f} / {peaks[lo]:,.0f} MB; 1.0 is flat)"
        )


if __name__ == "__main__":
    main()
