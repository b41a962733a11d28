"""Benchmark: ingest into the mission server's store, and single-submission latency.

1. Batch ingest throughput (incidents/s, validated, adjudicated, ledgered and committed) through
   the service the API's batch route uses, on the embedded SQLite (WAL, synchronous=FULL, as
   ``truceline serve`` runs it) and on PostgreSQL + PostGIS (a throwaway cluster from the
   installed binaries, fsync on), the latter with one submitting server process and with two
   at once (``truceline serve --workers 2``, a client each: a multi-user server's case);
2. PostgreSQL's own ``COPY`` of the same incident rows into the same table (indexes, the PostGIS
   column and its GiST index included) as the ceiling, in the same run;
3. p50/p99 latency of single submissions at a fixed rate (default 200/s) from a separate load
   process over loopback against ``truceline serve`` on SQLite (open loop: latency counts from
   the moment a request was due, so a stalled server cannot hide its queue). The server and the
   load process run on separate CPUs, as a server and its clients on other machines would
   (``--no-pin``: anywhere).

Run: ``make bench`` or ``.venv/bin/python benchmarks/ingest.py [--n 20000] [--rate 200 --seconds 20]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.pg: the throwaway PostgreSQL cluster

AGREEMENT = ROOT / "examples" / "ukraine-2024"
BATCH = 5000


def make_records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` simulated reports (the simulator's realistic mix), as the API receives them."""
    from truceline.core.simulate import SimulationConfig, simulate
    from truceline.io.agreement_files import load_agreement

    ag = load_agreement(AGREEMENT)
    start = max(ag.effective_from + dt.timedelta(days=45), ag.versions[-1].effective_from)
    out: list[dict[str, Any]] = []
    day = 0
    while len(out) < n:
        sim = simulate(
            ag,
            SimulationConfig(
                days=1,
                seed=seed + day,
                start=start + dt.timedelta(days=day),
                events_per_day=max(400, n // 2),
            ),
        )
        out += [r.model_dump(mode="json") for r in sim.reports]
        day += 1
    return out[:n]


def _register(url: str) -> None:
    """Create the schema and register the agreement (once, before any submitter starts)."""
    from truceline.context import SYSTEM
    from truceline.io.agreement_files import files_of_folder
    from truceline.services.agreement_store import register_agreement
    from truceline.store.db import Database

    db = Database(url, synchronous="FULL")
    db.upgrade()
    now = dt.datetime.now(dt.UTC)
    files = files_of_folder(AGREEMENT)
    db.write(lambda s: register_agreement(s, files, source=str(AGREEMENT), actor=SYSTEM, now=now))
    db.dispose()


def _submitter(
    url: str,
    records: list[dict[str, Any]],
    warm: list[dict[str, Any]] | None,
    start: Any = None,
) -> dict[str, float]:
    """One server process's share: set up as ``truceline serve`` does, then submit batches through
    the batch route's service; times from ``start`` (a barrier shared with the other submitters)."""
    from truceline.context import SYSTEM, freeze_heap
    from truceline.core.incidents import Incident
    from truceline.core.rules import prepare as prepare_rules
    from truceline.services import adjudicate
    from truceline.services.agreement_store import AgreementCache
    from truceline.services.submissions import Verdict, submit_records
    from truceline.store.db import Database

    db = Database(url, synchronous="FULL")
    cache = AgreementCache()
    with db.read() as s:
        ag = cache.get(s, "ukraine-2024")
    # A server that has been running: the agreement is compiled and its search tables filled (as
    # ``truceline serve`` does before it takes traffic). Warm up on other reports (another seed),
    # never on the measured ones.
    prepare_rules(ag)
    if warm:
        adjudicate(ag, [Incident.model_validate(r) for r in warm], list(range(len(warm))))
    freeze_heap()  # as the server does before it takes traffic (truceline.context.settle)
    now = dt.datetime.now(dt.UTC)
    if start is not None:
        start.wait()
    accepted = 0
    c0 = time.process_time()
    t0 = time.monotonic()
    for k in range(0, len(records), BATCH):
        chunk = records[k : k + BATCH]
        res = db.write(lambda s, chunk=chunk: submit_records(s, ag, chunk, principal=SYSTEM, now=now))
        accepted += res.count(Verdict.accepted)
    t1 = time.monotonic()
    cpu = time.process_time() - c0  # this process only (PostgreSQL's own work is not in it)
    db.dispose()
    return {"accepted": accepted, "t0": t0, "t1": t1, "cpu_s": cpu}


def _submitter_main(url: str, records: Any, warm: Any, start: Any, out: Any) -> None:
    out.put(_submitter(url, records, warm, start))


def ingest_run(
    url: str,
    records: list[dict[str, Any]],
    warm: list[dict[str, Any]] | None = None,
    *,
    workers: int = 1,
) -> dict[str, float]:
    """Register the agreement, then submit every record in batches of ``BATCH``.

    ``workers`` > 1: that many processes submit at once (``truceline serve --workers N`` with a
    client per worker), each every ``workers``-th record, so their batches cover the same hours
    and places (their reports fuse and count together). Times run from the moment all of them
    start to the moment the last one has committed.
    """
    import multiprocessing

    _register(url)
    if workers == 1:
        parts = [_submitter(url, records, warm)]
    else:
        mp = multiprocessing.get_context("fork")
        start, out = mp.Barrier(workers), mp.Queue()
        procs = [
            mp.Process(target=_submitter_main, args=(url, records[i::workers], warm, start, out))
            for i in range(workers)
        ]
        for p in procs:
            p.start()
        parts = [out.get() for _ in procs]
        for p in procs:
            p.join()
    accepted = sum(int(p["accepted"]) for p in parts)
    seconds = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
    return {
        "workers": workers,
        "accepted": accepted,
        "seconds": seconds,
        "per_s": accepted / seconds,
        "cpu_s": sum(p["cpu_s"] for p in parts),
        "loadavg_1min": os.getloadavg()[0],
    }


COPY_COLUMNS = (
    "agreement_id",
    "batch_id",
    "report_id",
    "content_hash",
    "observed_at",
    "day",
    "time_precision",
    "lon",
    "lat",
    "uncertainty_m",
    "kind",
    "weapon_class",
    "count",
    "party",
    "origin_lon",
    "origin_lat",
    "origin_uncertainty_m",
    "bearing_deg",
    "source_type",
    "reliability",
    "credibility",
    "narrative",
    "side_party",
    "distance_km",
    "p_side",
    "zones",
    "sector",
    "received_at",
    "status",
    "submitted_by",
)


def copy_run(cluster: Any, source_url: str) -> dict[str, float]:
    """COPY the rows the ingest stored into the same, freshly migrated table of another database."""
    import psycopg

    from truceline.store.db import make_engine, upgrade

    src = psycopg.connect(source_url.replace("postgresql+psycopg", "postgresql"))
    buf = io.BytesIO()
    with src.cursor().copy(f"COPY (SELECT {', '.join(COPY_COLUMNS)} FROM incidents) TO STDOUT") as cp:
        for block in cp:
            buf.write(block)
    rows = src.execute("select count(*) from incidents").fetchone()[0]
    src.close()
    cluster._admin("CREATE DATABASE copy_target")
    engine = make_engine(cluster.url("copy_target"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(engine)
    engine.dispose()
    data = buf.getvalue()
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=copy_target") as conn:
        conn.execute("INSERT INTO agreements VALUES ('ukraine-2024', 'x', 'x', 'x', now())")
        conn.execute(
            "INSERT INTO ingest_batches (id, agreement_id, source, received_at, n_accepted, "
            "n_duplicates, n_rejected) SELECT g, 'ukraine-2024', 'x', now(), 0, 0, 0 "
            "FROM generate_series(1, 1000) g"
        )
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor().copy(f"COPY incidents ({', '.join(COPY_COLUMNS)}) FROM STDIN") as cp:
            for k in range(0, len(data), 1 << 20):
                cp.write(data[k : k + (1 << 20)])
        conn.commit()
        seconds = time.perf_counter() - t0
    return {"rows": rows, "seconds": seconds, "per_s": rows / seconds}


# -- latency ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load(
    url: str,
    token: str,
    rate: float,
    seconds: float,
    records: list[dict[str, Any]],
    out: Path,
    workers: int = 64,
) -> None:
    """Open-loop load: request i is due at t0 + i / rate; latency counts from when it was due."""
    import http.client
    import urllib.parse

    u = urllib.parse.urlsplit(url)
    n = int(rate * seconds)
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()
    lat: list[float] = []
    codes: dict[int, int] = {}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def worker() -> None:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        while (job := due.get()) is not None:
            i, t_due = job
            body = json.dumps(records[i % len(records)])
            try:
                conn.request("POST", "/api/v1/incidents", body=body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                code = resp.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                code = 0
            done = time.perf_counter()
            with lock:
                lat.append(done - t_due)
                codes[code] = codes.get(code, 0) + 1

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    t0 = time.perf_counter() + 0.5
    for i in range(n):
        wait = t0 + i / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        due.put((i, t0 + i / rate))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    lat.sort()
    out.write_text(
        json.dumps(
            {
                "n": len(lat),
                "rate": rate,
                "codes": codes,
                "p50_ms": 1000 * lat[len(lat) // 2],
                "p99_ms": 1000 * lat[int(len(lat) * 0.99) - 1],
                "max_ms": 1000 * lat[-1],
                "mean_ms": 1000 * statistics.fmean(lat),
                "achieved_rate": len(lat) / (time.perf_counter() - t0),
            }
        )
    )


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds so far of a process and its children (Linux /proc)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat.parent.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _pinned(cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` that keeps a child process (and its threads) on ``cpus`` (None: anywhere)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def _split_cpus(workers: int, pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """The server's CPUs and the load process's: apart when asked and there are enough of them
    (the load generator's threads then never take the server's core, as clients on other machines
    would not), otherwise both anywhere."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin or len(cpus) < 2:
        return None, None
    n_server = min(max(workers, 1), len(cpus) - 1)
    return set(cpus[:n_server]), set(cpus[n_server:])


def latency_run(
    rate: float,
    seconds: float,
    records: list[dict[str, Any]],
    tmp: Path,
    warm: list[dict[str, Any]],
    synchronous: str = "FULL",
    workers: int = 1,
    pin: bool = True,
) -> dict[str, Any]:
    """Start `truceline serve` on SQLite; drive it from a separate load process (on other CPUs
    than the server's with ``pin``)."""
    from truceline.context import SYSTEM
    from truceline.services.auth import create_token
    from truceline.store.db import Database

    server_cpus, load_cpus = _split_cpus(workers, pin)
    db_path = tmp / f"latency-{synchronous}-{workers}.db"
    db = Database(str(db_path))
    db.upgrade()
    token = db.write(
        lambda s: create_token(s, role="sensor", name="load", actor=SYSTEM, now=dt.datetime.now(dt.UTC))
    ).secret
    db.dispose()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from truceline.cli import app; app()",
            "serve",
            "--port",
            str(port),
            "--db",
            str(db_path),
            "--agreement",
            str(AGREEMENT),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "TRUCELINE_SQLITE_SYNCHRONOUS": synchronous,
            "TRUCELINE_WORKERS": str(workers),
        },
        preexec_fn=_pinned(server_cpus),
    )
    try:
        import urllib.request

        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/ready", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(
                        "the server did not start; see " + str(tmp / "server.log")
                    ) from None
                time.sleep(0.2)
        recs_file = tmp / "records.json"
        recs_file.write_text(json.dumps(records[:5000]))
        # A server that has been running: it has seen reports all along the line before (its line
        # index is filled around them). Other reports (another seed) in batches, then measure.
        for k in range(0, min(len(warm), 10_000), 1000):
            req = urllib.request.Request(
                f"{url}/api/v1/incidents/batch",
                method="POST",
                data=json.dumps(
                    {
                        "incidents": [
                            {**r, "id": f"warm-{k + i}"} for i, r in enumerate(warm[k : k + 1000])
                        ]
                    }
                ).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=300) as resp:
                resp.read()
        # Warm up the server (agreement compiled, caches filled) with a short burst first.
        cpu: dict[str, float] = {}
        for phase, (r, s_) in (("warm-up", (50.0, 2.0)), ("measured", (rate, seconds))):
            out = tmp / f"latency-{phase}.json"
            cpu[phase] = _cpu_s(server.pid)
            load_before = os.getloadavg()[0]
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "load",
                    "--url",
                    url,
                    "--token",
                    token,
                    "--rate",
                    str(r),
                    "--seconds",
                    str(s_),
                    "--records",
                    str(recs_file),
                    "--out",
                    str(out),
                    "--prefix",
                    phase,
                ],
                check=True,
                preexec_fn=_pinned(load_cpus),
            )
        result: dict[str, Any] = json.loads((tmp / "latency-measured.json").read_text())
        # The server's own CPU per request: unlike wall-clock latency, unaffected by other
        # processes competing for the cores.
        result["server_cpu_ms_per_request"] = 1000 * (_cpu_s(server.pid) - cpu["measured"]) / result["n"]
        result["loadavg_1min_before"] = load_before
        result["server_cpus"] = sorted(server_cpus) if server_cpus else "any"
        result["load_cpus"] = sorted(load_cpus) if load_cpus else "any"
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd")
    ld = sub.add_parser("load", help="(internal) the load process")
    ld.add_argument("--url", required=True)
    ld.add_argument("--token", required=True)
    ld.add_argument("--rate", type=float, required=True)
    ld.add_argument("--seconds", type=float, required=True)
    ld.add_argument("--records", type=Path, required=True)
    ld.add_argument("--out", type=Path, required=True)
    ld.add_argument("--prefix", default="lat")
    parser.add_argument("--n", type=int, default=20_000, help="incidents for the ingest runs")
    parser.add_argument("--rate", type=float, default=200.0, help="single submissions per second")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the latency run")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true", help="only the latency run")
    parser.add_argument(
        "--synchronous", default="FULL,NORMAL", help="SQLite fsync policies of the latency runs"
    )
    parser.add_argument("--workers", default="1,2", help="server processes of the latency runs")
    parser.add_argument(
        "--ingest-workers",
        default="1,2",
        help="submitting server processes of the PostGIS ingest runs (one run each)",
    )
    parser.add_argument("--skip-latency", action="store_true", help="only the ingest runs")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="let the server and the load process share every CPU (default: on separate CPUs)",
    )
    args = parser.parse_args(argv)
    if args.cmd == "load":
        records = [
            {**r, "id": f"{args.prefix}-{k}"} for k, r in enumerate(json.loads(args.records.read_text()))
        ]
        load(args.url, args.token, args.rate, args.seconds, records, args.out)
        return 0

    print(f"Simulating {args.n:,} reports on {AGREEMENT.name} ...", flush=True)
    records = make_records(args.n)
    warm = make_records(args.n, seed=1001)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="truceline-bench-") as tmpd:
        tmp = Path(tmpd)
        if not args.skip_ingest:
            r = ingest_run(str(tmp / "bench.db"), records, warm)
            results["sqlite"] = r
            print(
                f"SQLite  (WAL, synchronous=FULL): {r['accepted']:,} accepted in {r['seconds']:.2f} s "
                f"-> {r['per_s']:,.0f} incidents/s; {r['accepted'] / r['cpu_s']:,.0f} per CPU-second; "
                f"load average {r['loadavg_1min']:.1f}",
                flush=True,
            )
        if not (args.skip_postgres or args.skip_ingest):
            from tests.pg import pg_unavailable, start_cluster, stop_cluster

            reason = pg_unavailable()
            if reason:
                print(f"PostGIS: skipped ({reason})")
            else:
                cluster = start_cluster(fsync=True)
                try:
                    runs = [int(w) for w in args.ingest_workers.split(",")]
                    for w in runs:
                        cluster._admin(f"CREATE DATABASE bench{w}")
                        r = ingest_run(cluster.url(f"bench{w}"), records, warm, workers=w)
                        results[f"postgis_{w}w"] = r
                        print(
                            f"PostGIS (fsync on), {w} worker(s):  {r['accepted']:,} accepted in "
                            f"{r['seconds']:.2f} s -> {r['per_s']:,.0f} incidents/s; "
                            f"{r['accepted'] / r['cpu_s']:,.0f} per CPU-second of the client(s); "
                            f"load average {r['loadavg_1min']:.1f}",
                            flush=True,
                        )
                    c = copy_run(cluster, cluster.url(f"bench{runs[0]}"))
                    results["copy"] = c
                    per_s = {w: results[f"postgis_{w}w"]["per_s"] for w in runs}
                    shares = ", ".join(f"{w} worker(s) {per_s[w] / c['per_s']:.0%}" for w in runs)
                    print(
                        f"PostgreSQL COPY, same rows:      {c['rows']:,} rows in {c['seconds']:.2f} s "
                        f"-> {c['per_s']:,.0f} rows/s; ingest = {shares} of COPY",
                        flush=True,
                    )
                finally:
                    stop_cluster(cluster)
        if not args.skip_latency:
            runs = [(s_, int(w)) for w in args.workers.split(",") for s_ in args.synchronous.split(",")]
            for sync, n_workers in runs:
                lat = latency_run(args.rate, args.seconds, records, tmp, warm, sync, n_workers, args.pin)
                results[f"latency_{sync}_{n_workers}w"] = lat
                print(
                    f"Single submissions at {args.rate:.0f}/s for {args.seconds:.0f} s (separate load "
                    f"process, loopback, SQLite {sync}, {n_workers} worker(s)): "
                    f"p50 {lat['p50_ms']:.1f} ms, "
                    f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms; "
                    f"achieved {lat['achieved_rate']:.0f}/s; statuses {lat['codes']}; "
                    f"server CPU {lat['server_cpu_ms_per_request']:.2f} ms/request; "
                    f"CPUs: server {lat['server_cpus']}, load {lat['load_cpus']}; "
                    f"load average before {lat['loadavg_1min_before']:.1f}",
                    flush=True,
                )
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
