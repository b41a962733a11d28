"""`truceline serve` and `truceline token` as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from truceline.cli import app

from ..conftest import EXAMPLES
from ..live import free_port, truceline_process, wait_ready

runner = CliRunner()


def test_token_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    made = runner.invoke(
        app, ["token", "create", "--role", "liaison", "--name", "lo-a", "--party", "UA", "--db", db]
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("tl_")
    listed = runner.invoke(app, ["token", "list", "--db", db])
    assert "lo-a" in listed.output and secret not in listed.output
    tok_id = next(w for w in listed.output.split() if w.startswith("tok_"))
    bad = runner.invoke(app, ["token", "create", "--role", "liaison", "--name", "x", "--db", db])
    assert bad.exit_code == 2 and "--party" in bad.output
    assert runner.invoke(app, ["token", "revoke", tok_id, "--db", db]).exit_code == 0
    assert runner.invoke(app, ["token", "revoke", "tok_nope", "--db", db]).exit_code == 2


def test_serve_with_two_workers_migrates_and_answers(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "server.db"
    proc = truceline_process(
        "serve", "--port", port, "--db", db, "--workers", 2, "--agreement", EXAMPLES / "korea-dmz"
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc)
        with urllib.request.urlopen(f"{url}/api/v1/openapi.json") as r:
            spec = json.load(r)
        assert "/api/v1/incidents" in spec["paths"] and spec["info"]["title"].startswith("Truceline")
        try:
            urllib.request.urlopen(f"{url}/api/v1/agreements")
            raise AssertionError("anonymous callers may not list agreements")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    assert db.exists()


def _hold(port: int) -> socket.socket | None:
    """Listen on 127.0.0.1:port (None if something else already does: it is taken either way)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    s.listen()
    return s


def test_serve_takes_the_next_free_port_when_8000_is_taken(tmp_path: Path) -> None:
    held = _hold(8000)
    proc = truceline_process("serve", "--db", tmp_path / "s.db")
    try:
        assert proc.stdout is not None
        printed = ""
        match = None
        while match is None:
            line = proc.stdout.readline().decode()
            assert line, f"the server exited before printing its address: {printed}"
            printed += line
            match = re.search(r"http://127\.0\.0\.1:(\d+)/api/v1", line)
        port = int(match.group(1))
        assert port != 8000 and "Port 8000 is in use" in printed, printed
        wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
        if held:
            held.close()


def test_serve_on_a_taken_explicit_port_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "from truceline.cli import app; app()",
                "serve",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "s.db"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "--port N" in lines[0]
    assert not (tmp_path / "s.db").exists()  # checked before anything is created
    # the demo fails the same way, before its work
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        done = runner.invoke(
            app, ["demo", "--output", str(tmp_path / "d"), "--serve", "--port", str(port)]
        )
    assert done.exit_code == 2 and f"port {port}" in done.output and not (tmp_path / "d").exists()


def test_postgresql_without_its_driver_names_the_extra(tmp_path: Path) -> None:
    """psycopg is the `postgres` extra: without it a PostgreSQL URL is a one-line message."""
    code = (
        "import sys; sys.modules['psycopg'] = None; sys.modules['psycopg2'] = None; "
        "from truceline.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "db", "upgrade", "--db", "postgresql+psycopg://u@127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "pip install 'truceline[postgres]'" in done.stderr


def _reports_csv(path: Path, days: int) -> Path:
    """A CSV of two reports a day for ``days`` days near the Korean DMZ (one near the line, one
    farther south), made here rather than by the simulator."""
    lines = ["id,observed_at,lon,lat,kind,source_type,uncertainty_m"]
    for k in range(days):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=k)
        lines.append(f"near-{k},{day}T09:00:00Z,{127.0 + k * 0.01:.4f},38.25,explosion,patrol,50")
        lines.append(f"far-{k},{day}T15:30:00Z,{127.2 + k * 0.01:.4f},37.95,armed_personnel,uav,80")
    path.write_text("\n".join(lines) + "\n")
    return path


def _summary_rows(db: Path) -> tuple[int, int]:
    with sqlite3.connect(db) as con:
        stale = con.execute("SELECT count(*) FROM map_stale_days").fetchone()[0]
        cells = con.execute("SELECT count(*) FROM map_cells").fetchone()[0]
    return int(stale), int(cells)


def test_serve_builds_a_stale_map_summary_at_start_up(tmp_path: Path) -> None:
    """Reports imported while no server ran leave the map's summary to build (more days than a
    map request builds itself): `truceline serve` starts the build at start-up, says so, and the
    summary is built with no map request made."""
    db = tmp_path / "s.db"
    days = 20
    done = runner.invoke(
        app,
        ["import", str(_reports_csv(tmp_path / "r.csv", days)), "-a", str(EXAMPLES / "korea-dmz"),
         "--db", str(db)],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    stale, cells = _summary_rows(db)
    assert stale == days and cells == 0
    port = free_port()
    proc = truceline_process("serve", "--port", port, "--db", db)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        deadline = time.monotonic() + 120
        while _summary_rows(db)[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        stale, cells = _summary_rows(db)
        assert stale == 0 and cells > 0, (stale, cells)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"building the map's summary of {days} days in the background" in out.decode()
