"""The Cursor-on-Target listeners that ``truceline serve`` starts beside the REST API.

One asyncio server per transport: plain TCP (TAK convention 8087) and TLS with client
certificates (8089). Each connection is read as a stream of CoT events split after ``</event>``
(:class:`~truceline.tak.cot.EventSplitter`), each event parsed with defusedxml and handled on its
own: a malformed or unusable event is logged with its reason and the connection keeps working.
Reports go through :func:`~truceline.services.submissions.submit_records`, the same validation,
idempotent ingest and adjudication as every other submission.

Every event is judged alone: one that cannot be parsed, has no usable kind or time, or fails the
incident validation is rejected (its reason logged and counted in :class:`CotStats`) before it
joins a group commit; if a group still fails to store, it is split and retried until the record
at fault stands alone, so its neighbours land.

Who is calling: a TLS client is its certificate (CN = the device or person, OU = the role when it
names one, else ``tls_role``; O = the party of a liaison). Plain TCP is off unless configured, and
then only for ``plain_networks`` (anyone else is disconnected at once), whose clients act as
``plain_role``. Clients whose role may read the agreement get its line and zones as shapes; those
that may read findings get them as markers, through the API's own scope (a liaison: released
findings only).

Connections: one that sends no complete event for ``idle_timeout_s``, or leaves an event (or a TLS
handshake) unfinished for ``read_timeout_s``, is closed. Past ``max_clients_per_address`` or
``max_clients`` a new connection evicts the one idle longest (of its address, then of all), so
a flood of idle sockets cannot keep a device out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from truceline.context import AppContext
from truceline.errors import TrucelineError
from truceline.io.features import zones_feature_collection
from truceline.io.incidents_io import incidents_from_records
from truceline.services import queries
from truceline.services.auth import Permission, Principal, Role
from truceline.services.patrols import PatrolPosition, store_positions
from truceline.services.submissions import RecordResult, Verdict, submit_markers
from truceline.settings import CotSettings
from truceline.tak import cot

__all__ = ["CotServer", "CotStats", "serve_with_cot"]

log = logging.getLogger("truceline.tak")

#: How far back findings are pushed to a device that connects.
PUSH_DAYS = 7
#: How often the line and zones are sent again to connected devices.
SHAPES_EVERY_S = 3600.0
#: The shapes are drawn once for every device connecting within this (they only carry the time).
_SHAPES_CACHE_S = 60.0
_WRITE_TIMEOUT_S = 10.0
_BATCH_WINDOW_S = 0.05
_MAX_BATCH = 1000


#: How often the listeners log their counters (when they changed).
STATS_EVERY_S = 60.0


@dataclass(slots=True)
class CotStats:
    """Counters of what the listeners have seen (logged every :data:`STATS_EVERY_S`; tests).

    ``rejected`` and ``malformed`` events are also counted by reason in ``reasons`` (the field
    at fault, or ``oversize``, ``truncated`` (cut off by the next event, or by the end of the
    connection), ``xml``, ``role``, ``store``); ``refused`` connections (from
    outside ``plain_networks``), ``evicted`` ones (to make room), and ``timeouts`` (idle or
    unfinished) are connections.
    """

    connections: int = 0
    events: int = 0
    accepted: int = 0
    positions: int = 0  # the devices' own position reports stored (patrol tracks)
    duplicates: int = 0
    rejected: int = 0
    malformed: int = 0
    pings: int = 0
    ignored: int = 0
    pushed: int = 0
    refused: int = 0
    evicted: int = 0
    timeouts: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        """One line for the log."""
        head = ", ".join(
            f"{k} {getattr(self, k)}"
            for k in (
                "connections",
                "events",
                "accepted",
                "positions",
                "duplicates",
                "rejected",
                "malformed",
                "refused",
                "evicted",
                "timeouts",
            )
        )
        why = ", ".join(f"{k} {n}" for k, n in sorted(self.reasons.items()))
        return head + (f" (rejected or malformed by reason: {why})" if why else "")


@dataclass(frozen=True, slots=True)
class _Pending:
    record: dict[str, Any]
    principal: Principal
    peer: str
    uid: str
    version: float  # the event's start (s): which sending of a marker is the newer
    position: bool = False  # a device's own position report (PLI), not a report


@dataclass(eq=False, slots=True)
class _Client:
    writer: asyncio.StreamWriter
    principal: Principal
    peer: str
    address: str
    last_active: float  # loop time of the connection or of its last complete event
    sent: set[int] = field(default_factory=set)  # finding pks already pushed
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    evicted: bool = False


def _peer(writer: asyncio.StreamWriter) -> str:
    addr = writer.get_extra_info("peername")
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)


def _address(writer: asyncio.StreamWriter) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's IP address (an IPv4-mapped IPv6 address as IPv4), or ``None`` if it has none."""
    addr = writer.get_extra_info("peername")
    if not isinstance(addr, tuple):
        return None
    try:
        ip = ipaddress.ip_address(addr[0].split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _reason_key(field_name: str | None, default: str) -> str:
    return (field_name or default)[:40]


def _cert_fields(cert: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for rdn in (cert or {}).get("subject", ()):
        for k, v in rdn:
            out.setdefault(k, v)
    return out


class CotServer:
    """TCP and TLS CoT listeners sharing one hub of connected clients.

    Parameters
    ----------
    ctx
        The server's context (database, agreements, clock): the same one the API uses.
    settings
        :class:`~truceline.settings.CotSettings`.
    host
        Interface to listen on.
    """

    def __init__(self, ctx: AppContext, settings: CotSettings, *, host: str = "127.0.0.1") -> None:
        self.ctx = ctx
        self.settings = settings
        self.host = host
        self.stats = CotStats()
        self.clients: set[_Client] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._closing = False
        # Storing has its own thread: pushes to many connecting devices (the default pool)
        # never queue ahead of a device's report.
        self._store_pool: ThreadPoolExecutor | None = None
        self._shapes: tuple[object, dt.date, float, list[bytes]] | None = None
        self._shapes_lock = asyncio.Lock()
        self.tcp_port: int | None = None
        self.tls_port: int | None = None

    # -- life cycle -------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        if not (s.tls_cert and s.tls_key and s.tls_ca):
            raise TrucelineError(
                "the TLS listener needs tls_cert, tls_key and tls_ca",
                field="cot.tls_cert",
                fix="set cot.tls_cert, cot.tls_key and cot.tls_ca (PEM files), or unset cot.tls_port",
            )
        try:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(s.tls_ca))
            ctx.load_cert_chain(str(s.tls_cert), str(s.tls_key))
        except (OSError, ssl.SSLError) as exc:
            raise TrucelineError(
                f"cannot load the TLS certificates ({exc})",
                field="cot.tls_cert",
                fix="give readable PEM files: tls_cert with its tls_key, and the clients' CA in tls_ca",
            ) from None
        ctx.verify_mode = ssl.CERT_REQUIRED  # no certificate, no connection
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    async def start(self) -> None:
        """Open the configured listeners and start pushing findings."""
        s = self.settings
        self._store_pool = ThreadPoolExecutor(1, thread_name_prefix="cot-store")
        if s.port is not None:
            srv = await asyncio.start_server(self._on_tcp, self.host, s.port)
            self.tcp_port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        if s.tls_port is not None:
            srv = await asyncio.start_server(
                self._on_tls,
                self.host,
                s.tls_port,
                ssl=self._tls_context(),
                ssl_handshake_timeout=s.read_timeout_s,
            )
            self.tls_port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        log.info("CoT listeners: tcp %s, tls %s", self.tcp_port, self.tls_port)
        self._spawn(self._pusher())
        self._spawn(self._writer())
        self._spawn(self._stats_logger())

    async def close(self) -> None:
        """Stop listening, close every connection and wait for the tasks to end."""
        self._closing = True
        for srv in self._servers:
            srv.close()
        for c in list(self.clients):
            c.writer.close()
        try:  # what was received is stored before the listeners stop
            await asyncio.wait_for(self._pending.join(), 30)
        except TimeoutError:
            log.error("CoT: %d received events not stored at shutdown", self._pending.qsize())
        log.info("CoT totals: %s", self.stats.summary())
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for srv in self._servers:
            await srv.wait_closed()
        self._servers.clear()
        if self._store_pool is not None:
            self._store_pool.shutdown(wait=True)

    async def __aenter__(self) -> CotServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- connections ------------------------------------------------------------------------

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = self.settings
        ip = _address(writer)
        if ip is None or s.plain_role is None or not any(ip in net for net in s.plain_networks):
            # Plain TCP proves nothing about the caller: only the configured networks may use it.
            self.stats.refused += 1
            log.warning("CoT %s: refused, not in cot.plain_networks", _peer(writer))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        who = Principal(subject=f"cot:tcp:{ip}", role=Role(s.plain_role))
        await self._serve(reader, writer, who)

    async def _on_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        f = _cert_fields(writer.get_extra_info("peercert"))
        cn = f.get("commonName", "unnamed")
        ou = f.get("organizationalUnitName", "")
        role = Role(ou) if ou in Role.__members__ and ou != "public" else Role(self.settings.tls_role)
        party = f.get("organizationName") if role == Role.liaison else None
        await self._serve(reader, writer, Principal(subject=f"cot:{cn}", role=role, party=party))

    def _evict(self, victim: _Client, why: str) -> None:
        victim.evicted = True
        self.clients.discard(victim)
        self.stats.evicted += 1
        log.info("CoT %s: closed to make room (%s)", victim.peer, why)  # counted in stats
        victim.writer.close()

    def _make_room(self, address: str) -> None:
        """Evict the connections idle longest so that one more from ``address`` fits the caps."""
        s = self.settings
        same = [c for c in self.clients if c.address == address]
        if len(same) >= s.max_clients_per_address:
            self._evict(
                min(same, key=lambda c: c.last_active),
                f"{len(same)} connections from {address}, limit {s.max_clients_per_address}",
            )
        if len(self.clients) >= s.max_clients:
            self._evict(
                min(self.clients, key=lambda c: c.last_active),
                f"{len(self.clients)} connections, limit {s.max_clients}",
            )

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, who: Principal
    ) -> None:
        peer = _peer(writer)
        if self._closing:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        loop = asyncio.get_running_loop()
        s = self.settings
        address = peer.rsplit(":", 1)[0]
        self._make_room(address)
        client = _Client(writer, who, peer, address, loop.time())
        self.clients.add(client)
        self.stats.connections += 1
        log.info("CoT %s connected as %s (%s)", peer, who.subject, who.role.value)
        splitter = cot.EventSplitter(s.max_event_bytes, s.max_connection_bytes)
        begun: float | None = None  # when the event now arriving began
        # What a device is sent on connecting goes out beside reading it: its reports are read
        # and stored at once, however long the pushes take.
        self._spawn(self._welcome(client))
        try:
            while not self._closing and not client.evicted:
                if begun is not None:
                    deadline, what = begun + s.read_timeout_s, "an unfinished event"
                else:
                    deadline, what = client.last_active + s.idle_timeout_s, "no event"
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(65536)
                except TimeoutError:
                    self.stats.timeouts += 1
                    log.info(
                        "CoT %s: closed after %s for %g s",
                        peer,
                        what,
                        loop.time() - (begun if begun is not None else client.last_active),
                    )
                    break
                items: list[bytes | cot.Oversize | cot.Truncated] = (
                    splitter.feed(data) if data else list(splitter.finish())
                )
                now = loop.time()
                if items:
                    client.last_active = now
                    begun = now if splitter.pending else None
                elif begun is None and splitter.pending:
                    begun = now
                for item in items:
                    try:
                        await self._on_event(client, item)
                    except Exception:  # one event's failure (say, the database) ends nothing else
                        self.stats.rejected += 1
                        self.stats.reasons["error"] += 1
                        log.exception("CoT %s: event not handled", peer)
                if not data:
                    break
                if splitter.exhausted:
                    log.warning(
                        "CoT %s: closed after %d bytes (limit %d per connection)",
                        peer,
                        splitter.total,
                        s.max_connection_bytes,
                    )
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info("CoT %s: connection lost (%s)", peer, exc)
        finally:
            self.clients.discard(client)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
            log.info("CoT %s disconnected", peer)

    async def _welcome(self, client: _Client) -> None:
        try:
            await self._push_agreement(client)
            await self._push_findings([client])
        except Exception:  # a failed push ends nothing else
            log.exception("CoT %s: pushing on connection failed", client.peer)

    async def _send(self, client: _Client, payloads: list[bytes]) -> None:
        if not payloads or client.writer.is_closing():
            return
        async with client.lock:
            try:
                for p in payloads:
                    client.writer.write(p + b"\n")
                await asyncio.wait_for(client.writer.drain(), _WRITE_TIMEOUT_S)
            except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
                log.info("CoT %s: cannot write (%s); closing", client.peer, exc)
                client.writer.close()

    # -- events -----------------------------------------------------------------------------

    def _reject(self, client: _Client | _Pending, uid: str, key: str, reason: str) -> None:
        self.stats.rejected += 1
        self.stats.reasons[key] += 1
        log.warning("CoT %s: rejected event %s: %s", client.peer, uid[:80], reason)

    async def _on_event(self, client: _Client, item: bytes | cot.Oversize | cot.Truncated) -> None:
        self.stats.events += 1
        if isinstance(item, cot.Oversize | cot.Truncated):
            self.stats.malformed += 1
            self.stats.reasons["oversize" if isinstance(item, cot.Oversize) else "truncated"] += 1
            log.warning("CoT %s: rejected: %s", client.peer, item.reason)
            return
        try:
            ev = cot.parse_event(item)
        except cot.CotError as exc:
            self.stats.malformed += 1
            self.stats.reasons[_reason_key(exc.field, "xml")] += 1
            log.warning("CoT %s: rejected malformed event: %s", client.peer, exc.message)
            return
        what = cot.disposition(ev)
        now = self.ctx.clock()
        if what == "ping":
            self.stats.pings += 1
            await self._send(client, [cot.pong(now)])
            return
        if what == "protocol":
            self.stats.ignored += 1
            await self._send(client, [cot.protobuf_refusal(now)])
            return
        if what == "ignore":
            self.stats.ignored += 1
            return
        if not client.principal.can(Permission.incidents_submit):
            self._reject(client, ev.uid, "role", f"role {client.principal.role.value} may not submit")
            return
        if what == "position":  # where the patrol is: kept as its track, not as an incident
            try:
                pos = cot.position_record(ev, now=now)
            except cot.CotError as exc:
                self._reject(client, ev.uid, _reason_key(exc.field, "position"), exc.message)
                return
            await self._pending.put(
                _Pending(pos, client.principal, client.peer, ev.uid, 0.0, position=True)
            )
            return
        try:
            rec = cot.incident_record(
                ev,
                source_type=self.settings.source_type,
                now=now,
            )
        except cot.CotError as exc:
            self._reject(client, ev.uid, _reason_key(exc.field, "event"), exc.message)
            return
        # The incident validation every submission gets, here, alone: a bad record never joins
        # (and so never fails) a group commit.
        read = incidents_from_records([(0, rec)])
        if read.rejects:
            r = read.rejects[0]
            self._reject(client, ev.uid, _reason_key(r.field, "record"), f"{r.field}: {r.reason}")
            return
        await self._pending.put(
            _Pending(rec, client.principal, client.peer, ev.uid, cot.marker_version(ev))
        )

    def _account(self, p: _Pending, res: RecordResult) -> None:
        if p.position:
            self.stats.positions += res.status == Verdict.accepted
            self.stats.duplicates += res.status == Verdict.duplicate
            return
        if res.status == Verdict.rejected:
            self._reject(p, p.uid, _reason_key(res.field, "record"), f"{res.field}: {res.reason}")
        elif res.status == Verdict.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.accepted += 1
            log.info(
                "CoT %s: incident %s %s as %s (%d findings)",
                p.peer,
                p.record["id"],
                "revised" if res.status == Verdict.revised else "stored",
                res.pk,
                res.findings,
            )
            if res.findings:
                self._wake.set()

    async def _writer(self) -> None:
        """Store queued reports: what arrives within a short window goes in one transaction.

        One transaction (and one run of the rule engine) per burst instead of per event: a
        device's backlog after a reconnection lands in a fraction of the time. Each record still
        gets its own verdict.
        """
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._pending.get()]
            deadline = loop.time() + _BATCH_WINDOW_S
            while len(batch) < _MAX_BATCH and (left := deadline - loop.time()) > 0:
                try:
                    batch.append(await asyncio.wait_for(self._pending.get(), left))
                except TimeoutError:
                    break
            groups: dict[Principal, list[_Pending]] = {}
            for p in batch:
                groups.setdefault(p.principal, []).append(p)
            for who, items in groups.items():
                await self._store(who, items)
            for _ in batch:
                self._pending.task_done()

    async def _store(self, who: Principal, items: list[_Pending]) -> None:
        """Store a group; if it fails, its halves, and so on: only the record at fault is lost.

        Each event was validated alone before (:meth:`_on_event`), so a failure here is
        unexpected (a bug, or the database); splitting finds the record at fault in
        ~2 log2(n) transactions instead of losing the group.
        """
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._store_pool, self._submit, items, who)
        except Exception as exc:
            if len(items) > 1:
                log.error(
                    "CoT: a group of %d events failed to store (%s: %s); storing it in halves",
                    len(items),
                    type(exc).__name__,
                    exc,
                )
                half = len(items) // 2
                await self._store(who, items[:half])
                await self._store(who, items[half:])
                return
            (p,) = items
            log.error("CoT %s: event %s not stored", p.peer, p.uid, exc_info=exc)
            self._reject(p, p.uid, "store", f"could not be stored ({type(exc).__name__}: {exc})")
            return
        for p, res in zip(items, results, strict=True):
            self._account(p, res)

    def _submit(self, items: list[_Pending], who: Principal) -> list[RecordResult]:
        """Store the group's reports and positions in one transaction; a verdict per item."""
        reports = [k for k, p in enumerate(items) if not p.position]
        fixes = [k for k, p in enumerate(items) if p.position]

        def work(s: Session) -> list[RecordResult]:
            ag = self.ctx.agreement(s, self.settings.agreement)
            now = self.ctx.clock()
            out: list[RecordResult | None] = [None] * len(items)
            if reports:
                res = submit_markers(
                    s,
                    ag,
                    [items[k].record for k in reports],
                    [items[k].version for k in reports],
                    principal=who,
                    now=now,
                    source="cot",
                )
                for k, r in zip(reports, res.results, strict=True):
                    out[k] = r
            if fixes:
                stored = store_positions(
                    s,
                    ag.id,
                    [PatrolPosition(**items[k].record) for k in fixes],
                    submitted_by=who.subject,
                    now=now,
                )
                for k, new in zip(fixes, stored.new, strict=True):
                    out[k] = RecordResult(
                        k, items[k].uid, Verdict.accepted if new else Verdict.duplicate
                    )
            return [r for r in out if r is not None]

        return self.ctx.db.write(work)

    async def _stats_logger(self) -> None:
        """Log the counters every :data:`STATS_EVERY_S` when they changed."""
        last = ""
        while not self._closing:
            await asyncio.sleep(STATS_EVERY_S)
            line = self.stats.summary()
            if line != last:
                log.info("CoT totals: %s", line)
                last = line

    # -- pushing ----------------------------------------------------------------------------

    def _agreement_shapes(self) -> list[bytes]:
        """The shapes in force, drawn again when the agreement or the day changes, or every
        :data:`_SHAPES_CACHE_S` (a flood of connecting devices costs one drawing)."""
        now = self.ctx.clock()
        with self.ctx.db.read() as s:
            ag = self.ctx.agreement(s, self.settings.agreement)
        day = max(now.date(), ag.effective_from)
        cached = self._shapes
        if (
            cached is not None
            and cached[0] is ag
            and cached[1] == day
            and time.monotonic() - cached[2] < _SHAPES_CACHE_S
        ):
            return cached[3]
        fc = zones_feature_collection(ag, day)
        shapes = cot.shape_events(
            fc["features"], now=now, stale=dt.timedelta(hours=2), simplify_m=self.settings.simplify_m
        )
        self._shapes = (ag, day, time.monotonic(), shapes)
        return shapes

    async def _push_agreement(self, client: _Client) -> None:
        if not client.principal.can(Permission.agreements_read):
            return
        try:
            async with self._shapes_lock:  # devices connecting together wait for one drawing
                shapes = await asyncio.to_thread(self._agreement_shapes)
        except TrucelineError as exc:
            log.warning("CoT: no shapes to push: %s", exc.message)
            return
        await self._send(client, shapes)
        self.stats.pushed += len(shapes)

    def _markers(self, who: Principal, skip: set[int]) -> list[tuple[int, bytes]]:
        now = self.ctx.clock()
        out = []
        with self.ctx.db.read() as s:
            ag_id = self.ctx.agreements.default_id(s, self.settings.agreement)
            flt = queries.FindingFilter(
                agreement_id=ag_id, start=now.date() - dt.timedelta(days=PUSH_DAYS)
            )
            cursor = None
            while True:
                page = queries.list_findings(s, flt, scope=who.scope, cursor=cursor, limit=1000)
                for f, i in page.items:
                    if f.pk in skip:
                        continue
                    observed = (
                        i.observed_at if i.observed_at.tzinfo else i.observed_at.replace(tzinfo=dt.UTC)
                    )
                    out.append(
                        (
                            f.pk,
                            cot.finding_marker(
                                pk=f.pk,
                                rule_id=f.rule_id,
                                responsible=f.responsible,
                                probability=f.probability,
                                likelihood=_likelihood(f.probability),
                                explanation=f.explanation,
                                lon=i.lon,
                                lat=i.lat,
                                uncertainty_m=i.uncertainty_m,
                                observed_at=observed,
                                now=now,
                                stale=dt.timedelta(days=1),
                            ),
                        )
                    )
                if page.next_cursor is None:
                    return out
                cursor = page.next_cursor

    async def _push_findings(self, clients: list[_Client]) -> None:
        if not self.settings.push_findings:
            return
        for c in clients:
            if not c.principal.can(Permission.findings_read):
                continue
            try:
                markers = await asyncio.to_thread(self._markers, c.principal, set(c.sent))
            except TrucelineError as exc:
                log.warning("CoT: no findings to push: %s", exc.message)
                return
            await self._send(c, [m for _, m in markers])
            c.sent.update(pk for pk, _ in markers)
            self.stats.pushed += len(markers)

    async def _pusher(self) -> None:
        """Push new (and newly released) findings: at each interval, or at once after a finding.

        The shapes are sent again every :data:`SHAPES_EVERY_S` (they go stale after two hours on
        the devices, and the version in force may have changed).
        """
        loop = asyncio.get_running_loop()
        shapes_at = loop.time()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.push_interval_s)
            self._wake.clear()
            try:
                await self._push_findings(list(self.clients))
                if loop.time() - shapes_at >= SHAPES_EVERY_S:
                    shapes_at = loop.time()
                    for c in list(self.clients):
                        await self._push_agreement(c)
            except Exception:  # a failed push must not stop the next one
                log.exception("CoT: pushing to the devices failed")


def _likelihood(p: float) -> str:
    from truceline.core.probability import icd203_term

    return str(icd203_term(p))


def serve_with_cot(
    app: Any, ctx: AppContext, settings: Any, *, on_started: Callable[[], None] | None = None
) -> None:
    """Run the REST API (uvicorn) and the CoT listeners in one event loop until stopped."""
    import uvicorn

    async def main() -> None:
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_level=settings.log_level,
                access_log=settings.log_level == "debug",
            )
        )
        async with CotServer(ctx, settings.cot, host=settings.host) as listeners:
            if on_started is not None:
                on_started()
            log.info("CoT on %s: tcp %s, tls %s", settings.host, listeners.tcp_port, listeners.tls_port)
            await server.serve()

    asyncio.run(main())
