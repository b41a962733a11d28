"""What an agreement is on a day, for the CLI, the API and the page: its summary (lengths and
areas), the legend that labels the map, and its layers (zones and withdrawal lines) as GeoJSON."""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer

from truceline.core.agreement import Agreement, RuleType, line_ends
from truceline.core.geodesy import GEOD, geodesic_area_km2
from truceline.core.incidents import Kind, SourceType
from truceline.core.withdrawal import withdrawal_lines
from truceline.io.features import withdrawal_features, zones_feature_collection
from truceline.services.auth import Permission, Principal
from truceline.services.review import STATUSES

__all__ = [
    "agreement_layers",
    "agreement_legend",
    "agreement_summary",
    "layers_for",
    "simplified_for_zoom",
]


def _line_km_in(geom: Any, line: Any) -> float:
    inter = shapely.intersection(line, geom)
    if inter.is_empty:
        return 0.0
    total = 0.0
    for part in shapely.get_parts(
        shapely.line_merge(inter) if inter.geom_type != "LineString" else inter
    ):
        if part.geom_type == "LineString":
            xy = shapely.get_coordinates(part)
            total += float(GEOD.line_length(xy[:, 0], xy[:, 1]))
    return total / 1000.0


def assumptions(ag: Agreement, index: int) -> list[str]:
    """What Truceline assumes about version ``index``'s geometry, in words (``agreement check``)."""
    v = ag.versions[index]
    out = []
    if index == 0 and ag.area is None:
        out.append(
            "no `area_of_application` given: the area is every point within "
            f"{ag.default_area_km:g} km of the line (`default_area_km`)"
        )
    n_parts = len(shapely.get_parts(v.line))
    if ag.sides:
        cv = ag.compiled(index)
        held = {s: geodesic_area_km2(shapely.intersection(ag.sides[ag.party_on_side(s)], cv.area))
                for s in (1, -1)}  # fmt: skip
        rest = sum(geodesic_area_km2(cv.side_polygon(s)) - held[s] for s in (1, -1))
        out.append(
            (f"the line has {n_parts} separate parts (pieces of front), each checked to have "
             f"{ag.left}'s ground on its left" if n_parts > 1 else
             f"the line has {ag.left}'s ground on its left (checked)")
            + f"; the sides are the ground each party holds (`line.sides`), not the line continued "
            f"beyond its ends: a place takes the side of the ground it lies in; the ground neither "
            f"holds ({max(rest, 0.0):,.1f} km2 of the area) the side of the nearest part of the line"
        )  # fmt: skip
    else:
        if v.line.geom_type == "MultiLineString":
            out.append(f"the line's {n_parts} parts join end to end: read as one line in their order")
        out += [end.assumption(ag.line_extends) for end in line_ends(ag, v.line)]
    if index == 0:
        to = f" until {ag.effective_to} (exclusive)" if ag.effective_to else " with no end date"
        out.append(
            f"rules judge reports from {ag.effective_from}{to}, inside the area of application "
            "only; other reports are stored and labelled (in_force, in_area) without findings"
        )
    return out


def agreement_summary(ag: Agreement) -> dict[str, Any]:
    """Line length, zone areas per side (km2, geodesic) and sectors, for every version, and what
    Truceline assumes about each version's geometry (:func:`assumptions`).

    Each version also gives ``area_km2`` (the area of application) and ``territory_km2``: each
    party's ground in it, the area on the party's side of the line (geodesic km2)."""
    versions = []
    for i, v in enumerate(ag.versions):
        cv = ag.compiled(i)
        zones = []
        for z in v.zones:
            areas = cv.zone_area_km2(z)
            zones.append(
                {
                    "id": z.id,
                    "name": z.name,
                    "type": z.type,
                    "buffer": z.buffer,
                    "area_km2": {ag.party_on_side(s): a for s, a in areas.items()},
                }
            )
        versions.append(
            {
                "effective_from": v.effective_from.isoformat(),
                "line_length_km": cv.line_length_km,
                "area_km2": geodesic_area_km2(cv.area),
                "territory_km2": {
                    ag.party_on_side(s): geodesic_area_km2(cv.side_polygon(s)) for s in (1, -1)
                },
                "n_rules": len(v.rules),
                "zones": zones,
                "assumptions": assumptions(ag, i),
            }
        )
    line0 = ag.versions[0].line
    sectors = [
        {"id": s.id, "nation": s.nation, "name": s.name, "line_km": _line_km_in(s.geometry, line0)}
        for s in ag.sectors
    ]
    return {"id": ag.id, "name": ag.name, "versions": versions, "sectors": sectors}


def agreement_legend(ag: Agreement, day: dt.date) -> dict[str, Any]:
    """What labels the map and offers filters on ``day`` (no geometry; cheap).

    The agreement, its parties and sides, the rules in force on ``day`` (with their weapon classes),
    the weapon classes, sectors, kinds, source types and review statuses, ``bbox`` (the line's
    bounds, west, south, east, north) and ``area_bbox`` (the area of application's bounds: the
    first view of the map, with or without data).
    """
    cv = ag.version_at(day)
    weapons = {w.id: w.name or w.id for w in ag.weapon_classes}
    return {
        "agreement": {"id": ag.id, "name": ag.name},
        "day": day.isoformat(),
        "version_from": cv.version.effective_from.isoformat(),
        "bbox": [round(float(v), 5) for v in shapely.bounds(cv.version.line)],
        "area_bbox": [round(float(v), 5) for v in shapely.bounds(cv.area)],
        "parties": [{"id": p.id, "name": p.name} for p in ag.parties],
        "left": ag.left,
        "right": ag.right,
        "rules": [
            {
                "id": r.id,
                "type": r.type.value,
                "description": r.description,
                "in_force": r.in_force(day),
                "weapon_classes": [weapons.get(w, w) for w in r.weapon_classes],
            }
            for r in cv.rules
        ],
        "weapon_classes": [{"id": k, "name": v} for k, v in weapons.items()],
        "sectors": [{"id": s.id, "name": s.name, "nation": s.nation} for s in ag.sectors],
        "kinds": [k.value for k in Kind],
        "sources": [t.value for t in SourceType],
        "statuses": list(STATUSES),
    }


def layers_for(fc: dict[str, Any], who: Principal) -> dict[str, Any]:
    """The agreement's layers ``who`` may see: observation posts are where monitors stand, so
    only those who see the reports get them (every route that serves the layers passes here)."""
    if who.can(Permission.incidents_read):
        return fc
    kept = [f for f in fc["features"] if f["properties"]["layer"] != "observation_post"]
    return {**fc, "features": kept}


def agreement_layers(ag: Agreement, day: dt.date, *, zoom: int | None = None) -> dict[str, Any]:
    """The agreement's layers in force on ``day`` as one GeoJSON FeatureCollection.

    Features (``properties.layer``): ``line``, ``zone`` (per side), ``withdrawal`` (the line at each
    withdrawal distance in force, per side, with the weapon classes it applies to), ``sector``,
    ``observation_post``. The outlines are built geodesically, which takes seconds for a long line,
    so they are cached on the compiled version (per day: rules start on dates).

    With ``zoom``, the outlines are simplified for a web map at that zoom (see
    :func:`simplified_for_zoom`): the same features in the same order, for display only.
    """
    cv = ag.version_at(day)
    cache: dict[str, dict[str, Any]] = cv.__dict__.setdefault("_layers", {})
    in_force = tuple(r.id for r in cv.rules if r.type == RuleType.withdrawal and r.in_force(day))
    key = ",".join(in_force)  # the geometry changes only when the withdrawal rules in force do
    shown = key if zoom is None else f"{key}@{zoom}"
    if (fc := cache.get(shown)) is not None:  # one lookup: another thread may clear the cache
        return fc
    with _LAYERS_BUILT:  # one build at a time: a request waits for the warm-up's, not beside it
        if key not in cache:
            fc = zones_feature_collection(ag, day)
            fc["features"][1:1] = withdrawal_features(ag, withdrawal_lines(ag, day))
            if len(cache) > 64:
                cache.clear()
            cache[key] = fc
        full = cache[key]
    if zoom is None:
        return full
    fc = simplified_for_zoom(full, zoom)
    cache[shown] = fc
    return fc


#: Web Mercator metres per screen pixel at zoom 0 (a 256-pixel tile spans the equator).
_METRES_PER_PIXEL_Z0 = 2 * np.pi * 6378137.0 / 256


@functools.cache
def _web_mercator() -> tuple[Transformer, Transformer]:
    """WGS84 lon/lat to Web Mercator metres and back, built once when first needed."""
    fwd = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    return fwd, Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)


def simplified_for_zoom(fc: dict[str, Any], zoom: int) -> dict[str, Any]:
    """``fc``'s lines and outlines simplified to half a screen pixel of a web map at ``zoom``.

    A web map (Leaflet, Web Mercator) re-projects every vertex of a layer at each zoom, and the
    geodesic outlines hold tens of thousands, most closer together than a pixel at the zooms that
    show the whole line. Each geometry is simplified in Web Mercator metres (the map's own plane)
    with a tolerance of half a pixel at ``zoom`` (Douglas-Peucker, topology kept), so the drawing
    moves by at most half a pixel. Points pass unchanged; properties and order are kept. For
    display only: the rule engine judges incidents against the full geometry.
    """
    if not 0 <= zoom <= 24:
        raise ValueError(f"zoom {zoom}: a web map's zoom is 0 to 24")
    feats = fc["features"]
    geoms = np.array([shapely.geometry.shape(f["geometry"]) for f in feats], dtype=object)
    fwd, inv = _web_mercator()
    metres = shapely.transform(geoms, lambda xy: np.column_stack(fwd.transform(xy[:, 0], xy[:, 1])))
    tolerance_m = 0.5 * _METRES_PER_PIXEL_Z0 / 2**zoom
    simple = shapely.simplify(metres, tolerance_m, preserve_topology=True)
    lonlat = shapely.transform(simple, lambda xy: np.column_stack(inv.transform(xy[:, 0], xy[:, 1])))
    out = [
        {**f, "geometry": _as_type(shapely.geometry.mapping(g), f["geometry"]["type"])}
        if f["geometry"]["type"] != "Point"
        else f
        for f, g in zip(feats, lonlat, strict=True)
    ]
    return {**fc, "features": out}


def _as_type(geometry: dict[str, Any], kind: str) -> dict[str, Any]:
    """A simplified geometry as the type it had (GEOS returns a multi-part of one part as that
    part): the page replaces each feature's coordinates in place, nested as before."""
    if geometry["type"] == kind or kind != f"Multi{geometry['type']}":
        return geometry
    return {"type": kind, "coordinates": [geometry["coordinates"]]}


#: Held while layers are built (seconds of CPU each), so two threads never build the same ones.
_LAYERS_BUILT = threading.Lock()


def warm_layers(agreements: Iterable[Agreement], day: dt.date) -> None:
    """Build the layers the map asks first, those in force on ``day`` (today; an agreement not yet
    in force: its first day), ahead of the first request: a long line's outlines take seconds of
    CPU, tens of seconds on a loaded server; and their outlines simplified for the zooms a map
    opens at (:data:`WARM_ZOOMS`, 0.1 s of CPU each for a 1,000 km line). Other days' layers,
    and other zooms, are built when first asked."""
    for ag in agreements:
        for zoom in (None, *WARM_ZOOMS):
            agreement_layers(ag, max(day, ag.effective_from), zoom=zoom)


#: The zooms whose simplified layers the server builds as it starts: those of a first view of a
#: line from a few hundred to a few thousand kilometres long, and two levels in.
WARM_ZOOMS = range(4, 12)
