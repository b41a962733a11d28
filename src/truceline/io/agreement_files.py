"""Read an agreement (``agreement.yaml`` plus geometry files) into a core :class:`Agreement`.

The loader reads a mapping of the files' relative names to their bytes
(:func:`load_agreement_files`): a folder on disk is one way to fill it (:func:`files_of_folder`,
:func:`load_agreement`), an upload another (which so never touches the file system).
Geometry files may be GeoJSON (read directly), KML or KMZ (:mod:`truceline.io.kml`), GeoPackage,
Shapefile (the ``.shp`` with the ``.shx``, ``.dbf``, ``.prj`` beside it) or another format GDAL
reads (with pyogrio, in memory). Files declaring another CRS are reprojected to WGS84 lon/lat.
Every error names the file as the user named it, the field and the fix; see
``docs/agreement-format.md`` for the format.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
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
from truceline.errors import AgreementError, ValidationError
from truceline.io.limits import (
    DEFAULT_LIMITS,
    LimitError,
    UploadLimits,
    XmlRefusedError,
    check_xml,
    load_json,
    load_yaml,
    looks_like_xml,
    looks_like_zip,
    open_zip,
)

__all__ = [
    "agreement_yaml",
    "files_of_folder",
    "load_agreement",
    "load_agreement_files",
    "read_features",
]

_YAML = "agreement.yaml"


class _Files:
    """An agreement's files by relative POSIX name, and the folder they came from (for messages)."""

    __slots__ = ("data", "limits", "origin")

    def __init__(
        self,
        data: Mapping[str, bytes],
        origin: str | None = None,
        limits: UploadLimits = DEFAULT_LIMITS,
    ) -> None:
        self.data = data
        self.origin = origin
        self.limits = limits

    def label(self, name: str) -> str:
        """The file as messages name it: under its folder when it came from one."""
        return str(PurePosixPath(self.origin) / name) if self.origin else name

    def read(self, name: str) -> bytes:
        data = self.data.get(_normal(name))
        if data is None:
            raise AgreementError(f"file not found: {self.label(name)}", file=self.label(name))
        return data


def _normal(name: str) -> str:
    # `./line.geojson` and `line.geojson` name the same file
    return PurePosixPath(name).as_posix()


def files_of_folder(path: str | Path) -> dict[str, bytes]:
    """Every file of an agreement folder (or of the folder of its ``agreement.yaml``).

    Keys are relative POSIX paths (``geometry/line.geojson``); hidden files and folders are left out.
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not (folder / _YAML).is_file():
        raise AgreementError(
            f"no {_YAML} in {folder}; see docs/agreement-format.md", file=str(folder / _YAML)
        )
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


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


def read_features(path: str | Path, limits: UploadLimits = DEFAULT_LIMITS) -> list[Feature]:
    """Read the features of a geometry file as WGS84 lon/lat shapely geometries."""
    path = Path(path)
    if not path.is_file():
        raise AgreementError(f"file not found: {path}", file=str(path))
    files = {path.name: path.read_bytes()}
    if path.suffix.lower() == ".shp":
        beside = [p.name for p in path.parent.iterdir() if p.is_file()]
        files |= {n: (path.parent / n).read_bytes() for n in _companions(path.name, beside)}
    return _features(_Files(files, str(path.parent), limits), path.name)


def _companions(name: str, names: Iterable[str]) -> list[str]:
    """The files beside a shapefile that belong to it (``line.shx``, ``line.dbf``, ...)."""
    shp = PurePosixPath(name)
    return [
        n
        for n in names
        if n != name and (p := PurePosixPath(n)).parent == shp.parent and p.stem == shp.stem
    ]


def _features(files: _Files, name: str) -> list[Feature]:
    data, label, lim = files.read(name), files.label(name), files.limits
    suffix = PurePosixPath(name).suffix.lower()
    try:
        if len(data) > lim.max_file_bytes:
            raise LimitError(f"{len(data)} bytes", "max_file_bytes", lim.max_file_bytes)
        if suffix in (".geojson", ".json"):
            try:
                doc = load_json(data.decode("utf-8"), lim)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise AgreementError(f"not valid GeoJSON ({exc})", file=label) from exc
            _refuse_nul(doc, label)
            feats = _geojson_features(doc, label, lim)
        elif suffix in (".kml", ".kmz"):
            feats = _kml_features(data, label, lim)
        else:
            feats = _ogr_features(files, _normal(name))
        if len(feats) > lim.max_features:
            raise LimitError(f"{len(feats)} features", "max_features", lim.max_features)
        vertices = int(shapely.get_num_coordinates([f.geometry for f in feats]).sum())
        if vertices > lim.max_vertices:
            raise LimitError(f"{vertices} vertices", "max_vertices", lim.max_vertices)
    except LimitError as exc:
        raise AgreementError(exc.message, file=label) from exc
    if not feats:
        raise AgreementError("the file holds no features", file=label)
    return feats


def _geojson_features(data: Any, label: str, limits: UploadLimits) -> list[Feature]:
    if not isinstance(data, dict) or "type" not in data:
        raise AgreementError("not a GeoJSON object (no `type`)", file=label)
    if data["type"] == "FeatureCollection":
        items = data.get("features") or []
    elif data["type"] == "Feature":
        items = [data]
    else:
        items = [{"type": "Feature", "geometry": data, "properties": {}}]
    if not isinstance(items, list) or not all(isinstance(f, dict) for f in items):
        raise AgreementError("`features` must be a list of Feature objects", file=label)
    if len(items) > limits.max_features:
        raise LimitError(f"{len(items)} features", "max_features", limits.max_features)
    out = []
    for i, f in enumerate(items):
        try:
            geom = shapely.from_geojson(json.dumps(f.get("geometry")))
        except Exception as exc:  # shapely raises GEOSException subclasses and ValueError
            raise AgreementError(f"feature {i} has an invalid geometry ({exc})", file=label) from exc
        if geom is None:
            raise AgreementError(f"feature {i} has no geometry", file=label)
        out.append(Feature(geom, dict(f.get("properties") or {})))
    return out


def _kml_features(data: bytes, label: str, limits: UploadLimits) -> list[Feature]:
    """Placemarks (parsed by defusedxml) with their ExtendedData as properties."""
    from truceline.io.kml import parse_kml

    try:
        marks = parse_kml(data, label, limits)
    except ValidationError as exc:
        raise AgreementError(exc.message.removeprefix(f"{label}: "), file=label) from exc
    out = []
    for i, pm in enumerate(marks):
        if isinstance(pm.geometry, ValueError):  # read_kml's report of a placemark it cannot read
            raise AgreementError(f"feature {i} has an invalid geometry ({pm.geometry})", file=label)
        if pm.geometry is None:
            raise AgreementError(f"feature {i} has no geometry", file=label)
        out.append(Feature(_homogeneous(pm.geometry), dict(pm.properties)))
    return out


def _homogeneous(g: Any) -> Any:
    """A KML MultiGeometry of one kind as its Multi* geometry (as GDAL reads it)."""
    if g.geom_type != "GeometryCollection":
        return g
    parts = shapely.get_parts(shapely.get_parts(g))
    kinds = {p.geom_type for p in parts}
    if len(kinds) != 1:
        return g
    kind = kinds.pop()
    if kind == "Point":
        return shapely.MultiPoint(list(parts))
    if kind == "LineString":
        return shapely.MultiLineString(list(parts))
    if kind == "Polygon":
        return shapely.MultiPolygon(list(parts))
    return g


def _ogr_features(files: _Files, name: str) -> list[Feature]:
    label = files.label(name)
    try:
        from pyogrio.raw import read
    except ImportError as exc:  # pragma: no cover - pyogrio is a dependency
        raise AgreementError("pyogrio is needed to read this format", file=label) from exc
    _refuse_for_gdal(files, name)
    archive = _zipped(files, name)
    try:
        meta, _, geoms, fields = read(archive)
    except IndexError as exc:  # pyogrio's way of saying that GDAL found no layer
        raise AgreementError("cannot read the file (no layer found in it)", file=label) from exc
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        # GDAL names the in-memory archive pyogrio made; the user knows the file by its name
        why = _VSI.sub(label, str(exc))
        raise AgreementError(f"cannot read the file ({why})", file=label) from exc
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


_VSI = re.compile(r"/vsi[^\s']*")


def _refuse_for_gdal(files: _Files, name: str) -> None:
    """What GDAL must not be given: XML with a DTD or entities, or too deep (GML, GPX, ...), an
    OGR VRT (it names other files, on the server), an archive over the limits."""
    data, label = files.data[name], files.label(name)
    if looks_like_xml(data):
        try:
            root = check_xml(data, files.limits)
        except XmlRefusedError as exc:
            raise AgreementError(str(exc), file=label) from exc
        if root.tag.rsplit("}", 1)[-1] in ("OGRVRTDataSource", "VRTDataset"):
            raise AgreementError(
                "a GDAL virtual file (VRT) names other files; give the geometry itself "
                "(GeoJSON, KML, GeoPackage, Shapefile)",
                file=label,
            )
    elif looks_like_zip(data):
        try:
            open_zip(data, files.limits).close()
        except zipfile.BadZipFile as exc:
            raise AgreementError(f"not a readable zip archive ({exc})", file=label) from exc


def _zipped(files: _Files, name: str) -> bytes:
    """The file (a shapefile with its companions) in an uncompressed zip held in memory.

    pyogrio opens a zip's bytes through GDAL's /vsimem/ and /vsizip/: nothing is written to disk,
    and the file keeps its name (GDAL picks the driver by it; a shapefile finds its ``.dbf``).
    """
    names = [name]
    if PurePosixPath(name).suffix.lower() == ".shp":
        names += _companions(name, files.data)
        if not any(n.lower().endswith(".shx") for n in names):
            shx = PurePosixPath(name).with_suffix(".shx").as_posix()
            raise AgreementError(
                f"the shapefile's index {files.label(shx)} is missing; give it (and the .dbf and "
                ".prj) beside the .shp",
                file=files.label(name),
            )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for n in names:
            z.writestr(PurePosixPath(n).name, files.data[n])
    return buf.getvalue()


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _geometry(files: _Files, ref: Any, field: str, kinds: tuple[str, ...]) -> Any:
    """Read the geometry named by a ``{file: ..., feature: ...}`` reference, merged into one."""
    if isinstance(ref, str):
        ref = {"file": ref}
    if not isinstance(ref, dict) or "file" not in ref:
        raise AgreementError("give `{file: NAME}`", file=_YAML, field=field)
    path = files.label(str(ref["file"]))
    feats = _features(files, str(ref["file"]))
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
                f"expected {' or '.join(kinds)}, found {g.geom_type}", file=path, field=field
            )
        _check_lonlat(g, path, field)
    if kinds[0] == "LineString":
        parts = [p for g in geoms for p in getattr(g, "geoms", [g])]
        return parts[0] if len(parts) == 1 else shapely.MultiLineString(parts)
    merged = shapely.union_all(geoms)
    if not merged.is_valid:
        raise AgreementError(
            f"invalid polygon ({shapely.is_valid_reason(merged)}); fix the ring",
            file=path,
            field=field,
        )
    return merged


def _sides(files: _Files, ref: Any, pids: list[str]) -> dict[str, Any]:
    """The ground each party holds (``line: {sides: {file: ...}}``): polygons by their ``party``."""
    if isinstance(ref, str):
        ref = {"file": ref}
    if not isinstance(ref, dict) or "file" not in ref:
        raise AgreementError("give `sides: {file: NAME}`", file=_YAML, field="line.sides")
    name = str(ref["file"])
    path = files.label(name)
    groups: dict[str, list[Any]] = {}
    for i, f in enumerate(_features(files, name)):
        g = f.geometry
        if g.geom_type not in ("Polygon", "MultiPolygon"):
            raise AgreementError(
                f"feature {i} is a {g.geom_type}; the sides are Polygons or MultiPolygons",
                file=path,
                field=f"features[{i}]",
            )
        _check_lonlat(g, path, "line.sides")
        party = str(f.properties.get("party") or "")
        if party not in pids:
            raise AgreementError(
                f"feature {i} has party {party!r}; give each polygon the party holding it "
                f"({', '.join(pids)}) in a `party` property",
                file=path,
                field=f"features[{i}].party",
            )
        if not g.is_valid:  # a ring touching itself after reprojection: keep its polygons
            g = shapely.make_valid(g)
            g = shapely.union_all(
                [q for q in shapely.get_parts(g) if q.geom_type in ("Polygon", "MultiPolygon")]
            )
        groups.setdefault(party, []).append(g)
    return {p: shapely.union_all(gs) for p, gs in groups.items()}


def _check_lonlat(g: Any, path: str, field: str) -> None:
    xy = shapely.get_coordinates(g)
    if not np.all(np.isfinite(xy)):
        raise AgreementError("non-finite coordinates", file=path, field=field)
    if np.any(np.abs(xy[:, 0]) > 180) or np.any(np.abs(xy[:, 1]) > 90):
        raise AgreementError(
            "coordinates are not WGS84 lon/lat degrees (|lon| <= 180, |lat| <= 90); "
            "reproject the file to EPSG:4326",
            file=path,
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


def _zones(files: _Files, items: Any, field: str) -> list[Zone]:
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
            z["geometry"] = _geometry(files, ref, f"{field}[{i}].file", ("Polygon", "MultiPolygon"))
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


def _sectors(files: _Files, ref: Any) -> list[Sector]:
    """The sectors named by ``{file: NAME}`` (or a bare file name): polygons with id, nation, name."""
    feats = _features(files, str(ref["file"] if isinstance(ref, dict) else ref))
    out = []
    for i, f in enumerate(feats):
        _check_lonlat(f.geometry, files.label("sectors"), f"sectors[{i}]")
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


def load_agreement(path: str | Path, limits: UploadLimits = DEFAULT_LIMITS) -> Agreement:
    """Load and validate an agreement folder (or its ``agreement.yaml``).

    Messages name the files under the folder as given (``examples/x/line.geojson``).
    """
    path = Path(path)
    folder = path.parent if path.is_file() else path
    return load_agreement_files(files_of_folder(folder), origin=str(folder), limits=limits)


def _read_yaml(files: _Files) -> dict[str, Any]:
    """``agreement.yaml`` parsed: a mapping holding no NUL."""
    yml = files.label(_YAML)
    if _YAML not in files.data:
        where = files.origin or "the files"
        raise AgreementError(f"no {_YAML} in {where}; see docs/agreement-format.md", file=yml)
    try:
        raw = load_yaml(files.data[_YAML].decode("utf-8"), files.limits)
    except LimitError as exc:
        raise AgreementError(exc.message, file=yml) from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise AgreementError(f"not valid YAML ({exc})", file=yml) from exc
    if not isinstance(raw, dict):
        raise AgreementError("the file must hold a mapping", file=yml)
    _refuse_nul(raw, yml)
    return raw


def agreement_yaml(files: Mapping[str, bytes], *, origin: str | None = None) -> dict[str, Any]:
    """An agreement's ``agreement.yaml`` as parsed (a mapping; validated by the loader, not here)."""
    return _read_yaml(_Files(files, origin))


def load_agreement_files(
    files: Mapping[str, bytes],
    *,
    origin: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> Agreement:
    """Load and validate an agreement from its files, by relative POSIX name.

    Parameters
    ----------
    files
        ``agreement.yaml`` and the geometry files it names (``geometry/line.geojson``: bytes).
    origin
        The folder the files came from, if any: messages name them under it.
    limits
        What each file may hold (nesting, aliases, archive expansion, features, vertices); a file
        over one is refused naming the file and the setting.

    Raises
    ------
    AgreementError
        The message names the file, the field and the fix.
    """
    fs = _Files(files, origin, limits)
    yml = fs.label(_YAML)
    raw = _read_yaml(fs)

    def need(key: str) -> Any:
        if key not in raw:
            raise AgreementError(f"missing `{key}`", file=yml, field=key)
        return raw[key]

    try:
        parties = [_build(Party, p, f"parties[{i}]") for i, p in enumerate(need("parties"))]
        if len(parties) != 2:
            raise AgreementError("give exactly two parties", file=yml, field="parties")
        pids = [p.id for p in parties]
        line_ref = need("line")
        if not isinstance(line_ref, dict):
            raise AgreementError("`line` must be a mapping", file=yml, field="line")
        for key in ("left", "right"):
            if line_ref.get(key) not in pids:
                raise AgreementError(
                    f"unknown party {line_ref.get(key)!r}; use one of {', '.join(pids)}",
                    file=yml,
                    field=f"line.{key}",
                )
        line = _geometry(fs, line_ref, "line.file", ("LineString", "MultiLineString"))
        sides = _sides(fs, line_ref["sides"], pids) if line_ref.get("sides") is not None else {}
        extend = line_ref.get("extend", "none")
        if extend not in ("none", "azimuth"):
            raise AgreementError(
                f"unknown `extend` {extend!r}; use `azimuth` (each end continues along its last "
                "direction to the edge of the area of application) or `none` (the default: the "
                "line's ends reach the area's boundary)",
                file=yml,
                field="line.extend",
            )
        area = None
        if raw.get("area_of_application") is not None:
            area = _geometry(
                fs,
                raw["area_of_application"],
                "area_of_application",
                ("Polygon", "MultiPolygon"),
            )
        refs = {
            str(k): _geometry(fs, v, f"reference_lines.{k}", ("LineString", "MultiLineString"))
            for k, v in (raw.get("reference_lines") or {}).items()
        }
        zones = _zones(fs, raw.get("zones") or [], "zones")
        rules = _expand_star(_rules(raw.get("rules") or [], "rules"), pids)
        wcs = [
            _build(WeaponClass, w, f"weapon_classes[{i}]")
            for i, w in enumerate(raw.get("weapon_classes") or [])
        ]
        sectors = _sectors(fs, raw["sectors"]) if raw.get("sectors") else []
        ops: list[ObservationPost] = []
        if raw.get("observation_posts"):
            ref = raw["observation_posts"]
            feats = _features(fs, str(ref["file"] if isinstance(ref, dict) else ref))
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
            versions.append(_amend(fs, versions[-1], am, f"amendments[{i}]", pids))
        return Agreement(
            id=str(need("id")),
            name=str(need("name")),
            description=str(raw.get("description", "")),
            parties=(parties[0], parties[1]),
            left=line_ref["left"],
            right=line_ref["right"],
            sides=sides,
            area=area,
            default_area_km=raw.get("default_area_km", 250.0),  # the model checks it
            line_extends=extend,
            effective_to=(
                _date(raw["effective_to"], "effective_to")
                if raw.get("effective_to") is not None
                else None
            ),
            weapon_classes=tuple(wcs),
            sectors=tuple(sectors),
            observation_posts=tuple(ops),
            versions=tuple(versions),
            fusion=raw.get("fusion") or {},
        )
    except pydantic.ValidationError as exc:
        e = exc.errors()[0]
        msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
        raise AgreementError(msg, file=yml, field=_loc(dict(e)) or None) from exc
    except AgreementError as exc:
        if exc.file is None:
            raise AgreementError(exc.message, file=yml, field=exc.field) from exc
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
    files: _Files, prev: AgreementVersion, am: Any, field: str, pids: list[str]
) -> AgreementVersion:
    if not isinstance(am, dict):
        raise AgreementError("each amendment must be a mapping", file=_YAML, field=field)
    line = prev.line
    if am.get("line") is not None:
        line = _geometry(files, am["line"], f"{field}.line", ("LineString", "MultiLineString"))
    zones = {z.id: z for z in prev.zones}
    for z in _zones(files, am.get("zones") or [], f"{field}.zones"):
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
            files, v, f"{field}.reference_lines.{k}", ("LineString", "MultiLineString")
        )
    return AgreementVersion(
        effective_from=_date(am.get("effective_from"), f"{field}.effective_from"),
        description=str(am.get("description", "")),
        line=line,
        reference_lines=refs,
        zones=tuple(zones.values()),
        rules=tuple(rules.values()),
    )
