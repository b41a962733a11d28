"""Broken CoT events on a stream never cost a good neighbour (issue 17).

An event cut off before its ``</event>`` (a device that lost power or signal mid-write, a proxy
that dropped bytes) used to swallow the next event up to *its* end tag: the pair failed to parse
as one, and the good event was lost without trace. Now the broken event ends where the next
event (or XML declaration) starts, is refused alone with its reason, and the next one is read.
Checked through the listener with a real TAK client (pytak) on plain TCP and on TLS, and through
``truceline import --format cot``; the events are made here (pytak), not by the simulator.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.context import AppContext
from truceline.settings import CotSettings
from truceline.store.db import Database
from truceline.store.models import IncidentRow
from truceline.tak.server import CotServer

from ..live import free_port
from ..tak.test_listener import LOOPBACK, Device, rows, sighting, wait_rows

ROOT = Path(__file__).parents[2]

#: How an event gets cut short, each before a good event follows it on the same connection.
CUTS = {
    "mid-attribute": lambda ev: ev[: ev.index(b"<point") + 14],
    "after-point": lambda ev: ev[: ev.index(b"<detail")],
    "no-end-tag": lambda ev: ev[: ev.index(b"</event>")],
    "end-tag-cut": lambda ev: ev[: ev.index(b"</event>") + 5],
    "start-tag-only": lambda ev: (
        ev[: ev.index(b"<event")] + ev[ev.index(b"<event") :].split(b">")[0] + b">"
    ),
    "garbage": lambda ev: b"\x00\xff not xml at all " + ev[:5],
}


def _stream(good: list[bytes], bad_of: list[bytes]) -> tuple[bytes, int]:
    """The good events with a broken one (each way of cutting, in turn) before every other one,
    and a lone XML declaration (no event: dropped, not counted) before every fifth."""
    cuts = list(CUTS.values())
    parts: list[bytes] = []
    n_bad = 0
    for k, ev in enumerate(good):
        if k % 2 == 0:
            parts.append(cuts[n_bad % len(cuts)](bad_of[k]))
            n_bad += 1
        if k % 5 == 0:
            parts.append(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n')
        parts.append(ev)
    return b"".join(parts), n_bad


def _events(n: int) -> tuple[list[bytes], list[bytes]]:
    good = [sighting(36.95 + k * 1e-3, 48.6, uid=f"good-{k}") for k in range(n)]
    bad = [sighting(36.95 + k * 1e-3, 48.65, uid=f"cut-{k}") for k in range(n)]
    return good, bad


async def _send_and_count(
    ctx: AppContext, srv: CotServer, url: str, stream: bytes, n_good: int, chunk: int, **tls: str
) -> None:
    dev = await Device.connect(url, **tls)
    try:
        for k in range(0, len(stream), chunk):  # split across reads, anywhere
            dev.writer.write(stream[k : k + chunk])
            await dev.writer.drain()
        await wait_rows(ctx.db, n_good)
        await asyncio.sleep(0.2)
    finally:
        await dev.close()


def _check(
    ctx: AppContext, srv: CotServer, n_good: int, n_bad: int, caplog: pytest.LogCaptureFixture
) -> None:
    got = {r.report_id.split("@")[0].removeprefix("cot:") for r in rows(ctx.db).values()}
    assert got == {f"good-{k}" for k in range(n_good)}  # every good one, none of the broken
    assert srv.stats.accepted == n_good
    assert srv.stats.reasons["truncated"] == n_bad, srv.stats.reasons
    assert srv.stats.malformed == n_bad
    assert "an event with no </event> before the next event (uid 'cut-0')" in caplog.text


@pytest.mark.parametrize("chunk", [1 << 16, 97], ids=["one-write", "97-byte-writes"])
def test_truncated_events_lose_no_good_neighbour_over_tcp(
    ctx: AppContext, caplog: pytest.LogCaptureFixture, chunk: int
) -> None:
    caplog.set_level(logging.INFO, logger="truceline.tak")
    good, bad = _events(24)
    stream, n_bad = _stream(good, bad)
    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="sensor")

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            await _send_and_count(ctx, srv, f"tcp://127.0.0.1:{srv.tcp_port}", stream, len(good), chunk)
            _check(ctx, srv, len(good), n_bad, caplog)

    asyncio.run(scenario())


@pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")
def test_truncated_events_lose_no_good_neighbour_over_tls(
    ctx: AppContext, pki: dict[str, tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="truceline.tak")
    good, bad = _events(24)
    stream, n_bad = _stream(good, bad)
    settings = CotSettings(
        tls_port=free_port(),
        tls_cert=pki["server"][0],
        tls_key=pki["server"][1],
        tls_ca=pki["ca"][0],
        tls_role="sensor",
    )
    tls = {
        "PYTAK_TLS_CLIENT_CERT": pki["patrol"][0],
        "PYTAK_TLS_CLIENT_KEY": pki["patrol"][1],
        "PYTAK_TLS_CLIENT_CAFILE": pki["ca"][0],
        "PYTAK_TLS_SERVER_EXPECTED_HOSTNAME": "localhost",
    }

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            url = f"tls://127.0.0.1:{srv.tls_port}"
            await _send_and_count(ctx, srv, url, stream, len(good), 61, **tls)
            _check(ctx, srv, len(good), n_bad, caplog)

    asyncio.run(scenario())


def test_an_event_the_connection_ends_inside_is_refused_with_its_reason(
    ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="truceline.tak")
    good = sighting(36.95, 48.6, uid="last-good")
    cut = sighting(36.95, 48.61, uid="cut-at-close")
    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="sensor")

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            await _send_and_count(
                ctx, srv, f"tcp://127.0.0.1:{srv.tcp_port}", good + cut[:-20], 1, 1 << 16
            )
            for _ in range(100):  # the server reads the end of the stream after the close
                if srv.stats.reasons["truncated"]:
                    break
                await asyncio.sleep(0.05)
            assert srv.stats.accepted == 1 and srv.stats.reasons["truncated"] == 1

    asyncio.run(scenario())
    assert "the stream ended inside an event (no </event>) (uid 'cut-at-close'); refused" in caplog.text


def test_a_capture_with_truncated_events_imports_every_good_one(tmp_path: Path) -> None:
    # the shipped capture's three markers, sent under new uids, each after a cut-off copy
    sample = (ROOT / "examples" / "samples" / "tak-capture.cot").read_bytes()
    marks = [e + b"</event>" for e in sample.split(b"</event>") if b'uid="SMM-MARK-' in e][:3]
    marks = [m[m.index(b"<event") :] for m in marks]
    good = [m.replace(b'uid="SMM-MARK-', f'uid="GOOD-{k}-'.encode()) for k, m in enumerate(marks)]
    parts = []
    for k, (g, m) in enumerate(zip(good, marks, strict=True)):
        parts += [list(CUTS.values())[k](m.replace(b'uid="SMM-MARK-', b'uid="CUT-')), b"\n", g, b"\n"]
    parts.append(marks[0][:-30])  # the file ends inside an event
    capture = tmp_path / "cut.cot"
    capture.write_bytes(b"".join(parts))
    db, rejects = tmp_path / "c.db", tmp_path / "rejects.csv"
    args = ["import", str(capture), "--format", "cot", "-a", str(ROOT / "examples" / "ukraine-2024")]
    res = CliRunner().invoke(app, [*args, "--db", str(db), "--rejects", str(rejects)])
    assert res.exit_code == 0, res.output
    assert "7 events, 3 accepted, 0 revised, 0 duplicates, 4 rejected" in res.output, res.output
    text = rejects.read_text()
    assert text.count("an event with no </event> before the next event") == 3, text
    assert "the stream ended inside an event" in text
    database = Database(str(db))
    try:
        with database.read() as s:
            ids = {r.report_id for r in s.execute(select(IncidentRow)).scalars()}
    finally:
        database.dispose()
    assert ids == {f"cot:GOOD-{k}-{k + 1}" for k in range(3)}
