"""The application's wiring, shared by every edge (API, CoT listener, page, CLI server).

What every request needs, built once when the server starts and passed in (no globals).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.core.rules import prepare as prepare_rules
from truceline.errors import UnavailableError
from truceline.io.agreement_files import files_of_folder
from truceline.services.agreement import warm_layers
from truceline.services.agreement_store import AgreementCache, register_agreement
from truceline.services.auth import Authenticator, Principal, Role, TokenAuthenticator
from truceline.services.intake import Intake
from truceline.services.planner import PlannerCache
from truceline.services.selection import stop_builds
from truceline.services.submissions import RecordResult
from truceline.settings import Settings, default_attachments_dir
from truceline.store.attachments import BlobStore, LocalStore
from truceline.store.db import Database
from truceline.store.models import AgreementRow
from truceline.store.uploads import UploadArea

__all__ = ["SYSTEM", "AppContext", "build_context", "freeze_heap", "settle"]

#: The principal of changes made by the server itself (agreements from its configuration).
SYSTEM = Principal(subject="system", role=Role.admin)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class AppContext:
    """Settings, the database, loaded agreements, authenticators, the clock, cached comparisons."""

    settings: Settings
    db: Database
    agreements: AgreementCache = field(default_factory=AgreementCache)
    authenticators: Sequence[Authenticator] = field(default_factory=lambda: (TokenAuthenticator(),))
    clock: Callable[[], dt.datetime] = utc_now
    intake: Intake | None = None  # group commit of single submissions (built with the context)
    planner: PlannerCache = field(default_factory=PlannerCache)  # scenario comparisons
    attachments: BlobStore | None = None  # evidence files (built with the context)

    @property
    def blobs(self) -> BlobStore:
        """The attachment store (settings ``attachments_dir``, or beside a SQLite database)."""
        if self.attachments is None:
            s = self.settings
            self.attachments = LocalStore(s.attachments_dir or default_attachments_dir(s.db))
        return self.attachments

    @property
    def uploads(self) -> UploadArea:
        """Partial resumable uploads: ``.uploads`` under the attachments' directory."""
        s = self.settings
        return UploadArea((s.attachments_dir or default_attachments_dir(s.db)) / ".uploads")

    def submit_one(
        self, agreement_id: str | None, incident: Incident, principal: Principal
    ) -> tuple[int, RecordResult]:
        """Store one incident through the group-commit writer; returns after the commit."""
        if self.intake is None:
            self.intake = Intake(self.db, self.agreements, lambda: self.clock())
        try:
            return self.intake.submit(agreement_id, incident, principal)
        except FutureTimeout:
            raise UnavailableError(
                "the incident was not stored in time", fix="retry with the same id (it is idempotent)"
            ) from None

    async def submit_one_async(
        self, agreement_id: str | None, incident: Incident, principal: Principal
    ) -> tuple[int, RecordResult]:
        """:meth:`submit_one` for a coroutine: awaits the commit instead of blocking a thread."""
        if self.intake is None:
            self.intake = Intake(self.db, self.agreements, lambda: self.clock())
        try:
            return await self.intake.submit_async(agreement_id, incident, principal)
        except (FutureTimeout, TimeoutError):
            raise UnavailableError(
                "the incident was not stored in time", fix="retry with the same id (it is idempotent)"
            ) from None

    def close(self) -> None:
        """Stop the writer thread and release the database."""
        if self.intake is not None:
            self.intake.close()
        stop_builds(self.db)  # the map summary's background build, if one runs
        self.db.dispose()

    def agreement(self, session: Session, agreement_id: str | None) -> Agreement:
        """The agreement named, or the only one registered."""
        return self.agreements.get(session, self.agreements.default_id(session, agreement_id))


def register_folders(ctx: AppContext, folders: Sequence[Path]) -> None:
    """Register the agreement of each folder (a no-op for one registered unchanged)."""
    for folder in folders:
        files = files_of_folder(folder)

        def register(s: Session, files: dict[str, bytes] = files, folder: Path = folder) -> None:
            register_agreement(
                s,
                files,
                source=str(folder),
                actor=SYSTEM,
                now=ctx.clock(),
                cache=ctx.agreements,
                limits=ctx.settings.uploads,
            )

        ctx.db.write(register)


def settle(ctx: AppContext) -> None:
    """Make a long-running server's heap cheap to collect before it takes traffic.

    Compiles every version of the registered agreements (their line indexes and side polygons)
    and fills the rule engine's search tables ahead of time (:func:`truceline.core.rules.prepare`:
    otherwise the first report in each new 0.02 deg cell pays several milliseconds), then moves
    everything alive into the collector's permanent generation. Without this, each full
    collection walks every module, schema and compiled agreement: 100-500 ms measured under
    load (about 240,000 objects), a pause that every request in flight waits out. Last, starts
    building the map's layers in a background thread (:func:`warm_layers`: seconds of CPU).
    """
    agreements = []
    with ctx.db.read() as session:
        for agreement_id in session.execute(select(AgreementRow.id)).scalars():
            agreements.append(ctx.agreements.get(session, agreement_id))
            prepare_rules(agreements[-1])
    freeze_heap()
    # the map's layers in the background: the server takes requests meanwhile, and a request
    # for layers not yet built waits for this build rather than running a second one beside it
    threading.Thread(
        target=warm_layers, args=(agreements, ctx.clock().date()), name="warm-layers", daemon=True
    ).start()


#: Allocations between young-generation collections in a settled server (Python's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def freeze_heap() -> None:
    """Move everything alive into the permanent generation and collect the young one less often.

    A batch of 5,000 reports allocates hundreds of thousands of short-lived objects (records,
    validated models, rows). Warming up on 20,000 reports and then ingesting 20,000 more (as
    ``benchmarks/ingest.py`` does) ran 889 young and 7 full collections at Python's default
    thresholds (0.23 s) and 19 young ones and no full one at 20,000 (0.06 s). Reference cycles
    are rare on these paths, so memory stays flat.
    """
    import gc

    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def build_context(
    settings: Settings,
    *,
    clock: Callable[[], dt.datetime] = utc_now,
    authenticators: Sequence[Authenticator] | None = None,
    agreements: AgreementCache | None = None,
) -> AppContext:
    """Open the database, migrate it to the newest schema, register the configured agreements.

    ``agreements`` may be a cache shared between contexts (tests), so each agreement loads once.
    """
    db = Database(settings.db, synchronous=settings.sqlite_synchronous)
    db.upgrade()
    ctx = AppContext(
        settings=settings,
        db=db,
        clock=clock,
        agreements=agreements or AgreementCache(settings.fusion),
        authenticators=(
            authenticators
            if authenticators is not None
            else (TokenAuthenticator(settings.token_cache_s),)
        ),
    )
    register_folders(ctx, settings.agreements)
    return ctx
