"""The mission dashboard: a single page served at ``/`` with its built assets under ``/static``.

The page's sources are in the repository's ``web/`` folder (npm packages: Leaflet, supercluster,
milsymbol, world-atlas, topojson-client; bundled by esbuild with ``make web``). The built files are
committed here in ``static/`` so that the Python package serves the dashboard without Node.js;
``static/build-info.json`` records the digest of the sources they were built from, and a test
fails when the sources changed without a rebuild.

This package holds the page only: :data:`router` serves it, and the API application mounts it
(:func:`truceline.api.create_app`) next to the routes the page reads
(:mod:`truceline.api.routes.dashboard`, :mod:`truceline.api.routes.export`).
"""

from __future__ import annotations

from truceline.web.pages import router

__all__ = ["router"]
