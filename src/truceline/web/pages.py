"""The page and its static files (no credentials needed: the data behind them is what is guarded).

Files are read from the package's ``static/`` folder once, kept in memory with their gzip form
and an ETag, and served with a strict Content-Security-Policy: the page loads nothing from other
origins and runs no inline script.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response

from truceline.errors import NotFoundError

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

#: What the page may load: only its own files; images also from data: and blob: (milsymbol's
#: symbols, exports, evidence thumbnails); audio and video from blob: (evidence files fetched
#: with the token); inline styles (Leaflet positions its panes with them); the report in an
#: iframe from `srcdoc` (no script runs in it: it is sandboxed).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "frame-src 'self' blob: data: about:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
_COMPRESSIBLE = (".js", ".css", ".json", ".html", ".svg", ".map", ".txt")
_TYPES = {".js": "text/javascript", ".json": "application/json", ".map": "application/json"}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    gz: bytes | None
    etag: str
    media_type: str


_STATIC = FsPath(__file__).with_name("static")


def _file(name: str) -> _File | None:
    parts = [p for p in name.split("/") if p]
    if not parts or any(p in (".", "..") or p.startswith(".") or "\\" in p for p in parts):
        return None
    path = _STATIC.joinpath(*parts)
    try:
        mtime = path.stat().st_mtime_ns  # a rebuilt asset is served at once, without a restart
    except (OSError, ValueError):  # ValueError: a NUL in the name
        return None
    return _load(str(path), mtime) if path.is_file() else None


@lru_cache(maxsize=64)
def _load(path: str, mtime_ns: int) -> _File:
    body = FsPath(path).read_bytes()
    suffix = FsPath(path).suffix
    media = _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    gz = gzip.compress(body, 6, mtime=0) if suffix in _COMPRESSIBLE and len(body) > 1024 else None
    return _File(body, gz, '"' + hashlib.sha256(body).hexdigest()[:32] + '"', media)


def _serve(name: str, accept_encoding: str | None, if_none_match: str | None, *, page: bool) -> Response:
    f = _file(name)
    if f is None:
        raise NotFoundError(
            f"no file {name!r}", field="path", value=name, fix="open / for the dashboard"
        )
    headers = {"ETag": f.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if page:
        headers["Content-Security-Policy"] = CSP
        headers["Referrer-Policy"] = "no-referrer"
    if if_none_match and f.etag in if_none_match:
        return Response(status_code=304, headers=headers)
    body = f.body
    if f.gz is not None and "gzip" in (accept_encoding or ""):
        body = f.gz
        headers["Content-Encoding"] = "gzip"
        headers["Vary"] = "Accept-Encoding"
    return Response(body, media_type=f.media_type, headers=headers)


@router.get("/")
def index(
    accept_encoding: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """The dashboard."""
    return _serve("index.html", accept_encoding, if_none_match, page=True)


@router.get("/static/{name:path}")
def static(
    name: Annotated[str, Path(max_length=200)],
    accept_encoding: Annotated[str | None, Header()] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """A built asset of the dashboard."""
    return _serve(name, accept_encoding, if_none_match, page=False)
