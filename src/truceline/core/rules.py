"""The rule engine: adjudicate a batch of incidents against an agreement, vectorised.

:func:`classify` returns, per incident, its side, signed geodesic distance to the line, the zones it
lies in, its sector, and the findings (zero or more per incident), each with the rule, the party
responsible (or ``"undetermined"``), a probability, a one-line explanation, and the numbers that
explanation states as typed columns (:class:`Findings`; which numbers each rule type has:
:data:`NUMBERS`). Consumers read the columns, never the explanation's text.

Probabilities come from the incidents' own position uncertainty (a circular Gaussian of standard
deviation ``uncertainty_m``): near a boundary, the engine says how likely the incident is on either
side of it rather than a hard yes/no. Every step is array arithmetic over the batch; the only Python
loops run over agreement versions and rules.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from numpy.dtypes import StringDType
from numpy.typing import NDArray

from truceline.core.agreement import Agreement, CompiledVersion, Rule, RuleType, Zone
from truceline.core.arrays import unique_inverse
from truceline.core.attribution import (
    ATTRIBUTION_BAND,
    UNDETERMINED,
    bearing_sector_probability,
    prepare_draws,
    side_probability,
)
from truceline.core.geodesy import LineIndex, pad_lat_deg, pad_lon_deg
from truceline.core.incidents import FIRE_KINDS, PRESENCE_KINDS, IncidentBatch, Kind
from truceline.core.probability import icd203_term, normal_cdf

__all__ = [
    "NUMBERS",
    "NUMBER_COLUMNS",
    "NUMBER_FIELDS",
    "UNDETERMINED",
    "Classification",
    "FindingNumbers",
    "Findings",
    "classify",
    "judge_rules",
    "number_columns",
    "prepare",
]

#: Findings below this probability are not reported.
MIN_PROBABILITY = 0.05
#: Parties that may fly over the zone: the mission's own drones.
MISSION_IDS = frozenset({"mission", "monitors", "MISSION"})
_MC_SAMPLES = 1024  # draws per event where an origin's uncertainty spans a bend or an end
_MC_BEARING_SAMPLES = 256  # draws per bearing sector (its spread dwarfs the sampling error)
_DEFAULT_RANGE_KM = (1.0, 20.0)
#: Up to this many reports a batch is "small": string columns are matched value by value rather
#: than through sorted codes (the sort costs more than the set lookups), and polygon zones far
#: from every report are answered without building their columns.
_FEW = 16
_FIRE_VALUES = frozenset(k.value for k in FIRE_KINDS)
_PRESENCE_VALUES = frozenset(k.value for k in PRESENCE_KINDS)
# fire at the monitors, with an origin, is fire across the line like any other (its party: the
# origin's side, never the ground the monitors stood on)
_FIRE_ACROSS_VALUES = frozenset(k.value for k in FIRE_KINDS if k != Kind.muzzle_flash) | {
    Kind.threat_to_monitors.value
}
_DRONE_VALUES = frozenset({Kind.drone_flight.value})
_RESTRICTION_VALUES = frozenset({Kind.movement_restriction.value})


#: The numbers each rule type states in its explanation: the :class:`Findings` columns that apply
#: to its findings (the others are NaN or "") and the keys a stored finding's ``numbers`` may have.
NUMBERS: Mapping[str, tuple[str, ...]] = {
    RuleType.zone_ban: ("distance_km", "distance_of", "side_party", "zone", "weapon_class"),
    RuleType.withdrawal: ("distance_km", "distance_of", "side_party", "weapon_class", "limit_km"),
    RuleType.count_cap: ("zone", "counted", "cap"),
    RuleType.fire_across: (
        "distance_km",
        "distance_of",
        "side_party",
        "origin_distance_km",
        "origin_side_party",
        "origin_method",
        "origin_probability",
    ),
    RuleType.drone_flight: ("distance_km", "distance_of", "side_party", "zone"),
    RuleType.movement_restriction: ("distance_km", "distance_of", "side_party"),
}


@dataclass(frozen=True, slots=True)
class FindingNumbers:
    """One finding's numbers: the :class:`Findings` columns of the same names, for one finding.

    NaN (numbers) or "" (text) where a number does not apply to the finding's rule type.
    """

    distance_km: float = math.nan
    distance_of: str = ""
    side_party: str = ""
    limit_km: float = math.nan
    zone: str = ""
    weapon_class: str = ""
    counted: float = math.nan
    cap: float = math.nan
    origin_distance_km: float = math.nan
    origin_side_party: str = ""
    origin_method: str = ""
    origin_probability: float = math.nan

    @classmethod
    def from_json(cls, numbers: Mapping[str, Any] | None) -> FindingNumbers | None:
        """From a stored finding's ``numbers`` (:meth:`Findings.numbers`); None stays None (a
        finding recorded before findings carried their numbers)."""
        if numbers is None:
            return None
        return cls(**{k: v for k, v in numbers.items() if k in _NUMBER_FILL})


#: Each number column and what it holds where it does not apply.
_NUMBER_FILL: dict[str, float | str] = {f.name: f.default for f in fields(FindingNumbers)}  # type: ignore[misc]
#: Every number of a finding (the fields of FindingNumbers), in order.
NUMBER_FIELDS: tuple[str, ...] = tuple(_NUMBER_FILL)
#: The numbers as flat columns beside an incident's own (``distance_km``, ``weapon_class``, ...).
NUMBER_COLUMNS: tuple[str, ...] = tuple(f"finding_{k}" for k in NUMBER_FIELDS)


def number_columns(numbers: Mapping[str, Any] | None) -> dict[str, Any]:
    """A stored finding's ``numbers`` as the flat :data:`NUMBER_COLUMNS` (None where a number does
    not apply, and all None for a finding recorded before findings carried numbers)."""
    n = numbers or {}
    return {c: n.get(k) for k, c in zip(NUMBER_FIELDS, NUMBER_COLUMNS, strict=True)}


def _read_only(a: NDArray[Any]) -> NDArray[Any]:
    a.setflags(write=False)
    return a


# A number column not given to Findings (shared, read-only; filled in to the findings' size).
_NONE_F: NDArray[np.float64] = _read_only(np.zeros(0))
_NONE_S: NDArray[np.str_] = _read_only(np.zeros(0, str))


def _no_floats() -> NDArray[np.float64]:
    return _NONE_F


def _no_text() -> NDArray[np.str_]:
    return _NONE_S


@dataclass(frozen=True, slots=True)
class Findings:
    """Findings as columns; ``incident`` indexes the classified batch.

    After the verdict and its ``explanation`` come the numbers the explanation states, one column
    each (:data:`NUMBERS`: which apply to which rule type; NaN or "" where one does not apply; a
    column not given is "does not apply" throughout):

    - ``distance_km``: geodesic distance (km) from the line, unsigned (as the explanation states
      it, with ``side_party``), of the point the rule measured: ``distance_of`` is ``"incident"``
      (where it was observed; for fire, the impact) or ``"origin"`` (where a weapon fired from);
    - ``side_party``: the party holding that point's side ("" outside the area of application);
    - ``limit_km``: the withdrawal distance for the party on that side (NaN: none for that party);
    - ``zone``: the id of the zone the rule is about; ``weapon_class``: the report's weapon class;
    - ``counted``, ``cap``: a count cap's expected count in the zone for the responsible party on
      the day (unrounded; the explanation rounds it) and the cap;
    - ``origin_distance_km``, ``origin_side_party``, ``origin_method``, ``origin_probability``:
      fire across the line's origin: its unsigned distance (km) from the line, the party whose side
      the fire most likely came from, how the origin is known (``"origin"`` reported or
      ``"bearing"`` only) and the probability of that side.
    """

    incident: NDArray[np.intp]
    rule_id: NDArray[np.str_]
    rule_type: NDArray[np.str_]
    responsible: NDArray[np.str_]
    probability: NDArray[np.float64]
    explanation: NDArray[np.str_]
    distance_km: NDArray[np.float64] = field(default_factory=_no_floats)
    distance_of: NDArray[np.str_] = field(default_factory=_no_text)
    side_party: NDArray[np.str_] = field(default_factory=_no_text)
    limit_km: NDArray[np.float64] = field(default_factory=_no_floats)
    zone: NDArray[np.str_] = field(default_factory=_no_text)
    weapon_class: NDArray[np.str_] = field(default_factory=_no_text)
    counted: NDArray[np.float64] = field(default_factory=_no_floats)
    cap: NDArray[np.float64] = field(default_factory=_no_floats)
    origin_distance_km: NDArray[np.float64] = field(default_factory=_no_floats)
    origin_side_party: NDArray[np.str_] = field(default_factory=_no_text)
    origin_method: NDArray[np.str_] = field(default_factory=_no_text)
    origin_probability: NDArray[np.float64] = field(default_factory=_no_floats)

    def __post_init__(self) -> None:
        n = self.incident.size
        if n == 0:
            return
        for name, fill in _NUMBER_FILL.items():
            size = getattr(self, name).size
            if size != n:
                if size:
                    raise ValueError(f"Findings.{name} has {size} values for {n} findings")
                object.__setattr__(self, name, np.full(n, fill))

    def __len__(self) -> int:
        return int(self.incident.size)

    @property
    def likelihood(self) -> NDArray[np.str_]:
        return icd203_term(self.probability)

    def numbers_at(self, j: int) -> FindingNumbers:
        """The numbers of finding ``j``."""
        return FindingNumbers(**{k: getattr(self, k)[j].item() for k in _NUMBER_FILL})

    def numbers(self) -> list[dict[str, float | str]]:
        """Each finding's numbers as a JSON-ready mapping: those of its rule type (:data:`NUMBERS`)
        that apply to it (NaN, infinities and "" left out), as Python floats and strings.

        What the store keeps (a finding's ``numbers``) and the ledger records; keys in sorted
        order (as canonical JSON writes them).
        """
        types = self.rule_type.tolist()
        keys_of = {t: tuple(sorted(NUMBERS.get(t, ()))) for t in set(types)}
        cols = {}
        for k in {k for ks in keys_of.values() for k in ks}:
            c = getattr(self, k)
            cols[k] = (np.where(np.isfinite(c), c, np.nan) if c.dtype.kind == "f" else c).tolist()
        # v == v is False for NaN only; v != "" is False for the empty string only.
        return [
            {k: v for k in keys_of[t] if (v := cols[k][j]) == v and v != ""} for j, t in enumerate(types)
        ]

    @classmethod
    def empty(cls) -> Findings:
        e = np.zeros(0, str)
        return cls(
            np.zeros(0, np.intp),
            e,
            e,
            e,
            np.zeros(0),
            np.zeros(0, str),
        )

    @classmethod
    def concat(cls, parts: list[Findings]) -> Findings:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]  # one rule's findings: already by incident
        cols = {f: np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__}
        # By incident, keeping the agreement's rule order within an incident.
        order = np.argsort(cols["incident"], kind="stable")
        return cls(**{k: v[order] for k, v in cols.items()})


def _frozen_empty() -> Findings:
    f = Findings.empty()
    for k in Findings.__dataclass_fields__:
        getattr(f, k).setflags(write=False)
    return f


#: What a rule returns when it finds nothing (shared, read-only: no arrays built per rule and call).
_NO_FINDINGS = _frozen_empty()


@dataclass(frozen=True, slots=True)
class Classification:
    """Per-incident geometry facts plus the findings."""

    side: NDArray[np.int8]  # +1 left, -1 right, 0 outside the area of application
    party_side: NDArray[np.str_]  # the party holding that side, "" outside
    distance_km: NDArray[np.float64]  # geodesic distance to the line, + on the left, - on the right
    p_side: NDArray[np.float64]  # probability that the incident is on the stated side
    zones: NDArray[np.str_]  # ";"-joined ids of zones the incident is more likely in than not
    sector: NDArray[np.str_]
    version: NDArray[np.intp]
    #: Whether the agreement was in force on the incident's day (no rule judges it otherwise).
    in_force: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    #: Whether the incident lies in the area of application (``side`` != 0): outside it, no rule
    #: judges it and it has no zones and no sector.
    in_area: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, bool))
    findings: Findings = field(default_factory=Findings.empty)


def classify(agreement: Agreement, batch: IncidentBatch) -> Classification:
    """Adjudicate every incident of ``batch`` under the agreement version in force on its day.

    An incident on a day the agreement is not in force (before its entry into force, or from the
    day it ends) is labelled by the first (or last) version's geometry and gets no finding
    (``in_force`` False); one outside the area of application gets no finding, no zone and no
    sector (``in_area`` False).
    """
    n = len(batch)
    side = np.zeros(n, np.int8)
    dist_m = np.zeros(n)
    p_side = np.zeros(n)
    vidx = agreement.version_index_at(batch.day) if n else np.zeros(0, np.intp)
    found: list[Findings] = []
    labels: list[tuple[NDArray[np.intp], NDArray[np.str_], NDArray[np.str_]]] = []
    one = n > 0 and vidx.min() == vidx.max()  # the usual case: one version for the whole batch
    for v in vidx[:1] if one else np.unique(vidx):  # agreement versions (a handful), not incidents
        rows = np.arange(n) if one else np.flatnonzero(vidx == v)
        cv = agreement.compiled(int(v))
        sub = batch if one else batch.take(rows)
        ctx = _Context(cv, sub)
        side[rows] = ctx.side
        dist_m[rows] = ctx.dist_m
        p_side[rows] = ctx.p_side
        in_area = ctx.side != 0
        zone_text = ctx.zone_labels()
        sector_text = _sectors(cv, sub, ctx)
        labels.append((rows, np.where(in_area, zone_text, ""), np.where(in_area, sector_text, "")))
        found += _run_rules(ctx, cv.rules, rows)
    if one:
        zones, sector = labels[0][1], labels[0][2]
    else:  # text arrays as wide as their longest value (a narrower one would cut values short)
        zones = np.zeros(n, np.result_type("U1", *(z for _, z, _ in labels)))
        sector = np.zeros(n, np.result_type("U1", *(s for _, _, s in labels)))
        for rows, z, s in labels:
            zones[rows], sector[rows] = z, s
    party_side = np.where(side > 0, agreement.left, np.where(side < 0, agreement.right, ""))
    signed = dist_m / 1000.0 * np.where(side < 0, -1.0, 1.0)
    return Classification(
        side=side,
        party_side=party_side.astype(str),
        distance_km=signed,
        p_side=p_side,
        zones=zones.astype(str, copy=False),
        sector=sector.astype(str, copy=False),
        version=vidx,
        in_force=agreement.in_force_on(batch.day) if n else np.zeros(0, bool),
        in_area=side != 0,
        findings=Findings.concat(found),
    )


def prepare(agreement: Agreement, *, within_m: float | None = None) -> None:
    """Fill ahead of time every cache :func:`classify` would fill on first use (same results).

    For a long-running server before it takes traffic: each version's search tables
    (:meth:`~truceline.core.agreement.CompiledVersion.prepare`), the tables the rules keep per
    version, and the Monte Carlo draws.

    Parameters
    ----------
    within_m
        Reach (m) from the line whose search tables are filled; by default the longest weapon
        range plus 30 km: reports cluster within some tens of km of the line and the launch points
        drawn for a crater bearing reach one weapon range beyond (150 km for ``ukraine-2024``,
        which holds every cell that 2,000 simulated reports touched). A cell farther out is
        filled on first use, as before.
    """
    if within_m is None:
        ranges = [w.max_range_km or 0.0 for w in agreement.weapon_classes]
        within_m = 1000.0 * (max([*ranges, _DEFAULT_RANGE_KM[1]]) + 30.0)
    for i in range(len(agreement.versions)):
        cv = agreement.compiled(i)
        cv.prepare(within_m=within_m)
        for z in cv.zones.values():
            if z.type == "polygon":
                _boundary_index(cv, z)
                _zone_box(cv, z)
        if agreement.sectors:
            _sector_chainage(cv)
    prepare_draws(side_samples=_MC_SAMPLES, bearing_samples=_MC_BEARING_SAMPLES, bearing_seed=12345)


def judge_rules(agreement: Agreement, batch: IncidentBatch, types: Collection[RuleType]) -> Findings:
    """Only the findings of the rules of ``types``, as :func:`classify` makes them (no labels, sectors).

    For a recount of one kind of rule over stored incidents (e.g. the daily count caps over a
    day): the other rules' work, the fire attribution above all, is not done.
    """
    n = len(batch)
    vidx = agreement.version_index_at(batch.day) if n else np.zeros(0, np.intp)
    found: list[Findings] = []
    for v in np.unique(vidx):  # agreement versions (a handful), not incidents
        cv = agreement.compiled(int(v))
        rules = [r for r in cv.rules if r.type in types]
        if not rules:
            continue
        rows = np.flatnonzero(vidx == v)
        ctx = _Context(cv, batch.take(rows))
        found += _run_rules(ctx, rules, rows)
    return Findings.concat(found)


def _run_rules(ctx: _Context, rules: Iterable[Rule], rows: NDArray[np.intp]) -> list[Findings]:
    """Each rule's findings, their incidents mapped from the context's batch to ``rows`` of the whole."""
    out = []
    for rule in rules:
        if not ctx.may_apply(rule):
            continue  # no report of the batch has what the rule looks at: it would find nothing
        f = _RULES[rule.type](ctx, rule)
        if len(f):
            cols = (getattr(f, k) for k in list(Findings.__dataclass_fields__)[1:])
            out.append(Findings(rows[f.incident], *cols))
    return out


# -- shared per-version context ---------------------------------------------------------------


class _Context:
    """Geometry of one batch under one version, computed once and shared by all rules."""

    def __init__(self, cv: CompiledVersion, b: IncidentBatch) -> None:
        self.cv = cv
        self.ag = cv.agreement
        self.b = b
        self.sigma = np.maximum(b.uncertainty_m, 0.0)
        self.side, self.near = cv.locate(b.lon, b.lat)
        self.dist_m = self.near.distance_m
        # Probability of being on the stated side: the line is a boundary like any other.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self.p_side = np.where(
                self.side == 0,
                0.0,
                normal_cdf(self.dist_m / np.where(self.sigma > 0, self.sigma, 0)),
            )
        self.p_side = np.where((self.sigma == 0) & (self.side != 0), 1.0, self.p_side)
        self.day = b.day
        # What any rule may judge: reports on a day the agreement is in force, in its area.
        self.judged = cv.agreement.in_force_on(self.day) & (self.side != 0)
        self.judged.setflags(write=False)
        self._zone_p: dict[str, NDArray[np.float64]] = {}
        self._may_be_in: dict[str, bool] = {}
        self._ref: dict[int, NDArray[np.float64]] = {}
        self._isin: dict[tuple[str, Collection[str]], NDArray[np.bool_]] = {}
        self._wref: dict[tuple[str, int], NDArray[np.float64]] = {}
        self._in_force: dict[tuple[Any, Any], NDArray[np.bool_]] = {}

    # distance to the reference line of a side (m), per incident
    @cached_property
    def _codes(self) -> dict[str, tuple[NDArray[np.str_], NDArray[np.intp]]]:
        """Distinct values and integer codes of the string columns (compare ints, not strings)."""
        out = {}
        for col in ("kind", "weapon_class", "party"):
            uniq, inv = unique_inverse(getattr(self.b, col))
            out[col] = (uniq, inv)
        return out

    @cached_property
    def _present(self) -> tuple[frozenset[str], frozenset[str]]:
        """The distinct kinds and weapon classes of the batch."""
        if len(self.b) <= _FEW:
            return frozenset(self.b.kind.tolist()), frozenset(self.b.weapon_class.tolist())
        kinds, wcs = self._codes["kind"][0], self._codes["weapon_class"][0]
        return frozenset(kinds.tolist()), frozenset(wcs.tolist())

    def may_apply(self, rule: Rule) -> bool:
        """False when no report has a kind or weapon class that ``rule`` looks at.

        Every rule selects its reports by kind and/or weapon class first, so such a rule finds
        nothing; skipping it saves its fixed cost (most rules, for a single report).
        """
        kinds, wcs = self._present
        t = rule.type
        if t in (RuleType.zone_ban, RuleType.count_cap):
            return not (kinds.isdisjoint(rule.kinds) and wcs.isdisjoint(rule.weapon_classes))
        if t == RuleType.withdrawal:
            return not wcs.isdisjoint(rule.weapon_classes)
        wanted = _RULE_KINDS.get(t)
        return wanted is None or not kinds.isdisjoint(wanted)

    def isin(self, col: str, values: Iterable[str]) -> NDArray[np.bool_]:
        """``column in values`` for a string column, through its integer codes.

        Remembered per column and values (a tuple or frozenset is its own key): the rules ask the
        same questions many times (per call this costs more than the arithmetic when the batch is
        one report).
        """
        key = (col, values if isinstance(values, tuple | frozenset) else frozenset(values))
        hit = self._isin.get(key)
        if hit is None:
            want = frozenset(values)
            column = getattr(self.b, col)
            if column.size <= _FEW:  # a few reports: one set lookup each beats sorting the column
                hit = np.fromiter((v in want for v in column.tolist()), dtype=bool, count=column.size)
            else:
                uniq, inv = self._codes[col]
                # a set lookup per distinct value (a handful), then a gather
                lut = np.fromiter((u in want for u in uniq.tolist()), dtype=bool, count=uniq.size)
                hit = lut[inv] if lut.any() else np.zeros(inv.size, dtype=bool)
            hit.setflags(write=False)
            self._isin[key] = hit
        return hit

    @cached_property
    def origin(self) -> tuple[NDArray[np.bool_], NDArray[np.int8], NDArray[np.float64]]:
        """Where reported, the origin of fire: mask, side and distance to the line (m)."""
        has = np.isfinite(self.b.origin_lon) & np.isfinite(self.b.origin_lat)
        side = np.zeros(len(self.b), np.int8)
        dist = np.full(len(self.b), np.nan)
        if has.any():
            side[has], dist[has] = self.cv.sides(self.b.origin_lon[has], self.b.origin_lat[has])
        return has, side, dist

    def ref_dist(self, s: int) -> NDArray[np.float64]:
        if s not in self.cv.reference:
            return self.dist_m
        if s not in self._ref:
            self._ref[s] = self.cv.reference[s].distance_m(self.b.lon, self.b.lat)
        return self._ref[s]

    def weapon_ref_dist(self, s: int) -> NDArray[np.float64]:
        """Distance (m) from each weapon position to side ``s``'s reference line (NaN if unusable).

        Shared by the withdrawal rules (one per weapon family asks the same question).
        """
        if ("weapon", s) not in self._wref:
            lon, lat, _, usable, from_origin = self.weapon_position
            out = np.full(len(self.b), np.nan)
            here = usable & ~from_origin  # the weapon stands at the incident: already known
            out[here] = self.ref_dist(s)[here]
            o = np.flatnonzero(from_origin)
            if o.size:
                out[o] = self.cv.reference[s].distance_m(lon[o], lat[o])
            self._wref[("weapon", s)] = out
        return self._wref[("weapon", s)]

    def p_zone(self, zone_id: str) -> NDArray[np.float64]:
        """Probability that each incident lies in the zone."""
        if zone_id not in self._zone_p:
            z = self.cv.zones[zone_id]
            self._zone_p[zone_id] = _p_in_zone(self.cv, z, self.b.lon, self.b.lat, self.sigma, self)
        return self._zone_p[zone_id]

    def may_be_in(self, zone_id: str) -> bool:
        """Whether any report is in the zone with at least :data:`MIN_PROBABILITY` (remembered)."""
        hit = self._may_be_in.get(zone_id)
        if hit is None:
            hit = self._may_be_in[zone_id] = bool((self.p_zone(zone_id) >= MIN_PROBABILITY).any())
        return hit

    def zone_labels(self) -> NDArray[np.str_]:
        """The ";"-joined ids (in the version's order) of the zones each incident is more likely
        in than not: each incident's set of zones as bits of an integer, each distinct set (a
        handful) spelt once."""
        self._band_zones()
        if len(self.b) <= _FEW:
            self._far_polygon_zones()
        ids = list(self.cv.zones)
        if len(ids) > 62:  # more zones than bits: join per incident
            text = np.full(len(self.b), "", dtype=object)
            for zid in ids:
                inside = self.p_zone(zid) >= 0.5
                if inside.any():
                    text[inside] = np.where(text[inside] == "", zid, text[inside] + ";" + zid)
            return text.astype(str)
        bits = np.zeros(len(self.b), np.int64)
        for j, zid in enumerate(ids):
            bits |= (self.p_zone(zid) >= 0.5).astype(np.int64) << j
        sets, inv = np.unique(bits, return_inverse=True)
        spelt = [";".join(z for j, z in enumerate(ids) if s >> j & 1) for s in sets.tolist()]
        return np.array(spelt or [""], dtype=str)[inv.reshape(-1)] if len(self.b) else np.zeros(0, "U1")

    def _far_polygon_zones(self) -> None:
        """P = 0 for the polygon zones far from every report, tested for all such zones at once.

        The test is :func:`_p_in_zone`'s, element by element (its bounding box widened by 8 sigma
        and 1 km), so the zones it leaves to :func:`_p_in_zone` are exactly those it would not
        have answered with zeros itself.
        """
        zones = [z for z in self.cv.zones.values() if z.type == "polygon" and z.id not in self._zone_p]
        if not zones or not np.isfinite(self.sigma).all():
            return
        box = np.array([_zone_box(self.cv, z) for z in zones])
        reach_m = np.maximum(8.0 * self.sigma, 1000.0)
        reach_deg = pad_lon_deg(reach_m, box[:, 4:5] + pad_lat_deg(reach_m))
        lon, lat = self.b.lon, self.b.lat
        near = (
            (lon > box[:, 0:1] - reach_deg)
            & (lon < box[:, 2:3] + reach_deg)
            & (lat > box[:, 1:2] - reach_deg)
            & (lat < box[:, 3:4] + reach_deg)
        )
        zone_near = np.asarray(near.any(axis=1), bool)
        for z, any_near in zip(zones, zone_near.tolist(), strict=True):
            if not any_near:
                self._zone_p[z.id] = np.zeros(len(self.b))

    def _band_zones(self) -> None:
        """:meth:`p_zone` of every band zone at once (for the labels, which need them all).

        The same arithmetic as :func:`_p_in_zone`, element by element, with every zone and side
        stacked into one call of :func:`_band_probability` instead of one call per zone and side.
        """
        zones = [z for z in self.cv.zones.values() if z.type == "band" and z.id not in self._zone_p]
        if not zones:
            return
        u_side = {}
        for s in (1, -1):
            # Signed coordinate across the line, positive into side s.
            u = np.where(self.side == s, self.ref_dist(s), -self.dist_m)
            u_side[s] = np.where(self.side == 0, -np.inf, u)
        us, lo, hi, owner = [], [], [], []
        for j, z in enumerate(zones):
            for s in (1, -1):
                party = self.ag.party_on_side(s)
                if party in z.bands:
                    a, b = z.bands[party]
                    us.append(u_side[s])
                    lo.append(a * 1000.0)
                    hi.append(b * 1000.0)
                    owner.append(j)
        pb = (
            _band_probability(np.stack(us), np.array(lo)[:, None], np.array(hi)[:, None], self.sigma)
            if us
            else np.zeros((0, len(self.b)))
        )
        for j, z in enumerate(zones):
            p = np.zeros(len(self.b))
            for k in (k for k, o in enumerate(owner) if o == j):
                p += pb[k]
            self._zone_p[z.id] = np.clip(p, 0.0, 1.0)

    def in_force(self, rule: Rule) -> NDArray[np.bool_]:
        """Reports the rule may judge: in force itself, the agreement in force, in the area."""
        key = (rule.effective_from, rule.effective_to)
        m = self._in_force.get(key)
        if m is None:
            m = self.judged.copy()
            if rule.effective_from is not None:
                m &= self.day >= np.datetime64(rule.effective_from, "D")
            if rule.effective_to is not None:
                m &= self.day < np.datetime64(rule.effective_to, "D")
            m.setflags(write=False)
            self._in_force[key] = m
        return m

    @cached_property
    def weapon_position(
        self,
    ) -> tuple[
        NDArray[np.float64],
        NDArray[np.float64],
        NDArray[np.float64],
        NDArray[np.bool_],
        NDArray[np.bool_],
    ]:
        """Where the weapon of each incident stood: its origin for fire with one, else its position.

        Returns lon, lat, sigma (m), whether the position is usable and whether it is an origin.
        """
        b = self.b
        fire = self.isin("kind", _FIRE_VALUES) & np.isfinite(b.origin_lon)
        lon = np.where(fire, b.origin_lon, b.lon)
        lat = np.where(fire, b.origin_lat, b.lat)
        sig = np.where(fire, np.nan_to_num(b.origin_uncertainty_m, nan=1000.0), self.sigma)
        usable = fire | self.isin("kind", _PRESENCE_VALUES)
        return lon, lat, sig, usable, fire

    def responsible(
        self, rows: NDArray[np.intp], side: NDArray[np.int8], p_side: NDArray[np.float64]
    ) -> NDArray[np.str_]:
        """The observed party where reported, else the party holding the side if clear enough."""
        by_side = np.where(side > 0, self.ag.left, np.where(side < 0, self.ag.right, UNDETERMINED))
        unclear = (p_side >= ATTRIBUTION_BAND[0]) & (p_side <= ATTRIBUTION_BAND[1])
        by_side = np.where(unclear, UNDETERMINED, by_side)
        party = self.b.party[rows]
        return np.where(party != "", party, by_side).astype(str)


def _band_probability(
    u_m: NDArray[np.float64],
    lo_m: float | NDArray[np.float64],
    hi_m: float | NDArray[np.float64],
    sigma: NDArray[np.float64],
) -> NDArray[np.float64]:
    """P(lo <= U < hi) for U ~ N(u, sigma^2); exact membership where sigma is 0."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.where(sigma > 0, sigma, np.nan)
        p = normal_cdf((hi_m - u_m) / s) - normal_cdf((lo_m - u_m) / s)
    hard = ((u_m >= lo_m) & (u_m < hi_m)).astype(np.float64)
    return np.where(sigma > 0, p, hard)


def _p_in_zone(
    cv: CompiledVersion,
    z: Zone,
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    sigma: NDArray[np.float64],
    ctx: _Context | None = None,
) -> NDArray[np.float64]:
    if z.type == "band":
        if ctx is not None and lon is ctx.b.lon:
            side, dist = ctx.side, ctx.dist_m
            refd = {s: ctx.ref_dist(s) for s in (1, -1)}
        else:
            side, dist = cv.sides(lon, lat)
            refd = {
                s: (cv.reference[s].distance_m(lon, lat) if s in cv.reference else dist) for s in (1, -1)
            }
        p = np.zeros(lon.size)
        for s in (1, -1):
            party = cv.agreement.party_on_side(s)
            if party not in z.bands:
                continue
            lo, hi = z.bands[party]
            # Signed coordinate across the line, positive into side s.
            u = np.where(side == s, refd[s], -dist)
            u = np.where(side == 0, -np.inf, u)
            p += _band_probability(u, lo * 1000.0, hi * 1000.0, sigma)
        return np.clip(p, 0.0, 1.0)
    # Only points near the polygon need their distance to its edge: beyond 8 sigma (and 1 km)
    # of its bounding box the answer is a hard "outside".
    # One pad for both axes: longitude's (the wider), at the farthest latitude within reach.
    minx, miny, maxx, maxy, far_lat = _zone_box(cv, z)
    reach_m = np.maximum(8.0 * sigma, 1000.0)
    reach_deg = pad_lon_deg(reach_m, far_lat + pad_lat_deg(reach_m))
    box = (
        (lon > minx - reach_deg)
        & (lon < maxx + reach_deg)
        & (lat > miny - reach_deg)
        & (lat < maxy + reach_deg)
    )
    if not box.any() and np.isfinite(sigma).all():
        # every report far from the zone (so outside it: a point inside lies within the bounds):
        # P = 1 - 1 = 0 (or a hard 0), as the formula below gives
        return np.zeros(lon.size)
    inside = shapely.contains_xy(z.geometry, lon, lat)
    idx = np.flatnonzero(inside | box)
    u = np.full(lon.size, -np.inf)
    if idx.size:
        d = _boundary_index(cv, z).distance_m(lon[idx], lat[idx])
        u[idx] = np.where(inside[idx], d, -d)
    return _band_probability(u, 0.0, np.inf, sigma)


def _zone_box(cv: CompiledVersion, z: Zone) -> tuple[float, float, float, float, float]:
    """A polygon zone's bounds and its latitude farthest from the equator (cached)."""
    cache: dict[str, tuple[float, float, float, float, float]] = cv.__dict__.setdefault("_zone_box", {})
    box = cache.get(z.id)
    if box is None:
        minx, miny, maxx, maxy = z.geometry.bounds
        box = (minx, miny, maxx, maxy, max(abs(miny), abs(maxy)))
        cache[z.id] = box
    return box


def _boundary_index(cv: CompiledVersion, z: Zone) -> LineIndex:
    cache: dict[str, LineIndex] = cv.__dict__.setdefault("_boundary_cache", {})
    if z.id not in cache:
        cache[z.id] = cv.zone_boundary(z)
    return cache[z.id]


def _sectors(cv: CompiledVersion, b: IncidentBatch, ctx: _Context) -> NDArray[np.str_]:
    """Sector holding each incident; outside every sector polygon, the sector of its foot on the line."""
    sectors = cv.agreement.sectors
    if not sectors:
        return np.full(len(b), "", dtype="U1")
    ids = cv.__dict__.get("_sector_ids")
    if ids is None:
        ids = cv.__dict__["_sector_ids"] = np.array([s.id for s in sectors] + [""], dtype=str)
    out = ids[cv.sector_lookup.lookup(b.lon, b.lat)]
    rest = np.flatnonzero(out == "")
    if rest.size:
        starts, ids = _sector_chainage(cv)
        if starts.size:
            ch = ctx.near.chainage_m[rest]
            k = np.clip(np.searchsorted(starts, ch, side="right") - 1, 0, starts.size - 1)
            out[rest] = ids[k]
    return out


def _sector_chainage(cv: CompiledVersion) -> tuple[NDArray[np.float64], NDArray[np.str_]]:
    """Where along the line each sector starts (from the densified vertices inside it)."""
    cache = cv.__dict__.get("_sector_chainage")
    if cache is None:
        owner = np.full(cv.line.lon.size, "", dtype=object)
        for s in cv.agreement.sectors:
            m = (owner == "") & shapely.contains_xy(s.geometry, cv.line.lon, cv.line.lat)
            owner[m] = s.id
        has = owner != ""
        # Fill vertices outside every sector with the previous sector along the line.
        idx = np.where(has, np.arange(owner.size), 0)
        np.maximum.accumulate(idx, out=idx)
        first = np.flatnonzero(has)
        filled = owner[idx] if first.size else owner
        if first.size:
            filled[: first[0]] = owner[first[0]]
        change = np.r_[True, filled[1:] != filled[:-1]]
        cache = (cv.line.chainage_at_vertex[change], filled[change].astype(str))
        cv.__dict__["_sector_chainage"] = cache
    return cache


def _lookup(values: NDArray[np.str_], table: Mapping[str, object], default: object) -> NDArray[Any]:
    """Map each value through ``table`` (``default``, or the value itself when None, if absent).

    One dictionary lookup per distinct value, then a gather: no loop over incidents (for a few
    values, one lookup each: cheaper than finding the distinct ones).
    """
    if 0 < values.size <= _FEW:
        vals = values.tolist()
        found = [table.get(v) for v in vals]  # (a value of None in the table counts as absent)
        fill = [
            (m if m is not None else (v if default is None else default))
            for v, m in zip(vals, found, strict=True)
        ]
        return np.asarray(fill, dtype=object)
    uniq, inv = unique_inverse(values)
    mapped = [table.get(u) for u in uniq.tolist()]
    fill = [
        (m if m is not None else (u if default is None else default))
        for u, m in zip(uniq.tolist(), mapped, strict=True)
    ]
    return np.asarray(fill if fill else [], dtype=object)[inv] if uniq.size else np.asarray([])


# -- explanation helpers ----------------------------------------------------------------------


# Variable-width strings: explanations are built for whole batches at once.
_S = StringDType()


def _fmt(values: NDArray[np.float64], digits: int = 1) -> NDArray[Any]:
    """Numbers as text, rounded to ``digits`` decimals (shortest form: 18.4, 25, 0.97)."""
    v = np.round(np.asarray(values, dtype=np.float64), digits)
    if digits == 0:
        return np.where(np.isfinite(v), v, 0).astype(np.int64).astype(_S)
    return (v + 0.0).astype(_S)  # + 0.0 turns -0.0 into 0.0


def _cat(*parts: object) -> NDArray[Any]:
    out = np.asarray(parts[0]).astype(_S)
    for p in parts[1:]:
        out = np.strings.add(out, np.asarray(p).astype(_S))
    return out


def _what(b: IncidentBatch, rows: NDArray[np.intp], wc: NDArray[np.str_]) -> NDArray[Any]:
    kind = np.strings.replace(b.kind[rows].astype(_S), "_", " ")
    return np.where(wc != "", _cat(kind, " (", wc, ")"), kind).astype(_S)


def _make(
    ctx: _Context,
    rule: Rule,
    rows: NDArray[np.intp],
    responsible: NDArray[np.str_],
    prob: NDArray[np.float64],
    explanation: NDArray[np.str_],
    **numbers: Any,
) -> Findings:
    """The findings at ``rows`` with a probability worth reporting.

    ``numbers``: the rule type's numbers (:data:`NUMBERS`, every one of them), each an array
    aligned with ``rows`` or one value for all.
    """
    assert numbers.keys() == set(NUMBERS[rule.type]), (rule.type, sorted(numbers))
    keep = prob >= MIN_PROBABILITY
    n = rows.size
    rows = rows[keep]
    cols = {}
    for k, v in numbers.items():
        a = np.broadcast_to(np.asarray(v), n)[keep]
        cols[k] = a.astype(str) if a.dtype.kind in "OT" else a
    return Findings(
        incident=rows,
        rule_id=np.full(rows.size, rule.id),
        rule_type=np.full(rows.size, rule.type.value),
        responsible=np.asarray(responsible)[keep].astype(str),
        probability=np.round(np.asarray(prob)[keep], 4),
        explanation=np.asarray(explanation)[keep].astype(_S),
        **cols,
    )


def _party_on(ctx: _Context, side: NDArray[np.int8]) -> NDArray[np.str_]:
    """The party holding each side (+1 left, -1 right); "" for 0 (outside the area of application)."""
    return np.where(side > 0, ctx.ag.left, np.where(side < 0, ctx.ag.right, ""))


def _shown(party: NDArray[np.str_]) -> NDArray[np.str_]:
    """A side's party as the explanations write it ("?" for none)."""
    return np.where(party == "", "?", party)


def _at_incident(ctx: _Context, rows: NDArray[np.intp]) -> dict[str, Any]:
    """The numbers of a finding measured where the incident was observed: its distance and side."""
    return {
        "distance_km": ctx.dist_m[rows] / 1000.0,
        "distance_of": "incident",
        "side_party": _party_on(ctx, ctx.side[rows]),
    }


def _side_phrase(numbers: Mapping[str, Any]) -> NDArray[np.str_]:
    return _cat(
        _fmt(numbers["distance_km"]),
        " km from the line on the ",
        _shown(numbers["side_party"]),
        " side",
    )


def _zone_name(ctx: _Context, zone_id: str) -> str:
    z = ctx.cv.zones[zone_id]
    return z.name or z.id


# -- the rules --------------------------------------------------------------------------------


def _zone_ban(ctx: _Context, rule: Rule) -> Findings:
    b = ctx.b
    assert rule.zone is not None
    by_weapon = ctx.isin("weapon_class", rule.weapon_classes)
    # A banned weapon stands where it was seen, or where it fired from: never where its shell landed.
    _, _, _, usable, from_origin = ctx.weapon_position
    weapon_origin = by_weapon & from_origin
    if not ctx.may_be_in(rule.zone) and not weapon_origin.any():
        return _NO_FINDINGS  # every probability below would be under MIN_PROBABILITY
    in_force = ctx.in_force(rule)
    by_kind = ctx.isin("kind", rule.kinds)
    weapon_here = by_weapon & usable & ~from_origin
    rows = np.flatnonzero(in_force & (by_kind | weapon_here | weapon_origin))
    if rows.size == 0:
        return _NO_FINDINGS
    p_here = ctx.p_zone(rule.zone)[rows]
    p = np.where(by_kind[rows] | weapon_here[rows], p_here, 0.0)
    o = np.flatnonzero(weapon_origin[rows])
    if o.size:
        r = rows[o]
        sig = np.nan_to_num(b.origin_uncertainty_m[r], nan=1000.0)
        z = ctx.cv.zones[rule.zone]
        p[o] = np.maximum(p[o], _p_in_zone(ctx.cv, z, b.origin_lon[r], b.origin_lat[r], sig))
    rows, p = rows[p >= MIN_PROBABILITY], p[p >= MIN_PROBABILITY]
    if rows.size == 0:
        return _NO_FINDINGS
    resp = ctx.responsible(rows, ctx.side[rows], ctx.p_side[rows])
    at = _at_incident(ctx, rows)
    wc = b.weapon_class[rows]
    expl = _cat(
        _what(b, rows, wc),
        " observed ",
        _side_phrase(at),
        f", inside {_zone_name(ctx, rule.zone)}",
        "; banned there by ",
        rule.id,
    )
    return _make(ctx, rule, rows, resp, p, expl, **at, zone=rule.zone, weapon_class=wc)


def _withdrawal(ctx: _Context, rule: Rule) -> Findings:
    b = ctx.b
    match = ctx.isin("weapon_class", rule.weapon_classes) & ctx.in_force(rule)
    _, _, sig, usable, from_origin = ctx.weapon_position
    rows = np.flatnonzero(match & usable)
    if rows.size == 0:
        return _NO_FINDINGS
    cv = ctx.cv
    sg = sig[rows]
    _, o_side, o_dist = ctx.origin
    fo = from_origin[rows]
    side = np.where(fo, o_side[rows], ctx.side[rows]).astype(np.int8)
    dist = np.where(fo, o_dist[rows], ctx.dist_m[rows])
    p = np.zeros(rows.size)
    limit = np.full(rows.size, np.nan)
    for s in (1, -1):
        party = ctx.ag.party_on_side(s)
        if party not in rule.distance_km:
            continue
        km = rule.distance_km[party]
        ref = ctx.weapon_ref_dist(s)[rows] if s in cv.reference else dist
        u = np.where(side == s, ref, -dist)
        u = np.where(side == 0, -np.inf, u)
        ps = _band_probability(u, 0.0, km * 1000.0, sg)
        p += ps
        limit = np.where(side == s, km, limit)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pside = np.where(sg > 0, normal_cdf(dist / sg), 1.0)
    resp = ctx.responsible(rows, side, pside)
    side_party = _party_on(ctx, side)
    wc = b.weapon_class[rows]
    names = {w.id: (w.name or w.id) for w in ctx.ag.weapon_classes}
    wname = _lookup(wc, names, default=None)
    where = np.where(fo, "fired from ", "observed ")
    dist_km = dist / 1000.0
    expl = _cat(
        np.strings.replace(b.kind[rows].astype(_S), "_", " "),
        " of class ",
        wc,
        " ",
        where,
        _fmt(dist_km),
        " km from the line on the ",
        _shown(side_party),
        " side; the limit for ",
        wname,
        " is ",
        _fmt(np.nan_to_num(limit, nan=0.0), 0),
        " km",
    )
    return _make(
        ctx,
        rule,
        rows,
        resp,
        p,
        expl,
        distance_km=dist_km,
        distance_of=np.where(fo, "origin", "incident"),
        side_party=side_party,
        weapon_class=wc,
        limit_km=limit,
    )


def _count_cap(ctx: _Context, rule: Rule) -> Findings:
    b = ctx.b
    assert rule.zone is not None and rule.max_count is not None
    match = ctx.isin("kind", rule.kinds) | (ctx.isin("weapon_class", rule.weapon_classes))
    match &= ctx.in_force(rule)
    p_in = ctx.p_zone(rule.zone)
    rows = np.flatnonzero(match & (p_in >= MIN_PROBABILITY))
    if rows.size == 0:
        return _NO_FINDINGS
    resp = ctx.responsible(rows, ctx.side[rows], ctx.p_side[rows])
    day = ctx.day[rows].astype(np.int64)
    key_party, party_code = np.unique(resp, return_inverse=True)
    group = day * len(key_party) + party_code
    g, gi = np.unique(group, return_inverse=True)
    c = b.count[rows].astype(np.float64)
    p = p_in[rows]
    mean = np.bincount(gi, weights=p * c, minlength=g.size)
    var = np.bincount(gi, weights=p * (1 - p) * c * c, minlength=g.size)
    cap = float(rule.max_count)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p_over = np.where(
            var > 0, 1.0 - normal_cdf((cap + 0.5 - mean) / np.sqrt(var)), (mean > cap).astype(float)
        )
    # Each report shares its group's excess only as far as it is itself in the zone.
    prob = p_over[gi] * p
    total = mean[gi]
    what = ", ".join([*rule.weapon_classes, *(k.value for k in rule.kinds)])
    expl = _cat(
        _fmt(total.astype(np.float64), 0),
        f" {what} counted in {_zone_name(ctx, rule.zone)} for ",
        resp,
        " on ",
        ctx.day[rows].astype(str),
        f"; the cap is {rule.max_count}",
    )
    keep = prob >= 0.5
    if not keep.any():
        return _NO_FINDINGS
    return _make(
        ctx,
        rule,
        rows[keep],
        resp[keep],
        prob[keep],
        expl[keep],
        zone=rule.zone,
        counted=total[keep],
        cap=cap,
    )


def _origin_side_probability(
    ctx: _Context, rows: NDArray[np.intp]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """P(origin on the left side) and the origin's distance to the line (m) for fire incidents.

    From a reported origin: Gaussian across the line, Monte Carlo where its uncertainty spans a bend
    or an end of the line (:func:`~truceline.core.attribution.side_probability`; a located event's
    covariance arrives as the equivalent standard deviation across the line). From a bearing only:
    Monte Carlo over the sector +-11.25 deg (a 16-point compass) between the weapon's minimum and
    maximum range (:func:`~truceline.core.attribution.bearing_sector_probability`).
    """
    b, cv = ctx.b, ctx.cv
    p_left = np.full(rows.size, np.nan)
    odist = np.full(rows.size, np.nan)
    has_o = np.isfinite(b.origin_lon[rows])
    if has_o.any():
        r = rows[has_o]
        sig = np.nan_to_num(b.origin_uncertainty_m[r], nan=1000.0)
        cov = np.einsum("n,ij->nij", sig**2, np.eye(2))
        sp = side_probability(cv, b.origin_lon[r], b.origin_lat[r], cov, n_samples=_MC_SAMPLES)
        p_left[has_o] = np.where(np.isfinite(sp.p_left), sp.p_left, 0.5)
        odist[has_o] = ctx.origin[2][r]
    has_b = ~has_o & np.isfinite(b.bearing_deg[rows])
    if has_b.any():
        r = rows[has_b]
        ranges = {w.id: (w.min_range_km, w.max_range_km) for w in ctx.ag.weapon_classes}
        lo = _lookup(b.weapon_class[r], {k: v[0] for k, v in ranges.items()}, _DEFAULT_RANGE_KM[0])
        hi = _lookup(b.weapon_class[r], {k: v[1] for k, v in ranges.items()}, _DEFAULT_RANGE_KM[1])
        lo, hi = lo.astype(np.float64), hi.astype(np.float64)
        # fixed seed: the same evidence gives the same probability
        sp = bearing_sector_probability(
            cv, b.lon[r], b.lat[r], b.bearing_deg[r], lo, hi, n_samples=_MC_BEARING_SAMPLES, seed=12345
        )
        p_left[has_b] = np.where(np.isfinite(sp.p_left), sp.p_left, 0.5)
        odist[has_b] = np.abs(sp.signed_distance_m)
    return p_left, odist


def _fire_across(ctx: _Context, rule: Rule) -> Findings:
    b = ctx.b
    fire = ctx.isin("kind", _FIRE_ACROSS_VALUES)
    fire = fire & (np.isfinite(b.origin_lon) | np.isfinite(b.bearing_deg))
    rows = np.flatnonzero(fire & ctx.in_force(rule))
    if rows.size == 0:
        return _NO_FINDINGS
    p_left, odist = _origin_side_probability(ctx, rows)
    # Impact: P(on the left side) and P(in the zone) from the incident's own position.
    side, dist, sig = ctx.side[rows], ctx.dist_m[rows], ctx.sigma[rows]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        pi_left = np.where(sig > 0, normal_cdf(np.where(side > 0, dist, -dist) / sig), (side > 0) * 1.0)
    pi_zone = ctx.p_zone(rule.zone)[rows] if rule.zone else np.zeros(rows.size)
    # Impact in the zone on the firing side also violates; across the line always does.
    v_left = p_left * np.clip((1 - pi_left) + pi_zone * pi_left, 0, 1)
    v_right = (1 - p_left) * np.clip(pi_left + pi_zone * (1 - pi_left), 0, 1)
    p = np.clip(v_left + v_right, 0, 1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        attr_left = np.where(p > 0, v_left / p, 0.5)
    resp = np.where(
        attr_left > ATTRIBUTION_BAND[1],
        ctx.ag.left,
        np.where(attr_left < ATTRIBUTION_BAND[0], ctx.ag.right, UNDETERMINED),
    )
    from_party = np.where(p_left >= 0.5, ctx.ag.left, ctx.ag.right)
    p_from = np.where(p_left >= 0.5, p_left, 1 - p_left)
    how = np.where(np.isfinite(b.origin_lon[rows]), "origin", "bearing")
    odist_km = odist / 1000.0
    impact = _at_incident(ctx, rows)
    expl = _cat(
        np.strings.replace(b.kind[rows].astype(_S), "_", " "),
        ": fired from the ",
        from_party,
        " side (",
        how,
        " ",
        _fmt(odist_km),
        " km from the line, P=",
        _fmt(p_from, 2),
        "), impact ",
        _fmt(impact["distance_km"]),
        " km from the line on the ",
        _shown(impact["side_party"]),
        " side",
    )
    return _make(
        ctx,
        rule,
        rows,
        resp,
        p,
        expl,
        **impact,
        origin_distance_km=odist_km,
        origin_side_party=from_party,
        origin_method=how,
        origin_probability=p_from,
    )


def _drone_flight(ctx: _Context, rule: Rule) -> Findings:
    b = ctx.b
    assert rule.zone is not None
    match = ctx.isin("kind", _DRONE_VALUES) & ~ctx.isin("party", MISSION_IDS)
    rows = np.flatnonzero(match & ctx.in_force(rule))
    if rows.size == 0:
        return _NO_FINDINGS
    p = ctx.p_zone(rule.zone)[rows]
    rows, p = rows[p >= MIN_PROBABILITY], p[p >= MIN_PROBABILITY]
    if rows.size == 0:
        return _NO_FINDINGS
    resp = np.where(b.party[rows] != "", b.party[rows], UNDETERMINED)
    has_o = np.isfinite(b.origin_lon[rows])
    if has_o.any():
        pl, _ = _origin_side_probability(ctx, rows[has_o])
        by = np.where(
            pl > ATTRIBUTION_BAND[1],
            ctx.ag.left,
            np.where(pl < ATTRIBUTION_BAND[0], ctx.ag.right, UNDETERMINED),
        )
        resp[has_o] = np.where(b.party[rows[has_o]] != "", b.party[rows[has_o]], by)
    at = _at_incident(ctx, rows)
    expl = _cat(
        "drone flight ",
        _side_phrase(at),
        f", over {_zone_name(ctx, rule.zone)}",
        "; only the mission's drones may fly there",
    )
    return _make(ctx, rule, rows, resp.astype(str), p, expl, **at, zone=rule.zone)


def _movement_restriction(ctx: _Context, rule: Rule) -> Findings:
    rows = np.flatnonzero(ctx.isin("kind", _RESTRICTION_VALUES) & ctx.in_force(rule))
    if rows.size == 0:
        return _NO_FINDINGS
    resp = ctx.responsible(rows, ctx.side[rows], ctx.p_side[rows])
    at = _at_incident(ctx, rows)
    expl = _cat(
        "monitors' freedom of movement restricted ",
        _side_phrase(at),
        "; the agreement guarantees the mission's access",
    )
    return _make(ctx, rule, rows, resp, np.ones(rows.size), expl, **at)


#: The kinds each rule type looks at, for the rule types that select by kind alone.
_RULE_KINDS = {
    RuleType.fire_across: _FIRE_ACROSS_VALUES,
    RuleType.drone_flight: _DRONE_VALUES,
    RuleType.movement_restriction: _RESTRICTION_VALUES,
}

_RULES = {
    RuleType.zone_ban: _zone_ban,
    RuleType.withdrawal: _withdrawal,
    RuleType.count_cap: _count_cap,
    RuleType.fire_across: _fire_across,
    RuleType.drone_flight: _drone_flight,
    RuleType.movement_restriction: _movement_restriction,
}
