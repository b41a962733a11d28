"""The zoom of two levels (z7 to z9), main's code against this branch's, on one database, paired.

Two ``truceline serve`` on the same database, one with ``--before`` (a ``src`` folder of the
older code, e.g. ``git archive main src | tar -x -C /tmp/before``) on its ``PYTHONPATH``, one with
this checkout's; each round opens the page on one then the other (a new browser context each),
waits for the first load, waits ``--settle`` seconds on the view (0: zooms at once, as
``benchmarks/dashboard.py``), then zooms in two levels and waits until the view's clusters are
drawn. Alternating in the same minutes, both see the same load on a shared machine.

Run: ``.venv/bin/python benchmarks/dashboard_zoom_ab.py DB --before /tmp/before/src``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard as bench  # the sibling benchmark's helpers

ROOT = Path(__file__).resolve().parents[1]


def serve(db: str, src: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = bench.free_port()
    cmd = [sys.executable, "-c", "from truceline.cli import app; app()", "serve", "--port", str(port)]
    cmd += ["--db", db, "--agreement", str(bench.UKRAINE)]
    env = os.environ | {"PYTHONPATH": str(src)}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db", help="the database (a SQLite path or a URL) with its summary built")
    ap.add_argument("--before", type=Path, required=True, help="the older code's src folder")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--settle", type=float, default=0.0, help="seconds on the view before the zoom")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    engine = create_engine(a.db if "://" in a.db else f"sqlite:///{a.db}")
    with engine.connect() as c:
        first, last = c.execute(text("SELECT min(day), max(day) FROM incidents")).one()
    engine.dispose()
    token = bench.tokens(a.db)["analyst"]
    servers = {"before": serve(a.db, a.before.resolve()), "after": serve(a.db, ROOT / "src")}
    times: dict[str, list[float]] = {k: [] for k in servers}
    try:
        for _, url in servers.values():
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{url}/api/v1/ready", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            bench.get(f"{url}/api/v1/dashboard/layers?date={last}", token)  # built once per server
        loads = [os.getloadavg()[0]]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=bench.CHROMIUM, args=bench.ARGS)
            for _ in range(a.rounds):
                for name, (_, url) in servers.items():
                    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                    sign_in = f"sessionStorage.setItem('truceline.token', {json.dumps(token)})"
                    ctx.add_init_script(f"try {{ {sign_in} }} catch (e) {{}}")
                    page = ctx.new_page()
                    page.goto(f"{url}/?start={first}&end={last}")
                    page.wait_for_function(bench.READY, timeout=300_000)
                    time.sleep(a.settle)
                    t = time.perf_counter()
                    page.evaluate(bench.ZOOM_IN_TWICE)
                    page.wait_for_function(bench.READY, timeout=300_000)
                    times[name].append(time.perf_counter() - t)
                    ctx.close()
                loads.append(os.getloadavg()[0])
            browser.close()
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:  # a query still running (a prefetch of the old code)
                proc.kill()
    for name, ts in times.items():
        ms = ", ".join(f"{t * 1000:.0f}" for t in ts)
        print(f"{name}: median {statistics.median(ts) * 1000:.0f} ms (round 1 first; ms: {ms})")
    load = f"{min(loads):.1f}-{max(loads):.1f}"
    print(f"settle {a.settle} s; load average (1 min) during the rounds: {load}")


if __name__ == "__main__":
    main()
