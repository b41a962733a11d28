"""Nothing lost, nothing twice: the server is killed (SIGKILL) while devices submit with retries.

Every report the server acknowledged must be stored afterwards, exactly once, and the ledger must
still verify: an acknowledgement is only sent after the transaction has committed.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from truceline.context import SYSTEM
from truceline.services.auth import create_token
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import IncidentRow

from ..live import free_port, truceline_process, wait_ready

CLIENT = Path(__file__).with_name("submit_client.py")
N_CLIENTS, N_EACH = 3, 40


def _start(db: str, port: int, agreement: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return truceline_process(
            "serve",
            "--port",
            port,
            "--db",
            db,
            "--agreement",
            agreement,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )


def _acked(files: list[Path]) -> list[str]:
    return [line for f in files if f.exists() for line in f.read_text().split()]


def test_sigkill_loses_nothing_and_duplicates_nothing(
    db_url: str, sectored_dir: Path, tmp_path: Path
) -> None:
    db = Database(db_url)
    db.upgrade()
    now = dt.datetime.now(dt.UTC)
    token = db.write(
        lambda s: create_token(s, role="sensor", name="devices", actor=SYSTEM, now=now)
    ).secret
    db.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    acks = [tmp_path / f"ack-{k}.txt" for k in range(N_CLIENTS)]
    clients: list[subprocess.Popen[bytes]] = []
    kills = 0
    server = _start(db_url, port, sectored_dir, log)
    try:  # whatever fails, no process is left running (nor warned about in the next test)
        wait_ready(url, server, log=log)
        clients = [
            subprocess.Popen(
                [sys.executable, str(CLIENT), url, token, f"c{k}", str(N_EACH), str(acks[k])],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for k in range(N_CLIENTS)
        ]
        for target in (0.4,):  # mid-stream
            deadline = time.monotonic() + 120
            while len(_acked(acks)) < target * N_CLIENTS * N_EACH:
                assert time.monotonic() < deadline, "clients made no progress"
                time.sleep(0.02)
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
            kills += 1
            time.sleep(0.3)
            server = _start(db_url, port, sectored_dir, log)
            wait_ready(url, server, log=log)
        outs = [c.communicate(timeout=240) for c in clients]
        codes = [c.returncode for c in clients]
        assert codes == [0] * N_CLIENTS, [o[1].decode()[-500:] for o in outs]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.communicate()
        server.terminate()
        server.wait(timeout=30)
    acked = _acked(acks)
    assert kills == 1 and len(acked) == len(set(acked)) == N_CLIENTS * N_EACH
    db = Database(db_url)
    with db.read() as s:
        stored = [r for (r,) in s.execute(select(IncidentRow.report_id))]
        per_id = dict(
            s.execute(select(IncidentRow.report_id, func.count()).group_by(IncidentRow.report_id)).all()
        )
        v = ledger.verify(s)
    db.dispose()
    assert set(acked) <= set(stored), "an acknowledged report was lost"
    assert max(per_id.values()) == 1 and len(stored) == len(set(stored)), "a report was stored twice"
    assert v.ok, v.problems[:3]
    assert v.incidents == len(stored)  # each with its ledger entry (verify checks that)
