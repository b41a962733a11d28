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
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from sqlalchemy import text as sa_text

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
# A tour of the map: zoom out and in, pan along the line, into the view's points (zoom 11) and
# back; each step waits until the view's data is drawn. Run twice: memory bounded means the
# second tour ends where the first did.
TOUR = """async () => {
  const m = window.truceline.map.map;
  const settle = () => new Promise((ok) => {
    const done = () => (document.body.dataset.loading ? setTimeout(done, 30) : ok());
    setTimeout(done, 120);
  });
  const c = m.getCenter(), z = m.getZoom();
  const steps = [[0, 0, -1], [0, 0, 1], [1.5, 1, 1], [-1.5, 1, 1], [-1, -1.5, 2], [1, 1, 3],
    [0.2, 0.1, 11 - z], [0.3, -0.2, 11 - z], [0, 0, 0], [2, -1, -1], [-2, 1, 0]];
  for (const [dlat, dlon, dz] of steps) {
    m.setView([c.lat + dlat, c.lng + dlon], z + dz, { animate: false });
    await settle();
  }
}"""
METRICS = """() => ({ heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
  nodes: document.getElementsByTagName('*').length,
  layers: Object.values(window.truceline.map.map._layers).length })"""
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


def replicate(base: Path, copies: int, days: int) -> Path:
    """A year's scale from the simulated days: ``copies`` copies of them (the first the stored
    days themselves), each ``days`` later than the one before, with new keys, report ids and
    dates; the same positions, kinds and findings. Written straight into the tables (the
    triggers mark every day for the map's summary); the copies are not in the ledger."""
    out = base.with_name(f"{base.stem}-x{copies}.db")
    if out.exists():
        return out
    tmp = out.with_suffix(".tmp")
    shutil.copy(base, tmp)
    from truceline.store.db import make_engine, upgrade

    engine = make_engine(str(tmp))
    upgrade(engine)  # the summary's tables and triggers
    engine.dispose()
    t = time.perf_counter()
    c = sqlite3.connect(tmp, isolation_level=None)
    c.execute("PRAGMA journal_mode=OFF")  # a scratch copy: no journal, indexes built once after
    c.execute("PRAGMA synchronous=OFF")
    c.execute("PRAGMA cache_size=-400000")
    later = c.execute(
        "SELECT name, sql FROM sqlite_master WHERE type IN ('index', 'trigger')"
        " AND tbl_name IN ('incidents', 'findings') AND sql IS NOT NULL"
    ).fetchall()
    for name, sql in later:
        c.execute(f"DROP {'TRIGGER' if sql.upper().startswith('CREATE TRIGGER') else 'INDEX'} {name}")
    c.execute("BEGIN")
    m = c.execute("SELECT max(pk) FROM incidents").fetchone()[0]
    mf = c.execute("SELECT max(pk) FROM findings").fetchone()[0]
    icols = [r[1] for r in c.execute("PRAGMA table_info(incidents)")]
    fcols = [r[1] for r in c.execute("PRAGMA table_info(findings)")]
    for k in range(1, copies):
        shift = f"'+{k * days} days'"
        expr = {
            "pk": f"pk + {k * m}",
            "report_id": f"report_id || '-c{k}'",
            "day": f"date(day, {shift})",
            "observed_at": f"datetime(observed_at, {shift}) || substr(observed_at, 20)",
            "event_id": "NULL",
        }
        sel = ", ".join(expr.get(col, col) for col in icols)
        c.execute(
            f"INSERT INTO incidents ({', '.join(icols)}) SELECT {sel} FROM incidents WHERE pk <= {m}"
        )
        fexpr = {"pk": f"pk + {k * mf}", "incident_pk": f"incident_pk + {k * m}"}
        fsel = ", ".join(fexpr.get(col, col) for col in fcols)
        c.execute(
            f"INSERT INTO findings ({', '.join(fcols)}) SELECT {fsel} FROM findings WHERE pk <= {mf}"
        )
    for _, sql in later:
        c.execute(sql)
    # What the triggers would have marked: every day, for the summary's first build.
    c.execute("INSERT OR IGNORE INTO map_stale_days SELECT DISTINCT agreement_id, day FROM incidents")
    c.execute("COMMIT")
    c.close()
    print(f"replicated into {copies} copies in {time.perf_counter() - t:.1f} s", flush=True)
    tmp.rename(out)
    return out


def to_postgres(db: Path) -> tuple[object, str]:
    """A throwaway PostgreSQL + PostGIS cluster (as the tests start one) holding the SQLite
    database's agreement, reports and findings, migrated by Truceline; returns (cluster, URL)."""
    import psycopg

    sys.path.insert(0, str(ROOT))
    from tests.pg import start_cluster

    from truceline.store.db import make_engine, upgrade

    cluster = start_cluster()
    cluster._admin("CREATE DATABASE bench")
    url = cluster.url("bench")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(engine)
    engine.dispose()
    t = time.perf_counter()
    tables = ["agreements", "agreement_revisions", "ingest_batches", "events", "incidents", "findings"]
    src = sqlite3.connect(db)
    dsn = f"host=127.0.0.1 port={cluster.port} user=postgres dbname=bench"
    with psycopg.connect(dsn) as pg:
        pg.execute("SET TIME ZONE 'UTC'")
        for table in tables:
            cols = [r[1] for r in src.execute(f"PRAGMA table_info({table})")]
            with pg.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                for row in src.execute(f"SELECT {', '.join(cols)} FROM {table}"):
                    cp.write_row(row)
        pg.execute(
            "INSERT INTO map_stale_days SELECT DISTINCT agreement_id, day FROM incidents"
            " ON CONFLICT DO NOTHING"
        )
        for table in ("incidents", "findings", "events", "ingest_batches"):
            pg.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'pk'), (SELECT max(pk) FROM {table}))"
                if table != "ingest_batches"
                else "SELECT setval(pg_get_serial_sequence('ingest_batches', 'id'),"
                " (SELECT max(id) FROM ingest_batches))"
            )
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("VACUUM ANALYZE")
    src.close()
    print(f"copied into PostgreSQL in {time.perf_counter() - t:.1f} s", flush=True)
    return cluster, url


def tokens(url: str) -> dict[str, str]:
    """An analyst's token on any database (the demo's helper takes a SQLite path)."""
    from truceline.services.auth import create_token
    from truceline.services.demo import DEMO_SETUP
    from truceline.store.db import Database

    d = Database(url)
    now = dt.datetime.now(dt.UTC)
    t = d.write(lambda s: create_token(s, role="analyst", name="bench", actor=DEMO_SETUP, now=now))
    d.dispose()
    return {"analyst": t.secret}


def summary_and_baseline(
    url: str, first: dt.date, last: dt.date, rule: str, *, rebuild: bool = True
) -> dict[str, float]:
    """In one process: the map summary's build (what the first request after the migration
    pays), and the overview's clusters from the summary against the rows (the baseline)."""
    from truceline.services import selection
    from truceline.services.auth import Scope
    from truceline.store.db import Database

    db = Database(url)
    db.upgrade()
    if rebuild:  # the build from nothing, as after the migration
        with db.write_engine.begin() as conn:
            conn.execute(sa_text("DELETE FROM map_cells"))
            conn.execute(sa_text("DELETE FROM map_stale_days"))
            conn.execute(
                sa_text("INSERT INTO map_stale_days SELECT DISTINCT agreement_id, day FROM incidents")
            )
    out: dict[str, float] = {}
    t = time.perf_counter()
    build = getattr(selection, "summarise", None)  # the explicit build (issue 19, session 4b)
    if build is not None:
        build(db, "ukraine-2024")
    else:
        selection.refresh_map_cells(db, "ukraine-2024")
    out["build_s"] = time.perf_counter() - t
    everything = selection.Selection(agreement_id="ukraine-2024", start=first, end=last)
    one = selection.Selection(agreement_id="ukraine-2024", start=first, end=last, rules=(rule,))
    with db.read() as s:
        out["cells"] = float(s.execute(sa_text("SELECT count(*) FROM map_cells")).scalar() or 0)
        per_level = "SELECT zoom, period, sector = '*', count(*) FROM map_cells GROUP BY 1, 2, 3"
        for z, p, lean, k in s.execute(sa_text(per_level)):
            out[f"cells_z{z}{p}{'_lean' if lean else ''}"] = float(k)
        for name, flt in (("all", everything), ("rule", one)):
            selection._CACHE.clear()
            t = time.perf_counter()
            a = selection.clusters(s, flt, scope=Scope(), zoom=6)
            out[f"summary_{name}_s"] = time.perf_counter() - t
            t = time.perf_counter()
            b = selection.clusters(s, flt, scope=Scope(), zoom=6, from_rows=True)
            out[f"rows_{name}_s"] = time.perf_counter() - t
            assert a["findings"] == b["findings"] and a["incidents"] == b["incidents"], name
        t = time.perf_counter()
        selection.timeline(s, everything, scope=Scope())
        out["timeline_s"] = time.perf_counter() - t
    db.dispose()
    return out


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
    ap.add_argument(
        "--copies",
        type=int,
        default=1,
        help="copies of the simulated days, one after the other (29 x 10 days of 105,836: a year's "
        "scale, 3,069,244 incidents)",
    )
    ap.add_argument(
        "--keep-summary",
        action="store_true",
        help="use the map's summary as stored (a previous run's), not rebuilt from nothing",
    )
    ap.add_argument("--pg", action="store_true", help="on PostgreSQL + PostGIS (a throwaway cluster)")
    ap.add_argument(
        "--pg-keep",
        action="store_true",
        help="with --pg: leave the cluster running (its URL printed) for runs with --pg-url",
    )
    ap.add_argument(
        "--pg-url",
        help="on this PostgreSQL database, holding the copy a --pg --pg-keep run made (before and "
        "after runs on one copy: the copy and its summary's build are ten minutes at 3,000,000)",
    )
    ap.add_argument(
        "--summary-only",
        action="store_true",
        help="measure the map summary's build, size and answers in one process; no page runs",
    )
    a = ap.parse_args()

    from playwright.sync_api import sync_playwright

    db, first, last, n_inc = build(a.keep, a.n, a.days)
    if a.copies > 1:
        db = replicate(db, a.copies, a.days)
        with sqlite3.connect(db) as c:
            n_inc, f0, l0 = c.execute(STORED).fetchone()
        first, last = dt.date.fromisoformat(f0), dt.date.fromisoformat(l0)
    big = n_inc > 300_000  # more than one map request returns: no single fetch of every point
    with sqlite3.connect(db) as c:
        n_find = c.execute("SELECT count(*) FROM findings").fetchone()[0]
        n_quiet = c.execute(
            "SELECT count(*) FROM incidents i"
            " WHERE NOT EXISTS (SELECT 1 FROM findings f WHERE f.incident_pk = i.pk)"
        ).fetchone()[0]
        by_rule = "SELECT rule_id, count(*) FROM findings GROUP BY rule_id ORDER BY 2 DESC"
        rules = c.execute(by_rule).fetchall()
    cluster = None
    url = str(db)
    if a.pg_url:
        url = a.pg_url
    elif a.pg:
        cluster, url = to_postgres(db)
        if a.pg_keep:
            print(f"PostgreSQL kept: --pg-url {url} (stop: pg_ctl -D {cluster.root}/data stop)")  # type: ignore[attr-defined]
            cluster = None
    token = tokens(url)["analyst"]
    summary = summary_and_baseline(url, first, last, rules[0][0], rebuild=not a.keep_summary)
    print(json.dumps(summary), flush=True)
    if a.summary_only:
        print(f"{n_inc:,} incidents; load: {os.getloadavg()[0]:.1f}", flush=True)
        if cluster is not None:
            from tests.pg import stop_cluster

            stop_cluster(cluster)  # type: ignore[arg-type]
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-c", "from truceline.cli import app; app()", "serve"]
    serve += ["--port", str(port), "--db", url, "--agreement", str(UKRAINE)]
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
        for _ in range(0 if big else a.repeat):
            body, s, _ = get(f"{base}/api/v1/dashboard/features?{q}", token)
            api_s.append(s)
            raw_len = len(body)
            gz_body, _, enc = get(f"{base}/api/v1/dashboard/features?{q}", token, gz=True)
            gz_len = len(gz_body) if enc == "gzip" else len(gzip.compress(body, 1))
        if not big:
            data = json.loads(body)
            assert data["findings"]["n"] == n_find and data["incidents"]["n"] == n_quiet, "counts"
            results.update(api_s=statistics.median(api_s), raw_mb=raw_len / 1e6, gz_mb=gz_len / 1e6)
            t = time.perf_counter()
            csv_body, _, _ = get(f"{base}/api/v1/export?{q}&format=csv", token)
            results["export_s"] = time.perf_counter() - t
            results["export_rows"] = csv_body.count(b"\n") - 1
            results["export_mb"] = len(csv_body) / 1e6
        # The overview's requests alone (the summary built above; a warm server answers a filter
        # again from its cache: the first of each is what a new filter costs).
        for name, path in (
            ("clusters", f"/dashboard/clusters?{q}&zoom=6"),
            ("timeline", f"/dashboard/timeline?{q}"),
        ):
            times = [get(f"{base}/api/v1{path}", token)[1] for _ in range(a.repeat)]
            results[f"{name}_cold_s"], results[f"{name}_warm_s"] = times[0], statistics.median(times[1:])

        load, refilter, zoom, timing, wire = [], [], [], [], []
        memory: list[tuple[str, dict[str, object]]] = []
        with sync_playwright() as p:
            # --enable-precise-memory-info: performance.memory without its coarse buckets.
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=[*ARGS, "--enable-precise-memory-info"]
            )
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
                page.screenshot(path=str(a.keep / f"dashboard-{n_inc}.png"))
                if not memory:  # once: the JS heap after the first load and after tours of the map
                    cdp = ctx.new_cdp_session(page)
                    cdp.send("Performance.enable")
                    for when in ("load", "tour 1", "tour 2", "tour 3"):
                        if when != "load":
                            page.evaluate(TOUR)
                        cdp.send("HeapProfiler.collectGarbage")
                        got = page.evaluate(METRICS)
                        got["heap_cdp"] = {
                            m["name"]: m["value"]
                            for m in cdp.send("Performance.getMetrics")["metrics"]
                            if m["name"] in ("JSHeapUsedSize", "Nodes", "JSEventListeners")
                        }
                        memory.append((when, got))
                    cdp.send("Performance.disable")
                ctx.close()
            browser.close()
        results["memory"] = memory
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
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        if cluster is not None:
            from tests.pg import stop_cluster

            stop_cluster(cluster)  # type: ignore[arg-type]

    print(json.dumps({k: v for k, v in results.items()}, default=str), flush=True)
    cpu = platform.processor() or platform.machine()
    r = results
    fetched = "the server's clusters and timeline" if big else "the points or the server's clusters"
    rows = [
        (f"first load of the page, whole range ({fetched} fetched and drawn)", f"{r['load_s']:.2f} s"),
        ("of which the data request(s) and the page's own work",
         f"{r['fetch_ms'] / 1000:.2f} s + {r['render_ms'] / 1000:.2f} s"),
        ("the API's answers on the first load: transferred (gzip) / decoded",
         f"{r['wire_mb']:.2f} MB / {r['decoded_mb']:.2f} MB"),
        ("a filter ticked (one rule: the server filters, the page redraws)", f"{r['refilter_s']:.2f} s"),
        ("zoom in two levels (the view's clusters or points fetched and drawn)",
         f"{r['zoom_s'] * 1000:.0f} ms"),
        ("`GET /dashboard/clusters` at zoom 6, whole range: first / again (cached)",
         f"{r['clusters_cold_s'] * 1000:.0f} ms / {r['clusters_warm_s'] * 1000:.0f} ms"),
        ("`GET /dashboard/timeline`: first / again (cached)",
         f"{r['timeline_cold_s'] * 1000:.0f} ms / {r['timeline_warm_s'] * 1000:.0f} ms"),
    ]  # fmt: skip
    if not big:
        rows += [
            ("`GET /api/v1/dashboard/features` alone, whole range", f"{r['api_s']:.2f} s"),
            (f"export of the filtered set as CSV ({r['export_rows']:,} rows, {r['export_mb']:.0f} MB)",
             f"{r['export_s']:.2f} s"),
        ]  # fmt: skip
    rows.append(
        ("the agreement's drawn layers, first request after the server starts (then cached)",
         f"{r['layers_cold_s']:.2f} s"),
    )  # fmt: skip
    for when, got in r["memory"]:  # type: ignore[attr-defined]
        cdp = got["heap_cdp"]
        rows.append(
            (f"the page's JS heap after garbage collection, {when} (DOM elements, event listeners,"
             " map layers)",
             f"{cdp['JSHeapUsedSize'] / 1e6:.1f} MB ({got['nodes']:,}, "
             f"{cdp['JSEventListeners']:,.0f}, {got['layers']:,})"),
        )  # fmt: skip
    sm = summary
    print()
    print(f"## Dashboard with {n_inc:,} incidents in range (benchmarks/dashboard.py)")
    print()
    print(
        f"Command: `.venv/bin/python benchmarks/dashboard.py --n {a.n} --copies {a.copies}"
        f"{' --pg' if a.pg or a.pg_url else ''}` "
        f"({'PostgreSQL 15 + PostGIS' if a.pg or a.pg_url else 'SQLite'}); {cpu}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end, "
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
    print()
    print(
        f"In one process: the map's summary built in {sm['build_s']:.1f} s ({sm['cells']:,.0f} rows); "
        "clusters at zoom 6 of the whole range, from the summary / from the rows (the baseline): "
        f"{sm['summary_all_s'] * 1000:.0f} ms / {sm['rows_all_s'] * 1000:.0f} ms "
        f"({sm['rows_all_s'] / sm['summary_all_s']:.0f}x); one rule: "
        f"{sm['summary_rule_s'] * 1000:.0f} ms / {sm['rows_rule_s'] * 1000:.0f} ms "
        f"({sm['rows_rule_s'] / sm['summary_rule_s']:.0f}x); the timeline from the summary "
        f"{sm['timeline_s'] * 1000:.0f} ms."
    )


if __name__ == "__main__":
    main()
