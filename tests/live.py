"""A real HTTP server for tests that drive real clients (GDAL, OWSLib): uvicorn in a thread."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

__all__ = ["free_port", "need_tool", "serve_app"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port; yields its base URL, stops it on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def need_tool(name: str, package: str) -> str:
    """The path of a command-line tool; a loud skip without it, a failure in CI (CI=true)."""
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} is not installed (Debian package {package}); the real-client tests did not run"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " - CI must install it (.ci/run)")
    pytest.skip("LOUD SKIP: " + msg)
