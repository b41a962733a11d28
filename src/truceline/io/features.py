"""Features as the server hands them out: the agreement's layers and the selected findings and
incidents, as GeoJSON (WGS84 lon/lat) and CSV. These format; they do not query or compute.

- :func:`zones_feature_collection`: the line, the zones per side, sectors and observation posts
  of the version in force on a day, each feature with a ``layer`` property (``line``, ``zone``,
  ``sector``, ``observation_post``); :func:`withdrawal_features` adds the ``withdrawal`` lines
  (:func:`truceline.core.withdrawal.withdrawal_lines`).
- :func:`export_csv` and :func:`export_geojson`: the records of a selection
  (:func:`truceline.services.selection.export_rows`, columns :data:`SELECTION_COLUMNS`) as text in
  chunks, for a streamed download.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator, Sequence
from typing import Any

import shapely

from truceline.core.agreement import Agreement
from truceline.core.rules import NUMBER_COLUMNS
from truceline.core.withdrawal import WithdrawalLine
from truceline.io.csv_safe import safe_cell

__all__ = [
    "SELECTION_COLUMNS",
    "export_csv",
    "export_geojson",
    "withdrawal_features",
    "zones_feature_collection",
]


# -- the agreement's layers ---------------------------------------------------------------------


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


def withdrawal_features(ag: Agreement, lines: Sequence[WithdrawalLine]) -> list[dict[str, Any]]:
    """A ``withdrawal`` feature per line, with the weapon classes (by name) it applies to."""
    weapons = {w.id: w.name or w.id for w in ag.weapon_classes}
    out = []
    for ln in lines:
        party, km = ln.party, ln.distance_km
        names = sorted({weapons.get(w, w) for r in ln.rules for w in r.weapon_classes})
        out.append(
            {
                "type": "Feature",
                "properties": {
                    "layer": "withdrawal",
                    "id": f"withdrawal:{party}:{km:g}",
                    "side": party,
                    "distance_km": km,
                    "rules": [r.id for r in ln.rules],
                    "weapon_classes": names,
                    "name": f"Withdrawal line {km:g} km ({party})",
                },
                "geometry": shapely.geometry.mapping(ln.geometry),
            }
        )
    return out


# -- exports of a selection ---------------------------------------------------------------------

#: Columns of the CSV export of a selection (and properties of its GeoJSON export), one row per
#: finding, then one per incident without findings (finding columns empty). Liaisons get the raw
#: report's own fields (finding's incident_pk, report_id, source_type, narrative) empty. The
#: finding's numbers follow its explanation (``finding_distance_km``, ``finding_limit_km``, ...:
#: NUMBER_COLUMNS).
SELECTION_COLUMNS = (
    "record",
    "finding_pk",
    "incident_pk",
    "report_id",
    "observed_at",
    "day",
    "lon",
    "lat",
    "uncertainty_m",
    "kind",
    "weapon_class",
    "sector",
    "source_type",
    "side_party",
    "distance_km",
    "rule_id",
    "rule_type",
    "responsible",
    "probability",
    "likelihood",
    "status",
    "released",
    "explanation",
    *NUMBER_COLUMNS,
    "party",
    "narrative",
)


def export_csv(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """CSV text in chunks (header first); empty cells for missing values."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SELECTION_COLUMNS, lineterminator="\n")
    w.writeheader()
    for k, row in enumerate(rows, 1):
        w.writerow({c: ("" if v is None else safe_cell(v)) for c, v in row.items()})
        if k % 2000 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def export_geojson(rows: Iterator[dict[str, Any]], *, name: str) -> Iterator[str]:
    """A GeoJSON FeatureCollection (WGS84 lon/lat) in chunks, one Point feature per record."""
    yield '{"type":"FeatureCollection","name":' + json.dumps(name) + ',"features":['
    chunk: list[str] = []
    for k, row in enumerate(rows):
        props = {c: v for c, v in row.items() if c not in ("lon", "lat")}
        feat = {
            "type": "Feature",
            "id": f"{row['record']}-{row['finding_pk'] or row['incident_pk']}",
            "geometry": {"type": "Point", "coordinates": [row["lon"], row["lat"]]},
            "properties": props,
        }
        chunk.append(("," if k else "") + json.dumps(feat, separators=(",", ":")))
        if len(chunk) >= 2000:
            yield "".join(chunk)
            chunk.clear()
    yield "".join(chunk) + "]}"
