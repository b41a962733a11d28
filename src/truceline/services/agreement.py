"""Agreement summaries and exports (the ``agreement check`` / ``export`` commands and the API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import shapely

from truceline.core.agreement import Agreement, line_ends
from truceline.core.geodesy import GEOD

__all__ = ["agreement_summary", "zones_feature_collection"]


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
    if v.line.geom_type == "MultiLineString":
        out.append(
            f"the line's {len(shapely.get_parts(v.line))} parts join end to end: read as one line "
            "in their order"
        )
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
    Truceline assumes about each version's geometry (:func:`assumptions`)."""
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


def _feature(geom: Any, props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": props, "geometry": shapely.geometry.mapping(geom)}


def zones_feature_collection(ag: Agreement, day: dt.date) -> dict[str, Any]:
    """Every zone of the version in force on ``day`` as polygons per side, plus line and sectors."""
    cv = ag.version_at(day)
    feats = [
        _feature(
            cv.version.line,
            {"layer": "line", "id": "line", "length_km": round(cv.line_length_km, 3)},
        )
    ]
    for z in cv.version.zones:
        for s, geom in cv.zone_polygons(z).items():
            if geom.is_empty:
                continue
            party = ag.party_on_side(s)
            band = z.bands.get(party)
            feats.append(
                _feature(
                    geom,
                    {
                        "layer": "zone",
                        "id": f"{z.id}:{party}",
                        "zone": z.id,
                        "name": z.name,
                        "side": party,
                        "type": z.type,
                        "buffer": z.buffer,
                        "from_km": band[0] if band else None,
                        "to_km": band[1] if band else None,
                        "area_km2": round(float(cv.zone_area_km2(z)[s]), 3),
                    },
                )
            )
    for sec in ag.sectors:
        feats.append(
            _feature(
                sec.geometry,
                {"layer": "sector", "id": sec.id, "nation": sec.nation, "name": sec.name},
            )
        )
    for op in ag.observation_posts:
        feats.append(
            _feature(
                shapely.Point(op.lon, op.lat),
                {"layer": "observation_post", "id": op.id, "name": op.name, "sector": op.sector},
            )
        )
    # Round to 1e-7 deg (~1 cm): keeps files small without moving any vertex by a measurable amount.
    for f in feats:
        f["geometry"] = _round(f["geometry"])
    return {"type": "FeatureCollection", "name": ag.id, "features": feats}


def _round(g: dict[str, Any]) -> dict[str, Any]:
    def r(c: Any) -> Any:
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            return [round(float(x), 7) for x in c]
        return [r(x) for x in c]

    out = dict(g)
    if "coordinates" in out:
        out["coordinates"] = r(out["coordinates"])
    if "geometries" in out:
        out["geometries"] = [_round(x) for x in out["geometries"]]
    return out
