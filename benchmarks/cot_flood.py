"""A device's CoT report under a flood of idle sockets: latency with and without the flood.

    .venv/bin/python benchmarks/cot_flood.py [--sockets 300] [--reports 20]

A real TAK client (pytak) connects to the plain TCP listener (allowed for loopback) and sends one
sighting; the latency is from its connection to the report being stored (SQLite, FULL fsync),
on a warmed-up server. Measured first on a quiet server (the baseline), then with ``--sockets``
idle connections held open from the same address, and again with the per-address cap lifted so
the total cap (256) does the evicting. Target (issue 17): the flood adds < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import socket
import statistics
import tempfile
import time
import warnings
from configparser import ConfigParser
from pathlib import Path
from typing import Any

from truceline.api import build_context
from truceline.context import AppContext
from truceline.services.agreement_store import AgreementCache
from truceline.settings import CotSettings, load_settings
from truceline.tak.server import CotServer

with warnings.catch_warnings():  # pytak warns that aiohttp (certificate enrollment) is missing
    warnings.simplefilter("ignore", UserWarning)
    import pytak

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = ROOT / "examples" / "ukraine-2024"


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sighting(uid: str) -> bytes:
    point = pytak.cot_point(lat=48.0, lon=37.8, ce=10, hae=0, le=9999999, precision=8)
    ev = pytak.cot_event(uid=uid, cot_type="a-h-G-U-C-I", point=point, detail=pytak.cot_detail())
    return bytes(pytak.serialize_cot(ev))


async def _one(srv: CotServer, uid: str) -> float:
    cp = ConfigParser(interpolation=None)
    cp["pytak"] = {"COT_URL": f"tcp://127.0.0.1:{srv.tcp_port}"}
    before = srv.stats.accepted + srv.stats.rejected
    t0 = time.perf_counter()
    _, writer = await pytak.protocol_factory(cp["pytak"])
    await pytak.TXWorker(asyncio.Queue(), cp["pytak"], writer).send_data(_sighting(uid))
    async with asyncio.timeout(30):
        while srv.stats.accepted + srv.stats.rejected == before:
            await asyncio.sleep(0.002)
    dt_s = time.perf_counter() - t0
    assert srv.stats.rejected == 0, srv.stats.summary()
    writer.close()
    return dt_s


async def _run(
    ctx: AppContext, caps: dict[str, Any], sockets: int, reports: int
) -> tuple[list[float], list[float], int]:
    settings = CotSettings(port=_free(), plain_networks=["127.0.0.1/32"], plain_role="sensor", **caps)
    async with CotServer(ctx, settings) as srv:
        assert srv.tcp_port is not None
        await _one(srv, f"warm-{time.time_ns()}")
        quiet = [await _one(srv, f"q{k}-{time.time_ns()}") for k in range(reports)]
        flood = []
        for _ in range(sockets):
            flood.append((await asyncio.open_connection("127.0.0.1", srv.tcp_port))[1])
        await asyncio.sleep(0.5)
        flooded = []
        for k in range(reports):
            flooded.append(await _one(srv, f"f{k}-{time.time_ns()}"))
            # the flood keeps coming: as many new idle sockets as the device's own connection
            flood.append((await asyncio.open_connection("127.0.0.1", srv.tcp_port))[1])
        evicted = srv.stats.evicted
        for w in flood:
            w.close()
    return quiet, flooded, evicted


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=300, help="idle sockets held open")
    ap.add_argument("--reports", type=int, default=20, help="reports measured per case")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tl-bench-cot-"))
    ctx = build_context(
        load_settings(db=str(tmp / "b.db"), agreements=[AGREEMENT]), agreements=AgreementCache()
    )
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z, {args.sockets} idle sockets, {args.reports} reports"
    )
    print(
        f"{'caps':28} {'quiet p50 ms':>12} {'max':>6} {'flood p50 ms':>12} {'max':>6} "
        f"{'ratio':>6} {'evicted':>8}"
    )
    for name, caps in (
        ("per address 32 (default)", {}),
        ("total 256 (per address off)", {"max_clients_per_address": 100_000}),
    ):
        quiet, flooded, evicted = asyncio.run(_run(ctx, caps, args.sockets, args.reports))
        q, f = statistics.median(quiet), statistics.median(flooded)
        print(
            f"{name:28} {q * 1000:12.0f} {max(quiet) * 1000:6.0f} {f * 1000:12.0f} "
            f"{max(flooded) * 1000:6.0f} {f / q:6.2f} {evicted:8d}"
        )
    ctx.close()


if __name__ == "__main__":
    main()
