"""Group commit for single submissions: many requests, one transaction, then every acknowledgement.

Adjudicating and committing one report costs about as much as doing it for a few dozen (the rule
engine is vectorised; a commit is one fsync). Requests therefore hand their incident to
:class:`Intake` and wait; one writer thread takes everything that is waiting, stores it in one
transaction, and answers each request only after that transaction has committed. Under light load
a batch is a single report and nothing waits; under heavy load batches grow by themselves.

If a batch fails as a whole, its reports are retried one by one, so one bad report cannot fail
the others.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.services.agreement_store import AgreementCache
from truceline.services.auth import Principal
from truceline.services.ingest import ingest_incidents
from truceline.services.submissions import RecordResult, Verdict
from truceline.store.db import Database
from truceline.store.record_text import content_hash

__all__ = ["Intake"]

log = logging.getLogger("truceline.intake")

#: How long the writer trusts its lookup of the agreement in force (an amendment registered by
#: another process applies from the next lookup; one through this server at once).
AGREEMENT_TTL_S = 2.0


@dataclass(slots=True)
class _Item:
    agreement_id: str | None
    incident: Incident
    principal: Principal
    future: Future[tuple[int, RecordResult]]


def _settle(
    fut: Future[tuple[int, RecordResult]],
    res: tuple[int, RecordResult] | None = None,
    *,
    exc: BaseException | None = None,
) -> None:
    """Answer a waiting request; one that gave up (timed out, cancelled) is stored all the same
    and its retry is then a duplicate."""
    try:
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(res)  # type: ignore[arg-type]
    except InvalidStateError:
        pass


class Intake:
    """The writer of single submissions (one per process; its thread starts on first use).

    Parameters
    ----------
    db, agreements, clock
        The server's database, agreement cache and clock.
    max_batch
        Most reports stored in one transaction.
    timeout_s
        How long a request waits for its acknowledgement before giving up (it is then retried by
        the client, and is a duplicate if it had been stored).
    """

    def __init__(
        self,
        db: Database,
        agreements: AgreementCache,
        clock: Callable[[], dt.datetime],
        *,
        max_batch: int = 500,
        timeout_s: float = 30.0,
    ) -> None:
        self._db, self._agreements, self._clock = db, agreements, clock
        self._max_batch, self._timeout_s = max_batch, timeout_s
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # The agreement in force, looked up at most every AGREEMENT_TTL_S (3 queries saved per batch).
        self._resolved: dict[str | None, tuple[float, int, Agreement]] = {}

    def submit(
        self, agreement_id: str | None, incident: Incident, principal: Principal
    ) -> tuple[int, RecordResult]:
        """Store one incident (with whatever else is waiting); returns after the commit."""
        self._ensure_started()
        fut: Future[tuple[int, RecordResult]] = Future()
        self._queue.put(_Item(agreement_id, incident, principal, fut))
        return fut.result(timeout=self._timeout_s)

    async def submit_async(
        self, agreement_id: str | None, incident: Incident, principal: Principal
    ) -> tuple[int, RecordResult]:
        """:meth:`submit` for the event loop: the caller's task waits, no thread does."""
        self._ensure_started()
        fut: Future[tuple[int, RecordResult]] = Future()
        self._queue.put(_Item(agreement_id, incident, principal, fut))
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout=self._timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(timeout=10)
                self._thread = None

    # -- the writer thread --------------------------------------------------------------------

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="truceline-intake", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            items = [first]
            while len(items) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                items.append(nxt)
            by_agreement: dict[str | None, list[_Item]] = {}
            for it in items:
                by_agreement.setdefault(it.agreement_id, []).append(it)
            for group in by_agreement.values():
                self._store(group)

    def _store(self, items: list[_Item]) -> None:
        try:
            results = self._db.write(lambda s: self._ingest(s, items))
        except Exception as exc:
            if len(items) == 1:
                _settle(items[0].future, exc=exc)
                return
            log.warning("a batch of %d failed (%s); storing them one by one", len(items), exc)
            for it in items:
                self._store([it])
            return
        for it, res in zip(items, results, strict=True):
            _settle(it.future, res)

    def _agreement(self, session: Session, agreement_id: str | None) -> Agreement:
        hit = self._resolved.get(agreement_id)
        gen = self._agreements.generation  # an amendment through this server applies at once
        if hit is not None and hit[1] == gen and time.monotonic() - hit[0] < AGREEMENT_TTL_S:
            return hit[2]
        ag = self._agreements.get(session, self._agreements.default_id(session, agreement_id))
        self._resolved[agreement_id] = (time.monotonic(), gen, ag)
        return ag

    def _ingest(self, session: Session, items: list[_Item]) -> list[tuple[int, RecordResult]]:
        agreement = self._agreement(session, items[0].agreement_id)
        # The same id twice in one batch: the first goes in, a repeat is its duplicate, a different
        # report under the same id is refused (reports are immutable).
        first: dict[str, tuple[int, str]] = {}
        unique: list[int] = []
        for k, it in enumerate(items):
            if it.incident.id not in first:
                first[it.incident.id] = (k, content_hash(it.incident))
                unique.append(k)
        res = ingest_incidents(
            session,
            agreement,
            [items[k].incident for k in unique],
            list(range(len(unique))),
            source="api",
            submitted_by=[items[k].principal.subject for k in unique],
            now=self._clock(),
        )
        rejected = {r.id: r for r in res.rejects}
        accepted = set(res.accepted)
        out: list[tuple[int, RecordResult]] = []
        for k, it in enumerate(items):
            rid = it.incident.id
            k0, h0 = first[rid]
            pk = res.pks.get(rid)
            if k != k0:
                if content_hash(it.incident) == h0 and rid not in rejected:
                    out.append(
                        (
                            res.batch_id,
                            RecordResult(
                                0,
                                rid,
                                Verdict.duplicate,
                                pk=pk,
                                reason="already stored (same id and content)",
                            ),
                        )
                    )
                else:
                    out.append(
                        (
                            res.batch_id,
                            RecordResult(
                                0,
                                rid,
                                Verdict.rejected,
                                field="id",
                                reason="a different report with this id arrived at the same time; "
                                "reports are immutable, send a correction under a new id",
                            ),
                        )
                    )
            elif rid in accepted:
                out.append(
                    (
                        res.batch_id,
                        RecordResult(
                            0, rid, Verdict.accepted, pk=pk, findings=res.findings_by_pk.get(pk or 0, 0)
                        ),
                    )
                )
            elif rid in rejected:
                r = rejected[rid]
                out.append(
                    (
                        res.batch_id,
                        RecordResult(0, rid, Verdict.rejected, field=r.field, reason=r.reason),
                    )
                )
            else:
                out.append(
                    (
                        res.batch_id,
                        RecordResult(
                            0,
                            rid,
                            Verdict.duplicate,
                            pk=pk,
                            reason="already stored (same id and content)",
                        ),
                    )
                )
        return out
