"""Natural Earth coastlines and country borders under the report maps, from the file the dashboard ships.

``web/static/countries-10m.json`` is world-atlas's TopoJSON of Natural Earth 1:10m admin-0 countries
(objects ``countries`` and ``land``; ISC licence beside it). It is read here as a file, never downloaded,
and decoded without a TopoJSON library: quantised, delta-encoded arcs; a ring is a list of arc
indices, ``~i`` meaning arc ``i`` reversed. A border is an arc that two countries share; the
coastline is the boundary of ``land``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["ATLAS_PATH", "Basemap", "basemap", "draw_basemap"]

#: The dashboard's copy of world-atlas (a package data file, next to the web assets).
ATLAS_PATH = Path(__file__).resolve().parents[1] / "web" / "static" / "countries-10m.json"

LAND_COLOUR = "#F4F1EA"
SEA_COLOUR = "#E3EEF5"
COAST_COLOUR = "#6F8FA8"
BORDER_COLOUR = "#8A8A8A"


@dataclass(frozen=True)
class Basemap:
    """Land polygons (a spatial index over them) and the country-border lines, lon/lat degrees."""

    land: NDArray[Any]  # shapely Polygons
    land_tree: shapely.STRtree
    borders: NDArray[Any]  # shapely LineStrings

    def land_in(self, box: Any) -> Any:
        """The land inside a lon/lat box (a shapely geometry; empty over open sea)."""
        hits = self.land_tree.query(box)
        if len(hits) == 0:
            return shapely.Polygon()
        # Land polygons do not overlap one another: clipping each to the box is enough.
        x0, y0, x1, y1 = box.bounds
        clipped = shapely.clip_by_rect(self.land[hits], x0, y0, x1, y1)
        return shapely.make_valid(shapely.multipolygons(shapely.get_parts(clipped)))

    def borders_in(self, box: Any) -> Any:
        """The country borders inside a lon/lat box."""
        lines = self.borders[shapely.intersects(self.borders, box)]
        return shapely.intersection(shapely.multilinestrings(lines), box) if len(lines) else None


def _decode_arcs(topo: dict[str, Any]) -> list[NDArray[np.float64]]:
    scale = np.asarray(topo["transform"]["scale"], dtype=np.float64)
    translate = np.asarray(topo["transform"]["translate"], dtype=np.float64)
    return [np.cumsum(np.asarray(a, dtype=np.float64), axis=0) * scale + translate for a in topo["arcs"]]


def _ring(arcs: list[NDArray[np.float64]], refs: list[int]) -> NDArray[np.float64]:
    parts = []
    for k, i in enumerate(refs):
        xy = arcs[i] if i >= 0 else arcs[~i][::-1]
        parts.append(xy if k == 0 else xy[1:])  # consecutive arcs share their end point
    return np.concatenate(parts)


@cache
def basemap(path: Path = ATLAS_PATH) -> Basemap:
    """The decoded atlas (read once per process)."""
    topo = json.loads(path.read_text(encoding="utf-8"))
    arcs = _decode_arcs(topo)
    land: list[Any] = []
    for g in topo["objects"]["land"]["geometries"]:
        polys = g["arcs"] if g["type"] == "MultiPolygon" else [g["arcs"]]
        for rings in polys:
            shell, *holes = (_ring(arcs, r) for r in rings)
            if len(shell) >= 4:  # quantisation collapses the smallest islets to a point or two
                land.append(shapely.Polygon(shell, [h for h in holes if len(h) >= 4]))
    land_arr = np.asarray(land, dtype=object)
    # An arc used by two countries' rings is a border between them; one used once is coast.
    uses = np.zeros(len(arcs), dtype=np.int64)
    for g in topo["objects"]["countries"]["geometries"]:
        polys = g.get("arcs", [])
        polys = polys if g["type"] == "MultiPolygon" else [polys]
        refs = np.asarray([i for rings in polys for r in rings for i in r], dtype=np.int64)
        if len(refs):
            np.add.at(uses, np.where(refs >= 0, refs, ~refs), 1)
    shared = [i for i in np.flatnonzero(uses >= 2) if len(arcs[i]) >= 2]
    borders = np.asarray([shapely.LineString(arcs[i]) for i in shared], dtype=object)
    return Basemap(land=land_arr, land_tree=shapely.STRtree(land_arr), borders=borders)


def draw_basemap(ax: Any, view: tuple[float, float, float, float], *, zorder: float = 0.5) -> Any:
    """Sea, land, coastline and borders under everything else, clipped to ``view``; the land drawn.

    Returns the land inside the view (for placing labels on land).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import PathPatch

    from truceline.report.figures import polygon_path

    bm = basemap()
    box = shapely.box(*view)
    land = bm.land_in(box)
    ax.set_facecolor(SEA_COLOUR)
    path = polygon_path(land)
    if path is not None:
        # add_artist, not add_patch: the view is set, and add_patch would walk every vertex of
        # the coastline in Python to grow the data limits (seconds per report)
        ax.add_artist(
            PathPatch(path, facecolor=LAND_COLOUR, edgecolor=COAST_COLOUR, lw=0.6, zorder=zorder)
        )
    borders = bm.borders_in(box)
    if borders is not None and not borders.is_empty:
        segs = [shapely.get_coordinates(g) for g in shapely.get_parts(borders) if g.length > 0]
        ax.add_collection(
            LineCollection(
                segs, colors=BORDER_COLOUR, linewidths=0.7, linestyles=(0, (4, 2, 1, 2)), zorder=zorder
            )
        )
    return land
