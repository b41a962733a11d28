"""The committed dashboard build matches its sources (web/), and is complete."""

from __future__ import annotations

import hashlib
import json
import re

from truceline.web import pages

from .conftest import ROOT

WEB = ROOT / "web"
STATIC = ROOT / "src" / "truceline" / "web" / "static"


def sources_digest() -> str:
    """The recipe of web/build.mjs: SHA-256 over each source's POSIX path and bytes, sorted."""
    files = ["build.mjs", "index.html", "package.json", "package-lock.json"]
    files += [p.relative_to(WEB).as_posix() for p in (WEB / "src").rglob("*") if p.is_file()]
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.encode())
        h.update(b"\0")
        h.update((WEB / f).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def test_build_is_from_the_current_sources() -> None:
    info = json.loads((STATIC / "build-info.json").read_text())
    assert info["sources_sha256"] == sources_digest(), (
        "web/ changed since the dashboard was built: run `make web` and commit src/truceline/web/static"
    )
    lock = json.loads((WEB / "package-lock.json").read_text())
    for name in ("leaflet", "supercluster", "milsymbol", "world-atlas", "topojson-client", "esbuild"):
        assert info["packages"][name] == lock["packages"][f"node_modules/{name}"]["version"]


def test_index_points_at_the_built_files() -> None:
    html = (STATIC / "index.html").read_text()
    for name in ("app.js", "app.css"):
        m = re.search(rf"/static/{re.escape(name)}\?v=([0-9a-f]{{12}})", html)
        assert m, name
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12] == m.group(1)
    assert "__JS_HASH__" not in html and "http://" not in html and "https://" not in html
    topo = json.loads((STATIC / "countries-10m.json").read_text())
    assert topo["type"] == "Topology" and len(topo["objects"]["countries"]["geometries"]) > 200
    # Nothing outside the page's own origin: no CDN, no tile server.
    js = (STATIC / "app.js").read_text()
    assert not re.search(r"https?://[a-z0-9.-]*(tile|cdn|unpkg|jsdelivr|googleapis)", js)
    assert pages._file("app.js") is not None and pages._file("../pages.py") is None
