"""Scaling the ingest side out: two `truceline serve` processes, on different ports, on one PostGIS
database (as two machines would run them), both ingesting at once.

Both start together with the same ``--agreement`` (registered once); devices submit to each, and
one device's reports go to both servers at the same time (the same ids, as a device that fails over
resends them). Afterwards every acknowledged report is stored exactly once, the ledger verifies,
and each server lists the reports that came in through the other.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

from sqlalchemy import func, select

from truceline.context import SYSTEM
from truceline.services.auth import create_token
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import AgreementRevisionRow, AgreementRow, IncidentRow

from ..live import free_port, truceline_process, wait_ready
from ..pg import PgCluster

CLIENT = Path(__file__).with_name("submit_client.py")
N_EACH = 30


def _listed(url: str, token: str) -> list[str]:
    """Every report id the server at ``url`` lists (all pages)."""
    ids: list[str] = []
    cursor = ""
    while True:
        req = urllib.request.Request(
            f"{url}/api/v1/incidents?limit=1000{cursor}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            page = json.load(r)
        ids += [item["report_id"] for item in page["items"]]
        if not page["next_cursor"]:
            return ids
        cursor = f"&cursor={page['next_cursor']}"


def test_two_servers_on_one_postgis_database(
    pg_cluster: PgCluster, sectored_dir: Path, tmp_path: Path
) -> None:
    db_url = pg_cluster.new_database()
    db = Database(db_url)
    now = dt.datetime.now(dt.UTC)
    device = db.write(lambda s: create_token(s, role="sensor", name="dev", actor=SYSTEM, now=now))
    reader = db.write(lambda s: create_token(s, role="analyst", name="an", actor=SYSTEM, now=now))
    db.dispose()

    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    logs = [tmp_path / f"server-{k}.log" for k in range(2)]
    servers: list[subprocess.Popen[bytes]] = []
    clients: list[subprocess.Popen[bytes]] = []
    acks = {name: tmp_path / f"ack-{name}.txt" for name in ("a", "b", "s-a", "s-b")}
    try:
        for port, log in zip(ports, logs, strict=True):  # both start at once
            with log.open("wb") as fh:
                servers.append(
                    truceline_process(
                        "serve",
                        "--port",
                        port,
                        "--db",
                        db_url,
                        "--agreement",
                        sectored_dir,
                        stdout=fh,
                        stderr=subprocess.STDOUT,
                    )
                )
        for url, proc, log in zip(urls, servers, logs, strict=True):
            wait_ready(url, proc, log=log)
        plan = [("a", urls[0], "a"), ("b", urls[1], "b"), ("s-a", urls[0], "s"), ("s-b", urls[1], "s")]
        for name, url, prefix in plan:
            clients.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(CLIENT),
                        url,
                        device.secret,
                        prefix,
                        str(N_EACH),
                        str(acks[name]),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        outs = [c.communicate(timeout=240) for c in clients]
        assert [c.returncode for c in clients] == [0] * 4, [o[1].decode()[-500:] for o in outs]
        listed = [_listed(url, reader.secret) for url in urls]
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)

    acked = {name: f.read_text().split() for name, f in acks.items()}
    want = {f"{p}-{i}" for p in ("a", "b", "s") for i in range(N_EACH)}
    # Every report acknowledged once by the server it was sent to; the shared ones by both.
    assert all(len(v) == N_EACH for v in acked.values())
    assert set(acked["s-a"]) == set(acked["s-b"]) == {f"s-{i}" for i in range(N_EACH)}

    db = Database(db_url)
    with db.read() as s:
        per_id = dict(
            s.execute(select(IncidentRow.report_id, func.count()).group_by(IncidentRow.report_id)).all()
        )
        agreements = s.execute(select(func.count()).select_from(AgreementRow)).scalar_one()
        revisions = s.execute(select(func.count()).select_from(AgreementRevisionRow)).scalar_one()
        v = ledger.verify(s)
    db.dispose()
    assert set(per_id) == want, "a report was lost"
    assert max(per_id.values()) == 1, "a report was stored twice"
    assert (agreements, revisions) == (1, 1), "the agreement both servers were given, twice"
    assert v.ok, v.problems[:3]
    assert v.incidents == len(want)
    # Each server sees every report, those that came in through the other included.
    for ids in listed:
        assert sorted(ids) == sorted(want)
