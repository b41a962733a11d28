"""Benchmark: the dashboard with 100,000 incidents in the date range.

Simulates monitoring on the Ukraine example until at least ``--n`` reports are stored (ingested
and adjudicated into SQLite), runs ``truceline serve`` on them, and measures, in Debian's Chromium
driven by Playwright, what a user waits for with the whole range selected:

- the first load of the page (sign-in, legend, layers from a warm server, all points fetched,
  clustered and drawn): from navigation until the map shows the count;
- a change of filter (one rule unticked) until the map and counts are redrawn;
- a zoom (clusters recomputed and drawn) and the export of the filtered set as CSV;
- the data request alone (``GET /api/v1/dashboard/features``), its size raw and gzipped.

Run: ``.venv/bin/python benchmarks/dashboard.py [--n 100000] [--keep out/bench-dashboard]``.
Results are printed as a Markdown section for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UKRAINE = ROOT / "examples" / "ukraine-2024"
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Resolves once the map has moved and the browser has painted the redrawn layers.
ZOOM_IN_TWICE = """() => new Promise((ok) => {
  const m = window.truceline.map.map;
  m.once('moveend', () => requestAnimationFrame(() => ok()));
  m.setZoom(m.getZoom() + 2, { animate: false });
})"""
STORED = "SELECT count(*), min(day), max(day) FROM incidents"
API_BYTES = """() => performance.getEntriesByType('resource')
  .filter((r) => r.name.includes('/api/v1/'))
  .reduce((a, r) => [a[0] + r.transferSize, a[1] + r.decodedBodySize], [0, 0])"""
READY = (
    "() => document.body.dataset.ready === '1' && document.body.dataset.layers === '1'"
    " && !document.body.dataset.loading"
)


def build(folder: Path, n: int, days: int) -> tuple[Path, dt.date, dt.date, int]:
    """Simulate and ingest until at least ``n`` reports are stored; returns db, first, last day."""
    from truceline.context import SYSTEM
    from truceline.core.simulate import SimulationConfig, simulate
    from truceline.io.agreement_files import files_of_folder, load_agreement
    from truceline.services.agreement_store import register_agreement
    from truceline.services.ingest import ingest_incidents
    from truceline.store.db import make_engine, session_factory, upgrade

    ag = load_agreement(UKRAINE)
    db = folder / "bench.db"
    if db.exists():
        with sqlite3.connect(db) as c:
            have, first, last = c.execute(STORED).fetchone()
        if have >= n:
            return db, dt.date.fromisoformat(first), dt.date.fromisoformat(last), have
        db.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    start = ag.effective_from + dt.timedelta(days=30)
    per_day = int(n / days / 0.9) + 1  # about 0.93 reports per true event in the simulator
    t = time.perf_counter()
    sim = simulate(ag, SimulationConfig(days=days, seed=11, start=start, events_per_day=per_day))
    print(f"simulated {len(sim.reports):,} reports in {time.perf_counter() - t:.1f} s", flush=True)
    engine = make_engine(str(db))
    upgrade(engine)
    files = files_of_folder(UKRAINE)
    with session_factory(engine)() as s, s.begin():
        now = dt.datetime.now(dt.UTC)
        register_agreement(s, files, source=str(UKRAINE), actor=SYSTEM, now=now)
    t = time.perf_counter()
    with session_factory(engine)() as s, s.begin():
        res = ingest_incidents(s, ag, sim.reports, list(range(len(sim.reports))), source="bench")
    took = time.perf_counter() - t
    print(f"stored {len(res.accepted):,} reports, {res.findings:,} findings in {took:.1f} s")
    engine.dispose()
    with sqlite3.connect(db) as c:
        have, first, last = c.execute(STORED).fetchone()
    return db, dt.date.fromisoformat(first), dt.date.fromisoformat(last), have


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, token: str, *, gz: bool = False) -> tuple[bytes, float, str]:
    headers = {"Authorization": f"Bearer {token}"} | ({"Accept-Encoding": "gzip"} if gz else {})
    t = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=300) as r:
        body = r.read()
        enc = r.headers.get("Content-Encoding", "")
    return body, time.perf_counter() - t, enc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="reports (incidents) in the date range")
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--keep", type=Path, default=ROOT / "out" / "bench-dashboard")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from truceline.services.demo import demo_tokens

    db, first, last, n_inc = build(a.keep, a.n, a.days)
    with sqlite3.connect(db) as c:
        n_find = c.execute("SELECT count(*) FROM findings").fetchone()[0]
        n_quiet = c.execute(
            "SELECT count(*) FROM incidents i"
            " WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.incident_pk = i.pk)"
        ).fetchone()[0]
        by_rule = "SELECT rule_id, count(*) FROM findings GROUP BY rule_id ORDER BY 2 DESC"
        rules = c.execute(by_rule).fetchall()
    token = demo_tokens(db, ("UA", "RU"))["analyst"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-c", "from truceline.cli import app; app()", "serve"]
    serve += ["--port", str(port), "--db", str(db), "--agreement", str(UKRAINE)]
    proc = subprocess.Popen(
        serve,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results: dict[str, object] = {}
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/v1/ready", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        q = f"start={first}&end={last}"
        # Warm the server: the agreement's drawn layers are built once per process.
        t = time.perf_counter()
        get(f"{base}/api/v1/dashboard/layers?date={last}", token)
        results["layers_cold_s"] = time.perf_counter() - t
        api_s, raw_len, gz_len = [], 0, 0
        for _ in range(a.repeat):
            body, s, _ = get(f"{base}/api/v1/dashboard/features?{q}", token)
            api_s.append(s)
            raw_len = len(body)
            gz_body, _, enc = get(f"{base}/api/v1/dashboard/features?{q}", token, gz=True)
            gz_len = len(gz_body) if enc == "gzip" else len(gzip.compress(body, 1))
        data = json.loads(body)
        assert data["findings"]["n"] == n_find and data["incidents"]["n"] == n_quiet, "counts"
        results.update(api_s=statistics.median(api_s), raw_mb=raw_len / 1e6, gz_mb=gz_len / 1e6)
        t = time.perf_counter()
        csv_body, _, _ = get(f"{base}/api/v1/export?{q}&format=csv", token)
        results["export_s"] = time.perf_counter() - t
        results["export_rows"] = csv_body.count(b"\n") - 1
        results["export_mb"] = len(csv_body) / 1e6

        load, refilter, zoom, timing, wire = [], [], [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            results["chromium"] = browser.version
            for _ in range(a.repeat):
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                sign_in = f"sessionStorage.setItem('truceline.token', {json.dumps(token)})"
                ctx.add_init_script(f"try {{ {sign_in} }} catch (e) {{}}")
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(f"{base}/?{q}")
                page.wait_for_function(READY, timeout=300_000)
                load.append(time.perf_counter() - t)
                timing.append(page.evaluate("() => window.truceline.timing"))
                # What the first load moved over the wire from the API (after gzip), and decoded.
                wire.append(page.evaluate(API_BYTES))
                shown = int(page.get_attribute("#count-findings", "data-count"))
                assert shown == n_find, (shown, n_find)
                # Untick nothing, tick the most frequent rule: the server filters, the page redraws.
                page.click("details[data-filter='rule'] summary")
                t = time.perf_counter()
                page.check(f"#f-rule-{rules[0][0]}")
                page.wait_for_function(
                    f"() => !document.body.dataset.loading && document.querySelector('#count-findings')"
                    f" && document.querySelector('#count-findings').dataset.count === '{rules[0][1]}'",
                    timeout=300_000,
                )
                refilter.append(time.perf_counter() - t)
                page.uncheck(f"#f-rule-{rules[0][0]}")
                page.wait_for_function(READY, timeout=300_000)
                t = time.perf_counter()
                page.evaluate(ZOOM_IN_TWICE)
                page.wait_for_function(READY, timeout=300_000)  # the view's data, if it fetches any
                zoom.append(time.perf_counter() - t)
                page.screenshot(path=str(a.keep / "dashboard-100k.png"))
                ctx.close()
            browser.close()
        results.update(
            load_s=statistics.median(load),
            refilter_s=statistics.median(refilter),
            zoom_s=statistics.median(zoom),
            fetch_ms=statistics.median(x["fetch_ms"] for x in timing),
            wire_mb=statistics.median(w[0] for w in wire) / 1e6,
            decoded_mb=statistics.median(w[1] for w in wire) / 1e6,
            render_ms=statistics.median(x["render_ms"] for x in timing),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    cpu = platform.processor() or platform.machine()
    r = results
    rows = [
        (f"first load of the page, whole range (all {n_inc:,} points fetched, clustered, drawn)",
         f"{r['load_s']:.2f} s"),
        (f"of which the data request ({r['raw_mb']:.1f} MB of JSON, {r['gz_mb']:.1f} MB gzipped) "
         "and the page's own work (index, clusters, drawing)",
         f"{r['fetch_ms'] / 1000:.2f} s + {r['render_ms'] / 1000:.2f} s"),
        ("the API's answers on the first load: transferred (gzip) / decoded",
         f"{r['wire_mb']:.2f} MB / {r['decoded_mb']:.2f} MB"),
        ("a filter ticked (one rule: the server filters, the page re-clusters and redraws)",
         f"{r['refilter_s']:.2f} s"),
        ("zoom in two levels (clusters of the view recomputed and drawn)",
         f"{r['zoom_s'] * 1000:.0f} ms"),
        ("`GET /api/v1/dashboard/features` alone, whole range", f"{r['api_s']:.2f} s"),
        (f"export of the filtered set as CSV ({r['export_rows']:,} rows, {r['export_mb']:.0f} MB)",
         f"{r['export_s']:.2f} s"),
        ("the agreement's drawn layers, first request after the server starts (then cached)",
         f"{r['layers_cold_s']:.2f} s"),
    ]  # fmt: skip
    print()
    print("## Dashboard with 100,000 incidents in range (benchmarks/dashboard.py)")
    print()
    print(
        f"Command: `.venv/bin/python benchmarks/dashboard.py --n {a.n}`; {cpu}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, Chromium {r['chromium']} headless (software rendering), "
        f"server and browser on the same machine (loopback). {n_inc:,} incidents from {first} to {last} "
        f"({n_find:,} findings, {n_quiet:,} incidents without findings), all in the selected range; "
        f"medians of {a.repeat} runs. Measured {dt.date.today()}:"
    )
    print()
    print("| what the user waits for | time |")
    print("|---|---|")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
