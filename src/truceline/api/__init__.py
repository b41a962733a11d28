"""The mission server's REST API (FastAPI), versioned under ``/api/v1``.

Routes are thin: they parse, check the caller's permission, call a service from
:mod:`truceline.services` or :mod:`truceline.store` inside one transaction, and format. Build the
app with :func:`create_app` from an :class:`~truceline.context.AppContext`
(:func:`~truceline.context.build_context` makes one from :class:`~truceline.settings.Settings`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from truceline import __version__
from truceline.api.errors import install_error_handlers
from truceline.api.limits import BodyLimit, NoNulInUrl
from truceline.context import AppContext, build_context, settle

__all__ = [
    "API_PREFIX",
    "SETTINGS_ENV",
    "AppContext",
    "app_from_env",
    "build_context",
    "create_app",
    "settle",
]

#: Where `truceline serve --workers N` hands its settings (JSON) to the worker processes.
SETTINGS_ENV = "TRUCELINE_SERVE_SETTINGS_JSON"

API_PREFIX = "/api/v1"

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
        yield
        if ctx.intake is not None:  # let the group-commit writer finish what it holds
            ctx.intake.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Truceline mission server",
        version=__version__,
        description=_DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
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
    )
    app.add_middleware(NoNulInUrl)
    return app


def app_from_env() -> FastAPI:
    """The app of one worker process of ``truceline serve --workers N`` (a uvicorn factory)."""
    import os

    from truceline.settings import Settings

    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    ctx = build_context(settings)
    app = create_app(ctx)
    settle(ctx)
    return app
