"""KML and KMZ: write features as Placemarks with ExtendedData, read them back safely.

Parsing goes through :mod:`defusedxml` (no DTDs, no entity expansion, no external entities;
:func:`truceline.io.limits.check_xml`, which also bounds the nesting): a KML file from the field is
untrusted input. KMZ archives are checked against :class:`~truceline.io.limits.UploadLimits`
(members, unpacked size, expansion ratio) before anything is unpacked, and read one byte past the
bound at most, so a zip bomb is refused rather than unpacked.

Coordinates are written with Python's shortest round-trip repr, so a point read back is the same
double that was written (``lon,lat`` order, WGS84, as KML requires).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import shapely

from truceline.errors import ValidationError
from truceline.io.limits import (
    DEFAULT_LIMITS,
    LimitError,
    UploadLimits,
    XmlRefusedError,
    check_xml,
    open_zip,
    read_zip_member,
)

__all__ = ["KML_NS", "MAX_KML_BYTES", "Placemark", "parse_kml", "read_kml", "write_kml"]

KML_NS = "http://www.opengis.net/kml/2.2"
_NS = f"{{{KML_NS}}}"
#: Largest KML document accepted (also the bound on a KMZ's uncompressed doc.kml).
MAX_KML_BYTES = 256 * 1024 * 1024

#: KML colours are aabbggrr. One per layer of reference geodata (line red, zones amber, ...).
LAYER_STYLES: dict[str, tuple[str, str]] = {
    "line": ("ff0000ff", "00000000"),
    "zone": ("ff00a5ff", "4000a5ff"),
    "sector": ("ffff0000", "00000000"),
    "observation_post": ("ff00ff00", "00000000"),
    "incident": ("ff0000ff", "00000000"),
}


@dataclass(frozen=True, slots=True)
class Placemark:
    """One placemark: its name, its folder (layer), its ExtendedData and its geometry (WGS84)."""

    name: str
    folder: str
    properties: dict[str, str]
    geometry: Any  # shapely geometry or None
    when: str | None = None


def _coords(xy: Iterable[Iterable[float]]) -> str:
    return " ".join(f"{float(x)!r},{float(y)!r}" for x, y, *_ in xy)


def _geometry_element(parent: ET.Element, geom: Any) -> None:
    kind = geom.geom_type
    if kind == "Point":
        ET.SubElement(ET.SubElement(parent, "Point"), "coordinates").text = _coords([geom.coords[0]])
    elif kind == "LineString":
        ls = ET.SubElement(parent, "LineString")
        ET.SubElement(ls, "tessellate").text = "1"
        ET.SubElement(ls, "coordinates").text = _coords(geom.coords)
    elif kind == "Polygon":
        pg = ET.SubElement(parent, "Polygon")
        ET.SubElement(pg, "tessellate").text = "1"
        outer = ET.SubElement(ET.SubElement(pg, "outerBoundaryIs"), "LinearRing")
        ET.SubElement(outer, "coordinates").text = _coords(geom.exterior.coords)
        for ring in geom.interiors:
            inner = ET.SubElement(ET.SubElement(pg, "innerBoundaryIs"), "LinearRing")
            ET.SubElement(inner, "coordinates").text = _coords(ring.coords)
    elif kind.startswith("Multi") or kind == "GeometryCollection":
        multi = ET.SubElement(parent, "MultiGeometry")
        for part in shapely.get_parts(geom):
            _geometry_element(multi, part)
    else:  # pragma: no cover - shapely has no other kinds
        raise ValidationError(f"cannot write a {kind} to KML")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def kml_document(
    placemarks: Iterable[tuple[str, str, Mapping[str, Any], Any, str | None]], *, name: str
) -> bytes:
    """A KML document from ``(folder, name, properties, geometry, when)`` tuples."""
    ET.register_namespace("", KML_NS)
    root = ET.Element("kml", xmlns=KML_NS)
    doc = ET.SubElement(root, "Document")
    ET.SubElement(doc, "name").text = name
    folders: dict[str, ET.Element] = {}
    for layer, (line, fill) in LAYER_STYLES.items():
        st = ET.SubElement(doc, "Style", id=f"tl-{layer}")
        ls = ET.SubElement(st, "LineStyle")
        ET.SubElement(ls, "color").text = line
        ET.SubElement(ls, "width").text = "2"
        ET.SubElement(ET.SubElement(st, "PolyStyle"), "color").text = fill
        ET.SubElement(ET.SubElement(st, "IconStyle"), "color").text = line
    for folder, pm_name, props, geom, when in placemarks:
        if folder not in folders:
            f = ET.SubElement(doc, "Folder")
            ET.SubElement(f, "name").text = folder
            folders[folder] = f
        pm = ET.SubElement(folders[folder], "Placemark")
        ET.SubElement(pm, "name").text = pm_name
        if folder in LAYER_STYLES:
            ET.SubElement(pm, "styleUrl").text = f"#tl-{folder}"
        if when:
            ET.SubElement(ET.SubElement(pm, "TimeStamp"), "when").text = when
        ext = ET.SubElement(pm, "ExtendedData")
        for k, v in props.items():
            d = ET.SubElement(ext, "Data", name=str(k))
            ET.SubElement(d, "value").text = _text(v)
        if geom is not None and not geom.is_empty:
            _geometry_element(pm, geom)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def write_kml(
    path: str | Path,
    placemarks: Iterable[tuple[str, str, Mapping[str, Any], Any, str | None]],
    *,
    name: str,
) -> None:
    """Write KML (``.kml``) or KMZ (``.kmz``: the same document zipped as ``doc.kml``)."""
    path = Path(path)
    data = kml_document(placemarks, name=name)
    if path.suffix.lower() == ".kmz":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("doc.kml", data)
    else:
        path.write_bytes(data)


# -- reading ------------------------------------------------------------------------------------


def _kml_bytes(source: Path | bytes, name: str, kmz: bool, limits: UploadLimits) -> bytes:
    """The KML document of a file or of its bytes (a KMZ's ``doc.kml``, or its first ``.kml``)."""
    bound = min(MAX_KML_BYTES, limits.max_file_bytes)
    if not kmz:
        size = source.stat().st_size if isinstance(source, Path) else len(source)
        if size > bound:
            raise ValidationError(
                f"{name}: {size} bytes; the limit is {bound} (setting uploads.max_file_bytes); "
                "split the file"
            )
        return source.read_bytes() if isinstance(source, Path) else source
    data = source.read_bytes() if isinstance(source, Path) else source
    try:
        with open_zip(data, limits) as z:
            names = [i for i in z.infolist() if i.filename.lower().endswith(".kml")]
            if not names:
                raise ValidationError(f"{name}: the KMZ holds no .kml document")
            info = next((i for i in names if i.filename.lower() == "doc.kml"), names[0])
            return read_zip_member(z, info, limits)
    except LimitError as exc:
        raise ValidationError(f"{name}: {exc.message}", field=exc.setting) from exc
    except zipfile.BadZipFile as exc:
        raise ValidationError(f"{name}: not a KMZ (zip) file ({exc})") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> Iterator[ET.Element]:
    return (c for c in el if _local(c.tag) == name)


def _first(el: ET.Element, name: str) -> ET.Element | None:
    return next(_children(el, name), None)


def _parse_coords(text: str | None) -> list[tuple[float, float]]:
    out = []
    for tup in (text or "").split():
        parts = tup.split(",")
        if len(parts) < 2:
            raise ValueError(f"coordinate {tup!r} is not lon,lat[,alt]")
        out.append((float(parts[0]), float(parts[1])))
    return out


def _geometry(el: ET.Element) -> Any:
    kind = _local(el.tag)
    if kind == "Point":
        xy = _parse_coords(getattr(_first(el, "coordinates"), "text", ""))
        if len(xy) != 1:
            raise ValueError("a Point needs exactly one coordinate")
        return shapely.Point(xy[0])
    if kind == "LineString":
        return shapely.LineString(_parse_coords(getattr(_first(el, "coordinates"), "text", "")))
    if kind == "Polygon":
        rings = []
        for tag in ("outerBoundaryIs", "innerBoundaryIs"):
            for b in _children(el, tag):
                ring = _first(b, "LinearRing")
                if ring is not None:
                    rings.append(_parse_coords(getattr(_first(ring, "coordinates"), "text", "")))
        if not rings:
            raise ValueError("a Polygon needs an outerBoundaryIs")
        return shapely.Polygon(rings[0], rings[1:])
    if kind == "MultiGeometry":
        parts = [_geometry(c) for c in el if _local(c.tag) in _GEOMS]
        return shapely.GeometryCollection(parts) if parts else None
    return None


_GEOMS = ("Point", "LineString", "Polygon", "MultiGeometry")


def _properties(pm: ET.Element) -> dict[str, str]:
    props: dict[str, str] = {}
    ext = _first(pm, "ExtendedData")
    if ext is None:
        return props
    for d in ext.iter():
        name = _local(d.tag)
        if name == "Data" and d.get("name"):
            v = _first(d, "value")
            props[str(d.get("name"))] = (v.text or "") if v is not None else ""
        elif name == "SimpleData" and d.get("name"):
            props[str(d.get("name"))] = d.text or ""
    return props


def read_kml(path: str | Path, limits: UploadLimits = DEFAULT_LIMITS) -> list[Placemark]:
    """Every Placemark of a KML or KMZ file, with its folder name and ExtendedData.

    Raises
    ------
    ValidationError
        The file is not well-formed KML, or holds a DTD or entity declarations (refused).
    """
    path = Path(path)
    kmz = path.suffix.lower() == ".kmz"
    return _placemarks(_kml_bytes(path, str(path), kmz, limits), str(path), limits)


def parse_kml(data: bytes, name: str, limits: UploadLimits = DEFAULT_LIMITS) -> list[Placemark]:
    """:func:`read_kml` of a file's bytes; ``name`` (ending ``.kml`` or ``.kmz``) is named in errors."""
    kmz = name.lower().endswith(".kmz")
    return _placemarks(_kml_bytes(data, name, kmz, limits), name, limits)


def _placemarks(data: bytes, path: str, limits: UploadLimits) -> list[Placemark]:
    try:
        root = check_xml(data, limits)
    except XmlRefusedError as exc:
        raise ValidationError(f"{path}: {exc}") from exc
    except LimitError as exc:
        raise ValidationError(f"{path}: {exc.message}", field=exc.setting) from exc
    out: list[Placemark] = []

    def walk(el: ET.Element, folder: str) -> None:
        for child in el:
            name = _local(child.tag)
            if name in ("Folder", "Document"):
                n = _first(child, "name")
                walk(child, (n.text or "").strip() if (n is not None and name == "Folder") else folder)
            elif name == "Placemark":
                n = _first(child, "name")
                geom = None
                for g in child:
                    if _local(g.tag) in _GEOMS:
                        try:
                            geom = _geometry(g)
                        except ValueError as exc:
                            geom = exc  # reported by the caller against this placemark
                        break
                ts = _first(child, "TimeStamp")
                when = getattr(_first(ts, "when"), "text", None) if ts is not None else None
                out.append(
                    Placemark(
                        name=((n.text or "") if n is not None else "").strip(),
                        folder=folder,
                        properties=_properties(child),
                        geometry=geom,
                        when=when.strip() if when else None,
                    )
                )

    walk(root, "")
    return out
