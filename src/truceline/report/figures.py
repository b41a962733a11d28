"""Pieces the report figures share: shapely geometry as matplotlib paths, PNG bytes, data URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath
from numpy.typing import NDArray

__all__ = ["data_uri", "png_bytes", "polygon_path", "polygons"]


def png_bytes(fig: Figure, dpi: float) -> bytes:
    """The figure as PNG (Agg, without pyplot's global state), on white."""
    buf = io.BytesIO()
    FigureCanvasAgg(fig)  # attaches itself as fig.canvas
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, for self-contained HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def polygons(geom: Any) -> list[Any]:
    """The polygons of a geometry, collections flattened (intersections return them)."""
    out: list[Any] = []
    for g in shapely.get_parts(geom):
        if g.geom_type == "Polygon" and not g.is_empty:
            out.append(g)
        elif g.geom_type in ("MultiPolygon", "GeometryCollection"):
            out.extend(polygons(g))
    return out


def polygon_path(geom: Any) -> MplPath | None:
    """One compound matplotlib path (holes included) for the polygons of a geometry; None if none."""
    verts: list[NDArray[np.float64]] = []
    codes: list[NDArray[np.uint8]] = []
    for poly in polygons(geom):
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords, dtype=np.float64)
            c = np.full(len(xy), MplPath.LINETO, dtype=MplPath.code_type)
            c[0], c[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            verts.append(xy)
            codes.append(c)
    if not verts:
        return None
    return MplPath(np.concatenate(verts), np.concatenate(codes))
