"""A token revoked through one `truceline serve` process is refused by another within a second.

Two real server processes (two ports) share one PostGIS database: the revocation is sent over
HTTP to the first, the token is used over HTTP on the second. Each process remembers a token it
found valid for ``token_cache_s`` (0.5 s by default) and then reads the token row again, which
is how a revocation reaches every process (and every worker of ``--workers N``).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from truceline.context import SYSTEM
from truceline.services.auth import create_token
from truceline.store.db import Database

from ..live import free_port, truceline_process, wait_ready
from ..pg import PgCluster

WITHIN_S = 1.0


def _call(url: str, token: str, method: str = "GET") -> int:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_a_revocation_through_one_process_reaches_another_within_a_second(
    pg_cluster: PgCluster, sectored_dir: Path, tmp_path: Path
) -> None:
    db_url = pg_cluster.new_database()
    db = Database(db_url)
    now = dt.datetime.now(dt.UTC)
    admin = db.write(lambda s: create_token(s, role="admin", name="desk", actor=SYSTEM, now=now))
    device = db.write(lambda s: create_token(s, role="sensor", name="unit-7", actor=SYSTEM, now=now))
    db.dispose()
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"server-{p}.log" for p in ports]
    procs = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as fh:
            procs.append(
                truceline_process(
                    *("serve", "--port", port, "--db", db_url, "--agreement", sectored_dir),
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            )
    a, b = (f"http://127.0.0.1:{p}" for p in ports)
    try:
        for url, proc, log in zip((a, b), procs, logs, strict=True):
            wait_ready(url, proc, log=log)
        me = "/api/v1/me"
        # both processes know the device's token as valid (and remember it)
        for _ in range(10):
            assert _call(a + me, device.secret) == 200
            assert _call(b + me, device.secret) == 200
        with urllib.request.urlopen(
            urllib.request.Request(
                f"{a}/api/v1/tokens/{device.id}",
                method="DELETE",
                headers={"Authorization": f"Bearer {admin.secret}"},
            ),
            timeout=10,
        ) as r:
            assert r.status == 200 and json.load(r)["revoked_at"] is not None
        revoked = time.monotonic()
        assert _call(a + me, device.secret) == 401  # the revoking process: at once
        answers: list[tuple[float, int]] = []
        while time.monotonic() - revoked < 3 * WITHIN_S:
            status = _call(b + me, device.secret)
            answers.append((time.monotonic() - revoked, status))
            if status == 401:
                break
            time.sleep(0.01)
        took, status = answers[-1]
        assert status == 401, answers
        assert took < WITHIN_S, f"the other process accepted the revoked token for {took:.2f} s"
        # and it stays refused, on both, for any route; the admin's token still works
        assert {_call(u + me, device.secret) for u in (a, b) for _ in range(5)} == {401}
        assert _call(b + "/api/v1/sensors", device.secret, "GET") == 401
        assert _call(b + me, admin.secret) == 200
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    for log in logs:
        assert "Traceback" not in log.read_text(), log.read_text()[-2000:]
