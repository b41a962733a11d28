"""Read an agreement folder (``agreement.yaml`` plus geometry files) into a core :class:`Agreement`.

Geometry files may be GeoJSON (read directly), GeoPackage, Shapefile or KML (read with pyogrio).
Files declaring another CRS are reprojected to WGS84 lon/lat. Every error names the file, the field
and the fix; see ``docs/agreement-format.md`` for the format.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import shapely
import yaml

from truceline.core.agreement import (
    Agreement,
    AgreementVersion,
    ObservationPost,
    Party,
    Rule,
    Sector,
    WeaponClass,
    Zone,
)
from truceline.errors import AgreementError

__all__ = ["load_agreement", "read_features"]

_YAML = "agreement.yaml"


class Feature:
    """A geometry with its properties, as read from a file."""

    __slots__ = ("geometry", "properties")

    def __init__(self, geometry: Any, properties: dict[str, Any]) -> None:
        self.geometry = geometry
        self.properties = properties


def _nul_at(value: Any, where: str = "") -> str | None:
    """Where the first text holding NUL is in parsed YAML or JSON (None: nowhere)."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    items: Any = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for k, v in items:
        here = f"{where}[{k}]" if isinstance(k, int) else f"{where}.{k}" if where else str(k)
        if isinstance(k, str) and "\x00" in k:
            return here
        found = _nul_at(v, here)
        if found is not None:
            return found
    return None


def _refuse_nul(data: Any, file: str) -> None:
    """NUL cannot be stored (PostgreSQL refuses it in text): refuse it where it is."""
    where = _nul_at(data)
    if where is not None:
        raise AgreementError(
            "contains a NUL character (\\0 or \\u0000); remove it", file=file, field=where
        )


def read_features(path: Path) -> list[Feature]:
    """Read the features of a geometry file as WGS84 lon/lat shapely geometries."""
    if not path.exists():
        raise AgreementError(f"file not found: {path}", file=str(path))
    suffix = path.suffix.lower()
    if suffix in (".geojson", ".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AgreementError(f"not valid GeoJSON ({exc})", file=str(path)) from exc
        _refuse_nul(data, str(path))
        feats = _geojson_features(data, path)
    else:
        feats = _ogr_features(path)
    if not feats:
        raise AgreementError("the file holds no features", file=str(path))
    return feats


def _geojson_features(data: Any, path: Path) -> list[Feature]:
    if not isinstance(data, dict) or "type" not in data:
        raise AgreementError("not a GeoJSON object (no `type`)", file=str(path))
    if data["type"] == "FeatureCollection":
        items = data.get("features") or []
    elif data["type"] == "Feature":
        items = [data]
    else:
        items = [{"type": "Feature", "geometry": data, "properties": {}}]
    out = []
    for i, f in enumerate(items):
        try:
            geom = shapely.from_geojson(json.dumps(f.get("geometry")))
        except Exception as exc:  # shapely raises GEOSException subclasses and ValueError
            raise AgreementError(f"feature {i} has an invalid geometry ({exc})", file=str(path)) from exc
        if geom is None:
            raise AgreementError(f"feature {i} has no geometry", file=str(path))
        out.append(Feature(geom, dict(f.get("properties") or {})))
    return out


def _ogr_features(path: Path) -> list[Feature]:
    try:
        from pyogrio.raw import read
    except ImportError as exc:  # pragma: no cover - pyogrio is a dependency
        raise AgreementError("pyogrio is needed to read this format", file=str(path)) from exc
    try:
        meta, _, geoms, fields = read(path)
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        raise AgreementError(f"cannot read the file ({exc})", file=str(path)) from exc
    shp = shapely.from_wkb(geoms)
    crs = meta.get("crs")
    if crs and crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
        from pyproj import CRS, Transformer

        tr = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True)
        shp = shapely.transform(shp, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    names = list(meta.get("fields", []))
    out = []
    for i, g in enumerate(shp):
        props = {n: _plain(fields[j][i]) for j, n in enumerate(names)}
        out.append(Feature(shapely.force_2d(g), props))
    return out


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _geometry(folder: Path, ref: Any, field: str, kinds: tuple[str, ...]) -> Any:
    """Read the geometry named by a ``{file: ..., feature: ...}`` reference, merged into one."""
    if isinstance(ref, str):
        ref = {"file": ref}
    if not isinstance(ref, dict) or "file" not in ref:
        raise AgreementError("give `{file: NAME}`", file=_YAML, field=field)
    path = folder / str(ref["file"])
    feats = read_features(path)
    if "feature" in ref:
        feats = [f for f in feats if str(f.properties.get("id")) == str(ref["feature"])]
        if not feats:
            raise AgreementError(
                f"no feature with id {ref['feature']!r} in {ref['file']}", file=_YAML, field=field
            )
    geoms = [f.geometry for f in feats]
    for g in geoms:
        if g.geom_type not in kinds:
            raise AgreementError(
                f"expected {' or '.join(kinds)}, found {g.geom_type}", file=str(path), field=field
            )
        _check_lonlat(g, path, field)
    if kinds[0] == "LineString":
        parts = [p for g in geoms for p in getattr(g, "geoms", [g])]
        return parts[0] if len(parts) == 1 else shapely.MultiLineString(parts)
    merged = shapely.union_all(geoms)
    if not merged.is_valid:
        raise AgreementError(
            f"invalid polygon ({shapely.is_valid_reason(merged)}); fix the ring",
            file=str(path),
            field=field,
        )
    return merged


def _check_lonlat(g: Any, path: Path, field: str) -> None:
    xy = shapely.get_coordinates(g)
    if not np.all(np.isfinite(xy)):
        raise AgreementError("non-finite coordinates", file=str(path), field=field)
    if np.any(np.abs(xy[:, 0]) > 180) or np.any(np.abs(xy[:, 1]) > 90):
        raise AgreementError(
            "coordinates are not WGS84 lon/lat degrees (|lon| <= 180, |lat| <= 90); "
            "reproject the file to EPSG:4326",
            file=str(path),
            field=field,
        )


def _loc(err: dict[str, Any]) -> str:
    return ".".join(str(p) for p in err.get("loc", ()))


def _build(model: type[pydantic.BaseModel], data: Any, field: str) -> Any:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        e = exc.errors()[0]
        sub = _loc(dict(e))
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        raise AgreementError(msg, file=_YAML, field=f"{field}.{sub}" if sub else field) from exc
    except AgreementError as exc:
        raise AgreementError(str(exc.message), file=_YAML, field=exc.field or field) from exc


def _zones(folder: Path, items: Any, field: str) -> list[Zone]:
    if not isinstance(items, list):
        raise AgreementError("`zones` must be a list", file=_YAML, field=field)
    out = []
    for i, z in enumerate(items):
        if not isinstance(z, dict):
            raise AgreementError("each zone must be a mapping", file=_YAML, field=f"{field}[{i}]")
        z = dict(z)
        if z.get("type") == "polygon":
            ref = {
                "file": z.pop("file", None),
                **({"feature": z.pop("feature")} if "feature" in z else {}),
            }
            if ref["file"] is None:
                raise AgreementError(
                    "a polygon zone needs `file`", file=_YAML, field=f"{field}[{i}].file"
                )
            z["geometry"] = _geometry(folder, ref, f"{field}[{i}].file", ("Polygon", "MultiPolygon"))
        out.append(_build(Zone, z, f"{field}[{i}]"))
    return out


def _rules(items: Any, field: str) -> list[Rule]:
    if not isinstance(items, list):
        raise AgreementError("`rules` must be a list", file=_YAML, field=field)
    out = []
    for i, r in enumerate(items):
        if isinstance(r, dict) and isinstance(r.get("distance_km"), int | float):
            r = {**r, "distance_km": {"*": float(r["distance_km"])}}
        out.append(_build(Rule, r, f"{field}[{i}]"))
    return out


def _sectors(folder: Path, ref: Any) -> list[Sector]:
    """The sectors named by ``{file: NAME}`` (or a bare file name): polygons with id, nation, name."""
    feats = read_features(folder / str(ref["file"] if isinstance(ref, dict) else ref))
    out = []
    for i, f in enumerate(feats):
        _check_lonlat(f.geometry, folder / "sectors", f"sectors[{i}]")
        out.append(
            _build(
                Sector,
                {
                    "id": str(f.properties.get("id", f"sector-{i + 1}")),
                    "nation": str(f.properties.get("nation", "")),
                    "name": str(f.properties.get("name", "")),
                    "geometry": f.geometry,
                },
                f"sectors[{i}]",
            )
        )
    return out


def _expand_star(rules: list[Rule], parties: list[str]) -> list[Rule]:
    out = []
    for r in rules:
        if "*" in r.distance_km:
            km = r.distance_km["*"]
            r = r.model_copy(update={"distance_km": dict.fromkeys(parties, km)})
        out.append(r)
    return out


def load_agreement(path: str | Path) -> Agreement:
    """Load and validate an agreement folder (or its ``agreement.yaml``)."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    yml = folder / _YAML
    if not yml.exists():
        raise AgreementError(f"no {_YAML} in {folder}; see docs/agreement-format.md", file=str(yml))
    try:
        raw = yaml.safe_load(yml.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AgreementError(f"not valid YAML ({exc})", file=str(yml)) from exc
    if not isinstance(raw, dict):
        raise AgreementError("the file must hold a mapping", file=str(yml))
    _refuse_nul(raw, str(yml))

    def need(key: str) -> Any:
        if key not in raw:
            raise AgreementError(f"missing `{key}`", file=str(yml), field=key)
        return raw[key]

    try:
        parties = [_build(Party, p, f"parties[{i}]") for i, p in enumerate(need("parties"))]
        if len(parties) != 2:
            raise AgreementError("give exactly two parties", file=str(yml), field="parties")
        pids = [p.id for p in parties]
        line_ref = need("line")
        if not isinstance(line_ref, dict):
            raise AgreementError("`line` must be a mapping", file=str(yml), field="line")
        for key in ("left", "right"):
            if line_ref.get(key) not in pids:
                raise AgreementError(
                    f"unknown party {line_ref.get(key)!r}; use one of {', '.join(pids)}",
                    file=str(yml),
                    field=f"line.{key}",
                )
        line = _geometry(folder, line_ref, "line.file", ("LineString", "MultiLineString"))
        area = None
        if raw.get("area_of_application") is not None:
            area = _geometry(
                folder,
                raw["area_of_application"],
                "area_of_application",
                ("Polygon", "MultiPolygon"),
            )
        refs = {
            str(k): _geometry(folder, v, f"reference_lines.{k}", ("LineString", "MultiLineString"))
            for k, v in (raw.get("reference_lines") or {}).items()
        }
        zones = _zones(folder, raw.get("zones") or [], "zones")
        rules = _expand_star(_rules(raw.get("rules") or [], "rules"), pids)
        wcs = [
            _build(WeaponClass, w, f"weapon_classes[{i}]")
            for i, w in enumerate(raw.get("weapon_classes") or [])
        ]
        sectors = _sectors(folder, raw["sectors"]) if raw.get("sectors") else []
        ops: list[ObservationPost] = []
        if raw.get("observation_posts"):
            ref = raw["observation_posts"]
            feats = read_features(folder / str(ref["file"] if isinstance(ref, dict) else ref))
            for i, f in enumerate(feats):
                if f.geometry.geom_type != "Point":
                    raise AgreementError(
                        f"observation post {i} is a {f.geometry.geom_type}; give Points",
                        file=str(ref),
                        field=f"observation_posts[{i}]",
                    )
                ops.append(
                    _build(
                        ObservationPost,
                        {
                            "id": str(f.properties.get("id", f"op-{i + 1}")),
                            "name": str(f.properties.get("name", "")),
                            "sector": f.properties.get("sector"),
                            "lon": f.geometry.x,
                            "lat": f.geometry.y,
                        },
                        f"observation_posts[{i}]",
                    )
                )
        eff = need("effective_from")
        versions = [
            AgreementVersion(
                effective_from=_date(eff, "effective_from"),
                description=str(raw.get("description", "")),
                line=line,
                reference_lines=refs,
                zones=tuple(zones),
                rules=tuple(rules),
            )
        ]
        for i, am in enumerate(raw.get("amendments") or []):
            versions.append(_amend(folder, versions[-1], am, f"amendments[{i}]", pids))
        sides = {"left": line_ref["left"], "right": line_ref["right"]}
        return Agreement(
            id=str(need("id")),
            name=str(need("name")),
            description=str(raw.get("description", "")),
            parties=(parties[0], parties[1]),
            left=sides["left"],
            right=sides["right"],
            area=area,
            default_area_km=float(raw.get("default_area_km", 250.0)),
            weapon_classes=tuple(wcs),
            sectors=tuple(sectors),
            observation_posts=tuple(ops),
            versions=tuple(versions),
        )
    except pydantic.ValidationError as exc:
        e = exc.errors()[0]
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        raise AgreementError(msg, file=str(yml), field=_loc(dict(e)) or None) from exc
    except AgreementError as exc:
        if exc.file is None:
            raise AgreementError(exc.message, file=str(yml), field=exc.field) from exc
        raise


def _date(v: Any, field: str) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    try:
        return dt.date.fromisoformat(str(v))
    except ValueError as exc:
        raise AgreementError(f"{v!r} is not a date; use YYYY-MM-DD", file=_YAML, field=field) from exc


def _amend(
    folder: Path, prev: AgreementVersion, am: Any, field: str, pids: list[str]
) -> AgreementVersion:
    if not isinstance(am, dict):
        raise AgreementError("each amendment must be a mapping", file=_YAML, field=field)
    line = prev.line
    if am.get("line") is not None:
        line = _geometry(folder, am["line"], f"{field}.line", ("LineString", "MultiLineString"))
    zones = {z.id: z for z in prev.zones}
    for z in _zones(folder, am.get("zones") or [], f"{field}.zones"):
        zones[z.id] = z
    rules = {r.id: r for r in prev.rules}
    for rid in am.get("remove_rules") or []:
        if rid not in rules:
            raise AgreementError(f"no rule {rid!r} to remove", file=_YAML, field=f"{field}.remove_rules")
        del rules[rid]
    for r in _expand_star(_rules(am.get("rules") or [], f"{field}.rules"), pids):
        rules[r.id] = r
    refs = dict(prev.reference_lines)
    for k, v in (am.get("reference_lines") or {}).items():
        refs[str(k)] = _geometry(
            folder, v, f"{field}.reference_lines.{k}", ("LineString", "MultiLineString")
        )
    return AgreementVersion(
        effective_from=_date(am.get("effective_from"), f"{field}.effective_from"),
        description=str(am.get("description", "")),
        line=line,
        reference_lines=refs,
        zones=tuple(zones.values()),
        rules=tuple(rules.values()),
    )
