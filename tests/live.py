"""Real servers for tests that drive real clients: uvicorn in a thread (GDAL, OWSLib), or
``truceline`` itself in a child process (serve, demo --serve), and waiting for it to answer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

__all__ = ["free_port", "need_tool", "serve_app", "truceline_process", "wait_ready"]


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


def truceline_process(
    *args: object, stdout: int | IO[Any] = subprocess.PIPE, stderr: int | IO[Any] = subprocess.PIPE
) -> subprocess.Popen[bytes]:
    """``truceline ARGS`` in a child process, run by this interpreter (the installed package)."""
    command = [sys.executable, "-c", "from truceline.cli import app; app()", *map(str, args)]
    return subprocess.Popen(command, stdout=stdout, stderr=stderr)


def wait_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    timeout_s: float = 180,
    *,
    path: str = "/api/v1/ready",
    log: Path | None = None,
) -> bytes:
    """Poll ``url + path`` until it answers 200 (returns the body); fail if the process exits
    (with its stderr, or ``log``) or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = log.read_text() if log else proc.stderr.read().decode() if proc.stderr else ""
            raise AssertionError(f"the server exited ({proc.returncode}): {why}")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as r:
                if r.status == 200:
                    return bytes(r.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server at {url} did not answer {path} within {timeout_s:g} s")
