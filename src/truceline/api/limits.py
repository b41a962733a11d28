"""A bound on request bodies, enforced before the body is parsed (pure ASGI middleware)."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from truceline.errors import PayloadTooLargeError

__all__ = ["BodyLimit"]


class BodyLimit:
    """Refuse bodies over ``max_bytes`` with 413: by ``Content-Length`` up front, else while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self, message: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            message,
            field="body",
            fix=f"send at most {self.max_bytes} bytes; split the batch",
        )

    async def _reply(self, send: Send, status: int, detail: dict[str, Any]) -> None:
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await self._reply(
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
            if size > self.max_bytes:
                err = self._error(f"the body is {size} bytes; the limit is {self.max_bytes}")
                await self._reply(
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

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the app's body read: the app's error handler answers 413.
                    raise self._error(f"the body exceeds the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)
