"""The line as the planner's families read it: its parts as vertex arrays, the side a point is on."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from truceline.core.agreement import CompiledVersion
from truceline.core.arrays import FloatArray

__all__ = ["line_parts", "side_of"]


def line_parts(line: Any) -> list[FloatArray]:
    """The vertices (lon, lat rows) of each part of a LineString or MultiLineString."""
    return [shapely.get_coordinates(g) for g in getattr(line, "geoms", [line])]


def side_of(cv: CompiledVersion, lon: FloatArray, lat: FloatArray) -> NDArray[np.int8]:
    """Side of each point (+1 left, -1 right, 0 outside the area), from the side polygons.

    The polygons define the land each party holds (their areas are the areas reported), so people
    and sensors are placed with the same test; far from the line, past a sharp bend, the sign of
    the nearest segment can disagree with them.
    """
    left = shapely.contains_xy(cv.side_polygon(1), lon, lat)
    right = shapely.contains_xy(cv.side_polygon(-1), lon, lat)
    return np.where(left, 1, np.where(right, -1, 0)).astype(np.int8)
