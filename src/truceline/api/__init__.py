"""The mission server's REST API (FastAPI), versioned under ``/api/v1``.

Routes are thin: they parse, check the caller's permission, call a service from
:mod:`truceline.services` or :mod:`truceline.store` inside one transaction, and format. Build the
app with :func:`create_app` from an :class:`~truceline.context.AppContext`
(:func:`~truceline.context.build_context` makes one from :class:`~truceline.settings.Settings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session

from truceline import __version__
from truceline.api.errors import install_error_handlers
from truceline.api.limits import BodyLimit, NoNulInUrl
from truceline.api.links import add_links
from truceline.context import AppContext, build_context, settle
from truceline.services.auth import ROLE_PERMISSIONS, Role
from truceline.services.selection import start_builds, stop_builds

if TYPE_CHECKING:
    from truceline.services.events import DayRelinked

__all__ = [
    "API_PREFIX",
    "SETTINGS_ENV",
    "AppContext",
    "app_from_env",
    "build_context",
    "create_app",
    "relink_closed",
    "settle",
    "start_builds",
]

#: Where `truceline serve --workers N` hands its settings (JSON) to the worker processes.
SETTINGS_ENV = "TRUCELINE_SERVE_SETTINGS_JSON"

API_PREFIX = "/api/v1"

#: Where the package serves Swagger UI (swagger-ui-dist, copied by `make web` into web/static).
SWAGGER_UI = "/static/swagger"

_log = logging.getLogger("truceline.ledger")
_fusion_log = logging.getLogger("truceline.fusion")

_DESCRIPTION = """\
The information system of a ceasefire-verification mission: agreements and zones, incident
reports (idempotent by the reporter's id), adjudicated findings, the review workflow, daily
statistics and reports, and a tamper-evident ledger.

Authenticate with `Authorization: Bearer <token>` (tokens: `truceline token create`). Without a
token a caller is the `public` role (published reports and ledger roots only). Every error has the
shape `{"error": {"status", "type", "message", "field", "value", "fix"}}`.
"""


def create_app(ctx: AppContext) -> FastAPI:
    """The ASGI application around a built context (nothing is opened here)."""
    from truceline.api.routes import (
        agreements,
        attachments,
        dashboard,
        duplicates,
        events,
        export,
        findings,
        health,
        incidents,
        ledger,
        planner,
        reports,
        sensors,
        tokens,
    )
    from truceline.web import router as page_router

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = []
        if (minutes := ctx.settings.ledger_checkpoint_minutes) > 0:
            tasks.append(asyncio.create_task(_checkpoints(ctx, minutes * 60)))
        if (minutes := ctx.settings.relink_minutes) > 0:
            tasks.append(asyncio.create_task(_relinks(ctx, minutes * 60)))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if ctx.intake is not None:  # let the group-commit writer finish what it holds
            ctx.intake.close()
        stop_builds(ctx.db)  # a map summary's build started at start-up stops after its step

    app = FastAPI(
        lifespan=lifespan,
        title="Truceline mission server",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served below from the package's own Swagger UI: no CDN, works offline
        redoc_url=None,
    )

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from the validator site
        )

    app.state.ctx = ctx
    _documented(app, ctx)
    install_error_handlers(app)
    modules = (
        health,
        agreements,
        incidents,
        findings,
        reports,
        tokens,
        ledger,
        planner,
        sensors,
        events,
        duplicates,
        attachments,
    )
    for module in modules:
        app.include_router(module.router, prefix=API_PREFIX)
    from truceline.api.routes import ogc

    app.include_router(ogc.router)  # OGC API - Features under /ogc, outside /api/v1
    # The dashboard: its data and exports under /api/v1, the page itself at /.
    app.include_router(dashboard.router, prefix=API_PREFIX)
    app.include_router(export.router, prefix=API_PREFIX)
    app.include_router(page_router)
    uploads = max(ctx.settings.attachment_max_bytes.values(), default=0)
    app.add_middleware(
        BodyLimit,
        max_bytes=ctx.settings.max_request_bytes,
        # a multipart upload of attachments: the largest a role may file, plus the form's framing
        upload_bytes=max(ctx.settings.max_request_bytes, uploads + 64 * 1024),
        upload_suffix="/attachments",
        # a chunk of a resumable upload (PATCH /uploads/{id})
        chunk_bytes=ctx.settings.attachment_chunk_bytes,
        chunk_prefix=f"{API_PREFIX}/uploads/",
        max_json_depth=ctx.settings.uploads.max_depth,
    )
    app.add_middleware(NoNulInUrl)
    return app


def _documented(app: FastAPI, ctx: AppContext) -> None:
    """Serve the OpenAPI document with its links (:mod:`truceline.api.links`) and the bearer
    token optional where the public role may call without one, built once."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = add_links(base())
            if ctx.settings.anonymous_public:
                _token_optional(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend it


def _token_optional(doc: dict[str, Any]) -> None:
    """Operations the public role may call get the empty ``security`` alternative: a caller
    without a token is the public role (each operation's bearer requirement names, as its role,
    the permission it checks; see :func:`truceline.api.deps.allow`)."""
    public = {p.value for p in ROLE_PERMISSIONS[Role.public]}
    for methods in doc["paths"].values():
        for op in methods.values():
            security = op.get("security")
            if not security:
                continue  # health, readiness, the OGC landing: no token read at all
            # the permissions checked (none: the route filters by role itself, as OGC's do)
            needs = {role for req in security for roles in req.values() for role in roles}
            if needs <= public:
                op["security"] = [{}, *security]


async def _checkpoints(ctx: AppContext, every_s: float) -> None:
    """Close the ledger up to now every ``every_s`` seconds (the ``ledger_checkpoint_minutes``
    setting), in a worker thread; a failure is logged and the next round tries again."""
    from truceline.services.checkpoints import close_all
    from truceline.services.ledger_keys import load_signer

    key = ctx.settings.ledger_key
    while True:
        await asyncio.sleep(every_s)
        try:
            sign = None if key is None else load_signer(key)
            await asyncio.to_thread(
                ctx.db.write, lambda s, sign=sign: close_all(s, now=ctx.clock(), sign=sign)
            )
        except Exception:  # the server goes on; the next round retries
            _log.exception("ledger checkpoint failed")


async def _relinks(ctx: AppContext, every_s: float) -> None:
    """Every ``every_s`` seconds (the ``relink_minutes`` setting), fusion's final pass of each
    closed day that needs one (:func:`relink_closed`), in a worker thread; a failure is logged
    and the next round tries again."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(relink_closed, ctx)
        except Exception:  # the server goes on; the next round retries
            _fusion_log.exception("the closed days' final pass of fusion failed")


def relink_closed(ctx: AppContext) -> list[tuple[str, DayRelinked]]:
    """Fusion's final pass of each closed day that needs one, for every registered agreement
    with its fusion settings (:func:`truceline.services.events.relink_closed_days`), one
    transaction per agreement; returns the days fused again."""
    from sqlalchemy import select

    from truceline.context import SYSTEM
    from truceline.services.events import relink_closed_days
    from truceline.store.models import AgreementRow

    with ctx.db.read() as s:
        ids = list(s.execute(select(AgreementRow.id).order_by(AgreementRow.id)).scalars())
    out: list[tuple[str, DayRelinked]] = []
    for ag_id in ids:

        def one(s: Session, ag_id: str = ag_id) -> list[DayRelinked]:
            ag = ctx.agreements.get(s, ag_id)
            return relink_closed_days(s, ag_id, now=ctx.clock(), actor=SYSTEM, settings=ag.fusion)

        for day in ctx.db.write(one):
            _fusion_log.info(
                "fusion's final pass of %s %s: %d reports, %d moved",
                ag_id, day.day.isoformat(), day.reports, day.result.linked,
            )  # fmt: skip
            out.append((ag_id, day))
    return out


def app_from_env() -> FastAPI:
    """The app of one worker process of ``truceline serve --workers N`` (a uvicorn factory)."""
    import os

    from truceline.settings import Settings

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    ctx = build_context(settings)
    app = create_app(ctx)
    settle(ctx)
    start_builds(ctx.db)  # each worker's build takes the next days (one writer at a time)
    return app
