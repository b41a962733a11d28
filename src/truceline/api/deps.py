"""Dependencies shared by the routes: the app context and the caller's permission."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from truceline.context import AppContext
from truceline.errors import AuthenticationError
from truceline.services.auth import ANONYMOUS, Permission, Principal, require

__all__ = [
    "AgreementQ",
    "Ctx",
    "ReleasedOnlyQ",
    "allow",
    "context",
    "principal",
]

_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer tl_...`")


# The dependencies are coroutines: a plain function would cost each request a trip through the
# thread pool per dependency (about a third of the server's CPU per single submission).
async def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(context)]

#: The ``agreement`` query parameter of most routes.
AgreementQ = Annotated[
    str | None, Query(max_length=64, description="Agreement id (optional when the server has one)")
]

#: A draft report as the published edition would show it (released findings only).
ReleasedOnlyQ = Annotated[
    bool,
    Query(description="Only the findings released to the parties, as publishing would freeze it"),
]


async def principal(
    request: Request,
    ctx: Ctx,
    creds: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """The caller: from a bearer credential, or the anonymous public when none is sent."""
    if creds is None:
        if request.headers.get("authorization"):
            raise AuthenticationError(
                "the Authorization header is not a bearer token",
                field="Authorization",
                fix="send `Authorization: Bearer <token>`",
            )
        if not ctx.settings.anonymous_public:
            raise AuthenticationError(
                "this server needs a token for every call",
                field="Authorization",
                fix="send `Authorization: Bearer <token>`",
            )
        return ANONYMOUS
    for auth in ctx.authenticators:  # a credential seen recently: no database, no thread
        remembered = getattr(auth, "remembered", None)
        who: Principal | None = remembered(creds.credentials) if remembered is not None else None
        if who is not None:
            return who
    return await run_in_threadpool(_authenticate, ctx, creds.credentials)


def _authenticate(ctx: AppContext, credential: str) -> Principal:
    with ctx.db.read() as session:
        for auth in ctx.authenticators:
            who = auth.authenticate(session, credential)
            if who is not None:
                return who
    raise AuthenticationError(
        "the credential is not recognised", field="Authorization", fix="check the token"
    )


def allow(perm: Permission) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that passes callers holding ``perm`` and refuses the rest (401/403)."""

    # the permission as the bearer requirement's role (OpenAPI 3.1 allows role names for any
    # scheme): the document says what each operation needs, and which the public role may call
    async def check(who: Principal) -> Principal:
        return require(who, perm)

    # set here, not in the signature: a string annotation (this module's future import) could
    # not see ``perm``
    check.__annotations__["who"] = Annotated[Principal, Security(principal, scopes=[perm.value])]
    check.__name__ = f"allow_{perm.name}"
    return check
