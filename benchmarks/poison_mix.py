"""Ingest throughput with hostile records mixed in: 0 %, 10 %, 50 % poison, ratio against clean.

    .venv/bin/python benchmarks/poison_mix.py [--n 2000] [--events 600] [--cot-only] [--postgres]

1. API batch: ``POST /api/v1/incidents/batch`` (batches of 500, in-process app on SQLite with FULL
   fsync, as ``truceline serve`` runs it) with each poison record drawn from the hostile corpus
   (tests/hostile/corpus.py: dates out of range, lone surrogates, NUL, booleans, huge numbers, ...).
   Throughput counts the good records stored per second; every good one must land, every bad one
   be rejected alone. After each mix the p50 latency of a single good submission says whether the
   server stayed responsive. With ``--postgres`` the same runs go to a throwaway PostgreSQL +
   PostGIS cluster (tests/pg.py, fsync on) instead of SQLite.
2. CoT stream: one plain-TCP connection sends the events back to back (poison: a year-9999
   time, a point that is no number, a DTD with entities, a latitude of 95, an event cut off before
   its ``</event>`` three ways; a last mix of truncated events only); good events stored per
   second until the last good one is stored, and the script asserts every good one stored and
   every bad one refused (a truncated event used to swallow the good one after it).

The records are made here (points in a box across the example line), not by the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from truceline.api import build_context, create_app
from truceline.context import SYSTEM, AppContext
from truceline.services.agreement_store import AgreementCache
from truceline.services.auth import create_token
from truceline.settings import CotSettings, load_settings
from truceline.tak.server import CotServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.hostile.corpus import BAD_RECORDS  # noqa: E402

AGREEMENT = ROOT / "examples" / "ukraine-2024"
BATCH = 500
KINDS = ("armed_personnel", "heavy_weapon", "fortification_works", "small_arms_fire")


def good(rid: str, rng: random.Random) -> dict[str, Any]:
    return {
        "id": rid,
        "observed_at": f"2025-03-0{rng.randint(1, 9)}T{rng.randint(0, 23):02d}:00:00Z",
        "lon": rng.uniform(37.0, 38.5),
        "lat": rng.uniform(47.5, 48.8),
        "kind": rng.choice(KINDS),
        "source_type": "patrol",
        "uncertainty_m": rng.uniform(10, 500),
    }


def mix(n: int, share: float, tag: str, rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    out, bad = [], 0
    for k in range(n):
        if rng.random() < share:
            out.append({**good(f"{tag}-bad-{k}", rng), **rng.choice(BAD_RECORDS).changes})
            bad += 1
        else:
            out.append(good(f"{tag}-{k}", rng))
    return out, n - bad


def api_case(
    client: TestClient, auth: dict[str, str], n: int, share: float, rng: random.Random
) -> dict[str, float]:
    tag = f"api{int(share * 100)}-{time.time_ns()}"
    records, n_good = mix(n, share, tag, rng)
    accepted = rejected = 0
    t0 = time.perf_counter()
    for i in range(0, n, BATCH):
        body = json.dumps({"incidents": records[i : i + BATCH]}).encode()  # surrogates escaped
        r = client.post(
            "/api/v1/incidents/batch", content=body, headers={**auth, "content-type": "application/json"}
        )
        assert r.status_code == 200, r.text[:300]
        for x in r.json()["results"]:
            accepted += x["status"] == "accepted"
            rejected += x["status"] == "rejected"
    took = time.perf_counter() - t0
    assert accepted == n_good, (accepted, n_good)
    lat = []
    for k in range(20):
        t = time.perf_counter()
        r = client.post("/api/v1/incidents", json=good(f"{tag}-single-{k}", rng), headers=auth)
        lat.append(time.perf_counter() - t)
        assert r.status_code == 201, r.text
    return {"good": n_good, "bad": rejected, "s": took, "good_per_s": n_good / took,
            "single_p50_ms": statistics.median(lat) * 1000}  # fmt: skip


def _event(uid: str, when: str, lon: float, lat: float, stale: str = "2100-01-01T00:00:00Z") -> bytes:
    return (
        f'<event version="2.0" uid="{uid}" type="a-h-G-U-C-I" how="h-g-i-g-o" time="{when}" '
        f'start="{when}" stale="{stale}"><point lat="{lat}" lon="{lon}" hae="0" ce="20" '
        'le="9999999"/><detail/></event>'
    ).encode()


def _truncations(now: str) -> list[Callable[[str], bytes]]:
    """Events cut off before their ``</event>`` (a sender that lost power or signal mid-write)."""
    return [
        lambda u: _event(u, now, 37.8, 48.0)[:-40],  # inside <point .../>
        lambda u: _event(u, now, 37.8, 48.0)[:-8],  # all but the end tag
        lambda u: _event(u, now, 37.8, 48.0)[:-3],  # the end tag cut
    ]


def cot_events(
    n: int, share: float, tag: str, rng: random.Random, *, truncated_only: bool = False
) -> tuple[list[bytes], int]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    poison: list[Callable[[str], bytes]] = [
        lambda u: _event(u, "9999-12-31T23:59:59Z", 37.8, 48.0, "9999-12-31T23:59:59Z"),
        lambda u: (b'<event version="2.0" uid="' + u.encode() + b'" type="a-h-G"><point lat="x" '
                   b'lon="NaN"/></event>'),
        lambda u: (b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "aaaa">]><event uid="'
                   + u.encode() + b'">&a;</event>'),
        lambda u: _event(u, now, 37.8, 95.0),  # no such latitude
        *_truncations(now),
    ]  # fmt: skip
    if truncated_only:
        poison = _truncations(now)
    out, bad = [], 0
    for k in range(n):
        if rng.random() < share:
            out.append(rng.choice(poison)(f"{tag}-bad-{k}"))
            bad += 1
        else:
            out.append(_event(f"{tag}-{k}", now, rng.uniform(37.0, 38.5), rng.uniform(47.5, 48.8)))
    return out, n - bad


def _free() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _cot(
    ctx: AppContext, n: int, share: float, rng: random.Random, *, truncated_only: bool = False
) -> dict[str, float]:
    settings = CotSettings(port=_free(), plain_networks=["127.0.0.1/32"], plain_role="sensor")
    tag = f"cot{int(share * 100)}-{time.time_ns()}"
    events, n_good = cot_events(n, share, tag, rng, truncated_only=truncated_only)
    async with CotServer(ctx, settings) as srv:
        assert srv.tcp_port is not None
        before = srv.stats.accepted
        t0 = time.perf_counter()
        _, writer = await asyncio.open_connection("127.0.0.1", srv.tcp_port)
        for ev in events:
            writer.write(ev)
        await writer.drain()
        deadline = time.perf_counter() + 120
        while srv.stats.accepted - before < n_good:
            assert time.perf_counter() < deadline, (n_good, srv.stats.summary())
            await asyncio.sleep(0.005)
        took = time.perf_counter() - t0
        writer.close()
        await writer.wait_closed()
        stats = srv.stats
        # a bad event last in the stream (one cut off) is judged when the connection closes
        while stats.rejected + stats.malformed < n - n_good:
            assert time.perf_counter() < deadline, (n - n_good, stats.summary())
            await asyncio.sleep(0.005)
        # every bad event refused alone, with its reason; no good one lost beside it
        assert stats.accepted - before == n_good, stats.summary()
        assert stats.rejected + stats.malformed == n - n_good, stats.summary()
        truncated = stats.reasons["truncated"]
    return {"good": n_good, "bad": stats.rejected + stats.malformed, "s": took,
            "good_per_s": n_good / took, "truncated": truncated}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000, help="records per API mix")
    ap.add_argument("--events", type=int, default=600, help="CoT events per mix")
    ap.add_argument("--cot-only", action="store_true", help="skip the API mixes (a short run)")
    ap.add_argument(
        "--postgres",
        action="store_true",
        help="a throwaway PostgreSQL + PostGIS cluster (fsync on) instead of SQLite",
    )
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # one log line per rejected event: not what is measured
    if not args.postgres:
        tmp = Path(tempfile.mkdtemp(prefix="tl-bench-poison-"))
        run(str(tmp / "b.db"), "SQLite FULL", args)
        return
    from tests.pg import pg_unavailable, start_cluster, stop_cluster

    reason = pg_unavailable()
    if reason:
        sys.exit(f"PostGIS cannot run here: {reason}")
    cluster = start_cluster(fsync=True)
    try:
        cluster._admin("CREATE DATABASE poison")
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={cluster.port} user=postgres dbname=poison", autocommit=True
        ) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        run(cluster.url("poison"), "PostgreSQL + PostGIS (fsync on)", args)
    finally:
        stop_cluster(cluster)


def run(db: str, what: str, args: argparse.Namespace) -> None:
    ctx = build_context(load_settings(db=db, agreements=[AGREEMENT]), agreements=AgreementCache())
    tok = ctx.db.write(
        lambda s: create_token(s, role="sensor", name="bench", actor=SYSTEM, now=dt.datetime.now(dt.UTC))
    )
    auth = {"Authorization": f"Bearer {tok.secret}"}
    rng = random.Random(17)
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z, {what}, {args.n} API records, "
          f"{args.events} CoT events per mix, load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    if not args.cot_only:
        with TestClient(create_app(ctx)) as client:
            _api_mixes(client, auth, args.n, rng)
    _cot_mixes(ctx, args.events, rng)
    ctx.close()
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


def _api_mixes(client: TestClient, auth: dict[str, str], n: int, rng: random.Random) -> None:
    api_case(client, auth, BATCH, 0.0, rng)  # warm-up
    print(f"{'API batch':12} {'good':>6} {'bad':>6} {'good/s':>8} {'ratio':>6} {'single p50 ms':>14}")
    base = 0.0
    for share in (0.0, 0.1, 0.5):
        r = api_case(client, auth, n, share, rng)
        base = base or r["good_per_s"]
        print(f"{f'{share:.0%} poison':12} {r['good']:6.0f} {r['bad']:6.0f} "
              f"{r['good_per_s']:8.0f} {r['good_per_s'] / base:6.2f} "
              f"{r['single_p50_ms']:14.1f}")  # fmt: skip


def _cot_mixes(ctx: AppContext, n: int, rng: random.Random) -> None:
    print(f"{'CoT stream':16} {'good':>6} {'bad':>6} {'truncated':>9} {'good/s':>8} {'ratio':>6}")
    base = 0.0
    for name, share, only in (
        ("0% poison", 0.0, False),
        ("10% poison", 0.1, False),
        ("50% poison", 0.5, False),
        ("10% truncated", 0.1, True),
    ):
        r = asyncio.run(_cot(ctx, n, share, rng, truncated_only=only))
        base = base or r["good_per_s"]
        print(f"{name:16} {r['good']:6.0f} {r['bad']:6.0f} {r['truncated']:9.0f} "
              f"{r['good_per_s']:8.0f} {r['good_per_s'] / base:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
