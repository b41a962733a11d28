"""`ledger backfill` on rows stored before the ledger kept their table: rows/s, against reading them.

    .venv/bin/python benchmarks/ledger_backfill.py [--rows 100000] [--batch 2000]

A SQLite database (FULL fsync) with ``--rows`` patrol positions written as the code before issue 17
did (no ``rows`` entries: made with one INSERT ... SELECT, independent of the simulator). Measured:
the backfill (every row read, serialised, hashed into entries of ``--batch`` rows, one transaction
each) against the baseline of reading the same rows' every column once (``SELECT *``), and the
`ledger verify` that follows (which now compares every one of them). Printed: rows/s and the ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from truceline.context import SYSTEM
from truceline.io.agreement_files import files_of_folder
from truceline.services.agreement_store import register_agreement
from truceline.services.backfill import backfill, uncovered
from truceline.store import ledger
from truceline.store.db import Database

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = ROOT / "examples" / "ukraine-2024"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=2000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(str(Path(tmp) / "older.db"), synchronous="FULL")
        db.upgrade()
        now = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
        files = files_of_folder(AGREEMENT)
        ag_id = db.write(
            lambda s: register_agreement(s, files, source=str(AGREEMENT), actor=SYSTEM, now=now).row.id
        )
        with db.write_engine.begin() as conn:  # positions stored with no ledger entry
            conn.execute(
                text(
                    "WITH RECURSIVE n(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM n WHERE k < :n) "
                    "INSERT INTO patrol_positions (agreement_id, uid, callsign, group_name, "
                    "group_role, cot_type, observed_at, lon, lat, uncertainty_m, received_at, "
                    "submitted_by) SELECT :ag, 'ANDROID-' || (k % 50), 'Alpha', 'Cyan', "
                    "'Team Member', 'a-f-G-U-C', datetime('2025-03-01 00:00:00', '+' || k || "
                    "' seconds'), 37.5 + (k % 1000) * 1e-4, 48.0 + (k % 997) * 1e-4, 9.5, "
                    "'2025-03-01 00:00:00', 'tok_x' FROM n"
                ),
                {"n": args.rows, "ag": ag_id},
            )
        assert uncovered(db) == {"patrol_positions": args.rows}, uncovered(db)
        t = time.perf_counter()
        with db.read() as s:
            n_read = sum(1 for _ in s.execute(text("SELECT * FROM patrol_positions")))
        t_read = time.perf_counter() - t
        t = time.perf_counter()
        done = backfill(db, actor=SYSTEM, now=lambda: dt.datetime.now(dt.UTC), batch=args.batch)
        t_fill = time.perf_counter() - t
        assert done == {"patrol_positions": args.rows} and n_read == args.rows, done
        t = time.perf_counter()
        with db.read() as s:
            v = ledger.verify(s)
        t_verify = time.perf_counter() - t
        assert v.ok and not v.uncovered, (v.problems[:3], v.uncovered)
        db.dispose()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%MZ}, {args.rows:,} patrol positions, "
        f"batch {args.batch}, SQLite FULL"
    )
    print(f"baseline: read every row once      {t_read:7.2f} s  {args.rows / t_read:10,.0f} rows/s")
    print(
        f"ledger backfill                    {t_fill:7.2f} s  {args.rows / t_fill:10,.0f} rows/s  "
        f"ratio {t_fill / t_read:.1f}x the read"
    )
    print(f"ledger verify after (all covered)  {t_verify:7.2f} s  ratio {t_verify / t_read:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
