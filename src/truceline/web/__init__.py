"""The mission dashboard: a single page served at ``/`` with its built assets under ``/static``.

The page's sources are in the repository's ``web/`` folder (npm packages: Leaflet, supercluster,
milsymbol, world-atlas, topojson-client; bundled by esbuild with ``make web``). The built files are
committed here in ``static/`` so that the Python package serves the dashboard without Node.js;
``static/build-info.json`` records the digest of the sources they were built from, and a test
fails when the sources changed without a rebuild.

:func:`install` adds the page and the dashboard's API routers to an application.
"""

from __future__ import annotations

from fastapi import FastAPI

__all__ = ["install"]


def install(app: FastAPI, api_prefix: str) -> None:
    """Serve the dashboard at ``/`` and its data and exports under ``api_prefix``."""
    from truceline.api.routes import dashboard, export
    from truceline.web import pages

    app.include_router(dashboard.router, prefix=api_prefix)
    app.include_router(export.router, prefix=api_prefix)
    app.include_router(pages.router)
