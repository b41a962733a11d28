"""The agreement model: parties, the line, zones, weapon classes, rules, sectors and versions.

An :class:`Agreement` holds geometry already parsed into shapely objects (WGS84 lon/lat); reading
files is the job of :mod:`truceline.io.agreement_files`. :meth:`Agreement.version_at` gives the
:class:`CompiledVersion` in force on a date: the line indexed for exact geodesic queries, the two side
polygons that make "which side" defined everywhere in the area of application, and zone outlines.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from shapely.ops import split

from truceline.core.fusion import FusionSettings
from truceline.core.geodesy import (
    GEOD,
    LineIndex,
    LineIndexStore,
    Nearest,
    geodesic_area_km2,
    offset_region,
)
from truceline.core.incidents import Kind, refuse_boolean_numbers
from truceline.errors import AgreementError

__all__ = [
    "END_TOLERANCE_KM",
    "Agreement",
    "AgreementVersion",
    "CompiledVersion",
    "LineEnd",
    "ObservationPost",
    "Party",
    "Rule",
    "RuleType",
    "Sector",
    "WeaponClass",
    "Zone",
    "part_sides",
]


class RuleType(StrEnum):
    zone_ban = "zone_ban"
    withdrawal = "withdrawal"
    count_cap = "count_cap"
    fire_across = "fire_across"
    drone_flight = "drone_flight"
    movement_restriction = "movement_restriction"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        return refuse_boolean_numbers(cls, data)


_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class Party(_Model):
    id: str = Field(pattern=_ID, max_length=32)
    name: str


class WeaponClass(_Model):
    id: str = Field(pattern=_ID, max_length=64)
    name: str = ""
    min_range_km: float | None = Field(default=None, ge=0)
    max_range_km: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ranges(self) -> WeaponClass:
        if (
            self.min_range_km is not None
            and self.max_range_km is not None
            and self.min_range_km >= self.max_range_km
        ):
            raise ValueError("min_range_km must be smaller than max_range_km")
        return self


class Zone(_Model):
    """A zone: a band at distances from the line per side, or explicit polygons."""

    id: str = Field(pattern=_ID, max_length=64)
    name: str = ""
    type: Literal["band", "polygon"]
    bands: dict[str, tuple[float, float]] = Field(default_factory=dict)
    buffer: bool = False
    geometry: Any = None  # shapely (Multi)Polygon for type "polygon"

    @field_validator("bands")
    @classmethod
    def _bands(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for party, (lo, hi) in v.items():
            if lo < 0 or hi < 0:
                raise ValueError(f"band for {party} has a negative width; use km >= 0")
            if hi <= lo:
                raise ValueError(f"band for {party} must be [from_km, to_km] with to_km > from_km")
        return v

    @model_validator(mode="after")
    def _shape(self) -> Zone:
        if self.type == "band" and not self.bands:
            raise ValueError("a band zone needs `bands: {PARTY: [from_km, to_km]}`")
        if self.type == "polygon" and (self.geometry is None or self.geometry.is_empty):
            raise ValueError("a polygon zone needs a `file` with polygons")
        return self


class Rule(_Model):
    id: str = Field(pattern=_ID, max_length=64)
    type: RuleType
    description: str = ""
    zone: str | None = None
    kinds: tuple[Kind, ...] = ()
    weapon_classes: tuple[str, ...] = ()
    distance_km: dict[str, float] = Field(default_factory=dict)
    max_count: int | None = Field(default=None, ge=0)
    effective_from: dt.date | None = None
    effective_to: dt.date | None = None

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        t = self.type
        if t in (RuleType.zone_ban, RuleType.count_cap, RuleType.drone_flight) and not self.zone:
            raise ValueError(f"a {t.value} rule needs `zone`")
        if t == RuleType.zone_ban and not (self.kinds or self.weapon_classes):
            raise ValueError("a zone_ban rule needs `kinds` and/or `weapon_classes`")
        if t == RuleType.withdrawal:
            if not self.weapon_classes:
                raise ValueError("a withdrawal rule needs `weapon_classes`")
            if not self.distance_km:
                raise ValueError("a withdrawal rule needs `distance_km` (one number or per party)")
        if t == RuleType.count_cap:
            if self.max_count is None:
                raise ValueError("a count_cap rule needs `max_count`")
            if not (self.kinds or self.weapon_classes):
                raise ValueError("a count_cap rule needs `kinds` and/or `weapon_classes`")
        for party, km in self.distance_km.items():
            if km <= 0:
                raise ValueError(f"distance_km for {party} must be > 0 km")
        return self

    def in_force(self, day: dt.date) -> bool:
        return (self.effective_from is None or day >= self.effective_from) and (
            self.effective_to is None or day < self.effective_to
        )


class Sector(_Model):
    id: str = Field(pattern=_ID, max_length=64)
    nation: str = ""
    name: str = ""
    geometry: Any


class ObservationPost(_Model):
    id: str = Field(pattern=_ID, max_length=64)
    name: str = ""
    sector: str | None = None
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)


class AgreementVersion(_Model):
    """The line, zones and rules in force from ``effective_from``."""

    effective_from: dt.date
    description: str = ""
    line: Any  # shapely LineString / MultiLineString
    reference_lines: dict[str, Any] = Field(default_factory=dict)
    zones: tuple[Zone, ...]
    rules: tuple[Rule, ...]


class Agreement(_Model):
    """A ceasefire agreement and its amendments."""

    id: str = Field(pattern=_ID, max_length=64)
    name: str
    description: str = ""
    parties: tuple[Party, Party]
    left: str
    right: str
    area: Any = None  # shapely Polygon; None: within default_area_km of the line
    default_area_km: float = Field(default=250.0, gt=0)
    #: The day the agreement ends (exclusive; None: open-ended). Its versions apply from their
    #: ``effective_from`` until the next one, the last until this day.
    effective_to: dt.date | None = None
    #: How the line continues where an end stops inside the area of application: ``"none"`` (it
    #: may not: each end must reach the area's boundary) or ``"azimuth"`` (along its last direction
    #: to the area's edge). YAML: ``line: {extend: azimuth}``.
    line_extends: Literal["none", "azimuth"] = "none"
    #: The ground each party holds (lon/lat (Multi)Polygons by party id; YAML ``line: {sides:
    #: {file: territory.geojson}}``, polygons with a ``party`` property). Given, the sides of the line
    #: are this ground cut to the area of application (what neither holds goes by the nearest part
    #: of the line), not the line continued beyond its ends, and the line may be in several
    #: separate parts (a front in pieces), each with the left party's ground on its left.
    sides: dict[str, Any] = Field(default_factory=dict)
    weapon_classes: tuple[WeaponClass, ...] = ()
    sectors: tuple[Sector, ...] = ()
    observation_posts: tuple[ObservationPost, ...] = ()
    versions: tuple[AgreementVersion, ...]
    fusion: FusionSettings = Field(default_factory=FusionSettings)
    """How reports of one event are linked (``fusion:`` in agreement.yaml; defaults otherwise)."""

    @model_validator(mode="after")
    def _consistent(self) -> Agreement:
        ids = [p.id for p in self.parties]
        if len(set(ids)) != 2:
            raise AgreementError("the two parties need different ids", field="parties")

        def known_parties(parties: Iterable[str], field: str) -> None:
            for pid in parties:
                if pid not in ids:
                    raise AgreementError(
                        f"unknown party {pid!r}; use one of {', '.join(ids)}", field=field
                    )

        known_parties([self.left], "line.left")
        known_parties([self.right], "line.right")
        if self.left == self.right:
            raise AgreementError("left and right must be different parties", field="line")
        if self.sides:
            known_parties(self.sides, "line.sides")
            for pid in ids:
                g = self.sides.get(pid)
                if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon"):
                    raise AgreementError(
                        f"the sides give no polygons of {pid}; give each party's ground (a "
                        "`party` property on each polygon)",
                        field="line.sides",
                    )
        wc = {w.id for w in self.weapon_classes}
        for vi, v in enumerate(self.versions):
            where = "" if vi == 0 else f"amendments[{vi - 1}]."
            _check_line(v.line, f"{where}line")
            if vi == 0 or not v.line.equals(self.versions[vi - 1].line):
                if self.sides:
                    _check_part_sides(self, v.line, f"{where}line")
                else:
                    _check_ends(self, v.line, f"{where}line")
            zones = {z.id for z in v.zones}
            known_parties(v.reference_lines, f"{where}reference_lines")
            for z in v.zones:
                known_parties(z.bands, f"{where}zones[{z.id}].bands")
            for r in v.rules:
                f = f"{where}rules[{r.id}]"
                if r.zone is not None and r.zone not in zones:
                    raise AgreementError(
                        f"unknown zone {r.zone!r}; define it under `zones` "
                        f"(known: {', '.join(sorted(zones)) or 'none'})",
                        field=f"{f}.zone",
                    )
                for w in r.weapon_classes:
                    if w not in wc:
                        raise AgreementError(
                            f"unknown weapon class {w!r}; define it under `weapon_classes`",
                            field=f"{f}.weapon_classes",
                        )
                known_parties(r.distance_km, f"{f}.distance_km")
        dates = [v.effective_from for v in self.versions]
        if self.effective_to is not None and self.effective_to <= dates[-1]:
            raise AgreementError(
                f"the agreement ends ({self.effective_to}) before its last version takes effect "
                f"({dates[-1]}); set `effective_to` after {dates[-1]} or remove that amendment",
                field="effective_to",
            )
        if dates != sorted(dates) or len(set(dates)) != len(dates):
            raise AgreementError(
                "amendments must take effect on distinct dates after the agreement's",
                field="amendments",
            )
        line0 = self.versions[0].line
        for s in self.sectors:
            if not s.geometry.intersects(line0):
                raise AgreementError(
                    f"sector {s.id!r} does not touch the line; extend its polygon across the line",
                    field=f"sectors[{s.id}]",
                )
        return self

    @property
    def party_ids(self) -> tuple[str, str]:
        return (self.parties[0].id, self.parties[1].id)

    def party_on_side(self, side: int) -> str:
        return self.left if side > 0 else self.right

    def side_of_party(self, party: str) -> int:
        return 1 if party == self.left else -1

    @property
    def effective_from(self) -> dt.date:
        return self.versions[0].effective_from

    def in_force_on(self, days: ArrayLike) -> NDArray[np.bool_]:
        """Whether the agreement is in force on each date (``datetime64[D]`` array).

        From the first version's ``effective_from`` until ``effective_to`` (exclusive). Before
        entry into force no version applies: :meth:`version_index_at` still answers version 0 for
        those dates (its geometry labels them), but no rule may judge them.
        """
        d = np.asarray(days, dtype="datetime64[D]")
        out = d >= np.datetime64(self.effective_from, "D")
        if self.effective_to is not None:
            out &= d < np.datetime64(self.effective_to, "D")
        return np.asarray(out, dtype=bool)

    def version_index_at(self, days: ArrayLike) -> NDArray[np.intp]:
        """Index of the version in force on each date (``datetime64[D]`` array)."""
        starts = self.__dict__.get("_version_starts")
        if starts is None:
            starts = np.array([v.effective_from for v in self.versions], dtype="datetime64[D]")
            self.__dict__["_version_starts"] = starts
        d = np.asarray(days, dtype="datetime64[D]")
        return np.clip(np.searchsorted(starts, d, side="right") - 1, 0, len(starts) - 1)

    def compiled(self, index: int = 0) -> CompiledVersion:
        cache: dict[int, CompiledVersion] = self.__dict__.setdefault("_compiled", {})
        if index not in cache:
            cache[index] = CompiledVersion(self, index)
        return cache[index]

    def line_index(self, geom: Any, *, max_segment_m: float = 5000.0) -> LineIndex:
        """The :class:`LineIndex` of a (multi)line, shared by every version drawing the same line.

        Amendments often keep the line and change rules: one index (and one set of search tables,
        filled once) then serves them all. Keyed by the exact coordinates (WKB) and the step.
        """
        cache: dict[tuple[bytes, float], LineIndex] = self.__dict__.setdefault("_line_indexes", {})
        key = (shapely.to_wkb(geom), max_segment_m)
        index = cache.get(key)
        if index is None:
            index = cache[key] = LineIndex(_parts(geom), max_segment_m=max_segment_m)
            store: LineIndexStore | None = self.__dict__.get("_index_store")
            if store is not None:
                store.load(index)
        return index

    def use_index_store(self, store: LineIndexStore | None) -> None:
        """Hand every line index of this agreement, made already or later, to ``store`` (which may
        fill its search tables from an earlier process); ``None`` stops handing new ones."""
        self.__dict__["_index_store"] = store
        if store is not None:
            for index in list(self.__dict__.get("_line_indexes", {}).values()):
                store.load(index)

    def version_at(self, day: dt.date) -> CompiledVersion:
        return self.compiled(int(self.version_index_at(np.datetime64(day, "D"))))

    @property
    def weapon_class_ids(self) -> frozenset[str]:
        return frozenset(w.id for w in self.weapon_classes)


def _check_line(line: Any, field: str) -> None:
    if line is None or line.is_empty:
        raise AgreementError("the line is empty; give a LineString or MultiLineString", field=field)
    if line.geom_type not in ("LineString", "MultiLineString"):
        raise AgreementError(
            f"the line is a {line.geom_type}; give a LineString or MultiLineString", field=field
        )
    xy = shapely.get_coordinates(line)
    if not np.all(np.isfinite(xy)):
        raise AgreementError("the line has non-finite coordinates", field=field)
    if np.any(np.abs(xy[:, 0]) > 180) or np.any(np.abs(xy[:, 1]) > 90):
        raise AgreementError(
            "coordinates are not WGS84 lon/lat degrees (|lon| <= 180, |lat| <= 90); "
            "reproject the file to EPSG:4326",
            field=field,
        )
    if not line.is_simple:
        bad = _self_intersection(line)
        at = f" near lon {bad[0]:.4f}, lat {bad[1]:.4f}" if bad is not None else ""
        raise AgreementError(
            f"the line intersects itself{at}; remove the loop or split it into parts", field=field
        )


#: An end of the line this close to the area's boundary (km, geodesic) is taken as on it.
END_TOLERANCE_KM = 1.0


class LineEnd(_Model):
    """Where one end of the line lies with respect to the boundary of the area of application."""

    which: Literal["start", "end"]
    lon: float
    lat: float
    #: Geodesic distance (km) to the area's boundary, and whether the end lies inside the area.
    boundary_km: float
    inside: bool
    #: The direction (deg from north) the end continues in, when extended along its azimuth.
    azimuth_deg: float

    @property
    def inside_km(self) -> float:
        """How far inside the area the end stops (km; 0 on or outside its boundary)."""
        return self.boundary_km if self.inside else 0.0

    @property
    def where(self) -> str:
        return f"the line's {self.which} (lon {self.lon:.4f}, lat {self.lat:.4f})"

    def assumption(self, extends: str) -> str:
        """What Truceline takes this end to mean (``agreement check`` prints it)."""
        if self.inside_km <= END_TOLERANCE_KM:
            if self.boundary_km <= END_TOLERANCE_KM:
                on = (
                    f"on the boundary of the area of application ({self.boundary_km:.2f} km from "
                    f"it; within {END_TOLERANCE_KM:g} km counts as on it)"
                )
            else:
                on = f"outside the area of application ({self.boundary_km:.1f} km beyond its edge)"
            return f"{self.where} is {on}: nothing assumed"
        return (
            f"{self.where} stops {self.inside_km:.1f} km inside the area of application: "
            f"continued along its azimuth ({self.azimuth_deg:.0f} deg) to the area's edge "
            f"(`extend: {extends}`); places beyond it take their side from that continuation"
        )


def joined_line(line: Any, field: str) -> Any:
    """The line as one LineString: a MultiLineString whose parts join end to end, merged.

    Parts that do not join are refused: which side of each separate part belongs to which party
    cannot be read from the parts' order (joining them in order inverts the sides of reversed
    or disjoint pieces, e.g. the edges of control-of-territory polygons).
    """
    if line.geom_type == "LineString":
        return line
    merged = shapely.line_merge(line, directed=True)
    if merged.geom_type == "LineString":
        return merged
    parts = list(shapely.get_parts(line))
    gap = ""
    if len(parts) >= 2:
        a = shapely.get_coordinates(parts[0])[-1]
        b = shapely.get_coordinates(parts[1])[0]
        _, _, d = GEOD.inv(a[0], a[1], b[0], b[1])
        gap = (
            f" (part 1 ends at lon {a[0]:.4f}, lat {a[1]:.4f}; part 2 starts at lon {b[0]:.4f}, "
            f"lat {b[1]:.4f}, {float(d) / 1000.0:.1f} km away)"
        )
    raise AgreementError(
        f"the line has {len(parts)} parts that do not join end to end{gap}; Truceline cannot tell "
        "which side of each separate part belongs to which party. Join the parts into one line "
        "in order (each part's last vertex the next part's first, all digitised in the same "
        "direction), give the ground each party holds (`sides: {file: territory.geojson}` under "
        "`line`, polygons with a `party` property; `agreement from-territory` writes it), or "
        "make one agreement per part",
        field=field,
    )


#: Probes either side of the line's segments (m) to read which party's ground lies on each side.
_PROBE_M = 200.0


def part_sides(agreement: Agreement, line: Any) -> NDArray[np.float64]:
    """Per part of ``line``: how well its left side is the left party's ground (-1..1).

    Probes ``_PROBE_M`` either side of every segment's middle (geodesic, vectorised) vote, weighted
    by the segment's length: +1 where the left party's ground lies on the left or the right party's
    on the right, -1 for the reverse; 0 where the probes fall in neither (or both).
    """
    parts = [shapely.get_coordinates(g) for g in getattr(line, "geoms", [line])]
    xy = np.vstack(parts)
    pid = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
    same = pid[:-1] == pid[1:]  # segments within a part
    a, b = xy[:-1][same], xy[1:][same]
    seg_part = pid[:-1][same]
    az, _, length = GEOD.inv(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    mlon, mlat, _ = GEOD.fwd(a[:, 0], a[:, 1], az, np.asarray(length) / 2.0)
    n = np.size(mlon)
    left_lon, left_lat, _ = GEOD.fwd(mlon, mlat, np.asarray(az) - 90.0, np.full(n, _PROBE_M))
    right_lon, right_lat, _ = GEOD.fwd(mlon, mlat, np.asarray(az) + 90.0, np.full(n, _PROBE_M))
    gl, gr = agreement.sides[agreement.left], agreement.sides[agreement.right]

    def held(lon: Any, lat: Any) -> NDArray[np.int8]:
        in_l = shapely.contains_xy(gl, lon, lat)
        in_r = shapely.contains_xy(gr, lon, lat)
        return np.where(in_l & ~in_r, 1, np.where(in_r & ~in_l, -1, 0)).astype(np.int8)

    vote = (held(left_lon, left_lat) - held(right_lon, right_lat)) / 2.0
    w = np.asarray(length, dtype=np.float64)
    num = np.bincount(seg_part, weights=vote * w, minlength=len(parts))
    den = np.bincount(seg_part, weights=w, minlength=len(parts))
    return np.asarray(num / np.maximum(den, 1e-9), dtype=np.float64)


def _check_part_sides(agreement: Agreement, line: Any, field: str) -> None:
    """With the parties' ground given, every part of the line has the left party's on its left."""
    score = part_sides(agreement, line)
    parts = list(getattr(line, "geoms", [line]))
    bad = np.flatnonzero(score < 0)
    if bad.size:
        k = int(bad[0])
        xy = shapely.get_coordinates(parts[k])
        raise AgreementError(
            f"part {k + 1} of {len(parts)} of the line (from lon {xy[0, 0]:.4f}, lat "
            f"{xy[0, 1]:.4f} to lon {xy[-1, 0]:.4f}, lat {xy[-1, 1]:.4f}) has "
            f"{agreement.right}'s ground on its left, but the line's left is {agreement.left}"
            + (f" ({bad.size} parts are reversed)" if bad.size > 1 else "")
            + "; reverse that part (digitise it with the left party's ground on its left)",
            field=field,
        )


def line_ends(agreement: Agreement, line: Any, field: str = "line") -> list[LineEnd]:
    """The line's two ends and how far inside the area of application each lies (geodesic)."""
    xy = shapely.get_coordinates(joined_line(line, field))
    az_start, _, _ = GEOD.inv(xy[1, 0], xy[1, 1], xy[0, 0], xy[0, 1])
    _, az_end_back, _ = GEOD.inv(xy[-2, 0], xy[-2, 1], xy[-1, 0], xy[-1, 1])
    pts = np.array([xy[0], xy[-1]])
    if agreement.area is None:
        # The default area is every point within default_area_km of the line: its ends lie that
        # far inside it, whatever their position.
        dist = np.full(2, agreement.default_area_km)
        within = np.ones(2, dtype=bool)
    else:
        rings = [
            shapely.get_coordinates(r)
            for r in shapely.get_parts(shapely.get_parts(agreement.area.boundary))
        ]
        within = shapely.contains_xy(agreement.area, pts[:, 0], pts[:, 1])
        dist = LineIndex(rings, max_segment_m=5000.0).distance_m(pts[:, 0], pts[:, 1]) / 1000.0
    return [
        LineEnd(
            which="start",
            lon=float(pts[0, 0]),
            lat=float(pts[0, 1]),
            boundary_km=float(dist[0]),
            inside=bool(within[0]),
            azimuth_deg=float(az_start) % 360.0,
        ),
        LineEnd(
            which="end",
            lon=float(pts[1, 0]),
            lat=float(pts[1, 1]),
            boundary_km=float(dist[1]),
            inside=bool(within[1]),
            azimuth_deg=(float(az_end_back) + 180.0) % 360.0,
        ),
    ]


def _check_ends(agreement: Agreement, line: Any, field: str) -> None:
    """Each end of the line reaches the area's boundary, or the agreement says how it extends."""
    if agreement.line_extends != "none":
        joined_line(line, field)
        return
    for end in line_ends(agreement, line, field):
        if end.inside_km <= END_TOLERANCE_KM:
            continue
        if agreement.area is None:
            raise AgreementError(
                f"{end.where} lies {end.inside_km:g} km inside the default area of application "
                f"(every point within default_area_km = {agreement.default_area_km:g} km of the "
                "line), so the sides beyond it are undefined; give an `area_of_application` "
                "whose boundary the line's ends reach (a state border, the coast), or say how the "
                "line continues: `extend: azimuth` under `line`",
                field=field,
            )
        raise AgreementError(
            f"{end.where} lies {end.inside_km:.1f} km inside the area of application (more than "
            f"{END_TOLERANCE_KM:g} km from its boundary), so the sides beyond it are undefined; "
            "extend the line to the area's boundary (a state border, the coast), cut the area "
            "back to where the line stops, or say how the line continues: `extend: azimuth` "
            "under `line` (along its last direction to the area's edge)",
            field=field,
        )


def _self_intersection(line: Any) -> tuple[float, float] | None:
    """A point where a line crosses itself (for the error message), if any."""
    parts = list(getattr(line, "geoms", [line]))
    segs = []
    for p in parts:
        c = shapely.get_coordinates(p)
        segs.extend(shapely.linestrings(np.stack([c[:-1], c[1:]], axis=1)))
    arr = np.asarray(segs, dtype=object)
    tree = shapely.STRtree(arr)
    a, b = tree.query(arr, predicate="intersects")
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        if j <= i + 1:
            continue
        inter = shapely.intersection(arr[i], arr[j])
        if not inter.is_empty:
            c = shapely.get_coordinates(inter)[0]
            return float(c[0]), float(c[1])
    return None


def _parts(line: Any) -> list[NDArray[np.float64]]:
    """The line's coordinates: parts that join end to end as one (an agreement's line always
    does, :func:`joined_line`), others (a reference line, a withdrawal line) part by part."""
    if line.geom_type == "MultiLineString":
        merged = shapely.line_merge(line, directed=True)
        if merged.geom_type == "LineString":
            return [shapely.get_coordinates(merged)]
    return [shapely.get_coordinates(g) for g in getattr(line, "geoms", [line])]


class CompiledVersion:
    """One version of an agreement with its geometry indexed for vectorised queries."""

    def __init__(self, agreement: Agreement, index: int) -> None:
        self.agreement = agreement
        self.index = index
        self.version = agreement.versions[index]
        self.line = agreement.line_index(self.version.line)
        self.reference: dict[int, LineIndex] = {}
        for party, geom in self.version.reference_lines.items():
            self.reference[agreement.side_of_party(party)] = agreement.line_index(geom)
        self.zones = {z.id: z for z in self.version.zones}
        self.rules = self.version.rules
        self.area = (
            agreement.area
            if agreement.area is not None
            else _geodesic_buffer(self.line, agreement.default_area_km * 1000.0)
        )
        shapely.prepare(self.area)
        self._side_polygons = (
            _sides_from_ground(self.line, self.area, agreement)
            if agreement.sides
            else _split_sides(self.line, self.area)
        )
        for g in self._side_polygons.values():
            shapely.prepare(g)
        for z in self.version.zones:
            if z.geometry is not None:
                shapely.prepare(z.geometry)
        self._area_lookup = PolygonLookup([self.area])
        self._side_lookup = PolygonLookup([self._side_polygons[1], self._side_polygons[-1]])
        self.sector_lookup = PolygonLookup([s.geometry for s in agreement.sectors])

    def zone_boundary(self, zone: Zone) -> LineIndex:
        """The outline of a polygon zone as a :class:`LineIndex` (250 m steps), for distances to it."""
        if zone.geometry is None:
            raise ValueError(f"zone {zone.id!r} is a band: it has no outline of its own")
        rings = shapely.MultiLineString(
            [shapely.get_coordinates(r) for r in shapely.get_parts(zone.geometry.boundary)]
        )
        return self.agreement.line_index(rings, max_segment_m=250.0)

    def prepare(self, *, within_m: float = 150_000.0, zone_within_m: float = 60_000.0) -> None:
        """Fill the lazily built search tables ahead of time, so no query pays for them later.

        A long-running server calls this before taking traffic: otherwise the first report in each
        new place (a 0.02 deg cell) fills that cell's tables, several milliseconds on that request.
        Results are the same either way.

        Parameters
        ----------
        within_m
            Reach (m) from the line and the reference lines whose cells are filled: reports and
            the launch points drawn for a crater bearing (up to the longest weapon range) fall there.
        zone_within_m
            Reach (m) from the outline of each polygon zone (distances to it are asked only within
            8 sigma of the zone).
        """
        for index in {id(x): x for x in (self.line, *self.reference.values())}.values():
            index.prepare(within_m)
        for zone in self.version.zones:
            if zone.type == "polygon":
                self.zone_boundary(zone).prepare(zone_within_m)
        self.prepare_lookups()

    def prepare_lookups(self) -> None:
        """Classify every cell of the polygon lookups (area, sides, sectors) ahead of time: a few
        hundredths of a second each, where classifying cells as points first fall in them costs
        more for points spread widely, and again in every process. Results are the same."""
        for lookup in (self._area_lookup, self._side_lookup, self.sector_lookup):
            lookup.prepare()

    def ref_line(self, side: int) -> LineIndex:
        return self.reference.get(side, self.line)

    def side_polygon(self, side: int) -> Any:
        return self._side_polygons[side]

    def sides(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
        """Side (+1 left, -1 right, 0 outside the area of application) and geodesic distance (m).

        Off the line's ends (and in gaps between its parts) the side is decided by the side polygons,
        whose dividing line continues the line along its end azimuths to the area's edge.
        """
        side, near = self.locate(lon, lat)
        return side, near.distance_m

    def side_of(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.int8]:
        """Side only (+1 left, -1 right, 0 outside the area), from the side polygons.

        Much cheaper than :meth:`sides` for many points (Monte Carlo samples): most points fall in
        grid cells wholly inside one side, and only points in cells the line crosses are tested.
        Agrees with :meth:`sides` except within centimetres of the line, where the polygons' edges
        are its straight lon/lat chords.
        """
        k = self._side_lookup.lookup(lon, lat)
        return np.where(k == 0, 1, np.where(k == 1, -1, 0)).astype(np.int8)

    def side_of_boxes(
        self, lon_min: ArrayLike, lat_min: ArrayLike, lon_max: ArrayLike, lat_max: ArrayLike
    ) -> NDArray[np.int8]:
        """The side that :meth:`side_of` gives every point of each lon/lat box, where it is one.

        +1 or -1 when every grid cell the box touches is already known to lie wholly on that side
        (then :meth:`side_of` answers that side for any point of the box without testing it), 0
        when the box touches the line's cells, the outside, an unclassified cell or leaves the grid:
        not proven, not necessarily mixed. Lets Monte Carlo skip draws it can bound.
        """
        k = self._side_lookup.uniform(lon_min, lat_min, lon_max, lat_max)
        return np.where(k == 0, 1, np.where(k == 1, -1, 0)).astype(np.int8)

    def locate(self, lon: ArrayLike, lat: ArrayLike) -> tuple[NDArray[np.int8], Nearest]:
        """Like :meth:`sides`, also returning the full nearest-point result (foot, chainage)."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        near = self.line.nearest(lon, lat)
        side = near.side.copy()
        end = np.flatnonzero(near.at_end | (side == 0))
        if end.size:
            left = shapely.contains_xy(self._side_polygons[1], lon[end], lat[end])
            side[end] = np.where(left, 1, -1).astype(np.int8)
        inside = (self._area_lookup.lookup(lon, lat) >= 0) | (near.distance_m < 1.0)
        side[~inside] = 0
        return side, near

    # -- zone outlines (for maps, exports and areas) -----------------------------------------

    def band_polygon(self, zone: Zone, side: int) -> Any:
        """Outline of a band zone on one side, built geodesically (vertices exact to the metre)."""
        party = self.agreement.party_on_side(side)
        if party not in zone.bands:
            return shapely.Polygon()
        lo, hi = zone.bands[party]
        ref = self.ref_line(side)
        outer = shapely.intersection(offset_region(ref, hi * 1000.0, side), self.side_polygon(side))
        if lo > 0:
            outer = shapely.difference(outer, offset_region(ref, lo * 1000.0, side))
        return _polygonal(outer)

    def zone_polygons(self, zone: Zone) -> dict[int, Any]:
        """Zone outline per side (+1 left, -1 right); polygon zones are split by side."""
        cache: dict[str, dict[int, Any]] = self.__dict__.setdefault("_zone_cache", {})
        if zone.id not in cache:
            if zone.type == "band":
                cache[zone.id] = {s: self.band_polygon(zone, s) for s in (1, -1)}
            else:
                g = zone.geometry
                cache[zone.id] = {
                    s: _polygonal(shapely.intersection(g, self.side_polygon(s))) for s in (1, -1)
                }
        return cache[zone.id]

    @cached_property
    def line_length_km(self) -> float:
        return self.line.length_m / 1000.0

    def zone_area_km2(self, zone: Zone) -> dict[int, float]:
        return {s: geodesic_area_km2(g) for s, g in self.zone_polygons(zone).items()}


class PolygonLookup:
    """Which of several polygons holds each point, fast for large batches.

    A grid of cells (``cell_deg``) over the polygons' bounds remembers, per cell, whether the whole
    cell lies in one polygon, in none, or straddles an edge; only points in straddling cells are
    tested against the polygons themselves. Cells are classified lazily, once.
    """

    def __init__(self, polygons: list[Any], cell_deg: float = 0.02) -> None:
        self.polygons = polygons
        for g in polygons:
            shapely.prepare(g)
        self.cell = cell_deg
        if polygons:
            b = np.array([g.bounds for g in polygons])
            self.x0 = float(np.floor(b[:, 0].min() / cell_deg) * cell_deg)
            self.y0 = float(np.floor(b[:, 1].min() / cell_deg) * cell_deg)
            self.nx = int(np.ceil((b[:, 2].max() - self.x0) / cell_deg)) + 1
            self.ny = int(np.ceil((b[:, 3].max() - self.y0) / cell_deg)) + 1
        else:
            self.x0 = self.y0 = 0.0
            self.nx = self.ny = 0
        self.state = np.full(self.nx * self.ny, -3, dtype=np.int32)  # -3 unknown, -2 mixed, -1 none

    def lookup(self, lon: ArrayLike, lat: ArrayLike) -> NDArray[np.intp]:
        """Index of the first polygon containing each point, -1 if none."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        out = np.full(lon.size, -1, dtype=np.intp)
        if not self.polygons or lon.size == 0:
            return out
        ix = np.floor((lon - self.x0) / self.cell).astype(np.int64)
        iy = np.floor((lat - self.y0) / self.cell).astype(np.int64)
        ingrid = (ix >= 0) & (ix < self.nx) & (iy >= 0) & (iy < self.ny)
        cell = np.where(ingrid, ix * self.ny + iy, 0)
        todo = cell[ingrid][self.state[cell[ingrid]] == -3]
        if todo.size:  # (the sort of np.unique only when some cell is new)
            todo = np.unique(todo)
            self.state[todo] = self._classify(todo)
        st = np.where(ingrid, self.state[cell], -1)
        out[st >= 0] = st[st >= 0]
        mixed = np.flatnonzero(st == -2)
        if mixed.size:
            res = np.full(mixed.size, -1, dtype=np.intp)
            mlon, mlat = lon[mixed], lat[mixed]
            for k, g in enumerate(self.polygons):
                m = (res < 0) & shapely.contains_xy(g, mlon, mlat)
                res[m] = k
                if k + 1 < len(self.polygons) and res.min() >= 0:
                    break  # every point placed: the later polygons would change nothing
            out[mixed] = res
        return out

    #: Boxes touching more cells than this are not examined by :meth:`uniform` (answer -1).
    _MAX_BOX_CELLS = 4096

    def uniform(
        self, lon_min: ArrayLike, lat_min: ArrayLike, lon_max: ArrayLike, lat_max: ArrayLike
    ) -> NDArray[np.intp]:
        """Index of the polygon that :meth:`lookup` gives every point of each box, -1 if not one.

        A box gets polygon ``k`` when every cell it touches is classified as wholly in ``k``:
        :meth:`lookup` maps a point to its cell by ``floor``, which is monotone, so every point of
        the box falls in one of those cells and gets ``k`` without a test. Cells not yet classified,
        cells an edge crosses, boxes leaving the grid and boxes of more than ``_MAX_BOX_CELLS``
        cells give -1 (not proven). Classifies nothing: the answer never changes what
        :meth:`lookup` returns.
        """
        x0 = np.atleast_1d(np.asarray(lon_min, dtype=np.float64))
        y0 = np.atleast_1d(np.asarray(lat_min, dtype=np.float64))
        x1 = np.atleast_1d(np.asarray(lon_max, dtype=np.float64))
        y1 = np.atleast_1d(np.asarray(lat_max, dtype=np.float64))
        out = np.full(x0.size, -1, dtype=np.intp)
        if not self.polygons or x0.size == 0:
            return out
        with np.errstate(invalid="ignore"):
            fx0, fy0 = np.floor((x0 - self.x0) / self.cell), np.floor((y0 - self.y0) / self.cell)
            fx1, fy1 = np.floor((x1 - self.x0) / self.cell), np.floor((y1 - self.y0) / self.cell)
            ok = (fx0 >= 0) & (fy0 >= 0) & (fx1 < self.nx) & (fy1 < self.ny)
            ok &= (fx1 >= fx0) & (fy1 >= fy0)
            w = np.where(ok, fx1 - fx0 + 1, 0)
            h = np.where(ok, fy1 - fy0 + 1, 0)
            ok &= w * h <= self._MAX_BOX_CELLS
        b = np.flatnonzero(ok)
        if b.size == 0:
            return out
        ix0, iy0 = fx0[b].astype(np.int64), fy0[b].astype(np.int64)
        wb, hb = w[b].astype(np.int64), h[b].astype(np.int64)
        cnt = wb * hb
        start = np.cumsum(cnt) - cnt
        j = np.arange(int(cnt.sum()), dtype=np.int64) - np.repeat(start, cnt)
        hh = np.repeat(hb, cnt)
        st = self.state[(np.repeat(ix0, cnt) + j // hh) * self.ny + np.repeat(iy0, cnt) + j % hh]
        lo = np.minimum.reduceat(st, start)
        hi = np.maximum.reduceat(st, start)
        out[b] = np.where((lo == hi) & (lo >= 0), lo, -1)
        return out

    def _classify(self, todo: NDArray[np.int64]) -> NDArray[np.int32]:
        """State of each cell: the first polygon holding all of it, -2 if an edge crosses it
        first, -1 if none touches it (cells numbered ``ix * ny + iy``)."""
        x = self.x0 + (todo // self.ny) * self.cell
        y = self.y0 + (todo % self.ny) * self.cell
        return self._classify_boxes(shapely.box(x, y, x + self.cell, y + self.cell))

    def _classify_boxes(self, boxes: NDArray[np.object_]) -> NDArray[np.int32]:
        st = np.full(boxes.size, -1, dtype=np.int32)
        for k, g in enumerate(self.polygons):  # a handful of polygons, vectorised over cells
            free = st == -1
            st[free & shapely.contains(g, boxes)] = k
            st[(st == -1) & shapely.intersects(g, boxes)] = -2
        return st

    def prepare(self) -> int:
        """Classify every cell of the grid ahead of time (see :meth:`lookup`); returns how many.

        :meth:`lookup` otherwise classifies a cell the first time a point falls in it. Blocks of
        8 x 8 cells are classified first, each widened by 1e-9 deg so that it holds its cells'
        boxes whatever the rounding: a block wholly in a polygon (and touching none before it),
        or touching none, gives that state to all its cells, which is what classifying the cells
        one by one gives; only the cells of blocks that an edge crosses are classified one by one.
        """
        if not self.polygons:
            return 0
        b, eps = 8, 1e-9
        bnx, bny = -(-self.nx // b), -(-self.ny // b)
        blk = np.arange(bnx * bny, dtype=np.int64)
        x = self.x0 + (blk // bny) * b * self.cell
        y = self.y0 + (blk % bny) * b * self.cell
        bst = self._classify_boxes(
            shapely.box(x - eps, y - eps, x + b * self.cell + eps, y + b * self.cell + eps)
        )
        sub = np.arange(b, dtype=np.int64)
        ix = ((blk // bny) * b)[:, None, None] + sub[None, :, None]
        iy = ((blk % bny) * b)[:, None, None] + sub[None, None, :]
        ok = (ix < self.nx) & (iy < self.ny)
        cells = ix * self.ny + iy
        whole = np.broadcast_to((bst != -2)[:, None, None], ok.shape) & ok
        unknown = self.state == -3
        filled = int(np.count_nonzero(unknown))
        c = cells[whole]
        sval = np.broadcast_to(bst[:, None, None], ok.shape)[whole]
        self.state[c] = np.where(unknown[c], sval, self.state[c])
        rest = cells[~whole & ok]
        rest = np.sort(rest[self.state[rest] == -3])
        if rest.size:
            self.state[rest] = self._classify(rest)
        return filled


def _polygonal(geom: Any) -> Any:
    """The polygons of a geometry (overlays can leave slivers of lines and points on shared edges)."""
    geom = shapely.make_valid(geom)
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _geodesic_buffer(line: LineIndex, dist_m: float) -> Any:
    left = offset_region(line, dist_m, 1, tol_m=50.0)
    right = offset_region(line, dist_m, -1, tol_m=50.0)
    return shapely.make_valid(shapely.union(left, right))


def _extension(lon0: float, lat0: float, az: float, max_m: float, step_m: float) -> Any:
    d = np.arange(step_m, max_m + step_m, step_m)
    lo, la, _ = GEOD.fwd(np.full(d.size, lon0), np.full(d.size, lat0), np.full(d.size, az), d)
    return np.column_stack([lo, la])


def _sides_from_ground(line: LineIndex, area: Any, agreement: Agreement) -> dict[int, Any]:
    """The area of application split by the ground each party holds (``agreement.sides``).

    Ground both claim goes to neither first; what neither holds (gaps, overlaps, unmapped land) goes,
    piece by piece, to the side of the nearest part of the line at the piece's representative point.
    """
    gl = _polygonal(shapely.intersection(agreement.sides[agreement.left], area))
    gr = _polygonal(shapely.intersection(agreement.sides[agreement.right], area))
    both = shapely.intersection(gl, gr)
    left, right = shapely.difference(gl, both), shapely.difference(gr, both)
    rest = _polygonal(shapely.difference(area, shapely.union(left, right)))
    pieces = np.asarray(shapely.get_parts(rest), dtype=object)
    if pieces.size:
        rxy = shapely.get_coordinates(shapely.point_on_surface(pieces))
        side = line.nearest(rxy[:, 0], rxy[:, 1]).side
        left = shapely.union_all([left, *pieces[side >= 0]])
        right = shapely.union_all([right, *pieces[side < 0]])
    left, right = _polygonal(left), _polygonal(right)
    if left.is_empty or right.is_empty:
        raise AgreementError(
            "one party holds none of the area of application; check the sides' polygons and "
            "the area overlap",
            field="line.sides",
        )
    return {1: left, -1: right}


def _split_sides(line: LineIndex, area: Any) -> dict[int, Any]:
    """Split the area of application into the left and right sides of the line.

    The line's parts are joined in order and its two ends continued along their end azimuths far
    enough to leave the area, so that every point of the area lies on exactly one side.
    """
    lon, lat = line.lon, line.lat
    xy = np.column_stack([lon, lat])
    minx, miny, maxx, maxy = area.bounds
    _, _, span = GEOD.inv(minx, miny, maxx, maxy)
    reach = float(span) + 50_000.0
    az_start, _, _ = GEOD.inv(lon[1], lat[1], lon[0], lat[0])
    _, az_end_back, _ = GEOD.inv(lon[-2], lat[-2], lon[-1], lat[-1])
    head = _extension(lon[0], lat[0], float(az_start), reach, 5_000.0)[::-1]
    tail = _extension(lon[-1], lat[-1], float(az_end_back) + 180.0, reach, 5_000.0)
    full = np.vstack([head, xy, tail])
    ext_index = LineIndex([full], max_segment_m=5_000.0)
    cutter = shapely.LineString(full)
    pieces = shapely.get_parts(split(area, cutter))
    rep = shapely.point_on_surface(pieces)
    rxy = shapely.get_coordinates(rep)
    sides = ext_index.nearest(rxy[:, 0], rxy[:, 1]).side
    left = shapely.union_all(pieces[sides > 0]) if np.any(sides > 0) else shapely.Polygon()
    right = shapely.union_all(pieces[sides < 0]) if np.any(sides < 0) else shapely.Polygon()
    if left.is_empty or right.is_empty:
        raise AgreementError(
            "the line does not divide the area of application into two sides; make the line "
            "cross the area from edge to edge",
            field="area_of_application",
        )
    return {1: left, -1: right}
