"""The first load, a filter and the zoom of two levels (z7 to z9): older code against this
branch's, on one database, paired.

Two ``truceline serve`` on the same database, one with ``--before`` (a ``src`` folder of the
older code, e.g. ``git archive main src | tar -x -C /tmp/before``) on its ``PYTHONPATH``, one with
this checkout's; each round opens the page on one then the other (a new browser context each),
times the first load (navigation until the view's clusters and the layers are drawn), waits
``--settle`` seconds on the view (0: at once, as ``benchmarks/dashboard.py``), times the most
frequent rule ticked (until the count shows its findings) and unticked, then the zoom two
levels in (until the view's clusters are drawn). Alternating in the same minutes, both see the
same load on a shared machine; the CPU time of the browser's renderer processes in each step
(``SystemInfo.getProcessInfo``) is printed beside the wall time: the machine's load inflates it
less.

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
        by_rule = "SELECT rule_id, count(*) FROM findings GROUP BY rule_id ORDER BY 2 DESC LIMIT 1"
        rule, rule_n = c.execute(text(by_rule)).one()
    engine.dispose()
    token = bench.tokens(a.db)["analyst"]
    servers = {"before": serve(a.db, a.before.resolve()), "after": serve(a.db, ROOT / "src")}
    steps = ("load", "filter", "zoom")
    times = {k: {step: [] for step in steps} for k in servers}  # wall seconds
    cpu = {k: {step: [] for step in steps} for k in servers}  # the renderers' CPU, seconds
    try:
        for _, url in servers.values():
            deadline = time.monotonic() + 1800  # a loaded machine: minutes to start at 3M
            while True:
                try:
                    urllib.request.urlopen(f"{url}/api/v1/ready", timeout=2)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            bench.get(f"{url}/api/v1/dashboard/layers?date={last}", token)  # built once per server
        loads = [os.getloadavg()[0]]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=bench.CHROMIUM, args=bench.ARGS)
            browser_cdp = browser.new_browser_cdp_session()
            for _ in range(a.rounds):
                for name, (_, url) in servers.items():
                    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                    sign_in = f"sessionStorage.setItem('truceline.token', {json.dumps(token)})"
                    ctx.add_init_script(f"try {{ {sign_in} }} catch (e) {{}}")
                    page = ctx.new_page()

                    def busy() -> dict[int, float]:
                        """CPU seconds of each of the browser's renderer processes (the page's
                        threads, its workers, its compositor): what a loaded machine inflates
                        least."""
                        procs = browser_cdp.send("SystemInfo.getProcessInfo")["processInfo"]
                        return {p["id"]: p["cpuTime"] for p in procs if p["type"] == "renderer"}

                    def spent(before: dict[int, float]) -> float:
                        """Renderer CPU seconds since ``before`` (a process started since: all of
                        its time; one ended since, a closed page's: none)."""
                        return sum(t - before.get(pid, 0.0) for pid, t in busy().items())

                    t, c0 = time.perf_counter(), busy()
                    page.goto(f"{url}/?start={first}&end={last}")
                    page.wait_for_function(bench.READY, timeout=300_000)
                    times[name]["load"].append(time.perf_counter() - t)
                    cpu[name]["load"].append(spent(c0))
                    time.sleep(a.settle)
                    page.click("details[data-filter='rule'] summary")
                    t, c0 = time.perf_counter(), busy()
                    page.check(f"#f-rule-{rule}")
                    page.wait_for_function(
                        "() => !document.body.dataset.loading && document.querySelector("
                        f"'#count-findings') && document.querySelector('#count-findings')"
                        f".dataset.count === '{rule_n}'",
                        timeout=300_000,
                    )
                    times[name]["filter"].append(time.perf_counter() - t)
                    cpu[name]["filter"].append(spent(c0))
                    page.uncheck(f"#f-rule-{rule}")
                    page.wait_for_function(bench.READY, timeout=300_000)
                    t, c0 = time.perf_counter(), busy()
                    page.evaluate(bench.ZOOM_IN_TWICE)
                    page.wait_for_function(bench.READY, timeout=300_000)
                    times[name]["zoom"].append(time.perf_counter() - t)
                    cpu[name]["zoom"].append(spent(c0))
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
    for name in servers:
        for step in steps:
            ts, cs = times[name][step], cpu[name][step]
            ms = ", ".join(f"{t * 1000:.0f}" for t in ts)
            print(
                f"{name} {step}: median {statistics.median(ts) * 1000:.0f} ms wall, "
                f"{statistics.median(cs) * 1000:.0f} ms of the renderers' CPU (round 1 first; "
                f"wall ms: {ms})"
            )
    load = f"{min(loads):.1f}-{max(loads):.1f}"
    print(f"settle {a.settle} s; load average (1 min) during the rounds: {load}")


if __name__ == "__main__":
    main()
