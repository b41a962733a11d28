"""The line of contact between two parties' territories, from control-of-territory polygons.

Published control maps (ISW, DeepState, ...) give the ground each party holds as polygons, often
one party's polygons plus the country's outline. :func:`contact_line` derives what an agreement
needs from them: the line where the two territories meet (not the coast or the international
border, which bound only one of them), oriented with the left party's ground on its left,
simplified, its ends carried to the boundary of the area of application (the union of the two
territories) where they come near it, in as many parts as the front has open pieces, and what it
left out (enclaves: closed rings of contact).

Every tolerance is in metres and applied in a local azimuthal-equidistant plane
(:class:`~truceline.core.geodesy.LocalFrame`), never in degrees. Pure shapely/pyproj.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from truceline.core.geodesy import LocalFrame, geodesic_area_km2
from truceline.errors import AgreementError

__all__ = ["Contact", "ContactPiece", "contact_line", "split_outline"]


@dataclass(frozen=True)
class ContactPiece:
    """A piece of the shared boundary left out of the line (WGS84 lon/lat)."""

    kind: str  # "enclave" (a closed ring: one party's ground inside the other's) or "piece"
    geometry: Any
    length_km: float
    area_km2: float = 0.0  # an enclave's area (its ring's interior)


@dataclass(frozen=True)
class Contact:
    """The line of contact and what was derived with it (geometry in WGS84 lon/lat)."""

    line: Any  # LineString, or MultiLineString of the pieces of front; left party's ground on the left
    area: Any  # (Multi)Polygon: the area of application
    left: Any  # the left party's territory (as given, gaps not closed)
    right: Any
    raw_length_km: float  # the shared boundary in the line, before simplification
    hausdorff_m: float  # between the simplified line and the shared boundary (local plane)
    snapped_m: tuple[float, float]  # how far each end of the longest part was carried to the edge
    overlap_km2: float  # ground both parties' polygons claim
    others: tuple[ContactPiece, ...] = field(default=())  # enclaves (closed rings), not in the line
    part_km: tuple[float, ...] = field(default=())  # each part's length before simplification


def split_outline(held: Any, outline: Any) -> tuple[Any, Any]:
    """One party's polygons and the country's outline -> (held, the rest), clipped to the outline.

    Computed in a local metric plane so the two territories share their boundary exactly.
    """
    frame = _frame(held, outline)
    h = shapely.make_valid(_to_xy(frame, held))
    o = shapely.make_valid(_to_xy(frame, outline))
    h = _polygons(shapely.intersection(h, o))
    rest = _polygons(shapely.difference(o, h))
    if h.is_empty:
        raise AgreementError(
            "the held territory does not overlap the country's outline; check both files are "
            "WGS84 lon/lat of the same country",
            field="--country",
        )
    if rest.is_empty:
        raise AgreementError(
            "the held territory covers the whole outline: no other party's ground is left",
            field="--country",
        )
    return _to_lonlat(frame, h), _to_lonlat(frame, rest)


def contact_line(
    left: Any,
    right: Any,
    *,
    tolerance_m: float = 100.0,
    simplify_m: float = 50.0,
    area_km: float | None = None,
    within: Any = None,
) -> Contact:
    """The line of contact between two territories (lon/lat (Multi)Polygons).

    Parameters
    ----------
    left, right
        The two parties' territories; the line is oriented with ``left`` on its left.
    tolerance_m
        Gaps and slivers narrower than twice this are closed; boundary segments within it of the
        other party's ground are shared, those within it of the outer edge (coast, border) are not.
    simplify_m
        The line is simplified (Douglas-Peucker, topology kept) to this many metres.
    area_km
        The area of application is the union of the territories, cut to this far from the line
        when given.
    within
        A (lon/lat) polygon the area of application and the line are cut to (a template's area).
    """
    if tolerance_m <= 0 or simplify_m < 0:
        raise AgreementError("give a tolerance > 0 m and a simplification >= 0 m", field="tolerance")
    frame = _frame(left, right)
    a = _polygons(shapely.make_valid(_to_xy(frame, left)))
    b = _polygons(shapely.make_valid(_to_xy(frame, right)))
    if within is not None:
        w = shapely.make_valid(_to_xy(frame, within))
        a, b = _polygons(shapely.intersection(a, w)), _polygons(shapely.intersection(b, w))
    if a.is_empty or b.is_empty:
        raise AgreementError("a party's territory is empty; give polygons for both", field="party")
    overlap = _polygons(shapely.intersection(a, b))
    union = shapely.union(a, b)
    # closing: fills the gaps and slivers between the two territories narrower than 2 tol
    closed = _polygons(shapely.buffer(shapely.buffer(union, tolerance_m), -tolerance_m))
    outer = shapely.boundary(closed)
    near_b = shapely.buffer(b, tolerance_m)
    shared = shapely.intersection(shapely.boundary(a), near_b)
    contact = shapely.difference(shared, shapely.buffer(outer, tolerance_m))
    pieces = _line_parts(contact, min_m=2.0 * tolerance_m)
    if not pieces:
        raise AgreementError(
            f"the two territories share no boundary away from their outer edge (within "
            f"{tolerance_m:g} m); check the parties' polygons touch, or raise the tolerance",
            field="party",
        )
    lengths = np.array([p.length for p in pieces])
    rings = np.array([_is_ring(p, tolerance_m) for p in pieces])
    if np.all(rings):
        raise AgreementError(
            "the shared boundary is a closed ring: one party's ground lies wholly inside the "
            "other's, so no line divides the area into two sides; give the country's outline or "
            "a map where the line runs from edge to edge",
            field="party",
        )
    # Every open piece of front is a part of the line (longest first), each oriented with the left
    # party's ground on its left; closed rings (enclaves) are left out: the sides, taken from the
    # parties' ground, place them.
    order = np.argsort(-np.where(rings, -1.0, lengths))
    opened = [_oriented(pieces[int(i)], a, b, tolerance_m) for i in order if not rings[i]]
    simple = [shapely.simplify(p, simplify_m, preserve_topology=True) for p in opened]
    step = max(simplify_m, tolerance_m) / 2.0
    hausdorff = max(_hausdorff_m(s, p, step_m=step) for s, p in zip(simple, opened, strict=True))
    area = closed
    if area_km is not None:
        reach = shapely.buffer(shapely.MultiLineString(opened), area_km * 1000.0)
        area = _polygons(shapely.intersection(closed, reach))
    snapped_parts = [_snap_ends(p, area, max_m=10.0 * tolerance_m + simplify_m) for p in simple]
    parts = [p for p, _ in snapped_parts]
    line = parts[0] if len(parts) == 1 else shapely.MultiLineString(parts)
    others = []
    for i in order:
        if not rings[i]:
            continue
        p = pieces[int(i)]
        ll = _to_lonlat(frame, p)
        poly = shapely.Polygon(shapely.get_coordinates(ll))
        others.append(ContactPiece("enclave", ll, float(p.length) / 1000.0, geodesic_area_km2(poly)))
    return Contact(
        line=_to_lonlat(frame, line),
        area=_to_lonlat(frame, area),
        left=_to_lonlat(frame, a),
        right=_to_lonlat(frame, b),
        raw_length_km=float(sum(p.length for p in opened)) / 1000.0,
        hausdorff_m=hausdorff,
        snapped_m=snapped_parts[0][1],
        part_km=tuple(float(p.length) / 1000.0 for p in opened),
        overlap_km2=float(overlap.area) / 1e6,
        others=tuple(others),
    )


def _frame(*geoms: Any) -> LocalFrame:
    xy = np.vstack([shapely.get_coordinates(g) for g in geoms])
    if xy.size == 0:
        raise AgreementError("the territory holds no coordinates", field="party")
    return LocalFrame.centred_on(xy[:, 0], xy[:, 1])


#: Edges are densified to this step (deg) before projecting: a file's edge is straight in lon/lat
#: (RFC 7946), and a long one (a border along a parallel) would bow by hundreds of metres in the plane.
_DENSIFY_DEG = 0.005


def _to_xy(frame: LocalFrame, g: Any) -> Any:
    g = shapely.segmentize(g, _DENSIFY_DEG)
    return shapely.transform(g, lambda c: np.column_stack(frame.to_xy(c[:, 0], c[:, 1])))


def _to_lonlat(frame: LocalFrame, g: Any) -> Any:
    return shapely.transform(g, lambda c: np.column_stack(frame.to_lonlat(c[:, 0], c[:, 1])))


def _polygons(g: Any) -> Any:
    """The polygons of an overlay's result (shared edges leave lines and points behind)."""
    polys = [p for p in shapely.get_parts(shapely.make_valid(g)) if p.geom_type == "Polygon"]
    polys = [q for p in polys for q in shapely.get_parts(p) if not q.is_empty]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _line_parts(g: Any, min_m: float) -> list[Any]:
    """The lines of ``g`` merged end to end, fragments shorter than ``min_m`` left out."""
    segs = [p for p in shapely.get_parts(g) if p.geom_type in ("LineString", "MultiLineString")]
    if not segs:
        return []
    merged = shapely.line_merge(shapely.union_all(segs))
    return [p for p in shapely.get_parts(merged) if p.length >= min_m]


def _is_ring(line: Any, tol_m: float) -> bool:
    xy = shapely.get_coordinates(line)
    return bool(np.hypot(*(xy[0] - xy[-1])) <= tol_m and line.length > 4 * tol_m)


def _oriented(line: Any, a: Any, b: Any, tol_m: float) -> Any:
    """``line`` reversed if needed so that ``a`` lies on its left (votes of every segment, by
    length, of probes ``tol_m`` either side of its middle)."""
    xy = shapely.get_coordinates(line)
    d = np.diff(xy, axis=0)
    seg = np.hypot(d[:, 0], d[:, 1])
    ok = seg > 0
    mid = (xy[:-1] + xy[1:])[ok] / 2.0
    n = np.column_stack([-d[ok, 1], d[ok, 0]]) / seg[ok, None]
    off = max(tol_m, 1.0)
    pl, pr = mid + n * off, mid - n * off
    in_a_l = shapely.contains_xy(a, pl[:, 0], pl[:, 1])
    in_b_l = shapely.contains_xy(b, pl[:, 0], pl[:, 1])
    in_a_r = shapely.contains_xy(a, pr[:, 0], pr[:, 1])
    in_b_r = shapely.contains_xy(b, pr[:, 0], pr[:, 1])
    w = seg[ok]
    a_left = float(w[(in_a_l & ~in_b_l) | (in_b_r & ~in_a_r)].sum())
    b_left = float(w[(in_b_l & ~in_a_l) | (in_a_r & ~in_b_r)].sum())
    return shapely.reverse(line) if b_left > a_left else line


def _segments(line: Any) -> Any:
    xy = shapely.get_coordinates(line)
    return shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1))


def _one_way_m(a: Any, b: Any, step_m: float | None) -> float:
    """The farthest any point of ``a`` (every ``step_m``; None: its vertices) lies from ``b``."""
    pts = shapely.points(shapely.get_coordinates(a if step_m is None else shapely.segmentize(a, step_m)))
    _, dist = shapely.STRtree(_segments(b)).query_nearest(pts, return_distance=True, all_matches=False)
    return float(dist.max()) if dist.size else 0.0


def _hausdorff_m(simple: Any, raw: Any, step_m: float) -> float:
    """Hausdorff distance between a simplified line and the raw one in the plane: the simplified
    line sampled every ``step_m``, the raw one at its vertices (vectorised through an STRtree of
    segments: shapely's own is quadratic in the vertices)."""
    return max(_one_way_m(simple, raw, step_m), _one_way_m(raw, simple, None))


def _snap_ends(line: Any, area: Any, max_m: float) -> tuple[Any, tuple[float, float]]:
    """Carry each end of ``line`` to the area's boundary: along its last direction where that
    meets the boundary within ``max_m``, else to the nearest point of the boundary within it
    (farther, the end is left for the agreement's check to name)."""
    xy = shapely.get_coordinates(line)
    edge = shapely.boundary(area)
    ends = xy[[0, -1]]
    prev = xy[[1, -2]]
    d = ends - prev
    unit = d / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)[:, None]
    rays = shapely.linestrings(np.stack([ends, ends + unit * max_m], axis=1))
    hits = shapely.intersection(rays, edge)
    nearest = shapely.get_coordinates(shapely.shortest_line(shapely.points(ends), edge))[1::2]
    to = nearest.copy()
    for k in range(2):  # two ends
        if not hits[k].is_empty:
            h = shapely.get_coordinates(hits[k])
            to[k] = h[np.argmin(np.hypot(*(h - ends[k]).T))]
    dist = np.hypot(*(to - ends).T)
    use = (dist > 0) & (dist <= max_m)
    head = [to[0]] if use[0] else []
    tail = [to[1]] if use[1] else []
    out = shapely.LineString(np.vstack([*head, xy, *tail]))
    return out, (float(dist[0]) if use[0] else 0.0, float(dist[1]) if use[1] else 0.0)
