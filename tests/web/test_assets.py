"""The committed dashboard build matches its sources (web/), and is complete."""

from __future__ import annotations

import hashlib
import json
import re

from truceline.web import pages

from ..api.conftest import Api
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


def test_api_docs_are_served_from_the_package(sqlite_api: Api) -> None:
    """/api/v1/docs works with no internet: Swagger UI (swagger-ui-dist, built by `make web`) and
    the OpenAPI document come from the server itself, and every URL the page names answers."""
    client = sqlite_api.client
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    urls += re.findall(r"""url: ["']([^"']+)["']""", page.text)
    assert len(urls) >= 4 and "/api/v1/openapi.json" in urls, urls
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), f"{url} is not on the server"
        assert client.get(url).status_code == 200, url
    assert "http://" not in page.text and "https://" not in page.text
    bundle = client.get("/static/swagger/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript") and len(bundle.content) > 500_000
    info = json.loads((STATIC / "build-info.json").read_text())
    lock = json.loads((WEB / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/swagger-ui-dist"]["version"]
    assert info["packages"]["swagger-ui-dist"] == version
    assert info["files"]["swagger/swagger-ui-bundle.js"] == len(bundle.content)
    assert "Apache License" in (STATIC / "swagger" / "LICENSE.txt").read_text()
