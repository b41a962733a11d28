"""The file formats analysts use: CSV, GeoJSON, GeoPackage, KML/KMZ and ACLED-layout CSV.

Two families of data go through here:

- **incidents**, read into validated :class:`~truceline.core.incidents.Incident` records with
  per-record rejects (:func:`read_incident_file`) and written from *export records*
  (:func:`write_incident_file`): the incident's own fields plus the adjudication the server
  computed (:data:`DERIVED_COLUMNS`: side, distance, zones, sector, status, findings...). On
  import the derived columns are dropped (the server recomputes them), so an export reads back as
  the same incidents;
- **reference geodata** (the agreement's line, zones per side, sectors, observation posts) as a
  GeoJSON FeatureCollection whose features carry a ``layer`` property
  (:func:`~truceline.io.features.zones_feature_collection`), written by
  :func:`write_geodata_file`. The agreement loader reads these files back.

GeoPackage is written with pyogrio (GDAL): one layer per kind of feature, EPSG:4326, ready for
QGIS. KML is written and parsed by :mod:`truceline.io.kml` (defusedxml). Floating-point values
are written so that they read back as the same doubles.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from truceline.errors import ValidationError
from truceline.io import kml
from truceline.io.acled import (
    ACLED_COLUMNS,
    ACLED_VERSION,
    MappingReport,
    acled_records,
    acled_row,
)
from truceline.io.csv_safe import safe_cell
from truceline.io.incidents_io import (
    INCIDENT_FIELDS,
    ReadResult,
    Reject,
    _csv_records,
    _geojson_records,
    incidents_from_records,
)
from truceline.io.limits import DEFAULT_LIMITS, UploadLimits, bounded_csv, too_many_rows
from truceline.io.smm import smm_records

__all__ = [
    "DERIVED_COLUMNS",
    "EXPORT_COLUMNS",
    "FORMATS",
    "READ_FORMATS",
    "ImportResult",
    "format_of",
    "read_incident_file",
    "write_geodata_file",
    "write_incident_file",
]

#: The formats written and read back.
FORMATS: tuple[str, ...] = ("csv", "geojson", "gpkg", "kml", "kmz", "acled", "parquet")
#: The formats read: those, and the OSCE SMM's observations (:mod:`truceline.io.smm`).
READ_FORMATS: tuple[str, ...] = (*FORMATS, "smm")
_SUFFIX = {
    ".csv": "csv",
    ".geojson": "geojson",
    ".json": "geojson",
    ".gpkg": "gpkg",
    ".kml": "kml",
    ".kmz": "kmz",
    ".parquet": "parquet",
    ".geoparquet": "parquet",
}
#: Columns an export adds to the incident's own fields (recomputed by the server on import).
DERIVED_COLUMNS: tuple[str, ...] = (
    "pk",
    "agreement_id",
    "side_party",
    "distance_km",
    "p_side",
    "zones",
    "sector",
    "status",
    "findings",
    "submitted_by",
    "received_at",
)
EXPORT_COLUMNS: tuple[str, ...] = INCIDENT_FIELDS + DERIVED_COLUMNS
_FLOATS = frozenset(
    {
        "lon",
        "lat",
        "uncertainty_m",
        "origin_lon",
        "origin_lat",
        "origin_uncertainty_m",
        "bearing_deg",
        "distance_km",
        "p_side",
    }
)
_INTS = frozenset({"count", "credibility", "pk"})


def format_of(path: str | Path, fmt: str | None = None) -> str:
    """The format named, or the one the file's suffix implies (``.csv`` is plain CSV)."""
    if fmt:
        f = fmt.lower().lstrip(".")
        if f == "json":
            f = "geojson"
        if f not in READ_FORMATS:
            raise ValidationError(
                f"unknown format {fmt!r}",
                field="format",
                value=fmt,
                fix=f"use one of: {', '.join(READ_FORMATS)}",
            )
        return f
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX:
        raise ValidationError(
            f"{path}: cannot tell the format from the suffix {suffix!r}",
            field="format",
            value=suffix,
            fix="name the file .csv, .geojson, .gpkg, .kml, .kmz or .parquet, or give --format",
        )
    return _SUFFIX[suffix]


@dataclass(slots=True)
class ImportResult:
    """Validated incidents with their rejects, and (ACLED) what could not be mapped."""

    format: str
    read: ReadResult
    report: MappingReport | None = None
    #: row -> the source's version of the record (ACLED: its ``timestamp``, s), where it has one
    versions: dict[int, float] = field(default_factory=dict)


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _strip(rec: dict[str, Any]) -> dict[str, Any]:
    """Drop derived columns and absent values (empty cells, nulls)."""
    return {
        k: v
        for k, v in rec.items()
        if k not in DERIVED_COLUMNS and v is not None and not (isinstance(v, str) and v.strip() == "")
    }


def _with_point(row: int, props: dict[str, Any], geom: Any) -> dict[str, Any] | Reject:
    if isinstance(geom, Exception):
        return Reject(row, str(props.get("id", "")), "geometry", f"bad geometry ({geom})")
    if geom is None or geom.is_empty or geom.geom_type != "Point":
        kind = "no geometry" if geom is None or geom.is_empty else f"a {geom.geom_type}"
        return Reject(row, str(props.get("id", "")), "geometry", f"{kind}; an incident needs a Point")
    props["lon"], props["lat"] = float(geom.x), float(geom.y)
    return props


def _gpkg_records(path: Path, limits: UploadLimits) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    from pyogrio import list_layers
    from pyogrio.raw import read

    try:
        layers = [str(name) for name, _ in list_layers(path)]
        layer = "incidents" if "incidents" in layers else (layers[0] if layers else None)
        meta, _, geoms, fields = read(path, layer=layer)
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        raise ValidationError(f"{path}: cannot read the GeoPackage ({exc})") from exc
    shp = shapely.from_wkb(geoms) if geoms is not None else np.array([None] * len(fields[0]))
    crs = meta.get("crs")
    if crs and crs.upper() not in ("EPSG:4326", "OGC:CRS84"):
        from pyproj import CRS, Transformer

        tr = Transformer.from_crs(CRS.from_user_input(crs), "EPSG:4326", always_xy=True)
        shp = shapely.transform(shp, lambda xy: np.column_stack(tr.transform(xy[:, 0], xy[:, 1])))
    names = list(meta.get("fields", []))
    n = len(shp)
    if n > limits.max_import_rows:
        raise too_many_rows(path, limits)
    for i in range(n):
        props = {name: _plain(fields[j][i]) for j, name in enumerate(names)}
        yield i + 1, _with_point(i + 1, _strip(props), shp[i])


def _kml_records(path: Path, limits: UploadLimits) -> Iterator[tuple[int, dict[str, Any] | Reject]]:
    marks = kml.read_kml(path, limits)
    if len(marks) > limits.max_import_rows:
        raise too_many_rows(path, limits)
    for i, pm in enumerate(marks, start=1):
        props = _strip(dict(pm.properties))
        props.setdefault("id", pm.name)
        if pm.when and "observed_at" not in props:
            props["observed_at"] = pm.when
        yield i, _with_point(i, props, pm.geometry)


def _split(
    records: Iterator[tuple[int, dict[str, Any] | Reject]], rejects: list[Reject]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for row, rec in records:
        if isinstance(rec, Reject):
            rejects.append(rec)
        else:
            yield row, rec


def read_incident_file(
    path: str | Path,
    fmt: str | None = None,
    *,
    parties: Mapping[str, str] | None = None,
    geo_sigma_m: Mapping[int, float] | None = None,
    encoding: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> ImportResult:
    """Read incidents from any supported format; bad records become rejects, the rest go through.

    A file over one of the ``limits`` (CSV cell length, records, JSON or XML nesting, KMZ
    expansion) is refused whole, naming the limit and its setting.

    Parameters
    ----------
    fmt
        One of :data:`FORMATS`; default from the suffix. ACLED files are ``.csv``: say ``acled``.
    parties, geo_sigma_m
        ACLED only: actor name -> party id, and ``geo_precision`` -> 1-sigma error (m); see
        :mod:`truceline.io.acled`.
    encoding
        A CSV's text encoding (``--encoding``); by default detected
        (:mod:`truceline.io.text_encoding`) and given back in ``result.read.encoding``.
    """
    path = Path(path)
    f = format_of(path, fmt)
    if not path.exists():
        raise ValidationError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise ValidationError(f"{path}: the file is empty")
    pre: list[Reject] = []
    report: MappingReport | None = None
    records: Iterator[tuple[int, dict[str, Any]]]
    seen = ReadResult()  # told the encoding by the CSV readers
    if f in ("csv", "parquet"):  # in blocks, as columns (truceline.io.columnar)
        return ImportResult(f, _columnar(path, encoding, limits))
    if f == "csv":
        records = ((k, _strip(r)) for k, r in _csv_records(path, encoding, seen, limits))
    elif f == "geojson":
        records = ((k, _strip(r)) for k, r in _geojson_records(path, limits))
    elif f == "gpkg":
        records = _split(_gpkg_records(path, limits), pre)
    elif f in ("kml", "kmz"):
        records = _split(_kml_records(path, limits), pre)
    else:
        records = iter(())
    versions: dict[int, float] = {}
    if f == "smm":
        records = _split(bounded_csv(smm_records(path), path, limits), pre)
    if f == "acled":
        report = MappingReport()
        rows = acled_records(
            path, report, parties=parties, geo_sigma_m=geo_sigma_m, encoding=encoding, read=seen
        )
        acled = _split(bounded_csv(rows, path, limits), pre)
        records = _versioned(acled, versions)
    read = incidents_from_records(records)
    read.rejects = sorted(pre + read.rejects, key=lambda r: r.row)
    read.encoding, read.encoding_detected = seen.encoding, seen.encoding_detected
    return ImportResult(f, read, report, versions)


def _columnar(path: Path, encoding: str | None, limits: UploadLimits) -> ReadResult:
    """A CSV or GeoParquet of incidents read in blocks as columns, as records for the store."""
    from truceline.io.columnar import ColumnarRead, incidents_of

    read = ColumnarRead(path, limits, encoding, ignore=DERIVED_COLUMNS)
    out = ReadResult()
    for b in read:
        out.incidents.extend(incidents_of(b.incidents.table))
        out.rows.extend(b.incidents.rows.tolist())
        out.rejects.extend(b.rejects)
        out.duplicates.extend(b.duplicates)
    out.encoding, out.encoding_detected = read.encoding, read.encoding_detected
    return out


def _write_parquet(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """Export records as GeoParquet 1.1: the columns of a CSV export, typed, and a point each."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from truceline.io.columnar import geo_metadata

    cols: dict[str, Any] = {}
    for c in EXPORT_COLUMNS:
        values = [r.get(c) for r in records]
        if c in _FLOATS:
            cols[c] = pa.array(values, pa.float64())
        elif c in _INTS:
            cols[c] = pa.array(values, pa.int64())
        elif any(isinstance(v, dt.datetime) for v in values):
            cols[c] = pa.array(values, pa.timestamp("us", "UTC"))
        else:
            cols[c] = pa.array([None if v is None else str(v) for v in values], pa.string())
    lon = np.array([float(r["lon"]) for r in records], dtype=np.float64)
    lat = np.array([float(r["lat"]) for r in records], dtype=np.float64)
    cols["geometry"] = pa.array(shapely.to_wkb(shapely.points(lon, lat)), pa.binary())
    table = pa.table(cols).replace_schema_metadata({b"geo": geo_metadata()})
    pq.write_table(table, path)


def _versioned(
    records: Iterator[tuple[int, dict[str, Any]]], versions: dict[int, float]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records without their version (:data:`~truceline.io.acled.ACLED_VERSION`), kept aside."""
    for row, rec in records:
        v = rec.pop(ACLED_VERSION, None)
        if v is not None:
            versions[row] = float(v)
        yield row, rec


# -- writing incidents --------------------------------------------------------------------------


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return safe_cell(v)


def _write_csv(path: Path, records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow({k: _cell(r.get(k)) for k in columns})


def _column(name: str, values: list[Any]) -> np.ndarray:
    if name in _FLOATS:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    if name in _INTS:
        return np.array([0 if v is None else int(v) for v in values], dtype=np.int64)
    if values and all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    return np.array([None if v is None else str(v) for v in values], dtype=object)


def _write_gpkg_layer(
    path: Path,
    layer: str,
    geoms: Sequence[Any],
    props: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    append: bool,
) -> None:
    from pyogrio.raw import write

    kinds = {g.geom_type for g in geoms}
    if not kinds or kinds <= {"Point"}:
        gtype = "Point"
    elif kinds <= {"LineString", "MultiLineString"}:
        gtype = "MultiLineString"
    elif kinds <= {"Polygon", "MultiPolygon"}:
        gtype = "MultiPolygon"
    else:
        gtype = "Unknown"
    wkb = np.array([shapely.to_wkb(g) for g in geoms], dtype=object)
    field_data = [_column(c, [p.get(c) for p in props]) for c in columns]
    write(
        path,
        wkb,
        field_data,
        list(columns),
        layer=layer,
        driver="GPKG",
        geometry_type=gtype,
        crs="EPSG:4326",
        promote_to_multi=gtype.startswith("Multi"),
        append=append,
        # GeoPackage 1.2: read by every GDAL and QGIS in use (1.4 warns on GDAL < 3.7).
        dataset_options=None if append else {"VERSION": "1.2"},
    )


def write_incident_file(
    path: str | Path,
    records: Sequence[Mapping[str, Any]],
    fmt: str | None = None,
    *,
    name: str = "incidents",
    party_names: Mapping[str, str] | None = None,
) -> int:
    """Write export records (:data:`EXPORT_COLUMNS`) in a format; returns how many were written.

    Parameters
    ----------
    party_names
        ACLED only: party id -> the actor name written in ``actor1``.
    """
    path = Path(path)
    f = format_of(path, fmt)
    if f == "smm":
        raise ValidationError(
            "the SMM observations layout is read, not written (an incident keeps no observer)",
            field="format",
            value="smm",
            fix="export as csv, geojson, gpkg, kml, kmz or acled",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()  # GDAL would otherwise add a layer to an old GeoPackage
    if f == "csv":
        _write_csv(path, records, EXPORT_COLUMNS)
    elif f == "parquet":
        _write_parquet(path, records)
    elif f == "acled":
        _write_csv(path, [acled_row(r, party_names=party_names) for r in records], ACLED_COLUMNS)
    elif f == "geojson":
        feats = [
            {
                "type": "Feature",
                "id": r["id"],
                "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]},
                "properties": {k: r.get(k) for k in EXPORT_COLUMNS if k not in ("lon", "lat")},
            }
            for r in records
        ]
        doc = {"type": "FeatureCollection", "name": name, "features": feats}
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    elif f == "gpkg":
        geoms = [shapely.Point(r["lon"], r["lat"]) for r in records]
        cols = [c for c in EXPORT_COLUMNS if c not in ("lon", "lat")]
        _write_gpkg_layer(path, name, geoms, records, cols, append=False)
    else:
        kml.write_kml(
            path,
            (
                (
                    "incident",
                    str(r["id"]),
                    {k: r.get(k) for k in EXPORT_COLUMNS if k not in ("lon", "lat")},
                    shapely.Point(r["lon"], r["lat"]),
                    r.get("observed_at"),
                )
                for r in records
            ),
            name=name,
        )
    return len(records)


# -- writing reference geodata ------------------------------------------------------------------

_LAYER_NAMES = {
    "line": "line",
    "zone": "zones",
    "sector": "sectors",
    "observation_post": "observation_posts",
}


def write_geodata_file(path: str | Path, fc: Mapping[str, Any], fmt: str | None = None) -> int:
    """Write reference geodata (features with a ``layer`` property) in a format.

    GeoPackage gets one layer per kind (``line``, ``zones``, ``sectors``, ``observation_posts``),
    KML one folder per kind, CSV a ``wkt`` column. Returns the number of features written.
    """
    path = Path(path)
    f = format_of(path, fmt)
    if f in ("acled", "smm"):
        raise ValidationError(
            f"the {f.upper()} layout holds events, not zones or lines",
            field="format",
            value=f,
            fix="export reference geodata as csv, geojson, gpkg, kml or kmz",
        )
    feats = list(fc.get("features", []))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    geoms = [shapely.geometry.shape(ft["geometry"]) for ft in feats]
    props = [dict(ft.get("properties") or {}) for ft in feats]
    if f == "geojson":
        path.write_text(json.dumps(dict(fc), ensure_ascii=False), encoding="utf-8")
    elif f == "csv":
        cols: list[str] = []
        for p in props:
            cols.extend(k for k in p if k not in cols)
        rows = [
            {**p, "wkt": shapely.to_wkt(g, rounding_precision=-1)}
            for p, g in zip(props, geoms, strict=True)
        ]
        _write_csv(path, rows, [*cols, "wkt"])
    elif f == "gpkg":
        layers: dict[str, list[int]] = {}
        for k, p in enumerate(props):
            layers.setdefault(str(p.get("layer", "features")), []).append(k)
        for n, (layer, idx) in enumerate(layers.items()):
            cols = []
            for k in idx:
                cols.extend(c for c in props[k] if c not in cols)
            _write_gpkg_layer(
                path,
                _LAYER_NAMES.get(layer, layer),
                [geoms[k] for k in idx],
                [props[k] for k in idx],
                cols,
                append=n > 0,
            )
    else:
        kml.write_kml(
            path,
            (
                (str(p.get("layer", "features")), str(p.get("name") or p.get("id") or ""), p, g, None)
                for p, g in zip(props, geoms, strict=True)
            ),
            name=str(fc.get("name") or "Truceline reference geodata"),
        )
    return len(feats)
