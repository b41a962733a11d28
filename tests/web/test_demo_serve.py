"""`truceline demo --serve` (what `make demo` runs) ends with the server answering at the address
it prints, with the demo's data, and tokens that sign in."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .conftest import ROOT, free_port


def test_demo_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "demo"
    log = (tmp_path / "demo.log").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from truceline.cli import app; app()",
            "demo",
            "--days",
            "1",
            "--output",
            str(out),
            "--serve",
            "--port",
            str(port),
            "--agreement",
            str(ROOT / "examples" / "ukraine-2024"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    page = r.read().decode()
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
            assert time.monotonic() < deadline, "the demo's server did not answer"
        printed = Path(log.name).read_text()
        assert f"Dashboard: {url}" in printed and "<title>Truceline" in page
        tokens = dict(line.split("\t") for line in (out / "tokens.txt").read_text().splitlines())
        assert set(tokens) == {"analyst", "admin", "liaison-UA", "liaison-RU"}
        assert all(secret in printed for secret in tokens.values())
        assert oct((out / "tokens.txt").stat().st_mode & 0o777) == "0o600"
        req = urllib.request.Request(
            f"{url}api/v1/dashboard/timeline", headers={"Authorization": f"Bearer {tokens['analyst']}"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            tl = json.load(r)
        assert sum(tl["findings"]) > 0 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", tl["days"][-1])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
