"""`truceline demo --serve` (what `make demo` runs) ends with the server answering at the address
it prints, with the demo's data, and tokens that sign in."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from ..live import free_port, truceline_process, wait_ready
from .conftest import ROOT


def test_demo_serves_the_dashboard(tmp_path: Path) -> None:
    port = free_port()
    out = tmp_path / "demo"
    log = (tmp_path / "demo.log").open("w+")
    proc = truceline_process(
        "demo", "--days", 1, "--output", out, "--serve", "--port", port,
        "--agreement", ROOT / "examples" / "ukraine-2024",
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        page = wait_ready(url, proc, timeout_s=180, path="", log=Path(log.name)).decode()
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
