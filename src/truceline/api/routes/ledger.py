"""The tamper-evident ledger: daily roots (public), proofs, closing days, verification."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from sqlalchemy.orm import Session

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import MAX_KEY, LedgerProblem, LedgerRoot, LedgerVerification
from truceline.core.times import as_utc
from truceline.services import queries
from truceline.services.auth import Permission, Principal
from truceline.services.checkpoints import close_all
from truceline.services.ledger_keys import load_signer
from truceline.store import ledger
from truceline.store.models import LedgerRootRow

router = APIRouter(tags=["ledger"], responses=ERRORS)


def _root(r: LedgerRootRow) -> LedgerRoot:
    return LedgerRoot(
        day=r.day,
        root=r.root,
        first_seq=r.first_seq,
        last_seq=r.last_seq,
        n_entries=r.n_entries,
        closed_at=as_utc(r.closed_at),
    )


def _signer(ctx: Ctx) -> ledger.RootSigner | None:
    key = ctx.settings.ledger_key
    return None if key is None else load_signer(key)


@router.get("/ledger/roots", response_model=list[LedgerRoot], summary="Daily Merkle roots (publishable)")
def list_roots(
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.ledger_roots))],
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> list[LedgerRoot]:
    with ctx.db.read() as s:
        return [LedgerRoot.model_validate(d) for d in ledger.root_documents(s, start, end)]


@router.post(
    "/ledger/close",
    response_model=list[LedgerRoot],
    summary="Close the ledger up to now: finished days get their roots, today a checkpoint",
)
def close(
    ctx: Ctx, _: Annotated[Principal, Depends(allow(Permission.ledger_admin))]
) -> list[LedgerRoot]:
    sign = _signer(ctx)

    def run(s: Session) -> list[LedgerRoot]:
        closed = close_all(s, now=ctx.clock(), sign=sign)
        out = [_root(r) for r in closed.days]
        if closed.checkpoint is not None:
            out.append(LedgerRoot.model_validate(closed.checkpoint))
        return out

    return ctx.db.write(run)


@router.get(
    "/ledger/entries/{seq}/proof",
    summary="An entry with its Merkle inclusion proof and day root",
    response_description="A proof document; check it with `python -m truceline.ledger_verify`",
)
def entry_proof(
    seq: Annotated[int, Path(ge=1, le=MAX_KEY)],
    ctx: Ctx,
    _: Annotated[Principal, Depends(allow(Permission.ledger_read))],
) -> dict[str, Any]:
    with ctx.db.read() as s:
        return ledger.export_proof(s, seq)


@router.get(
    "/findings/{pk}/proof",
    summary="The ledger proof of a finding (liaisons: released ones, the incident key and report "
    "hash as commitments only; staff: with those opened)",
    response_description="A proof document; check it with `python -m truceline.ledger_verify`",
)
def finding_proof(
    pk: Annotated[int, Path(ge=1, le=MAX_KEY)],
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.findings_proof))],
) -> dict[str, Any]:
    with ctx.db.read() as s:
        queries.get_finding(s, pk, scope=who.scope)  # 404 outside the caller's scope
        return ledger.finding_proof(s, pk, released_only=who.scope.released_only)


@router.get(
    "/ledger/verify",
    response_model=LedgerVerification,
    summary="Check the whole chain, the roots and the records against the ledger",
)
def verify(
    ctx: Ctx, _: Annotated[Principal, Depends(allow(Permission.ledger_admin))]
) -> LedgerVerification:
    with ctx.db.read() as s:
        v = ledger.verify(s)
    return LedgerVerification(
        ok=v.ok,
        entries=v.entries,
        days_closed=v.days_closed,
        incidents=v.incidents,
        findings=v.findings,
        problems=[LedgerProblem(seq=p.seq, kind=p.kind, message=p.message) for p in v.problems],
        uncovered=v.uncovered,
    )
