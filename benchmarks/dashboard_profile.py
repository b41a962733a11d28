"""Where a first load of the dashboard spends its time: the requests' waterfall and the page's
main-thread CPU profile, in Debian's Chromium (Playwright + the DevTools protocol).

Runs ``truceline serve`` on a database made by ``benchmarks/dashboard.py`` (``--keep``), loads
the page with the whole range selected ``--runs`` times (a new browser context each: nothing
cached in the browser; the server warm after the first), and prints per run the load time, each
request (start, time to the first byte, end, bytes transferred / decoded, in ms from navigation)
and the functions with the most CPU time on the page's thread.

``--zoom``: after each first load, the zoom the benchmark times (two levels in, as
``benchmarks/dashboard.py``) profiled the same way instead.

Run: ``.venv/bin/python benchmarks/dashboard_profile.py out/bench-19/bench-x10.db [--zoom]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard as bench  # the sibling benchmark's helpers

WATERFALL = """() => performance.getEntriesByType('resource').map((r) => [
  r.name.replace(location.origin, '').slice(0, 80), Math.round(r.startTime),
  Math.round(r.responseStart - r.startTime), Math.round(r.responseEnd), r.transferSize,
  r.decodedBodySize])"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("db", help="the database (a SQLite path or a URL)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--top", type=int, default=15, help="functions listed per run")
    ap.add_argument("--zoom", action="store_true", help="profile the zoom two levels in instead")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    from sqlalchemy import create_engine, text

    engine = create_engine(a.db if "://" in a.db else f"sqlite:///{a.db}")
    with engine.connect() as c:
        first, last = c.execute(text("SELECT min(day), max(day) FROM incidents")).one()
    engine.dispose()
    token = bench.tokens(a.db)["analyst"]
    port = bench.free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-c", "from truceline.cli import app; app()", "serve"]
    serve += ["--port", str(port), "--db", a.db, "--agreement", str(bench.UKRAINE)]
    proc = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/v1/ready", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        bench.get(f"{base}/api/v1/dashboard/layers?date={last}", token)  # built once per server
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=bench.CHROMIUM, args=bench.ARGS)
            for k in range(a.runs):
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                sign_in = f"sessionStorage.setItem('truceline.token', {json.dumps(token)})"
                ctx.add_init_script(f"try {{ {sign_in} }} catch (e) {{}}")
                page = ctx.new_page()
                cdp = ctx.new_cdp_session(page)
                cdp.send("Profiler.enable")
                cdp.send("Profiler.setSamplingInterval", {"interval": 200})
                if not a.zoom:
                    cdp.send("Profiler.start")
                t = time.perf_counter()
                page.goto(f"{base}/?start={first}&end={last}")
                page.wait_for_function(bench.READY, timeout=300_000)
                load = time.perf_counter() - t
                what = "first load"
                if a.zoom:
                    page.evaluate("() => performance.clearResourceTimings()")
                    cdp.send("Profiler.start")
                    t = time.perf_counter()
                    page.evaluate(bench.ZOOM_IN_TWICE)
                    page.wait_for_function(bench.READY, timeout=300_000)
                    load = time.perf_counter() - t
                    what = f"zoom to {page.evaluate('() => window.truceline.map.map.getZoom()')}"
                profile = cdp.send("Profiler.stop")["profile"]
                timing = page.evaluate("() => window.truceline.timing")
                print(f"run {k}: {what} {load:.3f} s (page timing {timing}); requests (start, ")
                print("  first byte, end in ms):")
                for name, start, ttfb, end, sent, size in page.evaluate(WATERFALL):
                    print(f"  {start:6d} +{ttfb:5d} -> {end:6d}  {sent:>9,} / {size:>9,} B  {name}")
                nodes = {n["id"]: n["callFrame"] for n in profile["nodes"]}
                spent: collections.Counter[str] = collections.Counter()
                for node, dt in zip(profile["samples"], [*profile["timeDeltas"][1:], 0], strict=True):
                    cf = nodes[node]
                    spent[f"{cf['functionName'] or '(anonymous)'} {cf['url'].split('/')[-1][:24]}"] += dt
                total = sum(spent.values())
                print(f"  main thread, {total / 1000:.0f} ms sampled:")
                for what, us in spent.most_common(a.top):
                    print(f"    {us / 1000:7.1f} ms  {what}")
                ctx.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


if __name__ == "__main__":
    main()
