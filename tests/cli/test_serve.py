"""`truceline serve` and `truceline token` as a user runs them."""

from __future__ import annotations

import json
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
        wait_ready(url, proc, timeout_s=120)
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
