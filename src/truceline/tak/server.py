"""The Cursor-on-Target listeners that ``truceline serve`` starts beside the REST API.

One asyncio server per transport: plain TCP (TAK convention 8087) and TLS with client
certificates (8089). Each connection is read as a stream of CoT events split after ``</event>``
(:class:`~truceline.tak.cot.EventSplitter`), each event parsed with defusedxml and handled on its
own: a malformed or unusable event is logged with its reason and the connection keeps working.
Reports go through :func:`~truceline.services.submissions.submit_records`, the same validation,
idempotent ingest and adjudication as every other submission.

Who is calling: a TLS client is its certificate (CN = the device or person, OU = the role when it
names one, else ``tls_role``; O = the party of a liaison); a plain-TCP client has ``tcp_role``
(``sensor`` by default: it may submit, and is sent nothing). Clients whose role may read the
agreement get its line and zones as shapes; those that may read findings get them as markers,
through the API's own scope (a liaison: released findings only).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from truceline.context import AppContext
from truceline.errors import TrucelineError
from truceline.services import queries
from truceline.services.agreement import zones_feature_collection
from truceline.services.auth import Permission, Principal, Role
from truceline.services.submissions import RecordResult, SubmissionResult, Verdict, submit_records
from truceline.settings import CotSettings
from truceline.tak import cot

__all__ = ["CotServer", "CotStats", "serve_with_cot"]

log = logging.getLogger("truceline.tak")

#: How far back findings are pushed to a device that connects.
PUSH_DAYS = 7
#: How often the line and zones are sent again to connected devices.
SHAPES_EVERY_S = 3600.0
_WRITE_TIMEOUT_S = 10.0
_BATCH_WINDOW_S = 0.05
_MAX_BATCH = 1000


@dataclass(slots=True)
class CotStats:
    """Counters of what the listeners have seen (for logs and tests)."""

    connections: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    malformed: int = 0
    pings: int = 0
    ignored: int = 0
    pushed: int = 0


@dataclass(frozen=True, slots=True)
class _Pending:
    record: dict[str, Any]
    principal: Principal
    peer: str
    uid: str


@dataclass(eq=False, slots=True)
class _Client:
    writer: asyncio.StreamWriter
    principal: Principal
    peer: str
    sent: set[int] = field(default_factory=set)  # finding pks already pushed
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _peer(writer: asyncio.StreamWriter) -> str:
    addr = writer.get_extra_info("peername")
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else str(addr)


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
        if s.port is not None:
            srv = await asyncio.start_server(self._on_tcp, self.host, s.port)
            self.tcp_port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        if s.tls_port is not None:
            srv = await asyncio.start_server(
                self._on_tls, self.host, s.tls_port, ssl=self._tls_context()
            )
            self.tls_port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        log.info("CoT listeners: tcp %s, tls %s", self.tcp_port, self.tls_port)
        self._spawn(self._pusher())
        self._spawn(self._writer())

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
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for srv in self._servers:
            await srv.wait_closed()
        self._servers.clear()

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
        who = Principal(
            subject=f"cot:tcp:{_peer(writer).rsplit(':', 1)[0]}", role=Role(self.settings.tcp_role)
        )
        await self._serve(reader, writer, who)

    async def _on_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        f = _cert_fields(writer.get_extra_info("peercert"))
        cn = f.get("commonName", "unnamed")
        ou = f.get("organizationalUnitName", "")
        role = Role(ou) if ou in Role.__members__ and ou != "public" else Role(self.settings.tls_role)
        party = f.get("organizationName") if role == Role.liaison else None
        await self._serve(reader, writer, Principal(subject=f"cot:{cn}", role=role, party=party))

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, who: Principal
    ) -> None:
        peer = _peer(writer)
        if len(self.clients) >= self.settings.max_clients or self._closing:
            log.warning("CoT %s: refused, %d clients already connected", peer, len(self.clients))
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        client = _Client(writer, who, peer)
        self.clients.add(client)
        self.stats.connections += 1
        log.info("CoT %s connected as %s (%s)", peer, who.subject, who.role.value)
        splitter = cot.EventSplitter(self.settings.max_event_bytes, self.settings.max_connection_bytes)
        try:
            await self._push_agreement(client)
            await self._push_findings([client])
            while not self._closing:
                data = await reader.read(65536)
                if not data:
                    break
                for item in splitter.feed(data):
                    try:
                        await self._on_event(client, item)
                    except Exception:  # one event's failure (say, the database) ends nothing else
                        self.stats.rejected += 1
                        log.exception("CoT %s: event not handled", peer)
                if splitter.exhausted:
                    log.warning(
                        "CoT %s: closed after %d bytes (limit %d per connection)",
                        peer,
                        splitter.total,
                        self.settings.max_connection_bytes,
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

    async def _send(self, client: _Client, payloads: list[bytes]) -> None:
        if not payloads:
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

    async def _on_event(self, client: _Client, item: bytes | cot.Oversize) -> None:
        self.stats.events += 1
        if isinstance(item, cot.Oversize):
            self.stats.malformed += 1
            log.warning("CoT %s: rejected: %s", client.peer, item.reason)
            return
        try:
            ev = cot.parse_event(item)
        except cot.CotError as exc:
            self.stats.malformed += 1
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
            self.stats.rejected += 1
            log.warning(
                "CoT %s: rejected %s: role %s may not submit",
                client.peer,
                ev.uid,
                client.principal.role.value,
            )
            return
        try:
            rec = cot.incident_record(
                ev, unknown_ce_m=self.settings.unknown_ce_m, source_type=self.settings.source_type
            )
        except cot.CotError as exc:
            self.stats.rejected += 1
            log.warning("CoT %s: rejected event %s: %s", client.peer, ev.uid, exc.message)
            return
        await self._pending.put(_Pending(rec, client.principal, client.peer, ev.uid))

    def _account(self, p: _Pending, res: RecordResult) -> None:
        if res.status == Verdict.rejected:
            self.stats.rejected += 1
            log.warning("CoT %s: rejected event %s: %s: %s", p.peer, p.uid, res.field, res.reason)
        elif res.status == Verdict.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.accepted += 1
            log.info(
                "CoT %s: incident %s stored as %s (%d findings)",
                p.peer,
                p.record["id"],
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
                try:
                    results = await asyncio.to_thread(self._submit, [p.record for p in items], who)
                except Exception as exc:  # the database, say: these events are lost, say so
                    self.stats.rejected += len(items)
                    log.error("CoT: %d events not stored: %s", len(items), exc)
                    continue
                for p, res in zip(items, results, strict=True):
                    self._account(p, res)
            for _ in batch:
                self._pending.task_done()

    def _submit(self, records: list[dict[str, Any]], who: Principal) -> list[RecordResult]:
        def work(s: Session) -> SubmissionResult:
            ag = self.ctx.agreement(s, self.settings.agreement)
            return submit_records(s, ag, records, principal=who, now=self.ctx.clock(), source="cot")

        return self.ctx.db.write(work).results

    # -- pushing ----------------------------------------------------------------------------

    def _agreement_shapes(self) -> list[bytes]:
        now = self.ctx.clock()
        with self.ctx.db.read() as s:
            ag = self.ctx.agreement(s, self.settings.agreement)
        day = max(now.date(), ag.effective_from)
        fc = zones_feature_collection(ag, day)
        return cot.shape_events(
            fc["features"], now=now, stale=dt.timedelta(hours=2), simplify_m=self.settings.simplify_m
        )

    async def _push_agreement(self, client: _Client) -> None:
        if not client.principal.can(Permission.agreements_read):
            return
        try:
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
