"""Simulated monitoring: true events along a line and the reports a mission would receive.

:func:`simulate` draws, day by day, what both parties do along the agreement's line (weapons,
vehicles, personnel, fire, flares, drones, works), a configured share of it breaking the rules in
force, then what the mission and others report about it: each source type with its own position
error (``uncertainty_m`` is one standard deviation of a circular Gaussian), timing error, Admiralty
grading, misses and duplicates. The ground truth comes with the reports so that the rule engine,
fusion and reports can be measured against it.

Everything is read from the agreement (parties, line, zones, weapon classes, rules in force on each
day); nothing about a particular agreement is built in. Whether a true event breaks a rule is
decided exactly, on its true positions, by ``_Day._rule_matrix`` (a restatement of the rules without
uncertainty), so the truth does not depend on the engine it is used to test.

Geometry is drawn in arrays: points at a chainage along the densified line, offset perpendicular to
it with :meth:`pyproj.Geod.fwd`, kept or redrawn a whole batch at a time. The Python loops run over
days, rules and source types, never over events; only the final :class:`Incident` records and the
truth dictionaries are built one by one.

Acoustic sensors are simulated separately (:mod:`truceline.core.simulate.acoustic`); civilian casualties
and damage are recorded as events caused by cross-line fire, and break a rule only where an
agreement's rule names their kind.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from truceline.core.agreement import Agreement, CompiledVersion, Rule, RuleType, Zone
from truceline.core.arrays import BoolArray, FloatArray, IntArray
from truceline.core.geodesy import GEOD
from truceline.core.incidents import (
    FIRE_KINDS,
    PRESENCE_KINDS,
    Incident,
    Kind,
    SourceType,
    TimePrecision,
)
from truceline.core.rules import MISSION_IDS
from truceline.errors import ValidationError

__all__ = ["Simulation", "SimulationConfig", "simulate"]

StrArray = NDArray[np.str_]


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate.

    Attributes
    ----------
    days
        Number of consecutive days.
    seed
        Seed of the random generator: the same seed gives the same reports and truth.
    start
        First day; default: the day the agreement takes effect.
    events_per_day
        Mean number of true events per day along the whole line (Poisson); the civilian
        casualties and damage that some cross-line fire causes come on top.
    violation_rate
        Share of events that break at least one rule in force.
    duplicate_rate
        Share of reported events that other sources report again (each further report with the
        same probability, up to three more).
    miss_rate
        Share of true events that nobody reports.
    """

    days: int = 1
    seed: int = 0
    start: dt.date | None = None
    events_per_day: int = 400
    violation_rate: float = 0.25
    duplicate_rate: float = 0.15
    miss_rate: float = 0.2

    def __post_init__(self) -> None:
        if self.days < 1:
            raise ValidationError(f"SimulationConfig.days is {self.days}; give at least 1 day")
        if self.events_per_day < 0:
            raise ValidationError(
                f"SimulationConfig.events_per_day is {self.events_per_day}; give a count >= 0"
            )
        for name in ("violation_rate", "duplicate_rate", "miss_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValidationError(f"SimulationConfig.{name} is {v}; give a share in [0, 1]")
        if self.duplicate_rate >= 1.0:
            raise ValidationError("SimulationConfig.duplicate_rate must be below 1")


@dataclass(frozen=True)
class Simulation:
    """Simulated reports and the ground truth behind them.

    Attributes
    ----------
    reports
        What the sources submitted, in event order.
    truth
        One dictionary per true event: ``event_id``, ``day`` (date), ``time`` (UTC datetime),
        ``scenario``, ``kind``, ``weapon_class`` (or None), ``party`` (who acted), ``count``,
        ``lon``, ``lat`` (true position; the impact for fire), ``origin_lon``, ``origin_lat``
        (where fire came from, else None), ``violation``, ``rule_ids`` (rules broken, judged on
        the true positions), ``caused_by`` (event id of the fire that caused a civilian casualty
        or damage, else None) and ``report_ids`` (reports describing it; empty when missed).
    """

    reports: list[Incident]
    truth: list[dict[str, Any]]

    @property
    def event_of_report(self) -> dict[str, str]:
        """Event id behind each report id."""
        return {rid: t["event_id"] for t in self.truth for rid in t["report_ids"]}


# -- sources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    """How one source type reports (ranges are drawn log-uniformly)."""

    type: SourceType
    uncertainty_m: tuple[float, float]
    time_sigma_s: float
    precision: TimePrecision
    reliability: tuple[tuple[str, float], ...]
    credibility: tuple[tuple[int, float], ...]
    p_party: float  # probability of naming the actor
    p_weapon: float  # probability of naming the weapon class
    p_misclass: float  # probability that a named weapon class is wrong
    fire_modes: tuple[float, float, float]  # P(origin given), P(bearing only), P(neither)
    origin_uncertainty_m: tuple[float, float]
    bearing_sigma_deg: float
    count_sigma: float  # log-normal error of counts


_SOURCES: tuple[_Source, ...] = (
    _Source(
        SourceType.patrol, (200, 800), 300, TimePrecision.minute,
        (("A", 0.5), ("B", 0.5)), ((1, 0.5), (2, 0.35), (3, 0.15)),
        0.7, 0.7, 0.03, (0.3, 0.6, 0.1), (1000, 4000), 8.0, 0.05,
    ),
    _Source(
        SourceType.observation_post, (300, 1500), 60, TimePrecision.minute,
        (("A", 0.4), ("B", 0.6)), ((2, 0.5), (3, 0.4), (4, 0.1)),
        0.5, 0.5, 0.03, (0.5, 0.4, 0.1), (800, 3000), 5.0, 0.1,
    ),
    _Source(
        SourceType.camera, (50, 200), 5, TimePrecision.second,
        (("A", 0.7), ("B", 0.3)), ((1, 0.6), (2, 0.4)),
        0.6, 0.7, 0.02, (0.2, 0.7, 0.1), (500, 2000), 3.0, 0.0,
    ),
    _Source(
        SourceType.uav, (10, 50), 10, TimePrecision.second,
        (("A", 0.8), ("B", 0.2)), ((1, 0.8), (2, 0.2)),
        0.9, 0.9, 0.01, (0.7, 0.2, 0.1), (50, 300), 3.0, 0.0,
    ),
    _Source(
        SourceType.party_complaint, (1000, 5000), 1800, TimePrecision.hour,
        (("D", 0.4), ("E", 0.4), ("F", 0.2)), ((3, 0.1), (4, 0.3), (5, 0.3), (6, 0.3)),
        1.0, 0.9, 0.1, (0.8, 0.1, 0.1), (2000, 10000), 15.0, 0.0,
    ),
    _Source(
        SourceType.open_source, (500, 10000), 10800, TimePrecision.hour,
        (("C", 0.2), ("D", 0.4), ("E", 0.2), ("F", 0.2)),
        ((2, 0.1), (3, 0.3), (4, 0.3), (5, 0.2), (6, 0.1)),
        0.6, 0.5, 0.1, (0.2, 0.2, 0.6), (3000, 15000), 20.0, 0.3,
    ),
)  # fmt: skip
_S = {s.type: i for i, s in enumerate(_SOURCES)}
_COMPLAINT = _S[SourceType.party_complaint]
#: A party complaint exaggerates: its position is pushed this share of its stated uncertainty
#: towards the complaining party's side (drawn uniformly), and its counts by up to half again.
_COMPLAINT_BIAS = (0.3, 1.0)
#: The mission knows where its own patrols and posts are stopped (GPS), whatever the source type.
_RESTRICTION_UNCERTAINTY_M = (10.0, 30.0)

#: Which source types report each group of kinds (weights in the order of ``_SOURCES``).
_GROUP_WEIGHTS: dict[str, tuple[float, ...]] = {
    "presence": (0.30, 0.15, 0.10, 0.30, 0.05, 0.10),
    "fire": (0.25, 0.35, 0.20, 0.05, 0.05, 0.10),
    "flare": (0.30, 0.50, 0.20, 0.0, 0.0, 0.0),
    "drone": (0.35, 0.35, 0.15, 0.05, 0.05, 0.05),
    "civil": (0.50, 0.0, 0.0, 0.05, 0.15, 0.30),
    "restriction_patrol": (1.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    "restriction_op": (0.0, 1.0, 0.0, 0.0, 0.0, 0.0),
}
_KIND_GROUP = {
    Kind.heavy_weapon: "presence",
    Kind.armed_personnel: "presence",
    Kind.vehicle_movement: "presence",
    Kind.fortification_works: "presence",
    Kind.explosion: "fire",
    Kind.projectile: "fire",
    Kind.muzzle_flash: "fire",
    Kind.small_arms_fire: "fire",
    Kind.flare: "flare",
    Kind.drone_flight: "drone",
    Kind.civilian_casualty: "civil",
    Kind.damage: "civil",
    Kind.movement_restriction: "restriction_patrol",
}
#: Parties complain about the other party's violations far more than about its compliant activity.
_COMPLAINT_WEIGHT_VIOLATION = 4.0
_MAX_EXTRA_REPORTS = 3

# -- what happens ----------------------------------------------------------------------------

#: Share of violations per rule type (split evenly between the rules of a type in force).
_VIOLATION_WEIGHTS: dict[RuleType, float] = {
    RuleType.withdrawal: 0.25,
    RuleType.zone_ban: 0.25,
    RuleType.fire_across: 0.30,
    RuleType.drone_flight: 0.08,
    RuleType.movement_restriction: 0.07,
    RuleType.count_cap: 0.05,
}
#: Compliant activity: scenario, weight.
_COMPLIANT_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("weapon_rear", 0.22),
    ("vehicle_movement", 0.15),
    ("fire_own_side", 0.20),
    ("flare", 0.12),
    ("armed_personnel_rear", 0.10),
    ("drone_own_side", 0.06),
    ("detonation", 0.05),
    ("fortification_rear", 0.05),
)
#: Share of cross-line explosions that hurt civilians or damage civilian objects.
_CIVIL_HARM_RATE = 0.12
#: Fire whose weapon class gives no ranges, and small arms without a class (km).
_DEFAULT_RANGE_KM = (1.0, 15.0)
_SMALL_ARMS_RANGE_KM = (0.05, 1.5)
#: Share of the day's events at night (18:00-06:00 UTC), when most fire is recorded.
_NIGHT_SHARE = 0.65
_ROUNDS = 12
_FIRE_DIRECTED = frozenset(FIRE_KINDS - {Kind.muzzle_flash})
#: Kinds that are shots (heavy_weapon is a fire kind too, but drawn here as a weapon seen standing).
_SHOTS = frozenset(FIRE_KINDS - {Kind.heavy_weapon})
#: A compliant event is kept only if its distance to the line is at least this share of the
#: distance it was placed at (a perpendicular offset at a bend can land nearer another branch).
_PLACED_TOLERANCE = (0.95, 100.0)

_DRONE_RE = re.compile(r"drone|uav|uas\b|unmanned|uncrewed", re.IGNORECASE)
_SMALL_ARMS_RE = re.compile(r"small.?arms|rifle|machine.?gun|light weapon", re.IGNORECASE)


def simulate(agreement: Agreement, config: SimulationConfig) -> Simulation:
    """Simulate ``config.days`` days of activity along the line and its reports.

    Parameters
    ----------
    agreement
        The agreement; the version and rules in force on each simulated day apply.
    config
        Days, seed and rates.

    Returns
    -------
    Simulation
        Reports (validated :class:`Incident` records) and the ground truth.
    """
    rng = np.random.default_rng(config.seed)
    start = config.start or agreement.effective_from
    pools = _Pools.of(agreement)
    samplers: dict[int, _LineSampler] = {}
    days: list[_Events] = []
    for i in range(config.days):  # a loop over days; each day is drawn in arrays
        day = start + dt.timedelta(days=i)
        cv = agreement.version_at(day)
        if cv.index not in samplers:
            samplers[cv.index] = _LineSampler(cv)
        gen = _Day(agreement, cv, day, rng, pools, samplers[cv.index])
        days.append(gen.events(config))
    return _report(agreement, start, days, config, rng)


# -- events as columns -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Events:
    """True events as columns; origin is NaN where there is no fire."""

    kind: StrArray
    weapon_class: StrArray  # "" when none
    party: StrArray
    lon: FloatArray
    lat: FloatArray
    origin_lon: FloatArray
    origin_lat: FloatArray
    count: NDArray[np.int64]
    scenario: StrArray
    caused_by: IntArray  # index of the causing event in the same day, -1 if none
    seconds: FloatArray  # time of day (s, UTC)
    violation: BoolArray
    rules: StrArray  # ";"-joined ids of the rules broken
    placed_m: FloatArray  # distance from the line the position was placed at (NaN: not checked)

    def __len__(self) -> int:
        return int(self.lon.size)

    @classmethod
    def make(
        cls,
        *,
        kind: Any,
        party: Any,
        lon: FloatArray,
        lat: FloatArray,
        scenario: str,
        weapon_class: Any = "",
        origin_lon: FloatArray | None = None,
        origin_lat: FloatArray | None = None,
        count: Any = 1,
        placed_m: FloatArray | None = None,
    ) -> _Events:
        n = lon.size

        def s(v: Any) -> StrArray:
            return np.asarray(np.broadcast_to(np.asarray(v, dtype=str), (n,)))

        nan = np.full(n, np.nan)
        return cls(
            kind=s(kind),
            weapon_class=s(weapon_class),
            party=s(party),
            lon=lon,
            lat=lat,
            origin_lon=nan if origin_lon is None else origin_lon,
            origin_lat=nan if origin_lat is None else origin_lat,
            count=np.asarray(np.broadcast_to(np.asarray(count, dtype=np.int64), (n,))),
            scenario=s(scenario),
            caused_by=np.full(n, -1, dtype=np.intp),
            seconds=np.zeros(n),
            violation=np.zeros(n, dtype=bool),
            rules=np.full(n, "", dtype=str),
            placed_m=nan if placed_m is None else placed_m,
        )

    def take(self, idx: IntArray) -> _Events:
        return _Events(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def replace(self, **cols: Any) -> _Events:
        return _Events(**{f.name: cols.get(f.name, getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def concat(cls, parts: Sequence[_Events]) -> _Events:
        parts = [p for p in parts if len(p)] or list(parts[:1])
        if not parts:
            return cls.make(kind="", party="", lon=np.zeros(0), lat=np.zeros(0), scenario="")
        return _Events(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )


# -- geometry --------------------------------------------------------------------------------


class _LineSampler:
    """Points at random chainages along a version's densified line, offset perpendicular to it."""

    def __init__(self, cv: CompiledVersion) -> None:
        line = cv.line
        ok = np.flatnonzero(line.segment_ok)
        az, _, length = GEOD.inv(line.lon[ok], line.lat[ok], line.lon[ok + 1], line.lat[ok + 1])
        self.lon = line.lon[ok]
        self.lat = line.lat[ok]
        self.az = np.atleast_1d(np.asarray(az, dtype=np.float64))
        self.length_m = np.atleast_1d(np.asarray(length, dtype=np.float64))
        self.cum = np.cumsum(self.length_m) / self.length_m.sum()

    def offset(
        self, rng: np.random.Generator, side: NDArray[np.integer[Any]], dist_m: FloatArray
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Points ``dist_m`` from a random foot on the line, on ``side`` (+1 left, -1 right).

        Returns lon, lat and the azimuth (deg) pointing away from the line at each point.
        """
        m = side.size
        k = np.minimum(np.searchsorted(self.cum, rng.random(m)), self.cum.size - 1)
        flon, flat, baz = GEOD.fwd(
            self.lon[k], self.lat[k], self.az[k], rng.random(m) * self.length_m[k]
        )
        # Left of the direction of travel is azimuth - 90.
        outward = np.asarray(baz) + 180.0 - 90.0 * side
        lon, lat, baz2 = GEOD.fwd(flon, flat, outward, dist_m)
        return np.asarray(lon), np.asarray(lat), np.asarray(baz2) + 180.0


def _rayleigh_shift(
    rng: np.random.Generator, lon: FloatArray, lat: FloatArray, sigma_m: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Points moved by a circular Gaussian error of standard deviation ``sigma_m`` per axis."""
    az = rng.uniform(0.0, 360.0, lon.size)
    r = sigma_m * np.sqrt(-2.0 * np.log1p(-rng.random(lon.size)))
    out_lon, out_lat, _ = GEOD.fwd(lon, lat, az, r)
    return np.asarray(out_lon), np.asarray(out_lat)


def _locate(
    cv: CompiledVersion, lon: FloatArray, lat: FloatArray
) -> tuple[NDArray[np.int8], dict[int, FloatArray], FloatArray]:
    """Side, distance (m) to each side's reference line, and distance to the line; NaN-safe."""
    n = lon.size
    ok = np.isfinite(lon) & np.isfinite(lat)
    side = np.zeros(n, np.int8)
    dist = np.full(n, np.nan)
    refd = {1: np.full(n, np.nan), -1: np.full(n, np.nan)}
    if ok.any():
        s, d = cv.sides(lon[ok], lat[ok])
        side[ok], dist[ok] = s, d
        for sd in (1, -1):
            refd[sd][ok] = cv.reference[sd].distance_m(lon[ok], lat[ok]) if sd in cv.reference else d
    return side, refd, dist


# -- the weapon classes, read from the agreement -----------------------------------------------


@dataclass(frozen=True)
class _Pools:
    """The agreement's weapon classes by use."""

    presence: tuple[str, ...]  # heavy weapons and vehicles
    fire: tuple[str, ...]  # indirect and direct fire, with ranges
    fire_range_km: tuple[tuple[float, float], ...]
    drone: tuple[str, ...]
    small_arms: tuple[str, ...]
    small_arms_range_km: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, ag: Agreement) -> _Pools:
        drone, small, heavy = [], [], []
        for w in ag.weapon_classes:
            text = f"{w.id} {w.name}"
            if _DRONE_RE.search(text):
                drone.append(w)
            elif _SMALL_ARMS_RE.search(text):
                small.append(w)
            else:
                heavy.append(w)
        ranged = [w for w in heavy if w.max_range_km is not None] or heavy

        def rng_of(w: Any, default: tuple[float, float]) -> tuple[float, float]:
            hi = w.max_range_km if w.max_range_km is not None else default[1]
            lo = w.min_range_km if w.min_range_km is not None else min(default[0], hi / 2)
            return (max(lo, 0.05), hi)

        return cls(
            presence=tuple(w.id for w in heavy),
            fire=tuple(w.id for w in ranged),
            fire_range_km=tuple(rng_of(w, _DEFAULT_RANGE_KM) for w in ranged),
            drone=tuple(w.id for w in drone),
            small_arms=tuple(w.id for w in small),
            small_arms_range_km=tuple(rng_of(w, _SMALL_ARMS_RANGE_KM) for w in small),
        )


# -- one day ---------------------------------------------------------------------------------


class _Day:
    """Draws one day's true events under the version and rules in force."""

    def __init__(
        self,
        ag: Agreement,
        cv: CompiledVersion,
        day: dt.date,
        rng: np.random.Generator,
        pools: _Pools,
        sampler: _LineSampler,
    ) -> None:
        self.ag = ag
        self.cv = cv
        self.day = day
        self.rng = rng
        self.pools = pools
        self.sampler = sampler
        self.rules: list[Rule] = [r for r in cv.rules if r.in_force(day)]
        self.parties = np.array([ag.left, ag.right])
        self.party_side = np.array([1, -1], dtype=np.int8)

    def events(self, config: SimulationConfig) -> _Events:
        rng = self.rng
        n = int(rng.poisson(config.events_per_day))
        n_v = int(rng.binomial(n, config.violation_rate))
        parts = [self._violations(n_v), self._compliant(n - n_v)]
        ev = _Events.concat(parts)
        ev = self._with_civil_harm(ev)
        ev = ev.replace(seconds=self._times(ev))
        # In time order, so that nothing about the truth shows in the order of events and ids.
        perm = np.argsort(ev.seconds, kind="stable")
        rank = np.empty_like(perm)
        rank[perm] = np.arange(perm.size)
        ev = ev.take(perm)
        ev = ev.replace(caused_by=np.where(ev.caused_by >= 0, rank[ev.caused_by], -1))
        mat, _ = self._rule_matrix(ev, aggregate=True)
        rules = np.full(len(ev), "", dtype=object)
        for k, r in enumerate(self.rules):  # a loop over rules
            rules[mat[:, k]] = rules[mat[:, k]] + (";" + r.id)
        rules = np.char.lstrip(rules.astype(str), ";")
        return ev.replace(violation=mat.any(axis=1), rules=rules)

    # -- exact rule evaluation on true positions ---------------------------------------------

    def _rule_matrix(self, ev: _Events, *, aggregate: bool) -> tuple[BoolArray, BoolArray]:
        """Which rules in force each event breaks (n, rules), and whether it is usable.

        Usable: inside the area of application (origin too) and, where ``placed_m`` is given, not
        much nearer the line than it was placed.

        With ``aggregate`` False, a count-cap column marks presence in the capped zone (what a
        compliant event must avoid); with True, it marks the events of a party whose day's total
        in the zone exceeds the cap.
        """
        cv = self.cv
        n = len(ev)
        side, refd, dist = _locate(cv, ev.lon, ev.lat)
        o_side, o_refd, _ = _locate(cv, ev.origin_lon, ev.origin_lat)
        has_o = np.isfinite(ev.origin_lon)
        share, slack_m = _PLACED_TOLERANCE
        with np.errstate(invalid="ignore"):
            faithful = ~np.isfinite(ev.placed_m) | (dist >= share * ev.placed_m - slack_m)
        inside = (side != 0) & (~has_o | (o_side != 0)) & faithful
        fire = np.isin(ev.kind, [k.value for k in FIRE_KINDS])
        presence = np.isin(ev.kind, [k.value for k in PRESENCE_KINDS])
        # Where the weapon stood: the origin of fire, else the event's position.
        from_o = fire & has_o
        w_lon = np.where(from_o, ev.origin_lon, ev.lon)
        w_lat = np.where(from_o, ev.origin_lat, ev.lat)
        w_side = np.where(from_o, o_side, side)
        w_refd = {s: np.where(from_o, o_refd[s], refd[s]) for s in (1, -1)}
        cache: dict[tuple[str, bool], BoolArray] = {}

        def zone(zid: str, weapon: bool) -> BoolArray:
            if (zid, weapon) not in cache:
                z = cv.zones[zid]
                if weapon:
                    cache[(zid, weapon)] = self._in_zone(z, w_lon, w_lat, w_side, w_refd)
                else:
                    cache[(zid, weapon)] = self._in_zone(z, ev.lon, ev.lat, side, refd)
            return cache[(zid, weapon)]

        out = np.zeros((n, len(self.rules)), dtype=bool)
        has_wc = ev.weapon_class != ""
        for k, r in enumerate(self.rules):  # a loop over rules
            kinds = [x.value for x in r.kinds]
            wcs = list(r.weapon_classes)
            if r.type == RuleType.zone_ban:
                assert r.zone is not None
                hit = np.isin(ev.kind, kinds) & zone(r.zone, False)
                hit |= has_wc & np.isin(ev.weapon_class, wcs) & zone(r.zone, True)
            elif r.type == RuleType.withdrawal:
                hit = np.zeros(n, dtype=bool)
                usable = has_wc & np.isin(ev.weapon_class, wcs) & (from_o | presence)
                for s in (1, -1):
                    party = self.ag.party_on_side(s)
                    if party in r.distance_km:
                        hit |= usable & (w_side == s) & (w_refd[s] < r.distance_km[party] * 1000.0)
            elif r.type == RuleType.count_cap:
                assert r.zone is not None and r.max_count is not None
                capped = (np.isin(ev.kind, kinds) | (has_wc & np.isin(ev.weapon_class, wcs))) & zone(
                    r.zone, False
                )
                if aggregate:
                    hit = np.zeros(n, dtype=bool)
                    for p in self.ag.party_ids:
                        sel = capped & (ev.party == p)
                        if ev.count[sel].sum() > r.max_count:
                            hit |= sel
                else:
                    hit = capped
            elif r.type == RuleType.fire_across:
                directed = np.isin(ev.kind, [x.value for x in _FIRE_DIRECTED]) & has_o
                across = (o_side != side) & (o_side != 0) & (side != 0)
                in_zone = zone(r.zone, False) if r.zone else np.zeros(n, dtype=bool)
                hit = directed & (across | in_zone)
            elif r.type == RuleType.drone_flight:
                assert r.zone is not None
                hit = (
                    (ev.kind == Kind.drone_flight.value)
                    & ~np.isin(ev.party, sorted(MISSION_IDS))
                    & zone(r.zone, False)
                )
            else:  # movement_restriction
                hit = ev.kind == Kind.movement_restriction.value
            out[:, k] = hit
        return out, inside

    def _in_zone(
        self,
        z: Zone,
        lon: FloatArray,
        lat: FloatArray,
        side: NDArray[np.int8],
        refd: dict[int, FloatArray],
    ) -> BoolArray:
        if z.type == "polygon":
            return np.asarray(shapely.contains_xy(z.geometry, lon, lat), dtype=bool)
        m = np.zeros(lon.size, dtype=bool)
        for s in (1, -1):
            party = self.ag.party_on_side(s)
            if party in z.bands:
                lo, hi = z.bands[party]
                with np.errstate(invalid="ignore"):
                    m |= (side == s) & (refd[s] >= lo * 1000.0) & (refd[s] < hi * 1000.0)
        return m

    # -- drawing with rejection ------------------------------------------------------------

    def _fill(
        self, m: int, propose: Callable[[int], _Events], accept: Callable[[_Events], BoolArray]
    ) -> _Events:
        """``m`` events from ``propose`` that pass ``accept`` (fewer if too rare)."""
        got: list[_Events] = []
        have = 0
        for _ in range(_ROUNDS):  # rounds of whole batches, not events
            need = m - have
            if need <= 0:
                break
            cand = propose(max(2 * need, 8))
            sel = np.flatnonzero(accept(cand))[:need]
            got.append(cand.take(sel))
            have += sel.size
        return _Events.concat(got) if got else _Events.concat([])

    def _breaks(self, k: int) -> Callable[[_Events], BoolArray]:
        def accept(ev: _Events) -> BoolArray:
            mat, inside = self._rule_matrix(ev, aggregate=False)
            return mat[:, k] & inside

        return accept

    def _complies(self, ev: _Events) -> BoolArray:
        mat, inside = self._rule_matrix(ev, aggregate=False)
        return ~mat.any(axis=1) & inside

    def _pick_side(self, m: int) -> tuple[NDArray[np.int8], StrArray]:
        i = self.rng.integers(0, 2, m)
        return self.party_side[i], self.parties[i]

    def _choice(self, options: Sequence[str], m: int, default: str = "") -> StrArray:
        if not options:
            return np.full(m, default, dtype=str)
        return np.asarray(options, dtype=str)[self.rng.integers(0, len(options), m)]

    def _zone_points(self, z: Zone, m: int) -> tuple[FloatArray, FloatArray, NDArray[np.int8]]:
        """Points inside a zone (on a side whose party has a band, for band zones)."""
        rng = self.rng
        if z.type == "band":
            bands = {
                sd: z.bands[self.ag.party_on_side(sd)]
                for sd in (1, -1)
                if self.ag.party_on_side(sd) in z.bands
            }
            sides = np.array(list(bands), dtype=np.int8)
            side = sides[rng.integers(0, sides.size, m)]
            lo = np.array([bands[int(sd)][0] for sd in sides])
            hi = np.array([bands[int(sd)][1] for sd in sides])
            j = np.searchsorted(-sides, -side)  # sides is (1, -1) or a single side
            lo_m, hi_m = lo[j] * 1000.0, hi[j] * 1000.0
            margin = np.minimum(500.0, 0.15 * (hi_m - lo_m))
            lon, lat, _ = self.sampler.offset(rng, side, rng.uniform(lo_m + margin, hi_m - margin))
            return lon, lat, side
        minx, miny, maxx, maxy = z.geometry.bounds
        xs: list[FloatArray] = []
        ys: list[FloatArray] = []
        have = 0
        for _ in range(_ROUNDS):
            x = rng.uniform(minx, maxx, 4 * m + 8)
            y = rng.uniform(miny, maxy, 4 * m + 8)
            ok = shapely.contains_xy(z.geometry, x, y)
            xs.append(x[ok])
            ys.append(y[ok])
            have += int(ok.sum())
            if have >= m:
                break
        lon = np.concatenate(xs)[:m]
        lat = np.concatenate(ys)[:m]
        side, _ = self.cv.sides(lon, lat)
        return lon, lat, side

    # -- violations --------------------------------------------------------------------------

    def _violations(self, n: int) -> _Events:
        gens: list[tuple[int, Callable[[int], _Events], float]] = []
        by_type: dict[RuleType, int] = {}
        for r in self.rules:
            by_type[r.type] = by_type.get(r.type, 0) + 1
        for k, r in enumerate(self.rules):
            g = self._generator(r)
            if g is not None:
                gens.append((k, g, _VIOLATION_WEIGHTS[r.type] / by_type[r.type]))
        if n == 0 or not gens:
            return _Events.concat([])
        w = np.array([g[2] for g in gens])
        counts = self.rng.multinomial(n, w / w.sum())
        parts = [
            self._fill(int(c), gen, self._breaks(k))
            for (k, gen, _), c in zip(gens, counts, strict=True)
            if c > 0
        ]
        return _Events.concat(parts)

    def _generator(self, r: Rule) -> Callable[[int], _Events] | None:
        if r.type == RuleType.withdrawal:
            if not any(p in r.distance_km for p in self.ag.party_ids):
                return None
            return lambda m: self._gen_withdrawal(r, m)
        if r.type in (RuleType.zone_ban, RuleType.count_cap):
            assert r.zone is not None
            if not self._zone_usable(self.cv.zones[r.zone]):
                return None
            return lambda m: self._gen_in_zone(r, m)
        if r.type == RuleType.drone_flight:
            assert r.zone is not None
            if not self._zone_usable(self.cv.zones[r.zone]):
                return None
            return lambda m: self._gen_drone(r, m)
        if r.type == RuleType.fire_across:
            return self._gen_fire_across
        if r.type == RuleType.movement_restriction:
            return self._gen_restriction
        return None

    def _zone_usable(self, z: Zone) -> bool:
        if z.type == "band":
            return any(self.ag.party_on_side(s) in z.bands for s in (1, -1))
        return not z.geometry.is_empty

    def _gen_withdrawal(self, r: Rule, m: int) -> _Events:
        rng = self.rng
        parties = [p for p in self.ag.party_ids if p in r.distance_km]
        i = rng.integers(0, len(parties), m)
        party = np.asarray(parties, dtype=str)[i]
        side = np.array([self.ag.side_of_party(p) for p in parties], dtype=np.int8)[i]
        km = np.array([r.distance_km[p] for p in parties])[i]
        lon, lat, _ = self.sampler.offset(rng, side, rng.uniform(0.05, 0.95, m) * km * 1000.0)
        kind = rng.choice(
            [Kind.heavy_weapon.value, Kind.muzzle_flash.value, Kind.vehicle_movement.value],
            size=m,
            p=[0.75, 0.15, 0.10],
        )
        flash = kind == Kind.muzzle_flash.value
        return _Events.make(
            kind=kind,
            party=party,
            lon=lon,
            lat=lat,
            scenario="withdrawal_breach",
            weapon_class=self._choice(r.weapon_classes, m),
            origin_lon=np.where(flash, lon, np.nan),
            origin_lat=np.where(flash, lat, np.nan),
            count=1 + (rng.random(m) < 0.3) * rng.integers(1, 4, m),
        )

    def _gen_in_zone(self, r: Rule, m: int) -> _Events:
        """Something a zone ban forbids, or more than a cap allows, inside the rule's zone."""
        rng = self.rng
        assert r.zone is not None
        options: list[tuple[str, str]] = [(k.value, "") for k in r.kinds]
        for w in r.weapon_classes:
            if w in self.pools.drone:
                options.append((Kind.drone_flight.value, w))
            elif w in self.pools.small_arms:
                options.append((Kind.armed_personnel.value, w))
            else:
                options.append((Kind.heavy_weapon.value, w))
        pick = rng.integers(0, len(options), m)
        kind = np.asarray([o[0] for o in options], dtype=str)[pick]
        wc = np.asarray([o[1] for o in options], dtype=str)[pick]
        lon, lat, side = self._zone_points(self.cv.zones[r.zone], m)
        m = lon.size
        kind, wc = kind[:m], wc[:m]
        party = np.where(side > 0, self.ag.left, self.ag.right)
        personnel = kind == Kind.armed_personnel.value
        count = np.where(personnel, rng.integers(2, 31, m), 1)
        if r.type == RuleType.count_cap:
            assert r.max_count is not None
            # Over the cap by 10-50 %: a clear breach, not a miscount.
            extra = rng.integers(max(1, r.max_count // 10), max(2, r.max_count // 2 + 1), m)
            count = np.full(m, r.max_count) + extra
        fire = np.isin(kind, [k.value for k in _SHOTS])
        return _Events.make(
            kind=kind,
            party=party,
            lon=lon,
            lat=lat,
            scenario="cap_exceeded" if r.type == RuleType.count_cap else "zone_ban_breach",
            weapon_class=wc,
            origin_lon=np.where(fire, lon, np.nan),
            origin_lat=np.where(fire, lat, np.nan),
            count=count,
        )

    def _gen_drone(self, r: Rule, m: int) -> _Events:
        assert r.zone is not None
        lon, lat, _ = self._zone_points(self.cv.zones[r.zone], m)
        _, party = self._pick_side(lon.size)
        return _Events.make(
            kind=Kind.drone_flight.value,
            party=party,
            lon=lon,
            lat=lat,
            scenario="drone_over_zone",
            weapon_class=self._choice(self.pools.drone, lon.size),
        )

    def _fire_weapons(
        self, m: int, small_share: float
    ) -> tuple[StrArray, StrArray, FloatArray, FloatArray]:
        """Kind, weapon class and range (km) of ``m`` shots; small arms with ``small_share``."""
        rng = self.rng
        p = self.pools
        small = rng.random(m) < small_share
        kind = np.where(small, Kind.small_arms_fire.value, Kind.explosion.value)
        fi = rng.integers(0, max(len(p.fire), 1), m)
        si = rng.integers(0, max(len(p.small_arms), 1), m)
        fire_rng = np.array(p.fire_range_km or [_DEFAULT_RANGE_KM])
        small_rng = np.array(p.small_arms_range_km or [_SMALL_ARMS_RANGE_KM])
        wc_f = np.asarray(p.fire, dtype=str)[fi] if p.fire else np.full(m, "", dtype=str)
        wc_s = np.asarray(p.small_arms, dtype=str)[si] if p.small_arms else np.full(m, "", dtype=str)
        wc = np.where(small, wc_s, wc_f)
        lo = np.where(small, small_rng[si, 0], fire_rng[fi, 0])
        hi = np.where(small, small_rng[si, 1], fire_rng[fi, 1])
        return kind, wc, lo, hi

    def _gen_fire_across(self, m: int) -> _Events:
        """Fire from near the line, aimed across it, landing on the other side."""
        rng = self.rng
        side, party = self._pick_side(m)
        kind, wc, lo, hi = self._fire_weapons(m, 0.25)
        d_o = rng.uniform(0.05, 0.6, m) * np.minimum(hi, 20.0)
        olon, olat, outward = self.sampler.offset(rng, side, d_o * 1000.0)
        toward = outward + 180.0 + rng.normal(0.0, 25.0, m)
        r_lo = np.minimum(np.maximum(lo, 1.15 * d_o + 0.2), hi)
        r_km = rng.uniform(r_lo, hi)
        lon, lat, _ = GEOD.fwd(olon, olat, toward, r_km * 1000.0)
        return _Events.make(
            kind=kind,
            party=party,
            lon=np.asarray(lon),
            lat=np.asarray(lat),
            scenario="fire_across",
            weapon_class=wc,
            origin_lon=olon,
            origin_lat=olat,
        )

    def _gen_restriction(self, m: int) -> _Events:
        """Monitors stopped at an observation post or on a patrol route."""
        rng = self.rng
        side, _ = self._pick_side(m)
        lon, lat, _ = self.sampler.offset(rng, side, rng.uniform(300.0, 20_000.0, m))
        at_op = np.zeros(m, dtype=bool)
        ops = self.ag.observation_posts
        if ops:
            at_op = rng.random(m) < 0.5
            j = rng.integers(0, len(ops), m)
            op_lon = np.array([o.lon for o in ops])[j]
            op_lat = np.array([o.lat for o in ops])[j]
            op_lon, op_lat = _rayleigh_shift(rng, op_lon, op_lat, np.full(m, 30.0))
            lon = np.where(at_op, op_lon, lon)
            lat = np.where(at_op, op_lat, lat)
        s, _ = self.cv.sides(lon, lat)
        ev = _Events.make(
            kind=Kind.movement_restriction.value,
            party=np.where(s > 0, self.ag.left, self.ag.right),
            lon=lon,
            lat=lat,
            scenario="restriction_patrol",
        )
        return ev.replace(scenario=np.where(at_op, "restriction_op", "restriction_patrol"))

    # -- compliant activity ------------------------------------------------------------------

    def _compliant(self, n: int) -> _Events:
        if n == 0:
            return _Events.concat([])
        names = [s for s, w in _COMPLIANT_WEIGHTS if w > 0]
        w = np.array([w for _, w in _COMPLIANT_WEIGHTS if w > 0])
        counts = self.rng.multinomial(n, w / w.sum())
        parts = []
        for name, c in zip(names, counts, strict=True):  # a loop over scenarios
            if c == 0:
                continue
            propose = (
                self._gen_fire_own_side if name == "fire_own_side" else self._presence_proposer(name)
            )
            parts.append(self._fill(int(c), propose, self._complies))
        return _Events.concat(parts)

    def _presence_proposer(self, name: str) -> Callable[[int], _Events]:
        kinds = {
            "weapon_rear": Kind.heavy_weapon,
            "vehicle_movement": Kind.vehicle_movement,
            "flare": Kind.flare,
            "armed_personnel_rear": Kind.armed_personnel,
            "drone_own_side": Kind.drone_flight,
            "detonation": Kind.explosion,
            "fortification_rear": Kind.fortification_works,
        }
        # Depth beyond the restricted band (km): margin, then a uniform spread.
        spread = {"flare": (0.2, 8.0), "detonation": (0.5, 25.0), "weapon_rear": (2.0, 30.0)}
        kind = kinds[name]
        margin_km, span_km = spread.get(name, (2.0, 20.0))

        def propose(m: int) -> _Events:
            rng = self.rng
            side, party = self._pick_side(m)
            if name == "weapon_rear":
                wc = self._choice(self.pools.presence, m)
            elif name == "vehicle_movement":
                wc = np.where(rng.random(m) < 0.4, self._choice(self.pools.presence, m), "")
            elif name == "drone_own_side":
                wc = self._choice(self.pools.drone, m)
            else:
                wc = np.full(m, "", dtype=str)
            depth = self._depth_km(kind.value, wc, party)
            d_km = depth + np.where(depth > 0, margin_km, 0.2) + rng.uniform(0.0, span_km, m)
            lon, lat, _ = self.sampler.offset(rng, side, d_km * 1000.0)
            if name == "armed_personnel_rear":
                count = rng.integers(2, 41, m)
            elif name in ("weapon_rear", "vehicle_movement"):
                count = 1 + (rng.random(m) < 0.3) * rng.integers(1, 4, m)
            else:
                count = np.ones(m, dtype=np.int64)
            return _Events.make(
                kind=kind.value,
                party=party,
                lon=lon,
                lat=lat,
                scenario=name,
                weapon_class=wc,
                count=count,
                placed_m=d_km * 1000.0,
            )

        return propose

    def _depth_km(self, kind: str, wc: StrArray, party: StrArray, *, weapon: bool = True) -> FloatArray:
        """How far from the line (km) each event must stay to break no rule in force.

        Band zones and withdrawal distances only; polygon zones and reference lines are left to
        the exact check that follows.
        """
        keys, inv = np.unique(np.char.add(np.char.add(wc, "|"), party), return_inverse=True)
        out = np.zeros(keys.size)
        for i, key in enumerate(keys.tolist()):  # a loop over distinct (class, party) pairs
            w, p = key.split("|")
            d = 0.0
            for r in self.rules:
                zone_hit = False
                if r.type == RuleType.withdrawal:
                    if weapon and w and w in r.weapon_classes and p in r.distance_km:
                        d = max(d, r.distance_km[p])
                elif r.type in (RuleType.zone_ban, RuleType.count_cap):
                    zone_hit = kind in r.kinds or (w != "" and w in r.weapon_classes)
                elif r.type == RuleType.drone_flight:
                    zone_hit = kind == Kind.drone_flight.value
                elif r.type == RuleType.fire_across:
                    zone_hit = not weapon and kind in _FIRE_DIRECTED
                if zone_hit and r.zone is not None:
                    z = self.cv.zones[r.zone]
                    if z.type == "band" and p in z.bands:
                        d = max(d, z.bands[p][1])
            out[i] = d
        return out[inv]

    def _gen_fire_own_side(self, m: int) -> _Events:
        """Fire aimed towards the line that lands short: on the firer's side, outside any zone."""
        rng = self.rng
        side, party = self._pick_side(m)
        kind, wc, lo, hi = self._fire_weapons(m, 0.0)
        depth = self._depth_km(Kind.explosion.value, wc, party, weapon=False)
        d_i = depth + rng.uniform(2.0, 15.0, m)
        lon, lat, outward = self.sampler.offset(rng, side, d_i * 1000.0)
        back = outward + rng.normal(0.0, 30.0, m)
        r_km = rng.uniform(np.maximum(lo, 0.3), hi)
        olon, olat, _ = GEOD.fwd(lon, lat, back, r_km * 1000.0)
        return _Events.make(
            kind=kind,
            party=party,
            lon=lon,
            lat=lat,
            scenario="fire_own_side",
            weapon_class=wc,
            origin_lon=np.asarray(olon),
            origin_lat=np.asarray(olat),
            placed_m=d_i * 1000.0,
        )

    # -- consequences and times ----------------------------------------------------------------

    def _with_civil_harm(self, ev: _Events) -> _Events:
        """Civilian casualties and damage where some cross-line explosions land."""
        rng = self.rng
        cause = np.flatnonzero(
            (ev.scenario == "fire_across")
            & (ev.kind == Kind.explosion.value)
            & (rng.random(len(ev)) < _CIVIL_HARM_RATE)
        )
        if cause.size == 0:
            return ev
        lon, lat = _rayleigh_shift(rng, ev.lon[cause], ev.lat[cause], np.full(cause.size, 100.0))
        casualty = rng.random(cause.size) < 0.4
        harm = _Events.make(
            kind=np.where(casualty, Kind.civilian_casualty.value, Kind.damage.value),
            party=ev.party[cause],
            lon=lon,
            lat=lat,
            scenario="civil_harm",
            count=np.where(casualty, rng.integers(1, 4, cause.size), 1),
        )
        harm = harm.replace(caused_by=cause.astype(np.intp))
        inside = self.cv.sides(harm.lon, harm.lat)[0] != 0
        return _Events.concat([ev, harm.take(np.flatnonzero(inside))])

    def _times(self, ev: _Events) -> FloatArray:
        rng = self.rng
        n = len(ev)
        night = rng.random(n) < _NIGHT_SHARE
        t = np.where(night, (18.0 + rng.uniform(0, 12, n)) % 24.0, 6.0 + rng.uniform(0, 12, n))
        t = np.where(np.char.startswith(ev.scenario, "restriction"), 8.0 + rng.uniform(0, 8, n), t)
        sec = t * 3600.0
        harm = ev.caused_by >= 0
        # Harm happens with the fire that caused it.
        return np.where(harm, sec[np.maximum(ev.caused_by, 0)] + rng.uniform(0, 60, n), sec)


# -- reports ---------------------------------------------------------------------------------


def _report(
    ag: Agreement,
    start: dt.date,
    days: list[_Events],
    config: SimulationConfig,
    rng: np.random.Generator,
) -> Simulation:
    sizes = np.array([len(d) for d in days], dtype=np.intp)
    ev = _Events.concat(days)
    n = len(ev)
    if n == 0:
        return Simulation(reports=[], truth=[])
    day_idx = np.repeat(np.arange(len(days)), sizes)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    caused_by = np.where(ev.caused_by >= 0, ev.caused_by + offsets[day_idx], -1)
    dates = [start + dt.timedelta(days=i) for i in range(len(days))]
    version = ag.version_index_at(np.array(dates, dtype="datetime64[D]"))[day_idx]
    t_event = day_idx * 86400.0 + ev.seconds

    groups = np.where(ev.scenario == "restriction_op", "restriction_op", _lookup(ev.kind, _KIND_GROUP))
    e, src = _assign_sources(ev, groups, config, rng)
    m = e.size

    def per_source(attr: str) -> FloatArray:
        table = np.array([getattr(s, attr) for s in _SOURCES], dtype=np.float64)
        return np.asarray(table[src], dtype=np.float64)

    def log_uniform(bounds: str) -> FloatArray:
        lo = np.array([getattr(s, bounds)[0] for s in _SOURCES])[src]
        hi = np.array([getattr(s, bounds)[1] for s in _SOURCES])[src]
        return np.asarray(np.exp(rng.uniform(np.log(lo), np.log(hi))), dtype=np.float64)

    sigma = log_uniform("uncertainty_m")
    restriction = ev.kind[e] == Kind.movement_restriction.value
    sigma = np.where(restriction, rng.uniform(*_RESTRICTION_UNCERTAINTY_M, m), sigma)
    complaint = src == _COMPLAINT
    true_lon, true_lat = ev.lon[e], ev.lat[e]
    base_lon, base_lat = true_lon.copy(), true_lat.copy()
    if complaint.any():
        base_lon, base_lat = _complaint_bias(
            ag, rng, complaint, base_lon, base_lat, ev.party[e], version[e], sigma
        )
    lon, lat = _noisy_inside(ag, rng, base_lon, base_lat, true_lon, true_lat, sigma, version[e])

    # Where fire came from: an origin with its uncertainty, a bearing only, or neither.
    o_true_lon, o_true_lat = ev.origin_lon[e], ev.origin_lat[e]
    directed = np.isin(ev.kind[e], [k.value for k in _FIRE_DIRECTED]) & np.isfinite(o_true_lon)
    az, _, sep = GEOD.inv(
        np.where(directed, true_lon, 0.0), np.where(directed, true_lat, 0.0),
        np.where(directed, o_true_lon, 1.0), np.where(directed, o_true_lat, 1.0),
    )  # fmt: skip
    az_to_origin = np.asarray(az)
    modes = np.array([s.fire_modes for s in _SOURCES])[src]
    u = rng.random(m)
    give_origin = directed & (u < modes[:, 0])
    give_bearing = directed & ~give_origin & (u < modes[:, 0] + modes[:, 1]) & (np.asarray(sep) > 100.0)
    o_sigma = np.where(give_origin, log_uniform("origin_uncertainty_m"), np.nan)
    olon, olat = _noisy_inside(
        ag, rng, np.where(give_origin, o_true_lon, 0.0), np.where(give_origin, o_true_lat, 0.0),
        np.where(give_origin, o_true_lon, 0.0), np.where(give_origin, o_true_lat, 0.0),
        np.nan_to_num(o_sigma), version[e], only=give_origin,
    )  # fmt: skip
    olon = np.where(give_origin, olon, np.nan)
    olat = np.where(give_origin, olat, np.nan)
    bearing = (az_to_origin + rng.normal(0.0, 1.0, m) * per_source("bearing_sigma_deg")) % 360.0
    bearing = np.where(give_bearing, np.where(bearing >= 360.0, 0.0, bearing), np.nan)

    # What the source could tell: actor, weapon class (sometimes wrongly), count.
    p_party = per_source("p_party") * np.where(
        np.isin(groups[e], ["drone"]), 0.6, np.where(groups[e] == "civil", 0.4, 1.0)
    )
    p_party = np.where(complaint | restriction, 1.0, p_party)
    party = np.where(rng.random(m) < p_party, ev.party[e], "")
    wc_true = ev.weapon_class[e]
    named = (wc_true != "") & (rng.random(m) < per_source("p_weapon"))
    wrong = named & (rng.random(m) < per_source("p_misclass"))
    pool = np.asarray([w.id for w in ag.weapon_classes] or [""], dtype=str)
    wc = np.where(named, np.where(wrong, pool[rng.integers(0, pool.size, m)], wc_true), "")
    count = ev.count[e].astype(np.float64)
    count = count * np.exp(rng.normal(0.0, 1.0, m) * per_source("count_sigma"))
    count = np.where(complaint, count * rng.uniform(1.0, 1.5, m), count)
    reported_count = np.where(ev.count[e] == 1, 1, np.maximum(np.rint(count), 1)).astype(np.int64)

    # When: the event's time with the source's error, cut to its precision.
    t = t_event[e] + rng.normal(0.0, 1.0, m) * per_source("time_sigma_s")
    precision = np.array([s.precision.value for s in _SOURCES], dtype=str)[src]
    to_day = (src == _S[SourceType.open_source]) & (rng.random(m) < 0.3)
    precision = np.where(to_day, TimePrecision.day.value, precision)
    step = np.select(
        [precision == "second", precision == "minute", precision == "hour"],
        [1.0, 60.0, 3600.0],
        86400.0,
    )
    t = np.floor(t / step) * step
    epoch = np.datetime64(start, "s")
    observed = (epoch + np.rint(t).astype("timedelta64[s]")).astype("datetime64[us]")

    reliability = _graded(rng, src, "reliability")
    credibility = _graded(rng, src, "credibility").astype(np.int64)

    src_names = np.array([s.type.value for s in _SOURCES], dtype=str)[src]
    report_id = _report_ids(src_names, day_idx[e], dates)
    reports = _incidents(
        report_id, observed, precision, lon, lat, sigma, ev.kind[e], wc, reported_count, party,
        olon, olat, o_sigma, bearing, src_names, reliability, credibility,
    )  # fmt: skip
    truth = _truth(ev, day_idx, dates, caused_by, t_event, start, e, report_id)
    return Simulation(reports=reports, truth=truth)


def _assign_sources(
    ev: _Events, groups: StrArray, config: SimulationConfig, rng: np.random.Generator
) -> tuple[IntArray, IntArray]:
    """Reports as (event index, source index), in event order.

    A reported event gets one source, then with ``duplicate_rate`` each (up to three) another of
    a different type. Sources are drawn by the Gumbel-max trick, all events at once.
    """
    n = len(ev)
    reported = rng.random(n) >= config.miss_rate
    gnames = sorted(_GROUP_WEIGHTS)
    table = np.array([_GROUP_WEIGHTS[g] for g in gnames])
    w = table[np.searchsorted(gnames, groups)]
    w[:, _COMPLAINT] *= np.where(ev.violation, _COMPLAINT_WEIGHT_VIOLATION, 1.0)
    w[:, _COMPLAINT] *= ev.party != ""
    dup = rng.random((n, _MAX_EXTRA_REPORTS)) < config.duplicate_rate
    extra = np.cumprod(dup, axis=1).sum(axis=1)
    rows_ev: list[IntArray] = []
    rows_src: list[IntArray] = []
    rows_rank: list[IntArray] = []
    for rank in range(_MAX_EXTRA_REPORTS + 1):  # a loop over report ranks (at most four)
        can = reported & (rank <= extra) & (w.sum(axis=1) > 0)
        with np.errstate(divide="ignore"):
            gumbel = -np.log(-np.log(rng.random(w.shape)))
            src = np.argmax(np.log(w) + gumbel, axis=1)
        idx = np.flatnonzero(can)
        rows_ev.append(idx)
        rows_src.append(src[idx])
        rows_rank.append(np.full(idx.size, rank))
        w[idx, src[idx]] = 0.0  # the next report comes from another type
    e = np.concatenate(rows_ev)
    src = np.concatenate(rows_src)
    order = np.lexsort((np.concatenate(rows_rank), e))
    return e[order], src[order]


def _report_ids(source: StrArray, day_idx: IntArray, dates: list[dt.date]) -> list[str]:
    """``{source}-{date}-{n:06d}``, numbered per source type and day in report order."""
    key = np.unique(source, return_inverse=True)[1] * max(len(dates), 1) + day_idx
    by_key = np.argsort(key, kind="stable")
    first = np.searchsorted(key[by_key], key[by_key])
    seq = np.empty(key.size, dtype=np.intp)
    seq[by_key] = np.arange(key.size) - first + 1
    date_s = np.array([d.isoformat() for d in dates], dtype=str)[day_idx]
    return [
        f"{s}-{d}-{k:06d}"
        for s, d, k in zip(source.tolist(), date_s.tolist(), seq.tolist(), strict=True)
    ]


def _lookup(values: StrArray, table: dict[Kind, str]) -> StrArray:
    """Map each value through ``table``: one lookup per distinct value, then a gather."""
    uniq, inv = np.unique(values, return_inverse=True)
    return np.asarray([table[Kind(u)] for u in uniq.tolist()], dtype=str)[inv].reshape(values.shape)


def _graded(rng: np.random.Generator, src: IntArray, attr: str) -> NDArray[Any]:
    """Admiralty grades drawn per source type."""
    out = np.empty(src.size, dtype=object)
    for i, s in enumerate(_SOURCES):  # a loop over source types
        rows = np.flatnonzero(src == i)
        grades = [g for g, _ in getattr(s, attr)]
        p = np.array([q for _, q in getattr(s, attr)])
        out[rows] = np.asarray(grades, dtype=object)[
            rng.choice(len(grades), size=rows.size, p=p / p.sum())
        ]
    return out


def _complaint_bias(
    ag: Agreement,
    rng: np.random.Generator,
    rows: BoolArray,
    lon: FloatArray,
    lat: FloatArray,
    actor: StrArray,
    version: IntArray,
    sigma: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Push complaint positions towards the complaining (other) party's side of the line."""
    lon, lat = lon.copy(), lat.copy()
    for v in np.unique(version[rows]):  # a loop over agreement versions
        idx = np.flatnonzero(rows & (version == v))
        cv = ag.compiled(int(v))
        near = cv.line.nearest(lon[idx], lat[idx])
        away, _, _ = GEOD.inv(near.foot_lon, near.foot_lat, lon[idx], lat[idx])
        away = np.where(near.distance_m < 1.0, rng.uniform(0, 360, idx.size), away)
        side = np.where(near.side == 0, 1, near.side)
        accused = np.where(actor[idx] == ag.left, 1, np.where(actor[idx] == ag.right, -1, 0))
        complainant = np.where(accused == 0, -side, -accused)
        direction = np.where(side == complainant, away, np.asarray(away) + 180.0)
        shift = rng.uniform(*_COMPLAINT_BIAS, idx.size) * sigma[idx]
        blon, blat, _ = GEOD.fwd(lon[idx], lat[idx], direction, shift)
        lon[idx], lat[idx] = blon, blat
    return lon, lat


def _noisy_inside(
    ag: Agreement,
    rng: np.random.Generator,
    lon: FloatArray,
    lat: FloatArray,
    fallback_lon: FloatArray,
    fallback_lat: FloatArray,
    sigma: FloatArray,
    version: IntArray,
    only: BoolArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Positions with Gaussian error, redrawn (a few times, then the true one) outside the area."""
    todo = np.ones(lon.size, dtype=bool) if only is None else only.copy()
    out_lon = lon.copy()
    out_lat = lat.copy()
    for attempt in range(6):  # rounds of redraws for the few that fall outside
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        if attempt < 5:
            nlon, nlat = _rayleigh_shift(rng, lon[idx], lat[idx], sigma[idx])
        else:
            nlon, nlat = fallback_lon[idx], fallback_lat[idx]
        out_lon[idx], out_lat[idx] = nlon, nlat
        inside = np.zeros(idx.size, dtype=bool)
        for v in np.unique(version[idx]):
            sel = version[idx] == v
            inside[sel] = shapely.contains_xy(ag.compiled(int(v)).area, nlon[sel], nlat[sel])
        todo[idx[inside]] = False
    return out_lon, out_lat


def _incidents(
    ids: list[str],
    observed: NDArray[np.datetime64],
    precision: StrArray,
    lon: FloatArray,
    lat: FloatArray,
    sigma: FloatArray,
    kind: StrArray,
    wc: StrArray,
    count: NDArray[np.int64],
    party: StrArray,
    olon: FloatArray,
    olat: FloatArray,
    o_sigma: FloatArray,
    bearing: FloatArray,
    source: StrArray,
    reliability: NDArray[Any],
    credibility: NDArray[np.int64],
) -> list[Incident]:
    """Validated records (the one per-report loop, at the edge of the simulator)."""

    def opt(a: FloatArray, digits: int) -> list[float | None]:
        return [None if not np.isfinite(x) else round(float(x), digits) for x in a.tolist()]

    times = [t.replace(tzinfo=dt.UTC) for t in observed.astype(object).tolist()]
    bearing_1dp = np.round(bearing, 1) % 360.0  # wrap after rounding: 359.97 -> 360.0 -> 0.0
    cols = zip(
        ids, times, precision.tolist(), np.round(lon, 6).tolist(), np.round(lat, 6).tolist(),
        np.round(sigma, 1).tolist(), kind.tolist(), wc.tolist(), count.tolist(), party.tolist(),
        opt(olon, 6), opt(olat, 6), opt(o_sigma, 1), opt(bearing_1dp, 1), source.tolist(),
        reliability.tolist(), credibility.tolist(), strict=True,
    )  # fmt: skip
    out = []
    for i, t, pr, x, y, s, k, w, c, p, ox, oy, os_, b, st, rel, cred in cols:
        what = k.replace("_", " ") + (f" ({w})" if w else "")
        out.append(
            Incident(
                id=i,
                observed_at=t,
                time_precision=pr,
                lon=x,
                lat=y,
                uncertainty_m=s,
                kind=k,
                weapon_class=w or None,
                count=c,
                party=p or None,
                origin_lon=ox,
                origin_lat=oy,
                origin_uncertainty_m=os_,
                bearing_deg=b,
                source_type=st,
                reliability=rel,
                credibility=cred,
                narrative=f"Simulated {st.replace('_', ' ')} report: {what}",
            )
        )
    return out


def _truth(
    ev: _Events,
    day_idx: IntArray,
    dates: list[dt.date],
    caused_by: IntArray,
    t_event: FloatArray,
    start: dt.date,
    e: IntArray,
    report_id: list[str],
) -> list[dict[str, Any]]:
    """Ground-truth dictionaries (built one by one at the edge, like the records)."""
    n = len(ev)
    seq = np.arange(n) - np.searchsorted(day_idx, day_idx) + 1
    event_id = [
        f"event-{dates[d].isoformat()}-{k:06d}"
        for d, k in zip(day_idx.tolist(), seq.tolist(), strict=True)
    ]
    order = np.argsort(e, kind="stable")
    bounds = np.searchsorted(e[order], np.arange(n + 1))
    rid = np.asarray(report_id, dtype=object)[order]
    epoch = np.datetime64(start, "s")
    times = (epoch + np.rint(t_event).astype("timedelta64[s]")).astype("datetime64[us]").astype(object)

    def opt(x: float) -> float | None:
        return None if not np.isfinite(x) else round(x, 6)

    out = []
    for i in range(n):
        out.append(
            {
                "event_id": event_id[i],
                "day": dates[int(day_idx[i])],
                "time": times[i].replace(tzinfo=dt.UTC),
                "scenario": str(ev.scenario[i]),
                "kind": str(ev.kind[i]),
                "weapon_class": str(ev.weapon_class[i]) or None,
                "party": str(ev.party[i]),
                "count": int(ev.count[i]),
                "lon": round(float(ev.lon[i]), 6),
                "lat": round(float(ev.lat[i]), 6),
                "origin_lon": opt(float(ev.origin_lon[i])),
                "origin_lat": opt(float(ev.origin_lat[i])),
                "violation": bool(ev.violation[i]),
                "rule_ids": [r for r in str(ev.rules[i]).split(";") if r],
                "caused_by": event_id[int(caused_by[i])] if caused_by[i] >= 0 else None,
                "report_ids": list(rid[bounds[i] : bounds[i + 1]]),
            }
        )
    return out
