"""The CoT listeners with a real TAK client (pytak) over TCP and TLS with client certificates.

Events are sent at full coordinate precision (pytak truncates to 4 decimals by default: ~10 m,
as much as the boundary test's margin), and must arrive as incidents at exactly the positions
sent; a point 10 m inside the buffer zone and one 10 m outside must be adjudicated right.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import warnings
from collections.abc import Iterator
from configparser import ConfigParser, SectionProxy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from defusedxml.ElementTree import fromstring
from pyproj import Geod
from sqlalchemy import select

from truceline.api import build_context
from truceline.context import AppContext
from truceline.services.agreement_store import AgreementCache
from truceline.settings import CotSettings, load_settings
from truceline.store.db import Database
from truceline.store.models import FindingRow, IncidentRow
from truceline.tak.server import CotServer

from ..live import free_port, truceline_process, wait_ready

with warnings.catch_warnings():
    # pytak warns at import that aiohttp (used only for certificate enrollment) is missing.
    warnings.simplefilter("ignore", UserWarning)
    import pytak

GEOD = Geod(ellps="WGS84")
#: Plain TCP is off unless networks are allowed: the tests' devices connect from loopback.
LOOPBACK: dict[str, Any] = {"plain_networks": ["127.0.0.1/32"]}
FULL = 17  # decimals: more than a double carries, so pytak's truncation changes nothing


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture()
def ctx(tmp_path: Path, small_dir: Path) -> Iterator[AppContext]:
    c = build_context(
        load_settings(db=str(tmp_path / "cot.db"), agreements=[small_dir]), agreements=AgreementCache()
    )
    yield c
    c.db.dispose()


def boundary_points() -> tuple[tuple[float, float], tuple[float, float]]:
    """Points 10 m inside and 10 m outside the 10 km buffer band on B's side of the small line.

    From the middle of the segment (36.5 49) - (37.5 48), perpendicular to it (B is on the left).
    """
    az12, _, d = GEOD.inv(36.5, 49.0, 37.5, 48.0)
    lon, lat, back = GEOD.fwd(36.5, 49.0, az12, d / 2)
    left = back + 180 - 90
    inside = GEOD.fwd(lon, lat, left, 9_990.0)[:2]
    outside = GEOD.fwd(lon, lat, left, 10_010.0)[:2]
    return (inside[0], inside[1]), (outside[0], outside[1])


def sighting(
    lon: float,
    lat: float,
    *,
    uid: str,
    type_: str = "a-h-G-U-C-I",
    ce: float = 2.0,
    remarks: str | None = None,
) -> bytes:
    point = pytak.cot_point(lat=lat, lon=lon, ce=ce, hae=0, le=9999999, precision=FULL)
    detail = pytak.cot_detail()
    if remarks:
        pytak.add_remarks(detail, [remarks])
    ev = pytak.cot_event(
        uid=uid, cot_type=type_, point=point, detail=detail, callsign="PATROL 7", stale=300
    )
    return pytak.serialize_cot(ev)


def config(url: str, **extra: str) -> SectionProxy:
    cp = ConfigParser(interpolation=None)
    cp["pytak"] = {"COT_URL": url, **extra}
    return cp["pytak"]


@dataclass
class Device:
    """A TAK client made of pytak's own parts: its connection factory and TX/RX workers."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    tx: pytak.TXWorker
    rx: pytak.RXWorker
    seen: list[Any] = field(default_factory=list)

    @classmethod
    async def connect(cls, url: str, **tls: str) -> Device:
        cfg = config(url, **tls)
        reader, writer = await pytak.protocol_factory(cfg)
        return cls(
            reader,
            writer,
            pytak.TXWorker(asyncio.Queue(), cfg, writer),
            pytak.RXWorker(asyncio.Queue(), cfg, reader),
        )

    async def send(self, *events: bytes) -> None:
        for e in events:
            await self.tx.send_data(e)

    async def receive(self, until: Any, timeout_s: float = 20) -> list[Any]:
        """Read until ``until(every event received so far)`` holds; returns them all."""
        async with asyncio.timeout(timeout_s):
            while not until(self.seen):
                data = await self.rx.readcot()
                assert data, "the server closed the connection"
                self.seen.append(fromstring(data.strip()))
        return self.seen

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def rows(db: Database) -> dict[str, IncidentRow]:
    with db.read() as s:
        return {r.report_id: r for r in s.execute(select(IncidentRow)).scalars()}


async def wait_rows(db: Database, n: int, timeout_s: float = 20) -> dict[str, IncidentRow]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = await asyncio.to_thread(rows, db)
        if len(got) >= n or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.05)


def findings(db: Database, pk: int) -> dict[str, float]:
    with db.read() as s:
        q = select(FindingRow.rule_id, FindingRow.probability).where(FindingRow.incident_pk == pk)
        return {rule: p for rule, p in s.execute(q)}


# -- TCP ----------------------------------------------------------------------------------------


def test_pytak_over_tcp(ctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="truceline.tak")
    inside, outside = boundary_points()
    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="monitor", push_interval_s=60)

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            try:
                # On connecting, a monitor's device gets the line and the zones as shapes.
                shapes = await dev.receive(lambda g: sum(e.get("type") == "u-d-f" for e in g) >= 5)
                calls = {e.find("detail/contact").get("callsign") for e in shapes}
                assert "Line of contact" in calls and {"Buffer zone (A)", "Buffer zone (B)"} <= calls
                first = sighting(*inside, uid="in")
                await dev.send(
                    pytak.hello_event(),  # t-x-d-d: ignored, as TAK servers do
                    first,
                    b'<event version="2.0" uid="bad" type="a-h-G"><point lat="48" lon=</event>',
                    sighting(*outside, uid="out"),
                    b'<event version="2.0" uid="ping-1" type="t-x-c-t" time="x" start="x" stale="x">'
                    b'<point lat="0" lon="0" ce="9999999"/></event>',
                    sighting(
                        37.0, 48.7, uid="bang", type_="b-d-a", ce=150.0, remarks="two loud explosions"
                    ),
                    sighting(36.9, 48.7, uid="me", type_="a-f-G-U-C"),  # a device's own position
                    sighting(36.9, 48.7, uid="note", type_="b-m-p-s-m", remarks="nothing in particular"),
                )
                replies = await dev.receive(lambda g: any(e.get("type") == "t-x-c-t-r" for e in g))
                assert replies[-1].get("type") == "t-x-c-t-r"
                got = await wait_rows(ctx.db, 3)
                assert len(got) == 3
                # A resend of the same event (a retry) is a duplicate, not a second incident.
                await dev.send(first)
                # A finding of the device's own report comes back as a marker.
                marker = await dev.receive(lambda g: any(e.get("type") == "b-m-p-s-m" for e in g))
                m = next(e for e in marker if e.get("type") == "b-m-p-s-m")
                assert "bz-ban" in m.find("detail/remarks").text
                await asyncio.sleep(0.2)
                assert srv.stats.duplicates == 1
                assert srv.stats.malformed == 1 and srv.stats.pings == 1
                assert srv.stats.accepted == 3 and srv.stats.rejected == 1  # the note without a kind
            finally:
                await dev.close()

    asyncio.run(scenario())
    got = rows(ctx.db)
    by_uid = {r.report_id.split("@")[0].removeprefix("cot:"): r for r in got.values()}
    assert set(by_uid) == {"in", "out", "bang"}
    inn, out, bang = by_uid["in"], by_uid["out"], by_uid["bang"]
    # Positions arrive to the last bit.
    assert (inn.lon, inn.lat) == inside and (out.lon, out.lat) == outside
    # 10 m inside the 10 km band on B's side: in the buffer zone, a ban finding almost certain.
    assert inn.side_party == out.side_party == "B"
    assert inn.distance_km == pytest.approx(9.99, abs=1e-5) and out.distance_km == pytest.approx(
        10.01, abs=1e-5
    )
    assert "buffer" in inn.zones.split(";") and "buffer" not in out.zones.split(";")
    assert findings(ctx.db, inn.pk).get("bz-ban", 0) > 0.999
    assert findings(ctx.db, out.pk).get("bz-ban", 0) < 0.001
    assert inn.uncertainty_m == 2.0  # ce is one sigma (the CoT event schema)
    assert inn.kind == "armed_personnel" and inn.source_type == "patrol"
    assert bang.kind == "explosion" and bang.source_type == "acoustic"
    assert "PATROL 7" in inn.narrative and "uid in" in inn.narrative
    assert inn.submitted_by == "cot:tcp:127.0.0.1"
    log = caplog.text
    assert "rejected malformed event: not well-formed XML" in log
    assert "no recognisable kind" in log


def test_sensor_role_is_sent_nothing_and_limits_close(
    ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    settings = CotSettings(
        port=free_port(),
        **LOOPBACK,
        plain_role="sensor",
        max_event_bytes=2048,
        max_connection_bytes=8192,
    )

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            await dev.send(
                b'<?xml version="1.0"?><!DOCTYPE event [<!ENTITY a "aaaa">]><event uid="x" type="a-h-G">'
                b'<point lat="48.6" lon="36.95"/><detail><remarks>&a;</remarks></detail></event>',
                b"<event>" + b"z" * 4000 + b"</event>",
                b'<event version="2.0" uid="p" type="t-x-takp-q" time="x" start="x" stale="x">'
                b'<point lat="0" lon="0"/><detail><TakControl><TakRequest version="1"/>'
                b"</TakControl></detail></event>",
                sighting(36.95, 48.6, uid="ok"),
            )
            reply = await dev.receive(lambda g: len(g) >= 1)
            assert (
                len(reply) == 1 and reply[0].get("type") == "t-x-takp-r"
            )  # no shapes for a sensor; protobuf refused
            assert reply[0].find("detail/TakControl/TakResponse").get("status") == "false"
            assert len(await wait_rows(ctx.db, 1)) == 1
            # Past the per-connection limit the server hangs up (EOF, or a reset if still sending).
            with contextlib.suppress(ConnectionError):
                for k in range(20):
                    await dev.send(sighting(36.95, 48.6, uid=f"flood{k}"))
                async with asyncio.timeout(10):
                    while await dev.reader.read(1024):
                        pass
            await dev.close()
            assert srv.stats.malformed == 2

    asyncio.run(scenario())
    assert "unsafe XML refused" in caplog.text and "exceeds 2048" in caplog.text
    assert "per connection" in caplog.text


# -- TLS ----------------------------------------------------------------------------------------


def _name(cn: str, ou: str | None = None, o: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key: Any,
    issuer: x509.Name,
    issuer_key: Any,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, name: str, cert: x509.Certificate, key: Any) -> tuple[str, str]:
    c, k = folder / f"{name}.pem", folder / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(c), str(k)


@pytest.fixture()
def pki(tmp_path: Path) -> dict[str, tuple[str, str]]:
    """A mission CA, the server's certificate, two devices' certificates and an outsider's."""
    ca_key, rogue_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name, rogue_name = _name("Truceline test CA"), _name("Someone else's CA")
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    out = {"ca": _write(tmp_path, "ca", ca, ca_key)}
    import ipaddress

    for name, subject, issuer, ikey, san in (
        (
            "server",
            _name("localhost"),
            ca_name,
            ca_key,
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        ),
        ("patrol", _name("patrol-7", "monitor"), ca_name, ca_key, None),
        ("liaison", _name("lo-b", "liaison", "B"), ca_name, ca_key, None),
        ("rogue", _name("rogue", "admin"), rogue_name, rogue_key, None),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        out[name] = _write(tmp_path, name, _cert(subject, key, issuer, ikey, san=san), key)
    return out


# pytak's TLS context sets ssl.OP_NO_TLSv1 / OP_NO_TLSv1_1, which Python 3.11 deprecates.
@pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")
def test_pytak_over_tls_with_client_certificates(
    ctx: AppContext, pki: dict[str, tuple[str, str]], caplog: pytest.LogCaptureFixture
) -> None:
    inside, _ = boundary_points()
    settings = CotSettings(
        tls_port=free_port(),
        tls_cert=pki["server"][0],
        tls_key=pki["server"][1],
        tls_ca=pki["ca"][0],
        push_interval_s=0.2,
    )

    def tls(who: str) -> dict[str, str]:
        return {
            "PYTAK_TLS_CLIENT_CERT": pki[who][0],
            "PYTAK_TLS_CLIENT_KEY": pki[who][1],
            "PYTAK_TLS_CLIENT_CAFILE": pki["ca"][0],
            "PYTAK_TLS_SERVER_EXPECTED_HOSTNAME": "localhost",
        }

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            url = f"tls://127.0.0.1:{srv.tls_port}"
            patrol = await Device.connect(url, **tls("patrol"))
            liaison = await Device.connect(url, **tls("liaison"))
            try:
                await patrol.receive(lambda g: sum(e.get("type") == "u-d-f" for e in g) >= 5)
                await liaison.receive(lambda g: sum(e.get("type") == "u-d-f" for e in g) >= 5)
                await liaison.send(sighting(*inside, uid="from-liaison"))  # a liaison may not report
                await patrol.send(sighting(*inside, uid="tls-in"))
                got = await wait_rows(ctx.db, 1)
                # The monitor sees the finding of its own report; the liaison, nothing unreleased.
                await patrol.receive(lambda g: any(e.get("type") == "b-m-p-s-m" for e in g))
                await asyncio.sleep(0.5)
                assert not next(c for c in srv.clients if c.principal.role.value == "liaison").sent
                # An outsider's certificate is refused: no connection, nothing stored.
                with pytest.raises((ssl_errors(), ConnectionError, AssertionError)):
                    rogue = await Device.connect(url, **tls("rogue"))
                    await rogue.send(sighting(*inside, uid="rogue"))
                    await rogue.receive(lambda g: len(g) > 0, timeout_s=3)
                assert set(await asyncio.to_thread(rows, ctx.db)) == set(got)
            finally:
                await patrol.close()
                await liaison.close()

    asyncio.run(scenario())
    (row,) = rows(ctx.db).values()
    assert (row.lon, row.lat) == inside and row.submitted_by == "cot:patrol-7" and "buffer" in row.zones
    assert "role liaison may not submit" in caplog.text


def ssl_errors() -> type[Exception]:
    import ssl

    return ssl.SSLError


# -- truceline serve ----------------------------------------------------------------------------


def test_serve_starts_the_listener(tmp_path: Path, small_dir: Path) -> None:
    port, cot_port = free_port(), free_port()
    db = tmp_path / "serve.db"
    proc = truceline_process(
        "serve",
        "--port",
        port,
        "--db",
        db,
        "--agreement",
        small_dir,
        "--cot-port",
        cot_port,
        "--cot-plain-networks",
        "127.0.0.1/32",
        "--cot-plain-role",
        "sensor",
    )
    inside, _ = boundary_points()
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)

        async def send() -> None:
            dev = await Device.connect(f"tcp://127.0.0.1:{cot_port}")
            await dev.send(sighting(*inside, uid="via-serve"))
            database = Database(str(db))
            try:
                assert len(await wait_rows(database, 1)) == 1
            finally:
                database.dispose()
            await dev.close()

        asyncio.run(send())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    database = Database(str(db))
    (row,) = rows(database).values()
    database.dispose()
    assert (row.lon, row.lat) == inside and row.submitted_by == "cot:tcp:127.0.0.1"


def test_serve_refuses_tls_without_certificates(tmp_path: Path, small_dir: Path) -> None:
    from typer.testing import CliRunner

    from truceline.cli import app

    r = CliRunner().invoke(
        app,
        [
            "serve",
            "--db",
            str(tmp_path / "x.db"),
            "--agreement",
            str(small_dir),
            "--cot-tls-port",
            str(free_port()),
        ],
    )
    assert r.exit_code == 2 and "tls_cert" in r.output, r.output


# -- hostile input: poison events, floods, strangers ----------------------------------------------


def _at(event: bytes, start: str) -> bytes:
    """The event with its time, start (and stale) set to ``start`` (as a device's bad clock would)."""
    root = fromstring(event)
    for key in ("time", "start", "stale"):
        root.set(key, start)
    from xml.etree import ElementTree as ET

    return ET.tostring(root)


def test_a_poison_event_loses_none_of_its_burst(
    ctx: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """31 events sent at once (one group commit); the bad ones are rejected alone, with reasons."""
    caplog.set_level(logging.INFO, logger="truceline.tak")
    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="sensor")
    good = [sighting(36.95 + k * 1e-3, 48.6, uid=f"good-{k}") for k in range(28)]
    bad = [
        _at(sighting(36.95, 48.61, uid="year-9999"), "9999-12-31T23:59:59Z"),
        _at(sighting(36.95, 48.62, uid="year-0"), "0001-01-01T00:00:00+01:00"),
        sighting(36.95, 91.5, uid="off-the-globe"),
    ]
    burst = good[:10] + bad[:1] + good[10:20] + bad[1:] + good[20:]

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            try:
                dev.writer.write(b"".join(burst))  # one write: they arrive together
                await dev.writer.drain()
                await wait_rows(ctx.db, len(good))
                await asyncio.sleep(0.2)
                assert srv.stats.accepted == len(good)
                assert srv.stats.rejected == len(bad)
                assert srv.stats.reasons == {"start": 2, "lat": 1}
                assert "accepted 28" in srv.stats.summary()
                assert "rejected 3" in srv.stats.summary()
                assert "by reason: lat 1, start 2" in srv.stats.summary()
            finally:
                await dev.close()

    asyncio.run(scenario())
    got = {r.report_id.split("@")[0].removeprefix("cot:") for r in rows(ctx.db).values()}
    assert got == {f"good-{k}" for k in range(28)}
    assert "rejected event year-9999: event start 9999-12-31T23:59:59Z is before 1970" in caplog.text
    assert "rejected event off-the-globe: lat:" in caplog.text


def test_a_group_that_fails_to_store_is_split_until_the_culprit_stands_alone(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A failure the validation cannot foresee (here: injected) costs only the record at fault."""
    from truceline.tak import server as server_module

    real = server_module.submit_markers

    def fragile(session: Any, agreement: Any, records: Any, versions: Any, **kw: Any) -> Any:
        if any("culprit" in r["id"] for r in records):
            raise ValueError("year 10000 is out of range")
        return real(session, agreement, records, versions, **kw)

    monkeypatch.setattr(server_module, "submit_markers", fragile)
    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="sensor")
    burst = [sighting(36.95 + k * 1e-3, 48.6, uid=f"good-{k}") for k in range(30)]
    burst.insert(17, sighting(36.95, 48.6, uid="culprit"))

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            try:
                dev.writer.write(b"".join(burst))
                await dev.writer.drain()
                await wait_rows(ctx.db, 30)
                await asyncio.sleep(0.2)
                assert srv.stats.accepted == 30 and srv.stats.rejected == 1
                assert srv.stats.reasons == {"store": 1}
            finally:
                await dev.close()

    asyncio.run(scenario())
    assert len(rows(ctx.db)) == 30
    assert "storing it in halves" in caplog.text
    assert "rejected event culprit: could not be stored (ValueError: year 10000" in caplog.text


async def _idle_sockets(port: int, n: int, ssl_context: Any = None) -> list[asyncio.StreamWriter]:
    out = []
    for _ in range(n):
        _, w = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl_context, server_hostname="localhost" if ssl_context else None
        )
        out.append(w)
    return out


async def _latency(srv: CotServer, url: str, uid: str, **tls: str) -> float:
    """Seconds from a new pytak device's connection to its event being stored."""
    before = srv.stats.accepted
    t0 = time.perf_counter()
    dev = await Device.connect(url, **tls)
    try:
        await dev.send(sighting(36.95, 48.6, uid=uid))
        async with asyncio.timeout(20):
            while srv.stats.accepted == before:
                await asyncio.sleep(0.002)
        return time.perf_counter() - t0
    finally:
        await dev.close()


FLOOD = 300


@pytest.mark.parametrize(
    "caps",
    [
        pytest.param({}, id="defaults"),  # the per-address cap (32) evicts
        pytest.param({"max_clients_per_address": 1000}, id="total-cap"),  # the total cap (256)
    ],
)
def test_idle_sockets_do_not_delay_a_device(
    ctx: AppContext, caps: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    """300 idle sockets on the CoT port: a device's event is stored within 1 s of connecting."""
    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="sensor", **caps)

    async def scenario() -> tuple[float, float]:
        async with CotServer(ctx, settings) as srv:
            url = f"tcp://127.0.0.1:{srv.tcp_port}"
            await _latency(srv, url, "warm-up")  # loads the agreement, prepares the rules
            quiet = await _latency(srv, url, "before")
            flood = await _idle_sockets(srv.tcp_port, FLOOD)
            try:
                await asyncio.sleep(0.5)  # the server has accepted them all
                assert srv.stats.connections == 2 + FLOOD
                assert len(srv.clients) == min(settings.max_clients, settings.max_clients_per_address)
                flooded = await _latency(srv, url, "during")
                assert srv.stats.evicted >= FLOOD - len(srv.clients) + 1
            finally:
                for w in flood:
                    w.close()
            return quiet, flooded

    quiet, flooded = asyncio.run(scenario())
    with capsys.disabled():
        print(
            f"\nCoT over TCP ({caps or 'default caps'}): stored {quiet * 1000:.0f} ms after "
            f"connecting; with {FLOOD} idle sockets open: {flooded * 1000:.0f} ms"
        )
    assert flooded < 1.0
    assert len(rows(ctx.db)) == 3


@pytest.mark.filterwarnings("ignore:ssl.OP_NO_SSL:DeprecationWarning")
def test_idle_sockets_on_the_tls_port_do_not_delay_a_device(
    ctx: AppContext, pki: dict[str, tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """300 idle TLS sockets with a valid certificate (half of them never finish the handshake)."""
    settings = CotSettings(
        tls_port=free_port(),
        tls_cert=pki["server"][0],
        tls_key=pki["server"][1],
        tls_ca=pki["ca"][0],
        read_timeout_s=5,
    )
    tls = {
        "PYTAK_TLS_CLIENT_CERT": pki["patrol"][0],
        "PYTAK_TLS_CLIENT_KEY": pki["patrol"][1],
        "PYTAK_TLS_CLIENT_CAFILE": pki["ca"][0],
        "PYTAK_TLS_SERVER_EXPECTED_HOSTNAME": "localhost",
    }

    async def scenario() -> tuple[float, float]:
        async with CotServer(ctx, settings) as srv:
            assert srv.tls_port is not None
            url = f"tls://127.0.0.1:{srv.tls_port}"
            await _latency(srv, url, "warm-up", **tls)
            quiet = await _latency(srv, url, "before", **tls)
            import ssl

            insider = ssl.create_default_context(cafile=pki["ca"][0])
            insider.load_cert_chain(*pki["patrol"])
            flood = await _idle_sockets(srv.tls_port, FLOOD // 2, insider)
            flood += await _idle_sockets(srv.tls_port, FLOOD // 2)
            try:
                await asyncio.sleep(0.5)
                assert len(srv.clients) == settings.max_clients_per_address
                return quiet, await _latency(srv, url, "during", **tls)
            finally:
                for w in flood:
                    w.close()

    quiet, flooded = asyncio.run(scenario())
    with capsys.disabled():
        print(
            f"\nCoT over TLS: stored {quiet * 1000:.0f} ms after connecting; "
            f"with {FLOOD} idle sockets open: {flooded * 1000:.0f} ms"
        )
    assert flooded < 1.0


def test_idle_and_unfinished_connections_are_closed(ctx: AppContext) -> None:
    settings = CotSettings(
        port=free_port(), **LOOPBACK, plain_role="sensor", idle_timeout_s=1.0, read_timeout_s=1.0
    )
    # Timeouts of a second, pings every quarter: a loaded machine (the full suite on two cores)
    # can stall the loop for a few hundred milliseconds without a ping arriving late.

    async def closed_after(port: int, first: bytes, keep_sending: bool) -> float:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        t0 = time.perf_counter()
        w.write(first)
        async with asyncio.timeout(10):
            while True:
                if keep_sending:  # a byte at a time: never an event, never idle
                    w.write(b" ")
                try:
                    if not await asyncio.wait_for(r.read(1024), 0.1):
                        break
                except TimeoutError:
                    continue
        w.close()
        return time.perf_counter() - t0

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            assert srv.tcp_port is not None
            idle = await closed_after(srv.tcp_port, b"", keep_sending=False)
            slow = await closed_after(srv.tcp_port, b'<event uid="x"', keep_sending=True)
            # Events (pings included) keep a connection open past the idle timeout.
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            ping = (
                b'<event version="2.0" uid="ping" type="t-x-c-t" time="x" start="x" stale="x">'
                b'<point lat="0" lon="0"/></event>'
            )
            for _ in range(6):
                await dev.send(ping)
                await dev.receive(lambda g: len(g) > 0)
                dev.seen.clear()
                await asyncio.sleep(0.25)
            await dev.close()
            assert srv.stats.timeouts == 2 and srv.stats.pings == 6
            assert 0.9 < idle < 3 and 0.9 < slow < 3

    asyncio.run(scenario())


def test_plain_tcp_only_from_allowed_networks(ctx: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    """Loopback outside the allow-list: pytak's connection is closed at once, nothing stored."""
    settings = CotSettings(port=free_port(), plain_networks=["10.0.0.0/8"], plain_role="sensor")

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            t0 = time.perf_counter()
            with contextlib.suppress(ConnectionError):
                await dev.send(sighting(36.95, 48.6, uid="stranger"))
                async with asyncio.timeout(2):
                    assert await dev.reader.read(1024) == b""
            assert time.perf_counter() - t0 < 1
            await dev.close()
            await asyncio.sleep(0.2)
            assert srv.stats.refused == 1 and srv.stats.connections == 0 and not srv.clients

    asyncio.run(scenario())
    assert rows(ctx.db) == {}
    assert "refused, not in cot.plain_networks" in caplog.text


def test_plain_tcp_needs_networks_and_a_role(tmp_path: Path, small_dir: Path) -> None:
    from typer.testing import CliRunner

    from truceline.cli import app

    base = ["serve", "--db", str(tmp_path / "x.db"), "--agreement", str(small_dir)]
    r = CliRunner().invoke(app, [*base, "--cot-port", str(free_port())])
    assert r.exit_code == 2 and "cot.plain_networks" in r.output, r.output
    r = CliRunner().invoke(
        app, [*base, "--cot-port", str(free_port()), "--cot-plain-networks", "127.0.0.1/32"]
    )
    assert r.exit_code == 2 and "cot.plain_role" in r.output, r.output
    r = CliRunner().invoke(
        app,
        [*base, "--cot-port", "1", "--cot-plain-networks", "127.0.0.1/32", "--cot-plain-role", "admin"],
    )
    assert r.exit_code == 2 and "plain_role" in r.output, r.output


def test_plain_tcp_settings_from_the_config_file(tmp_path: Path) -> None:
    """The `[cot]` table holds the same settings; options override it key by key."""
    from truceline.errors import ValidationError

    path = tmp_path / "truceline.toml"
    path.write_text('[cot]\nport = 8087\nplain_role = "sensor"\ntls_role = "analyst"\n')
    with pytest.raises(ValidationError, match=r"cot\.plain_networks"):
        load_settings(path)
    s = load_settings(path, cot={"plain_networks": ["10.1.0.0/16", "fd00::/8"]}).cot
    assert (s.port, s.plain_role, s.tls_role) == (8087, "sensor", "analyst")
    assert [str(n) for n in s.plain_networks] == ["10.1.0.0/16", "fd00::/8"]
    path.write_text(path.read_text() + 'plain_networks = ["127.0.0.1/32"]\n')
    assert load_settings(path).cot.plain_networks[0].num_addresses == 1
    with pytest.raises(ValidationError, match="plain_networks"):
        load_settings(path, cot={"plain_networks": ["not-a-network"]})


def test_a_patrols_own_position_reports_are_its_track(ctx: AppContext) -> None:
    """PLI (``a-f-G-U-C`` with ``__group``) is stored as the patrol's track, once per time."""
    from truceline.services.patrols import track

    settings = CotSettings(port=free_port(), **LOOPBACK, plain_role="monitor", push_interval_s=60)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def pli(at: dt.datetime, lon: float) -> bytes:
        t = at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        stale = (at + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return (
            f'<event version="2.0" uid="ANDROID-77" type="a-f-G-U-C" how="m-g" time="{t}" '
            f'start="{t}" stale="{stale}"><point lat="48.6" lon="{lon!r}" hae="0" ce="6.0" '
            f'le="9999999"/><detail><contact callsign="PATROL 3"/>'
            f'<__group name="Cyan" role="Team Member"/></detail></event>'
        ).encode()

    t0 = now - dt.timedelta(minutes=2)
    sent = [pli(t0, 36.9), pli(t0, 36.9), pli(t0 + dt.timedelta(minutes=1), 36.91)]

    async def scenario() -> None:
        async with CotServer(ctx, settings) as srv:
            dev = await Device.connect(f"tcp://127.0.0.1:{srv.tcp_port}")
            try:
                await dev.send(*sent)
                deadline = time.monotonic() + 20
                while srv.stats.positions + srv.stats.duplicates < 3:
                    assert time.monotonic() < deadline, srv.stats.summary()
                    await asyncio.sleep(0.05)
                assert srv.stats.positions == 2 and srv.stats.duplicates == 1
                assert srv.stats.accepted == 0  # no incident
            finally:
                await dev.close()

    asyncio.run(scenario())
    assert rows(ctx.db) == {}
    with ctx.db.read() as s:
        path = track(s, "small", "ANDROID-77", t0, now)
        assert [(p.lon, p.callsign, p.group_name, p.uncertainty_m) for p in path] == [
            (36.9, "PATROL 3", "Cyan", 6.0),
            (36.91, "PATROL 3", "Cyan", 6.0),
        ]
