"""API tokens (admins) and the caller's own identity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import Me, TokenIn, TokenIssued, TokenOut
from truceline.core.times import as_utc
from truceline.services.auth import Permission, Principal, create_token, list_tokens, revoke_token
from truceline.store.models import ApiTokenRow

router = APIRouter(tags=["tokens"], responses=ERRORS)
Admin = Annotated[Principal, Depends(allow(Permission.tokens_manage))]


def _out(r: ApiTokenRow) -> TokenOut:
    return TokenOut(
        id=r.id,
        name=r.name,
        role=r.role,
        party=r.party,
        sector=r.sector,
        created_at=as_utc(r.created_at),
        created_by=r.created_by,
        revoked_at=as_utc(r.revoked_at),
    )


@router.get("/me", response_model=Me, summary="Who the server takes the caller for")
def me(who: Annotated[Principal, Depends(allow(Permission.whoami))]) -> Me:
    return Me(
        subject=who.subject, role=who.role, party=who.party, sector=who.sector, anonymous=who.anonymous
    )


@router.post(
    "/tokens",
    response_model=TokenIssued,
    status_code=status.HTTP_201_CREATED,
    summary="Create a token (the secret is in this response only)",
)
def create(body: TokenIn, ctx: Ctx, who: Admin) -> TokenIssued:
    t = ctx.db.write(
        lambda s: create_token(
            s,
            role=body.role.value,
            name=body.name,
            party=body.party,
            sector=body.sector,
            actor=who,
            now=ctx.clock(),
        )
    )
    return TokenIssued(
        id=t.id,
        name=t.name,
        role=t.role.value,
        party=t.party,
        sector=t.sector,
        created_at=as_utc(t.created_at),
        created_by=who.subject,
        revoked_at=None,
        token=t.secret,
    )


@router.get("/tokens", response_model=list[TokenOut], summary="Tokens (never their secrets)")
def list_all(ctx: Ctx, _: Admin) -> list[TokenOut]:
    with ctx.db.read() as s:
        return [_out(r) for r in list_tokens(s)]


@router.delete("/tokens/{token_id}", response_model=TokenOut, summary="Revoke a token")
def revoke(token_id: Annotated[str, Path(max_length=32)], ctx: Ctx, who: Admin) -> TokenOut:
    out = ctx.db.write(lambda s: _out(revoke_token(s, token_id, actor=who, now=ctx.clock())))
    for auth in ctx.authenticators:  # a revoked token stops working at once on this server
        forget = getattr(auth, "forget", None)
        if forget is not None:
            forget()
    return out
