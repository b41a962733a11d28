"""`truceline ledger ...` and the standalone verifier, as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.services.ingest import ingest_incidents
from truceline.store.db import Database

from ..conftest import register_folder

runner = CliRunner()


def test_verify_close_proof_and_detection(tmp_path: Path, small: Agreement, small_dir: Path) -> None:
    db_path = str(tmp_path / "l.db")
    db = Database(db_path)
    db.upgrade()
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    incs = [
        Incident(
            id=f"r{i}",
            observed_at=yesterday,
            lon=36.95 + i * 0.002,
            lat=48.6,
            kind="armed_personnel",
            source_type="patrol",
        )
        for i in range(3)
    ]
    db.write(lambda s: register_folder(s, small_dir, now=yesterday))
    db.write(lambda s: ingest_incidents(s, small, incs, [0, 1, 2], source="t", now=yesterday))
    db.dispose()

    ok = runner.invoke(app, ["ledger", "verify", "--db", db_path])
    assert ok.exit_code == 0 and ok.output.startswith("OK: ")
    proof = tmp_path / "proof.json"
    made = runner.invoke(app, ["ledger", "proof", "finding:1", "-o", str(proof), "--db", db_path])
    assert made.exit_code == 0, made.output
    roots = runner.invoke(app, ["ledger", "roots", "--db", db_path]).output.split()
    root = roots[-1]
    assert json.loads(proof.read_text())["root"] == root
    checked = subprocess.run(
        [sys.executable, "-m", "truceline.ledger_verify", str(proof), "--root", root],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert runner.invoke(app, ["ledger", "proof", "999", "--db", db_path]).exit_code == 2

    db = Database(db_path)
    with db.write_engine.begin() as conn:
        seq = conn.execute(text("select min(seq) from ledger_entries where kind = 'report'")).scalar()
        conn.execute(
            text("update ledger_entries set body = replace(body, 'patrol', 'uav') where seq = :s"),
            {"s": seq},
        )
    db.dispose()
    bad = runner.invoke(app, ["ledger", "verify", "--db", db_path])
    assert bad.exit_code == 1
    assert f"TAMPERED: first problem at entry {seq} (altered)" in bad.output
