"""Exact, vectorised geodesy on the WGS84 ellipsoid.

Everything takes WGS84 longitude/latitude in degrees and works in metres inside. Lines are sequences of
vertices joined by geodesics.

The distance from a point to a line is computed without any map projection:

1. the line is densified along its geodesics (vertices at most ``max_segment_m`` apart) and its vertices
   are indexed in Earth-centred, Earth-fixed (ECEF) coordinates with a KD-tree;
2. for each point, the segments next to its ``k`` nearest vertices are candidates; on each, the foot of
   the perpendicular is found on the 3-D chord and lifted back onto the ellipsoid surface;
3. the geodesic length of the chord ``c`` from the point to the foot follows from the curvature of the
   ellipsoid: ``s = c + c**3 / (24 R**2)``. With ``R`` the Gaussian radius at the foot this is within a
   few centimetres of GeographicLib's geodesic up to 200 km (``tests/core/test_geodesy.py`` checks it
   against :class:`pyproj.Geod`), against hundreds of metres for a UTM shortcut.

All of it is NumPy array arithmetic: no Python loop per point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pyproj import Geod
from scipy.spatial import cKDTree

__all__ = [
    "GEOD",
    "WGS84_A",
    "WGS84_F",
    "LineIndex",
    "Nearest",
    "densify_geodesic",
    "ecef",
    "geodesic_area_km2",
    "geodesic_length_m",
    "offset_region",
]

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
_E2 = WGS84_F * (2 - WGS84_F)
_B = WGS84_A * (1 - WGS84_F)

#: The one :class:`pyproj.Geod` everything shares (GeographicLib's exact geodesics).
GEOD = Geod(ellps="WGS84")

FloatArray = NDArray[np.float64]


def ecef(lon: ArrayLike, lat: ArrayLike) -> FloatArray:
    """Earth-centred, Earth-fixed coordinates (m) of points on the WGS84 surface, shape ``(n, 3)``."""
    lam = np.radians(np.asarray(lon, dtype=np.float64))
    phi = np.radians(np.asarray(lat, dtype=np.float64))
    sphi = np.sin(phi)
    cphi = np.cos(phi)
    n = WGS84_A / np.sqrt(1.0 - _E2 * sphi * sphi)
    return np.stack(
        [n * cphi * np.cos(lam), n * cphi * np.sin(lam), n * (1.0 - _E2) * sphi], axis=-1
    )


def _to_surface(xyz: FloatArray) -> FloatArray:
    """Scale points radially onto the ellipsoid surface."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    k = 1.0 / np.sqrt((x * x + y * y) / (WGS84_A * WGS84_A) + (z * z) / (_B * _B))
    return xyz * k[..., None]


def _surface_lonlat(xyz: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Geodetic lon/lat (deg) of points lying on the ellipsoid surface."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    p = np.hypot(x, y)
    # On the surface, tan(lat) = z / ((1 - e2) p) exactly.
    return np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, (1.0 - _E2) * p))


def _chord_to_arc(chord_m: FloatArray, sin_lat: FloatArray) -> FloatArray:
    """Geodesic length (m) of a surface curve whose 3-D chord is ``chord_m``.

    ``s = c + c^3 / (24 R^2) + 3 c^5 / (640 R^4)`` with ``R`` the Gaussian radius of curvature: the
    direction-dependence of the true radius changes ``s`` by less than 5 cm at 200 km.
    """
    r = WGS84_A * np.sqrt(1.0 - _E2) / (1.0 - _E2 * sin_lat * sin_lat)
    q = (chord_m / r) ** 2
    return chord_m * (1.0 + q / 24.0 + 3.0 * q * q / 640.0)


def geodesic_length_m(lon: ArrayLike, lat: ArrayLike) -> float:
    """Geodesic length (m) of the polyline through the given vertices."""
    return float(GEOD.line_length(np.asarray(lon, float), np.asarray(lat, float)))


def geodesic_area_km2(geom: shapely.Geometry) -> float:
    """Geodesic area (km2) of a (multi)polygon given in lon/lat; holes are subtracted."""
    if geom.is_empty:
        return 0.0
    area, _ = GEOD.geometry_area_perimeter(shapely.orient_polygons(geom))
    return abs(float(area)) / 1e6


def densify_geodesic(
    lon: ArrayLike, lat: ArrayLike, max_segment_m: float
) -> tuple[FloatArray, FloatArray]:
    """Insert vertices along each geodesic so that none is longer than ``max_segment_m``."""
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if lon.size < 2:
        return lon.copy(), lat.copy()
    _, _, dist = GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    out_lon: list[FloatArray] = []
    out_lat: list[FloatArray] = []
    # A loop over the line's own vertices (hundreds), done once per agreement: not a hot path.
    for i, d in enumerate(np.atleast_1d(dist)):
        out_lon.append(lon[i : i + 1])
        out_lat.append(lat[i : i + 1])
        n_extra = int(np.ceil(d / max_segment_m)) - 1
        if n_extra > 0:
            pts = np.asarray(GEOD.npts(lon[i], lat[i], lon[i + 1], lat[i + 1], n_extra))
            out_lon.append(pts[:, 0])
            out_lat.append(pts[:, 1])
    out_lon.append(lon[-1:])
    out_lat.append(lat[-1:])
    return np.concatenate(out_lon), np.concatenate(out_lat)


@dataclass(frozen=True, slots=True)
class Nearest:
    """Nearest point of a line to each query point (all arrays of the query's shape).

    Attributes
    ----------
    distance_m
        Geodesic distance to the line (m), >= 0.
    side
        +1 left of the line (walking it in its digitised order), -1 right, 0 on it.
    foot_lon, foot_lat
        The nearest point on the line (deg).
    chainage_m
        Geodesic distance along the line from its first vertex to the foot (m); parts of a
        multi-part line follow each other.
    at_end
        True where the foot is an end vertex of a part (the point lies beyond the line's end).
    part
        Index of the part holding the foot.
    """

    distance_m: FloatArray
    side: NDArray[np.int8]
    foot_lon: FloatArray
    foot_lat: FloatArray
    chainage_m: FloatArray
    at_end: NDArray[np.bool_]
    part: NDArray[np.intp]

    @property
    def signed_m(self) -> FloatArray:
        """Distance signed by side: positive on the left, negative on the right (m)."""
        return self.distance_m * np.where(self.side < 0, -1.0, 1.0)


class LineIndex:
    """A (multi-part) line indexed for exact, vectorised nearest-point queries.

    Parameters
    ----------
    parts
        One ``(n, 2)`` array of lon/lat vertices per part; consecutive vertices are joined by geodesics.
    max_segment_m
        Densification step; smaller means a larger index but safer candidate search.
    k
        Number of nearest vertices whose adjoining segments are candidates.

    Examples
    --------
    >>> idx = LineIndex([np.array([[30.0, 48.0], [31.0, 48.0]])])
    >>> n = idx.nearest([30.5], [48.1])
    >>> round(float(n.distance_m[0]))
    11120
    >>> int(n.side[0])  # north of an eastward line is its left
    1
    """

    def __init__(
        self, parts: Sequence[ArrayLike], *, max_segment_m: float = 2000.0, k: int = 4
    ) -> None:
        lons: list[FloatArray] = []
        lats: list[FloatArray] = []
        part_ids: list[NDArray[np.intp]] = []
        for i, part in enumerate(parts):
            arr = np.asarray(part, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] < 2:
                raise ValueError(f"line part {i} needs at least two vertices")
            lo, la = densify_geodesic(arr[:, 0], arr[:, 1], max_segment_m)
            lons.append(lo)
            lats.append(la)
            part_ids.append(np.full(lo.size, i, dtype=np.intp))
        if not lons:
            raise ValueError("a line needs at least one part")
        self.lon = np.concatenate(lons)
        self.lat = np.concatenate(lats)
        self.part_of_vertex = np.concatenate(part_ids)
        self.xyz = ecef(self.lon, self.lat)
        nv = self.lon.size
        # Segment j joins vertex j and j+1; it exists only inside a part.
        self.segment_ok = np.zeros(nv, dtype=bool)
        self.segment_ok[:-1] = self.part_of_vertex[:-1] == self.part_of_vertex[1:]
        seg_len = np.zeros(nv)
        _, _, d = GEOD.inv(self.lon[:-1], self.lat[:-1], self.lon[1:], self.lat[1:])
        seg_len[:-1] = np.where(self.segment_ok[:-1], d, 0.0)
        self.segment_length_m = seg_len
        self.chainage_at_vertex = np.concatenate([[0.0], np.cumsum(seg_len[:-1])])
        starts = np.r_[True, self.part_of_vertex[1:] != self.part_of_vertex[:-1]]
        ends = np.r_[self.part_of_vertex[1:] != self.part_of_vertex[:-1], True]
        self.is_part_start = starts
        self.is_part_end = ends
        self.length_m = float(seg_len.sum())
        self.n_parts = len(lons)
        self.k = int(min(k, nv))
        self._tree = cKDTree(self.xyz)
        self._cells: dict[int, NDArray[np.intp]] = {}

    def nearest(self, lon: ArrayLike, lat: ArrayLike) -> Nearest:
        """Nearest point of the line to each (lon, lat); see :class:`Nearest`.

        Each point starts on the line's branch nearest to the centre of its grid cell (a cell may
        see up to three branches near bends and the medial axis) and walks along the line to the
        local minimum of the distance; the smallest over the branches is the answer.
        """
        lon = np.atleast_1d(np.asarray(lon, dtype=np.float64)).ravel()
        lat = np.atleast_1d(np.asarray(lat, dtype=np.float64)).ravel()
        n = lon.size
        if n == 0:
            e = np.zeros(0)
            return Nearest(e, np.zeros(0, np.int8), e, e, e, np.zeros(0, bool), np.zeros(0, np.intp))
        p = ecef(lon, lat)
        starts = self._cell_starts(lon, lat)  # (n, 3) vertex indices, -1 where absent
        seg, t, chord2 = self._walk(p, starts[:, 0])
        for col in range(1, starts.shape[1]):
            rows = np.flatnonzero(starts[:, col] >= 0)
            if rows.size == 0:
                continue
            s2, t2, c2 = self._walk(p[rows], starts[rows, col])
            better = c2 < chord2[rows]
            r = rows[better]
            seg[r], t[r], chord2[r] = s2[better], t2[better], c2[better]
        return self._result(p, seg, t, np.sqrt(chord2))

    # -- internals ---------------------------------------------------------------------------

    _CELL_DEG = 0.025

    def _cell_starts(self, lon: FloatArray, lat: FloatArray) -> NDArray[np.intp]:
        """Start vertices (up to three branches) for each point, from its grid cell's centre."""
        cell = np.floor(lon / self._CELL_DEG).astype(np.int64) * 100_000 + np.floor(
            lat / self._CELL_DEG
        ).astype(np.int64)
        uniq, inverse = np.unique(cell, return_inverse=True)
        cx = (np.floor_divide(uniq, 100_000) + 0.5) * self._CELL_DEG
        cy = (np.mod(uniq, 100_000) + 0.5) * self._CELL_DEG
        todo = np.array([int(c) not in self._cells for c in uniq], dtype=bool)
        if todo.any():
            new = self._compute_cell_starts(cx[todo], cy[todo])
            for c, row in zip(uniq[todo].tolist(), new, strict=True):
                self._cells[c] = row
        table = np.stack([self._cells[int(c)] for c in uniq.tolist()])
        return table[inverse]

    def _compute_cell_starts(self, cx: FloatArray, cy: FloatArray) -> NDArray[np.intp]:
        """For cell centres: the nearest vertex of each line branch that may hold a nearest point."""
        c = ecef(cx, cy)
        kq = min(self._K_CELL, self.lon.size)
        d, v = self._tree.query(c, k=kq)
        d = d.reshape(len(cx), -1)
        v = v.reshape(len(cx), -1)
        # Half the cell diagonal, generously (a degree of latitude is at most 111.7 km).
        slack = 2.0 * self._CELL_DEG * 111_700.0
        out = np.full((len(cx), 3), -1, dtype=np.intp)
        order = np.argsort(v, axis=1)
        vs = np.take_along_axis(v, order, axis=1)
        ds = np.take_along_axis(d, order, axis=1)
        # Local minima of the distance along runs of consecutive vertices: one per branch, and one
        # on each arm of a concave bend (where a single walk would stop at the nearer arm's foot).
        brk = np.ones_like(vs, dtype=bool)
        brk[:, 1:] = (np.diff(vs, axis=1) > 1) | (
            self.part_of_vertex[vs[:, 1:]] != self.part_of_vertex[vs[:, :-1]]
        )
        prev_ok = ~brk
        next_ok = np.zeros_like(brk)
        next_ok[:, :-1] = ~brk[:, 1:]
        d_prev = np.where(prev_ok, np.roll(ds, 1, axis=1), np.inf)
        d_next = np.where(next_ok, np.roll(ds, -1, axis=1), np.inf)
        local_min = (ds <= d_prev) & (ds <= d_next)
        cand = np.where(local_min & (ds <= ds.min(axis=1, keepdims=True) + slack), ds, np.inf)
        pick = np.argsort(cand, axis=1)[:, :3]
        ok = np.isfinite(np.take_along_axis(cand, pick, axis=1))
        out[:, : pick.shape[1]] = np.where(ok, np.take_along_axis(vs, pick, axis=1), -1)
        return out

    _K_CELL = 48

    def _walk(
        self,
        p: FloatArray,
        start_vertex: NDArray[np.intp],
        *,
        depth: int = 0,
        on_segment: bool = False,
    ) -> tuple[NDArray[np.intp], FloatArray, FloatArray]:
        """Walk each point's foot along the line to the local minimum of the distance.

        Returns the segment index, the chord parameter ``t`` in [0, 1] and the squared 3-D distance
        to the lifted foot.
        """
        nv = self.lon.size
        # Start on whichever of the two segments meeting at the start vertex is nearer.
        after = np.minimum(start_vertex, nv - 2).astype(np.intp)
        before = np.maximum(start_vertex - 1, 0).astype(np.intp)
        after_ok = self.segment_ok[after] & (start_vertex <= nv - 2)
        before_ok = self.segment_ok[before] & (start_vertex >= 1)
        d_after = np.where(after_ok, self._chord2(p, after), np.inf)
        d_before = np.where(before_ok, self._chord2(p, before), np.inf)
        seg = np.where((d_before < d_after) & ~on_segment, before, after)
        direction = np.zeros(seg.size, dtype=np.int8)
        active = np.arange(seg.size)
        t = np.zeros(seg.size)
        for _ in range(nv):
            if active.size == 0:
                break
            j = seg[active]
            a = self.xyz[j]
            ab = self.xyz[j + 1] - a
            tr = np.einsum("nk,nk->n", p[active] - a, ab) / np.einsum("nk,nk->n", ab, ab)
            t[active] = tr
            back = (tr < 0.0) & ~self.is_part_start[j] & (direction[active] <= 0)
            fwd = (tr > 1.0) & ~self.is_part_end[j + 1] & (direction[active] >= 0)
            seg[active[back]] -= 1
            seg[active[fwd]] += 1
            direction[active[back]] = -1
            direction[active[fwd]] = 1
            active = active[back | fwd]
        t = np.clip(t, 0.0, 1.0)
        a = self.xyz[seg]
        foot = _to_surface(a + t[:, None] * (self.xyz[seg + 1] - a))
        diff = p - foot
        best = np.einsum("nk,nk->n", diff, diff)
        # Look a few segments past where the walk stopped: near a concave bend the other arm holds
        # a second local minimum that the walk cannot climb to.
        jump = seg.copy()
        for off in (-2, -1, 1, 2):
            cand = seg + off
            ok = (cand >= 0) & (cand <= nv - 2)
            cand = np.clip(cand, 0, nv - 2)
            ok &= self.segment_ok[cand] & (self.part_of_vertex[cand] == self.part_of_vertex[seg])
            d2 = np.where(ok, self._chord2(p, cand), np.inf)
            better = d2 < best * (1.0 - 1e-12) - 1e-6
            best = np.where(better, d2, best)
            jump = np.where(better, cand, jump)
        moved = np.flatnonzero(jump != seg)
        if moved.size and depth < 8:
            s2, t2, c2 = self._walk(p[moved], jump[moved], depth=depth + 1, on_segment=True)
            seg[moved], t[moved], best[moved] = s2, t2, c2
        return seg, t, best

    def _chord2(self, p: FloatArray, seg: NDArray[np.intp]) -> FloatArray:
        """Squared 3-D distance from each point to the lifted foot on segment ``seg``."""
        a = self.xyz[seg]
        ab = self.xyz[seg + 1] - a
        t = np.clip(np.einsum("nk,nk->n", p - a, ab) / np.einsum("nk,nk->n", ab, ab), 0.0, 1.0)
        diff = p - _to_surface(a + t[:, None] * ab)
        return np.einsum("nk,nk->n", diff, diff)

    def _result(
        self, p: FloatArray, seg: NDArray[np.intp], t: FloatArray, chord: FloatArray
    ) -> Nearest:
        nv = self.lon.size
        a = self.xyz[seg]
        ab = self.xyz[seg + 1] - a
        foot = _to_surface(a + t[:, None] * ab)
        sin_lat = foot[:, 2] / np.linalg.norm(foot, axis=1)
        dist = _chord_to_arc(chord, sin_lat)
        # Side: sign of (segment direction x foot->point) along the local vertical.
        s = np.einsum("nk,nk->n", np.cross(ab, p - foot), foot)
        side = np.sign(s).astype(np.int8)
        side[dist < 1e-6] = 0
        flon, flat = _surface_lonlat(foot)
        at_end = ((t <= 0.0) & self.is_part_start[seg]) | (
            (t >= 1.0) & self.is_part_end[np.minimum(seg + 1, nv - 1)]
        )
        return Nearest(
            distance_m=dist,
            side=side,
            foot_lon=flon,
            foot_lat=flat,
            chainage_m=self.chainage_at_vertex[seg] + t * self.segment_length_m[seg],
            at_end=at_end,
            part=self.part_of_vertex[seg],
        )

    def distance_m(self, lon: ArrayLike, lat: ArrayLike) -> FloatArray:
        """Geodesic distance (m) from each point to the line."""
        return self.nearest(lon, lat).distance_m


def _arc(
    lon0: float, lat0: float, az_from: float, az_to: float, dist_m: float, tol_m: float
) -> FloatArray:
    """Points at ``dist_m`` from a centre for azimuths from ``az_from`` to ``az_to`` (increasing)."""
    sweep = az_to - az_from
    if sweep <= 0:
        return np.empty((0, 2))
    step = np.degrees(2.0 * np.arccos(max(1.0 - tol_m / dist_m, -1.0)))
    n = max(int(np.ceil(sweep / max(step, 1e-3))), 1)
    az = np.linspace(az_from, az_to, n + 1)
    lo, la, _ = GEOD.fwd(np.full(az.size, lon0), np.full(az.size, lat0), az, np.full(az.size, dist_m))
    return np.column_stack([lo, la])


def offset_region(
    index: LineIndex, dist_m: float, side: int, *, tol_m: float = 0.25
) -> shapely.Geometry:
    """Every point within ``dist_m`` of the line on one side, as a lon/lat polygon.

    Built geodesically: each densified segment is swept perpendicular to itself by ``dist_m`` with
    :meth:`pyproj.Geod.fwd`, gaps at convex bends are filled with geodesic arcs (chords within
    ``tol_m`` of the true circle) and full discs are added at the ends; the caller clips the result
    to the side's polygon. Every vertex of the outline lies exactly ``dist_m`` from the line, so the
    drawn zone matches the computed one.

    Parameters
    ----------
    side
        +1 for the left side of the line, -1 for the right.
    """
    if dist_m <= 0:
        return shapely.Polygon()
    lon, lat = index.lon, index.lat
    ok = np.flatnonzero(index.segment_ok)
    az_a, az_b_back, _ = GEOD.inv(lon[ok], lat[ok], lon[ok + 1], lat[ok + 1])
    az_a = np.atleast_1d(az_a)
    az_b = np.atleast_1d(az_b_back) + 180.0  # forward azimuth of the segment at its end
    # Left of a direction of travel is azimuth - 90.
    normal = -90.0 if side > 0 else 90.0
    dd = np.full(ok.size, dist_m)
    a_lon, a_lat, _ = GEOD.fwd(lon[ok], lat[ok], az_a + normal, dd)
    b_lon, b_lat, _ = GEOD.fwd(lon[ok + 1], lat[ok + 1], az_b + normal, dd)
    quads = np.stack(
        [
            np.column_stack([lon[ok], lat[ok]]),
            np.column_stack([lon[ok + 1], lat[ok + 1]]),
            np.column_stack([b_lon, b_lat]),
            np.column_stack([a_lon, a_lat]),
            np.column_stack([lon[ok], lat[ok]]),
        ],
        axis=1,
    )
    pieces: list[shapely.Geometry] = list(shapely.polygons(quads))
    # Convex bends on this side: a wedge between the two offset directions. Vertices shared by two
    # consecutive segments j-1 and j are those where segment j-1 is valid and j is valid too.
    seg_pos = np.full(index.lon.size, -1)
    seg_pos[ok] = np.arange(ok.size)
    inner = ok[(ok > 0)]
    inner = inner[index.segment_ok[inner - 1]]
    for v in inner:  # loop over line vertices (thousands), done once per zone: not a hot path
        az_in = az_b[seg_pos[v - 1]]
        az_out = az_a[seg_pos[v]]
        turn = (az_out - az_in + 180.0) % 360.0 - 180.0
        if abs(turn) < 1e-3:
            # Concave on this side, or straight: the quads overlap or share an edge up to rounding;
            # a triangle between the two offset points closes any sliver the rounding leaves.
            tri = [[lon[v], lat[v]], [b_lon[seg_pos[v - 1]], b_lat[seg_pos[v - 1]]],
                   [a_lon[seg_pos[v]], a_lat[seg_pos[v]]], [lon[v], lat[v]]]
            pieces.append(shapely.Polygon(tri))
            continue
        if (turn > 0) != (side > 0):
            continue  # concave on this side: the two quads overlap
        lo_, hi_ = (az_in + normal, az_in + normal + turn) if turn > 0 else (
            az_in + normal + turn,
            az_in + normal,
        )
        arc = _arc(lon[v], lat[v], lo_, hi_, dist_m, tol_m)
        # Reuse the quads' own corner points at the arc's ends so the pieces share vertices exactly.
        b_end = [b_lon[seg_pos[v - 1]], b_lat[seg_pos[v - 1]]]
        a_start = [a_lon[seg_pos[v]], a_lat[seg_pos[v]]]
        first, last = (b_end, a_start) if turn > 0 else (a_start, b_end)
        arc[0], arc[-1] = first, last
        pieces.append(shapely.Polygon(np.vstack([[lon[v], lat[v]], arc, [[lon[v], lat[v]]]])))
    # Discs at the part ends (the side polygon cuts them down to the right half).
    for v in np.flatnonzero(index.is_part_start | index.is_part_end):
        ring = _arc(lon[v], lat[v], 0.0, 360.0, dist_m, tol_m)
        pieces.append(shapely.Polygon(ring))
    # Snap to a 1e-9 deg grid (0.1 mm) so pieces that meet up to rounding share their vertices.
    merged = shapely.union_all(
        shapely.set_precision(shapely.make_valid(np.asarray(pieces, dtype=object)), 1e-9)
    )
    return shapely.make_valid(merged)
