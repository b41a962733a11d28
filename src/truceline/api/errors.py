"""One error shape for every failure: ``{"error": {status, type, message, field, value, fix}}``.

:class:`~truceline.errors.TrucelineError` subclasses carry their HTTP status and a message safe to
show; request validation errors name the field, the value received and how to fix it. Anything
else is a 500 whose details go to the log, never to the caller.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from truceline.errors import TrucelineError, safe_text
from truceline.io.incidents_io import _HINTS as FIELD_HINTS
from truceline.io.incidents_io import NUL_REASON, UNICODE_REASON, is_nul_error

__all__ = ["ErrorBody", "ErrorDetail", "install_error_handlers"]

log = logging.getLogger("truceline.api")


class ErrorDetail(BaseModel):
    status: int
    type: str
    message: str
    field: str | None = None
    value: Any = None
    fix: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def _jsonable(value: Any) -> Any:
    """Echo a received value back safely (bounded, JSON-representable)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return safe_text(value[:200])
    if isinstance(value, int | float | bool) or value is None:
        return value
    text = repr(value)  # repr escapes lone surrogates
    return text[:200]


def error_response(
    status: int,
    type_: str,
    message: str,
    *,
    field: str | None = None,
    value: Any = None,
    fix: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(
        error=ErrorDetail(
            status=status,
            type=type_,
            message=safe_text(message),
            field=None if field is None else safe_text(field),
            value=_jsonable(value),
            fix=None if fix is None else safe_text(fix),
        )
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _truceline(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrucelineError)
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(
        status,
        type(exc).__name__,
        exc.message,
        field=exc.field,
        value=exc.value,
        fix=exc.fix,
        headers=headers,
    )


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = list(exc.errors())
    first = errs[0] if errs else {"loc": ("body",), "msg": "invalid request"}
    loc = tuple(first.get("loc", ()))
    field = _where(loc)
    leaf = str(loc[-1]) if loc else ""
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if is_nul_error(first):
        msg, fix = NUL_REASON, "remove it"
    elif first.get("type") == "string_unicode":
        msg, fix = UNICODE_REASON, "send UTF-8 text"
        if field == "body":  # a field name that is not text names itself
            field, msg = safe_text(str(first.get("input"))), f"the field name {UNICODE_REASON}"
    elif first.get("type") == "json_invalid":
        fix = "send valid JSON (UTF-8, no trailing commas, no NaN)"
    elif first.get("type") == "missing":
        fix = FIELD_HINTS.get(leaf, f"add `{leaf}`")
    elif first.get("type") == "extra_forbidden":
        fix = f"remove `{leaf}`; see the request schema in /docs"
    else:
        fix = FIELD_HINTS.get(leaf, "see the request schema in /docs")
    more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
    # OGC API - Features answers an invalid parameter with 400 (Part 1, 7.6); the REST API with 422
    ogc = request.url.path == "/ogc" or request.url.path.startswith("/ogc/")
    return error_response(
        400 if ogc else 422,
        "RequestValidationError",
        f"{field}: {msg}{more}",
        field=field,
        value=first.get("input"),
        fix=fix,
    )


def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    fix = "see /docs for the routes and methods" if exc.status_code in (404, 405) else None
    return error_response(
        exc.status_code, "HTTPException", str(exc.detail), fix=fix, headers=getattr(exc, "headers", None)
    )


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "InternalError", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TrucelineError, _truceline)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
