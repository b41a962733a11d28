"""Territory: the land each party holds, the land changing hands, the buffer zone and the withdrawal
bands, with the settlements and people in each (geodesic on WGS84; places tested point by point)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from truceline.core.agreement import CompiledVersion, RuleType, Zone
from truceline.core.arrays import BoolArray, FloatArray
from truceline.core.geodesy import geodesic_area_km2
from truceline.core.planner.settlements import PlaceCount, Settlements

__all__ = [
    "TerritoryChange",
    "WithdrawalBand",
    "area_held_km2",
    "buffer_areas",
    "buffer_zone",
    "held_polygons",
    "holder_of",
    "territory_changes",
    "withdrawal_bands",
]


@dataclass(frozen=True, slots=True)
class TerritoryChange:
    """Land one party holds in the first scenario and the other holds in this one."""

    from_party: str
    to_party: str
    area_km2: float
    places: PlaceCount
    geometry: Any = field(repr=False, default=None)


@dataclass(frozen=True, slots=True)
class WithdrawalBand:
    """The strip within ``distance_km`` of the line on a party's side (its weapons must leave it)."""

    party: str
    distance_km: float
    rule_ids: tuple[str, ...]
    places: PlaceCount


def held_polygons(cv: CompiledVersion, territory: Mapping[str, Any] | None = None) -> dict[int, Any]:
    """The ground each side's party holds inside the area of application (lon/lat, by side).

    ``territory`` (a scenario's control map, polygons by party id): the map's polygons cut to the
    area; None: the sides of the line (:meth:`CompiledVersion.side_polygon`).
    """
    if territory is None:
        return {s: cv.side_polygon(s) for s in (1, -1)}
    out = {}
    for s in (1, -1):
        g = territory.get(cv.agreement.party_on_side(s))
        out[s] = shapely.Polygon() if g is None else _polygonal(shapely.intersection(g, cv.area))
    return out


def holder_of(held: Mapping[int, Any], lon: FloatArray, lat: FloatArray) -> NDArray[np.int8]:
    """Which side's party holds each point (+1, -1; 0: neither) by :func:`held_polygons`."""
    left = shapely.contains_xy(held[1], lon, lat)
    right = shapely.contains_xy(held[-1], lon, lat)
    return np.where(left, 1, np.where(right, -1, 0)).astype(np.int8)


def area_held_km2(cv: CompiledVersion, held: Mapping[int, Any] | None = None) -> dict[str, float]:
    """Geodesic area (km²) each party holds: ``held`` (:func:`held_polygons`), by default its side
    of the line inside the area of application."""
    held = held if held is not None else held_polygons(cv)
    return {cv.agreement.party_on_side(s): geodesic_area_km2(held[s]) for s in (1, -1)}


def territory_changes(
    cv: CompiledVersion,
    ref: CompiledVersion,
    places: Settlements,
    side: NDArray[np.int8],
    ref_side: NDArray[np.int8],
    held: Mapping[int, Any] | None = None,
    ref_held: Mapping[int, Any] | None = None,
) -> tuple[TerritoryChange, ...]:
    """Land each party holds under ``cv`` that the other held under ``ref``, with its places.

    ``held`` and ``ref_held`` are the ground each side holds (:func:`held_polygons`; default: the
    sides of each line); ``side`` and ``ref_side`` the places' holders under each
    (:func:`holder_of`, or :func:`~truceline.core.planner._line.side_of` for the sides of a line).
    """
    held = held if held is not None else held_polygons(cv)
    ref_held = ref_held if ref_held is not None else held_polygons(ref)
    changes = []
    for s in (1, -1):  # land now held by side s's party that the other party held before
        geom = shapely.intersection(held[s], ref_held[-s])
        geom = _polygonal(geom)
        moved = (side == s) & (ref_side == -s)
        changes.append(
            TerritoryChange(
                ref.agreement.party_on_side(-s),
                cv.agreement.party_on_side(s),
                geodesic_area_km2(geom),
                PlaceCount.of(places, moved),
                geom,
            )
        )
    return tuple(changes)


def buffer_zone(cv: CompiledVersion) -> Zone | None:
    """The version's buffer zone (the first zone marked ``buffer``), if any."""
    for z in cv.version.zones:
        if z.buffer:
            return z
    return None


def buffer_areas(
    cv: CompiledVersion,
    zone: Zone,
    places: Settlements,
    side: NDArray[np.int8],
    dist_m: FloatArray,
) -> tuple[dict[str, float], dict[str, PlaceCount]]:
    """Area (km²) of ``zone`` on each party's side, and the places in it.

    ``side`` and ``dist_m`` are the places' sides and distances (m) to the line.
    """
    masks = _zone_mask(cv, zone, places.lon, places.lat, side, dist_m)
    area_km2: dict[str, float] = {}
    in_zone: dict[str, PlaceCount] = {}
    for s, a in cv.zone_area_km2(zone).items():
        area_km2[cv.agreement.party_on_side(s)] = a
        in_zone[cv.agreement.party_on_side(s)] = PlaceCount.of(places, masks[s])
    return area_km2, in_zone


def _zone_mask(
    cv: CompiledVersion,
    zone: Zone,
    lon: FloatArray,
    lat: FloatArray,
    side: NDArray[np.int8],
    dist_m: FloatArray,
) -> dict[int, BoolArray]:
    """Points inside the zone per side, by geodesic distance for bands (exact, no polygon)."""
    out: dict[int, BoolArray] = {}
    for s in (1, -1):
        party = cv.agreement.party_on_side(s)
        if zone.type == "band":
            if party not in zone.bands:
                out[s] = np.zeros(lon.size, dtype=bool)
                continue
            lo, hi = zone.bands[party]
            d = cv.reference[s].distance_m(lon, lat) if s in cv.reference else dist_m
            out[s] = (side == s) & (d >= lo * 1000.0) & (d < hi * 1000.0)
        else:
            out[s] = (side == s) & shapely.contains_xy(zone.geometry, lon, lat)
    return out


def withdrawal_bands(
    cv: CompiledVersion, places: Settlements, side: NDArray[np.int8], dist_m: FloatArray
) -> tuple[WithdrawalBand, ...]:
    """One band per side and distance of the version's withdrawal rules, and the places in each.

    ``side`` and ``dist_m`` are the places' sides and distances (m) to the line.
    """
    bands: dict[tuple[int, float], list[str]] = {}
    for r in cv.version.rules:
        if r.type != RuleType.withdrawal:
            continue
        for s in (1, -1):
            km = r.distance_km.get(cv.agreement.party_on_side(s))
            if km is not None:
                bands.setdefault((s, float(km)), []).append(r.id)
    out = []
    for (s, km), rules in sorted(bands.items(), key=lambda kv: (-kv[0][0], kv[0][1])):
        party = cv.agreement.party_on_side(s)
        d = cv.reference[s].distance_m(places.lon, places.lat) if s in cv.reference else dist_m
        mask = (side == s) & (d < km * 1000.0)
        out.append(WithdrawalBand(party, km, tuple(rules), PlaceCount.of(places, mask)))
    return tuple(out)


def _polygonal(geom: Any) -> Any:
    """The polygons of ``geom`` made valid (an intersection's stray lines and points dropped)."""
    geom = shapely.make_valid(geom)
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
