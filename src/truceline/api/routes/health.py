"""Liveness and readiness (no credentials needed)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from truceline import __version__
from truceline.api.deps import Ctx
from truceline.api.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, summary="The process is up")
def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get(
    "/ready",
    response_model=Ready,
    summary="The database answers and its schema is current",
    responses={503: {"model": Ready, "description": "Not ready"}},
)
def ready(ctx: Ctx) -> Ready | JSONResponse:
    try:
        at_head = ctx.db.at_head()
    except SQLAlchemyError:
        body = Ready(status="unavailable", database=ctx.db.dialect, schema_at_head=False)
        return JSONResponse(body.model_dump(), status_code=503)
    if not at_head:
        body = Ready(status="migrating", database=ctx.db.dialect, schema_at_head=False)
        return JSONResponse(body.model_dump(), status_code=503)
    return Ready(status="ready", database=ctx.db.dialect, schema_at_head=True)
