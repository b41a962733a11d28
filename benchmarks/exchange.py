"""Speed of the field interfaces: file export/import per format, OGC API pages, CoT ingest.

    .venv/bin/python benchmarks/exchange.py [--n 10000] [--events 2000]

Everything runs on this machine against a fresh SQLite database (FULL fsync, as the server runs).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import socket
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from truceline.api import build_context, create_app
from truceline.context import SYSTEM
from truceline.io.formats import FORMATS, read_incident_file
from truceline.services import queries
from truceline.services.agreement_store import AgreementCache
from truceline.services.auth import Role, create_token
from truceline.services.exchange import export_incidents
from truceline.services.ingest import ingest_incidents
from truceline.services.simulation import run_simulation
from truceline.settings import CotSettings, load_settings
from truceline.tak.server import CotServer

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = ROOT / "examples" / "ukraine-2024"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000, help="incidents in the store")
    ap.add_argument("--events", type=int, default=2_000, help="CoT events streamed")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    ctx = build_context(
        load_settings(db=str(tmp / "b.db"), agreements=[AGREEMENT]), agreements=AgreementCache()
    )
    with ctx.db.read() as s:
        ag = ctx.agreement(s, None)
    days = max(1, args.n // 400)
    run_simulation(ag, tmp / "sim", days=days, seed=3, events_per_day=400)
    read = read_incident_file(tmp / "sim" / "reports.csv")
    ctx.db.write(lambda s: ingest_incidents(s, ag, read.read.incidents, read.read.rows, source="bench"))
    flt = queries.IncidentFilter(agreement_id=ag.id)
    with ctx.db.read() as s:
        n = queries.count_incidents(s, flt, scope=SYSTEM.scope)
    print(f"store: {n} incidents ({ag.id})")
    print(f"{'format':8} {'export s':>9} {'import s':>9} {'MB':>6}")
    for fmt in FORMATS:
        path = tmp / f"all.{'csv' if fmt == 'acled' else fmt}"
        t0 = time.perf_counter()
        with ctx.db.read() as s:
            export_incidents(s, flt, path, fmt, scope=SYSTEM.scope)
        t1 = time.perf_counter()
        back = read_incident_file(path, fmt)
        t2 = time.perf_counter()
        assert len(back.read.incidents) == n, (fmt, len(back.read.incidents), back.read.rejects[:3])
        print(f"{fmt:8} {t1 - t0:9.2f} {t2 - t1:9.2f} {path.stat().st_size / 1e6:6.1f}")

    tok = ctx.db.write(
        lambda s: create_token(s, role=Role.analyst.value, name="b", actor=SYSTEM, now=ctx.clock())
    )
    client = TestClient(create_app(ctx))
    h = {"Authorization": f"Bearer {tok.secret}"}
    t0 = time.perf_counter()
    url, pages, feats = "/ogc/collections/incidents/items?limit=1000", 0, 0
    while url:
        page = client.get(url.replace("http://testserver", ""), headers=h).json()
        pages += 1
        feats += page["numberReturned"]
        url = next((ln["href"] for ln in page["links"] if ln["rel"] == "next"), "")
    dt_s = time.perf_counter() - t0
    print(
        f"OGC API: {feats} incidents in {pages} pages of 1000 in {dt_s:.2f} s "
        f"({dt_s / pages * 1000:.0f} ms/page)"
    )
    client.close()

    async def stream() -> tuple[float, int]:
        async with CotServer(
            ctx,
            CotSettings(
                port=_free(),
                plain_networks=["127.0.0.1/32"],
                plain_role="sensor",
                push_findings=False,
            ),
        ) as srv:
            _, w = await asyncio.open_connection("127.0.0.1", srv.tcp_port)
            now = dt.datetime.now(dt.UTC)
            t0 = time.perf_counter()
            for k in range(args.events):
                t = (now + dt.timedelta(milliseconds=k)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                w.write(
                    f'<event version="2.0" uid="bench-{k}" type="a-h-G-U-C" how="h-e" time="{t}" '
                    f'start="{t}" stale="{t}"><point lat="{48.0 + k * 1e-5!r}" lon="37.5" hae="0" '
                    f'ce="20" le="9999999"/><detail/></event>'.encode()
                )
            await w.drain()
            while srv.stats.accepted + srv.stats.rejected < args.events:
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - t0
            w.close()
            await w.wait_closed()
            return elapsed, srv.stats.accepted

    elapsed, accepted = asyncio.run(stream())
    print(f"CoT TCP: {accepted} events stored in {elapsed:.2f} s ({accepted / elapsed:.0f} events/s)")
    ctx.db.dispose()


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
