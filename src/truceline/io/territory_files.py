"""Read control-of-territory maps and write the agreement folder built from them.

A control map is a GeoJSON, GeoPackage, KML (or another format GDAL reads) of polygons, each with
the party holding it in a property (``party`` unless told otherwise), as ISW or DeepState publish
them; a country's outline is a file of polygons without it. Geometry arrives as WGS84 lon/lat
(:func:`truceline.io.agreement_files.read_features` reprojects other CRSs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import shapely
import yaml

from truceline.errors import AgreementError
from truceline.io.agreement_files import Feature, read_features

__all__ = ["control_map_groups", "read_control_map", "read_outline", "write_agreement_folder"]

_POLY = ("Polygon", "MultiPolygon")


def _polygon(g: Any, label: str, i: int) -> Any:
    if g.geom_type == "GeometryCollection":
        parts = [p for p in shapely.get_parts(g) if p.geom_type in _POLY]
        g = shapely.union_all(parts) if parts else g
    if g.geom_type not in _POLY:
        raise AgreementError(
            f"feature {i} is a {g.geom_type}; a control map holds Polygons or MultiPolygons",
            file=label,
            field=f"features[{i}].geometry",
        )
    if not g.is_valid:
        g = shapely.make_valid(g)
    return g


def read_control_map(path: str | Path, party_field: str = "party") -> dict[str | None, Any]:
    """The polygons of a control map, merged per party (``None``: features without the property)."""
    return control_map_groups(read_features(path), str(path), party_field)


def control_map_groups(
    features: list[Feature], label: str, party_field: str = "party"
) -> dict[str | None, Any]:
    """A control map's features (read as files are) merged per party (``None``: no property)."""
    groups: dict[str | None, list[Any]] = {}
    for i, f in enumerate(features):
        g = _polygon(f.geometry, label, i)
        raw = f.properties.get(party_field)
        party = None if raw is None or str(raw).strip() == "" else str(raw).strip()
        groups.setdefault(party, []).append(g)
    return {k: shapely.union_all(v) for k, v in groups.items()}


def read_outline(path: str | Path) -> Any:
    """A country's outline: every polygon of the file, merged."""
    label = str(path)
    return shapely.union_all([_polygon(f.geometry, label, i) for i, f in enumerate(read_features(path))])


def _collection(features: list[tuple[Any, dict[str, Any]]]) -> str:
    fc = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": props, "geometry": json.loads(shapely.to_geojson(g))}
            for g, props in features
        ],
    }
    return json.dumps(fc, ensure_ascii=False)


def write_agreement_folder(
    folder: str | Path,
    doc: dict[str, Any],
    layers: dict[str, list[tuple[Any, dict[str, Any]]]],
    *,
    header: str = "",
    force: bool = False,
    copies: dict[str, bytes] | None = None,
) -> Path:
    """Write ``agreement.yaml`` (``doc``, after ``header`` comment lines) and one GeoJSON file per
    layer (name: [(geometry, properties)]) into ``folder``, and ``copies`` (relative name: bytes,
    e.g. a template's sector file) as they are; an existing agreement is kept unless ``force``."""
    folder = Path(folder)
    yml = folder / "agreement.yaml"
    if yml.exists() and not force:
        raise AgreementError(
            "an agreement is already there; choose another folder or pass --force", file=str(yml)
        )
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (copies or {}).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    for name, feats in layers.items():
        (folder / name).write_text(_collection(feats) + "\n", encoding="utf-8")
    comment = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines())
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    yml.write_text(comment + body, encoding="utf-8")
    return folder
