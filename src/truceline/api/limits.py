"""Checks on a request before any route sees it (pure ASGI middleware): a bound on bodies (their
size, and the nesting of a JSON body), and no NUL character in the path or the query (PostgreSQL
cannot compare or store text holding one)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from truceline.errors import PayloadTooLargeError
from truceline.io.limits import LimitError, UploadLimits, check_json_depth

__all__ = ["BodyLimit", "NoNulInUrl"]


async def _reply(send: Send, status: int, detail: dict[str, Any]) -> None:
    """Answer with the API's error body, before any route (and its error handlers) runs."""
    body = json.dumps({"error": {"status": status, **detail}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


#: Methods whose JSON body is read whole before the app (DELETE: a body no route reads, answered
#: 413 over the limit all the same, not left unread behind another answer).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _json_body(scope: Scope) -> bool:
    """A body the app will parse as JSON (FastAPI does so with no content type, too)."""
    if scope.get("method") not in _BODY_METHODS:
        return False
    ctype = dict(scope.get("headers") or ()).get(b"content-type", b"").lower()
    return not ctype.strip() or b"json" in ctype


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413: by ``Content-Length`` up front, else while reading.

    With ``max_json_depth``, a JSON body (read whole first: it is within ``max_bytes``) nested
    deeper than that is refused with 422 naming the body, the limit and its setting
    (``uploads.max_depth``), before the JSON parser recurses into it.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        upload_bytes: int | None = None,
        upload_suffix: str | None = None,
        max_json_depth: int | None = None,
        chunk_bytes: int | None = None,
        chunk_prefix: str | None = None,
    ) -> None:
        self.app = app
        #: PATCH to paths under ``chunk_prefix`` (resumable upload chunks) may send ``chunk_bytes``
        self.chunk_bytes = chunk_bytes or max_bytes
        self.chunk_prefix = chunk_prefix
        self.default_bytes = max_bytes
        self.max_json_depth = max_json_depth
        #: paths ending in ``upload_suffix`` (file uploads) may send up to ``upload_bytes``
        self.upload_bytes = upload_bytes or max_bytes
        self.upload_suffix = upload_suffix

    def _error(self, message: str, limit: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            message,
            field="body",
            fix=f"send at most {limit} bytes; split the batch",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        upload = self.upload_suffix is not None and str(scope.get("path", "")).endswith(
            self.upload_suffix
        )
        max_bytes = self.upload_bytes if upload and scope.get("method") == "POST" else self.default_bytes
        if (
            self.chunk_prefix is not None
            and scope.get("method") == "PATCH"
            and str(scope.get("path", "")).startswith(self.chunk_prefix)
        ):
            max_bytes = self.chunk_bytes
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _reply(
                    send,
                    400,
                    {
                        "type": "BadRequest",
                        "message": "Content-Length is not a number",
                        "field": "Content-Length",
                        "value": declared.decode("latin-1")[:50],
                        "fix": "send a decimal byte count",
                    },
                )
                return
            if size > max_bytes:
                err = self._error(f"the body is {size} bytes; the limit is {max_bytes}", max_bytes)
                await _reply(
                    send,
                    413,
                    {
                        "type": type(err).__name__,
                        "message": err.message,
                        "field": err.field,
                        "value": size,
                        "fix": err.fix,
                    },
                )
                return
        seen = 0
        replied = False  # the 413 has been sent: whatever the app answers after is dropped

        async def limited() -> Message:
            nonlocal seen, replied
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    # A body without Content-Length (chunked) over the limit: answered 413 here;
                    # the error raised stops the app's read (which would call it a bad body, 400).
                    err = self._error(f"the body exceeds the limit of {max_bytes} bytes", max_bytes)
                    if not replied:
                        replied = True
                        await _reply(
                            send,
                            413,
                            {
                                "type": type(err).__name__,
                                "message": err.message,
                                "field": err.field,
                                "value": None,
                                "fix": err.fix,
                            },
                        )
                    raise err
            return message

        async def send_once(message: Message) -> None:
            if not replied:
                await send(message)

        if self.max_json_depth is not None and _json_body(scope):
            checked = await self._json_checked(scope, limited, send, self.max_json_depth)
            if checked is None:
                return
            await self.app(scope, checked, send_once)
            return
        await self.app(scope, limited, send_once)

    async def _json_checked(
        self, scope: Scope, receive: Receive, send: Send, max_depth: int
    ) -> Receive | None:
        """Read the whole body and check its nesting; ``None`` once it has been answered (413 or
        422), else a ``receive`` that hands the app the body read (then the client's messages)."""
        body = bytearray()
        held: list[Message] = []
        while True:
            try:
                message = await receive()
            except PayloadTooLargeError:
                return None  # answered 413 by ``limited``
            if message["type"] != "http.request":
                held.append(message)  # the client left: the app sees it as it would have
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        data = bytes(body)
        # Brackets counted regardless of strings bound the depth from above: most bodies stop here.
        if data.count(b"[") + data.count(b"{") > max_depth:
            try:
                check_json_depth(data, UploadLimits(max_depth=max_depth))
            except LimitError as exc:
                await _reply(
                    send,
                    422,
                    {
                        "type": "ValidationError",
                        "message": f"body: {exc.message}",
                        "field": "body",
                        "value": None,
                        "fix": f"send JSON nested at most {max_depth} levels deep "
                        f"(the server's {exc.setting} setting)",
                    },
                )
                return None
        held.insert(0, {"type": "http.request", "body": data, "more_body": False})

        async def replay() -> Message:
            return held.pop(0) if held else await receive()

        return replay


class NoNulInUrl:
    """Refuse a NUL character (``%00``) in the path or a query parameter with 422, naming it.

    Text holding NUL cannot reach PostgreSQL (not even to compare); SQLite would keep it. Refused
    here once, for every route, the same on both databases.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = None
            if "\x00" in scope.get("path", ""):
                where = "path"
            else:
                query = scope.get("query_string") or b""
                if b"%00" in query or b"\x00" in query:
                    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                    where = next((k for k, v in pairs if "\x00" in k or "\x00" in v), "query")
            if where is not None:
                await _reply(
                    send,
                    422,
                    {
                        "type": "RequestValidationError",
                        "message": f"{where}: contains a NUL character (%00)",
                        "field": where.replace("\x00", "\ufffd"),
                        "value": None,
                        "fix": "remove the %00 from the URL",
                    },
                )
                return
        await self.app(scope, receive, send)
