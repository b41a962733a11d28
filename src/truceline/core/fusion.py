"""Fusion of reports of one event from several sources (acoustic, patrols, cameras, complaints).

Candidate pairs come from a space-time KD-tree (never all pairs) and pass wide gates: positions
within a 99.9 % Mahalanobis gate under the summed covariances, times within what the two sources'
time models allow (a human report may be late by up to its source's delay, never early), sides
compatible, different sources. Each candidate pair then gets the probability that the two reports
describe one event (:func:`link_probability`): a likelihood ratio from position, time, kind and
weapon class under the per-source error models (:class:`SourceModel`, :class:`FusionSettings`)
against the chance that another event nearby explains the report as well (the event density and
the other reports of the same source around it). Pairs above ``link_threshold`` link
automatically: clusters grow by merging mutual best partners (vectorised rounds, most probable
first) when every pair across them passes the gates and no source repeats; the pairs below it but
above ``offer_threshold`` that join two events are possible duplicates, kept with their
probability for an analyst.
Each report ends in exactly one event; the candidate pairs are kept so that an analyst can split or
merge events later (:func:`split`, :func:`merge`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.special import ndtr

from truceline.core.arrays import FloatArray, IntArray
from truceline.core.geodesy import LocalFrame, mean_lon, pad_lat_deg, pad_lon_deg
from truceline.core.incidents import refuse_boolean_numbers

__all__ = [
    "ADMIRALTY_CREDIBILITY",
    "ADMIRALTY_RELIABILITY",
    "CALIBRATION",
    "DEFAULT_SOURCES",
    "GATE_D2_99",
    "GATE_D2_999",
    "GATE_D2_9999",
    "MAX_AGREEMENT",
    "Candidates",
    "FusionResult",
    "FusionSettings",
    "Reports",
    "SourceModel",
    "calibrated",
    "candidates",
    "duplicate_mass",
    "expected_count",
    "fuse",
    "kind_group",
    "link_probability",
    "linkable",
    "may_link",
    "merge",
    "most_probable_pairs",
    "report_log_odds",
    "split",
    "summarise",
    "time_density",
]


GATE_D2_99: Final = 9.21
GATE_D2_999: Final = 13.82
"""Fusion's position gate (chi-square, 2 d.o.f., 99.9 %): beyond it a pair's likelihood is below
1/1000 of its peak, and it neither links nor competes."""
GATE_D2_9999: Final = 18.42
ADMIRALTY_RELIABILITY: Final = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.5}
"""Weight of a source's word by reliability (F, 'cannot be judged', counts half)."""
ADMIRALTY_CREDIBILITY: Final = {1: 0.95, 2: 0.85, 3: 0.65, 4: 0.45, 5: 0.2, 6: 0.5}
"""Probability that the information is true, by credibility grade (6: cannot be judged)."""


class SourceModel(BaseModel):
    """How one type of source errs in place and time.

    Position: the report's own stated uncertainty (1 sigma), never less than ``position_floor_m``
    (a patrol that writes "3-5 km south-east" reads the direction to one of 16 compass points,
    +-11.25 deg: about 250 m 1-sigma across at 2 km, whatever it states). Time: a clock error
    (``clock_sigma_s``, 1 sigma; the time's stated precision adds its rounding), and for people a
    reporting delay: a share ``prompt_share`` of the reports give the event's own time ("about
    21:40"), the others a time up to ``delay_max_s`` later (written down after the event, a
    complaint filed later), uniformly; never earlier. ``coverage``: the share of the events around
    it that the source reports (an acoustic network that hears every explosion in its range: near
    1); a report of another source that none of this source's reports explains then more likely
    belongs to one of them. The default 0 assumes nothing (the safe side: fewer automatic links).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        return refuse_boolean_numbers(cls, data)

    position_floor_m: float = Field(ge=0.0, le=50_000.0)
    clock_sigma_s: float = Field(gt=0.0, le=86_400.0)
    prompt_share: float = Field(default=1.0, ge=0.0, le=1.0)
    delay_max_s: float = Field(default=0.0, ge=0.0, le=86_400.0)
    coverage: float = Field(default=0.0, ge=0.0, le=0.99)


_HUMAN_DELAY_S: Final = 1800.0
MAX_AGREEMENT: Final = 0.99
"""The most a learned agreement rate may reach: one misnamed weapon class in a hundred reports of
one event keeps two reports that disagree linkable when the rest of their evidence is strong."""
MIN_DELAY_SPAN_S: Final = 120.0
"""The least span of delays learned for a late-prone source (two minutes: below it a late time is
hard to tell from a prompt one rounded to the minute)."""
#: Defaults by source type. OSCE SMM practice: times to the minute, directions to 16 compass
#: points, distances as ranges ("3-5 km"); patrols and posts log what they heard as they hear it
#: or after the event (up to half an hour, as reports of "between 21:10 and 21:40" show);
#: complaints and open sources are written later still, and less precisely.
DEFAULT_SOURCES: Final[dict[str, SourceModel]] = {
    "acoustic": SourceModel(position_floor_m=5.0, clock_sigma_s=0.05),
    "camera": SourceModel(position_floor_m=25.0, clock_sigma_s=2.0),
    "uav": SourceModel(position_floor_m=25.0, clock_sigma_s=2.0),
    "patrol": SourceModel(
        position_floor_m=250.0, clock_sigma_s=30.0, prompt_share=0.5, delay_max_s=_HUMAN_DELAY_S
    ),
    "observation_post": SourceModel(
        position_floor_m=250.0, clock_sigma_s=30.0, prompt_share=0.5, delay_max_s=_HUMAN_DELAY_S
    ),
    "party_complaint": SourceModel(
        position_floor_m=500.0, clock_sigma_s=60.0, prompt_share=0.3, delay_max_s=_HUMAN_DELAY_S
    ),
    "open_source": SourceModel(
        position_floor_m=1000.0, clock_sigma_s=120.0, prompt_share=0.3, delay_max_s=_HUMAN_DELAY_S
    ),
}


#: :attr:`FusionSettings.calibration`'s default: ``benchmarks/fusion_mixes.py fit`` (logistic
#: regression of one true event on the model's logit and the pair's chance of a late report).
CALIBRATION: Final = (-0.4212, 1.1946, 1.0123, -0.2157)


class FusionSettings(BaseModel):
    """Fusion's parameters (an agreement's ``fusion:`` section; every field has a default).

    ``sources`` overrides the :data:`DEFAULT_SOURCES` per source type (types not named keep
    theirs); ``unknown_source`` serves the others. ``event_density_km2_h`` is the prior: events per
    km² per hour in a busy sector (the OSCE SMM's busiest day, about 1,200 explosions in 24 h
    over some 25 km of front and 20 km of depth, is 0.1). ``link_threshold``: the probability
    above which two reports link automatically; ``offer_threshold``: the least probability of a
    possible duplicate offered to an analyst (the band between the two goes to the queue), and
    ``offers_per_report``: at most that many possible duplicates per report, its likeliest;
    ``offer_share``: at most that many per report fused (never fewer than
    ``offers_per_report``), the likeliest: an analyst's day holds the most probable pairs; the
    others still count (:meth:`FusionResult.expected_events`).
    ``count_floor``: the least probability of a pair of events that the day's expected count of
    distinct events takes (:meth:`FusionResult.expected_events`) when it is not offered.
    ``kind_agreement`` and ``weapon_agreement``: the chance that two reports of one event name the
    same kind (by compatibility group), the same weapon class (when both name one).
    ``learn_weapon_agreement``: estimate ``weapon_agreement`` from the reports at hand (the
    probability-weighted share of candidate pairs naming one weapon class, among those whose
    reports both name one), pulled towards the configured value by ``delay_prior_weight`` pairs'
    worth, at most :data:`MAX_AGREEMENT`: a mission whose reports of one event rarely name two
    classes then weighs an agreement more and a disagreement less (BENCHMARKS.md, issue 15 step 9).
    ``count_ratio_sigma``: how far apart (natural log of their ratio, 1 sigma) two reports of
    one event put its count (one patrol hears "3 explosions", another "5": log 5/3 = 0.5); two
    reports whose counts differ more (1 against 12: 2.5) are less likely one event.
    ``learn_delays``: estimate each delayed source's share of prompt reports and its time error
    from its pairs with never-late reports at hand (acoustic, cameras), starting from and pulled
    towards its ``prompt_share`` and ``clock_sigma_s`` by ``delay_prior_weight`` pairs' worth.
    ``learn_coverage``: estimate each source type's ``coverage`` from the reports at hand (never
    below the configured one). Off by default: on isolated events it raises the recall of
    automatic links at the same precision, but where events cluster (barrages) the one event
    density of the sector is too low and precision falls (BENCHMARKS.md).
    ``local_density``: the event density around each report estimated from the reports at hand
    (the expected number of other events within ``density_radius_m`` and ``density_window_s``,
    a box, from a first pass of the probabilities), pulled towards ``event_density_km2_h`` by as
    much again as the box holds (BENCHMARKS.md, step 4).
    ``matching``: how the rivals of a pair's two reports weigh on it (a source reports an event
    once): ``"bp"``, the marginals of a one-to-one matching between each two sources' reports
    (:func:`_matching_marginals`); ``"product"``, the vaguer report's normalisation over the
    precise one's source times the precise report's share among the vaguer one's source (the
    rule before; it undercounts pairs whose reports both have rivals: late reports).
    ``weapon_given_kind``: weigh two reports' weapon classes against how often each is named
    among the reports of its own kind group, not among all reports: a kind implies some weapon
    classes (small-arms fire, small arms), and two reports of small-arms fire that both name
    small arms are no likelier one event than their kinds already said (``False``: among all
    reports, as before, which counted a rare kind twice; BENCHMARKS.md, issue 15 step 8).
    ``merge_floor``: two clusters merge only if no pair of reports across them is below this
    probability (besides the gates): an event holds no two reports that the model finds
    unlikely to be one, whatever reports link them (0: the gates alone, the rule before).
    ``calibration``: how the probability of a pair of events that fusion left apart (a
    possible duplicate, a pair weighed for the count) is restated from the model's (which the
    automatic links keep): logit p' = c0 + c1 logit p + late (c2 + c3 logit p), where ``late`` is
    the chance that one of the two reports is late (1 less the product of their prompt shares,
    as learned). The model is underconfident where reports are late and overconfident in its low
    band where they are not (BENCHMARKS.md, issue 15 step 7); the default was fitted by logistic
    regression on report mixes made independently of Truceline's simulator
    (``benchmarks/fusion_mixes.py fit``) and checked on others. ``None``: the model's own.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_boolean_numbers(cls, data: Any) -> Any:
        return refuse_boolean_numbers(cls, data)

    sources: dict[str, SourceModel] = Field(default_factory=lambda: dict(DEFAULT_SOURCES))
    unknown_source: SourceModel = SourceModel(
        position_floor_m=500.0, clock_sigma_s=60.0, prompt_share=0.5, delay_max_s=_HUMAN_DELAY_S
    )
    event_density_km2_h: float = Field(default=0.1, gt=0.0, le=1000.0)
    link_threshold: float = Field(default=0.9, gt=0.0, lt=1.0)
    offer_threshold: float = Field(default=0.2, gt=0.0, lt=1.0)
    offers_per_report: int = Field(default=2, ge=1, le=100)
    offer_share: float = Field(default=0.15, gt=0.0, le=100.0)
    count_floor: float = Field(default=0.05, ge=0.0, lt=1.0)
    kind_agreement: float = Field(default=0.9, gt=0.0, lt=1.0)
    weapon_agreement: float = Field(default=0.8, gt=0.0, lt=1.0)
    learn_weapon_agreement: bool = True
    count_ratio_sigma: float = Field(default=0.7, gt=0.0, le=10.0)
    max_uncertainty_m: float = Field(default=5000.0, gt=0.0, le=50_000.0)
    learn_delays: bool = True
    learn_coverage: bool = False
    local_density: bool = True
    density_radius_m: float = Field(default=2000.0, gt=0.0, le=50_000.0)
    density_window_s: float = Field(default=900.0, gt=0.0, le=86_400.0)
    delay_prior_weight: float = Field(default=5.0, gt=0.0)
    matching: Literal["bp", "product"] = "bp"
    weapon_given_kind: bool = True
    merge_floor: float = Field(default=0.2, ge=0.0, lt=1.0)
    calibration: tuple[float, float, float, float] | None = CALIBRATION

    @model_validator(mode="before")
    @classmethod
    def _over_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("sources"), dict):
            data = {**data, "sources": {**DEFAULT_SOURCES, **data["sources"]}}
        return data

    @model_validator(mode="after")
    def _thresholds(self) -> FusionSettings:
        if self.offer_threshold >= self.link_threshold:
            raise ValueError("offer_threshold must be below link_threshold")
        return self

    def overridden(self, over: Mapping[str, Any]) -> FusionSettings:
        """These settings with the fields of ``over`` (a server's ``[fusion]`` table) in their
        place; a source type named there takes the given fields over its model here."""
        if not over:
            return self
        data = self.model_dump()
        for key, value in over.items():
            if key in ("sources", "unknown_source") and isinstance(value, Mapping):
                if key == "unknown_source":
                    data[key] = {**data[key], **value}
                    continue
                for st, model in value.items():
                    data["sources"][st] = {**data["sources"].get(st, {}), **dict(model)}
            else:
                data[key] = value
        return FusionSettings.model_validate(data)

    def source(self, source_type: str) -> SourceModel:
        """The model of one source type (``unknown_source`` for a type not configured)."""
        return self.sources.get(source_type, self.unknown_source)

    def longest_delay_s(self) -> float:
        """The longest reporting delay of any source: how far back a new report may reach."""
        return max([m.delay_max_s for m in self.sources.values()] + [self.unknown_source.delay_max_s])

    @property
    def density_m2_s(self) -> float:
        """The prior event density in events per m² per second."""
        return self.event_density_km2_h / 1e6 / 3600.0


_KIND_GROUPS: Final = {
    "unknown": 0,
    "explosion": 1,
    "impact": 1,
    "airburst": 1,
    "muzzle_blast": 2,
    "muzzle_flash": 2,
    "firing": 2,
    "small_arms_fire": 3,
    "projectile": 4,
    "flare": 5,
}


def kind_group(kind: ArrayLike) -> IntArray:
    """Compatibility group of each kind: equal groups are compatible, 0 (unknown) with all."""
    k = np.asarray(kind).astype(str)
    uniq, inv = np.unique(k, return_inverse=True)
    codes = np.array([_KIND_GROUPS.get(u, 100 + i) for i, u in enumerate(uniq)], np.intp)
    return codes[inv.ravel()]


def report_log_odds(reliability: ArrayLike, credibility: ArrayLike) -> FloatArray:
    """Log-odds that an event happened as reported, from a report's Admiralty grades."""
    rel = np.char.upper(np.asarray(reliability).astype(str))
    cred = np.asarray(credibility, np.intp)
    ur, ir = np.unique(rel, return_inverse=True)
    uc, ic = np.unique(cred, return_inverse=True)
    w = np.array([ADMIRALTY_RELIABILITY.get(r, 0.5) for r in ur.tolist()])[ir.reshape(rel.shape)]
    p = np.array([ADMIRALTY_CREDIBILITY.get(int(c), 0.5) for c in uc.tolist()])[ic.reshape(cred.shape)]
    return np.asarray(w * np.log(p / (1.0 - p)), np.float64)


@dataclass(frozen=True)
class Reports:
    """Reports to fuse (N of them).

    ``cov_m2`` is each position's 2x2 covariance (x east, y north; m²); ``time_sigma_s`` the time
    uncertainty (clock and rounding); ``delay_max_s`` how late the report's time may be (a source
    that notes the time after the event; 0 for a seen or located event) and ``prompt_share`` the
    chance that it is not late at all (default 0: late by a uniform share of ``delay_max_s``); see
    :class:`SourceModel`. ``weapon`` is the weapon class named ("" when none). ``side`` is the
    side of the line the report puts the event on when it says so (+1 left, -1 right, 0
    unknown): a party complains of fire landing on
    its own side; a located event is on the side of its position when that is certain.
    ``time_floor_s``: the rounding of each time's stated precision (a time to the minute is good
    to 17 s at best), below which a learned time error never goes. ``count``: how many of the
    kind the report says it saw ("12 explosions"; default 1).
    """

    report_id: NDArray[np.str_]
    source_id: NDArray[np.str_]
    source_type: NDArray[np.str_]
    time_s: FloatArray
    time_sigma_s: FloatArray
    delay_max_s: FloatArray
    lon: FloatArray
    lat: FloatArray
    cov_m2: FloatArray
    kind: NDArray[np.str_]
    reliability: NDArray[np.str_]
    credibility: IntArray
    side: NDArray[np.int8] | None = None
    prompt_share: FloatArray | None = None
    weapon: NDArray[np.str_] | None = None
    time_floor_s: FloatArray | None = None
    count: IntArray | None = None

    def __len__(self) -> int:
        return len(self.report_id)

    def counts(self) -> IntArray:
        """``count`` (how many explosions, shots... each report says it saw), or ones."""
        if self.count is None:
            return np.ones(len(self), np.intp)
        return np.asarray(np.maximum(np.asarray(self.count, np.intp), 1), np.intp)

    def time_floors(self) -> FloatArray:
        """``time_floor_s`` (the rounding of each time's stated precision), or zeros."""
        if self.time_floor_s is None:
            return np.zeros(len(self))
        return np.asarray(self.time_floor_s, np.float64)

    def prompt(self) -> FloatArray:
        """``prompt_share`` (1 where no delay is possible), or 0 where delays are possible."""
        w = np.zeros(len(self)) if self.prompt_share is None else np.asarray(self.prompt_share, float)
        return np.where(np.asarray(self.delay_max_s) > 0.0, w, 1.0)

    def weapons(self) -> NDArray[np.str_]:
        """``weapon``, or "" (unknown) when not given."""
        if self.weapon is None:
            return np.full(len(self), "", dtype="<U1")
        return np.asarray(self.weapon, str)

    def sides(self) -> NDArray[np.int8]:
        """``side``, or zeros (unknown) when not given."""
        if self.side is None:
            return np.zeros(len(self.report_id), np.int8)
        return np.asarray(self.side, np.int8)


@dataclass(frozen=True)
class FusionResult:
    """Events from :func:`fuse`; ``event_of_report`` links every report to exactly one event.

    ``pair_a``, ``pair_b``: the candidate pairs (report indices) that passed every gate, with their
    Mahalanobis distance ``pair_d2`` and probability of one event ``pair_p``. ``link_p``: for a
    report in an event with others, the probability of its strongest link within the event
    (``link_to``, a report index), NaN and -1 for a report alone. ``dup_a``, ``dup_b``, ``dup_p``:
    the possible duplicates, one pair of reports per pair of events (the most probable), between
    ``offer_threshold`` and ``link_threshold`` (or above it when the events could not merge).
    ``mass_a``, ``mass_b``, ``mass_p``: the other pairs of events that may be one, one pair of
    reports per pair of events (the most probable), from ``count_floor`` up: not for an analyst,
    for the count (:meth:`expected_events`). In both, ``*_a`` is the vaguer report of the pair
    (the one whose event the pair may make a duplicate of the other's), ``*_p`` the probability
    as restated for the count (``FusionSettings.calibration``) and ``*_pair`` the index of
    the candidate pair (its model probability is ``pair_p[dup_pair]``). ``pair_late``: each
    candidate pair's chance that one of its reports is late (the calibration's second variable).
    """

    event_of_report: IntArray
    lon: FloatArray
    lat: FloatArray
    cov_m2: FloatArray
    time_s: FloatArray
    confidence: FloatArray
    n_sources: IntArray
    pair_a: IntArray
    pair_b: IntArray
    pair_d2: FloatArray
    frame: LocalFrame
    pair_p: FloatArray = field(default_factory=lambda: np.zeros(0))
    link_p: FloatArray = field(default_factory=lambda: np.zeros(0))
    link_to: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    dup_a: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    dup_b: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    dup_p: FloatArray = field(default_factory=lambda: np.zeros(0))
    mass_a: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    mass_b: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    mass_p: FloatArray = field(default_factory=lambda: np.zeros(0))
    pair_late: FloatArray = field(default_factory=lambda: np.zeros(0))
    dup_pair: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    mass_pair: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))

    def __len__(self) -> int:
        return len(self.lon)

    def members(self, event: int) -> IntArray:
        """Reports of one event."""
        return np.flatnonzero(self.event_of_report == event)

    def expected_events(self) -> float:
        """The expected number of distinct events (:func:`expected_count`) from the possible
        duplicates and the other pairs weighed for the count."""
        a = np.concatenate([self.dup_a, self.mass_a])
        p = np.concatenate([self.dup_p, self.mass_p])
        return expected_count(len(self), self.event_of_report[a], p)


def expected_count(n_events: int, dup_event: ArrayLike, p: ArrayLike) -> float:
    """The expected number of distinct events among ``n_events`` events, from pairs of them that
    may be one (one pair per pair of events, with its probability ``p``): each event counts 1
    less the probability that it is another's duplicate, the sum of its pairs' probabilities
    where it holds the vaguer report (``dup_event``: the event of that report), at most 1. A
    late report whose probability is spread over several candidate events thus counts as
    little as the mass the candidates leave it, and the precise event that several vague
    reports may duplicate still counts once."""
    return float(n_events - duplicate_mass(n_events, dup_event, p).sum())


def duplicate_mass(n_events: int, dup_event: ArrayLike, p: ArrayLike) -> FloatArray:
    """Each of ``n_events`` events' probability that it is another's duplicate, as
    :func:`expected_count` takes it: the sum of its pairs' ``p`` where it holds the vaguer
    report (``dup_event``), at most 1."""
    ev = np.asarray(dup_event, np.intp)
    mass = np.bincount(ev, np.asarray(p, np.float64), n_events) if len(ev) else np.zeros(n_events)
    return np.minimum(mass, 1.0)


def most_probable_pairs(a: ArrayLike, b: ArrayLike, p: ArrayLike) -> IntArray:
    """The index of one pair per unordered pair of events ``(a, b)`` (codes 0..n-1): the most
    probable (``p``)."""
    ca, cb = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if len(ca) == 0:
        return np.zeros(0, np.intp)
    k = int(max(ca.max(), cb.max())) + 1
    key = np.minimum(ca, cb) * k + np.maximum(ca, cb)
    order = np.lexsort((-np.asarray(p, np.float64), key))
    return order[np.r_[True, key[order][1:] != key[order][:-1]]].astype(np.intp)


def _inv2(c: FloatArray) -> FloatArray:
    a, b, d = c[..., 0, 0], c[..., 0, 1], c[..., 1, 1]
    det = a * d - b * b
    det = np.where(det > 0, det, np.nan)  # an unused cluster slot (no information) gives NaN
    out = np.empty_like(c)
    out[..., 0, 0] = d / det
    out[..., 1, 1] = a / det
    out[..., 0, 1] = out[..., 1, 0] = -b / det
    return out


@dataclass(frozen=True)
class _Clusters:
    xy: FloatArray
    cov: FloatArray
    t: FloatArray
    t_sig: FloatArray
    delay: FloatArray
    kind: IntArray
    side: NDArray[np.int8]


def _effective_time(reports: Reports) -> tuple[FloatArray, FloatArray]:
    """Each report's estimate of the event's time and its precision (1 / s²).

    A report that may be late by up to ``delay_max_s`` (unless prompt, with ``prompt_share``) is
    late by the mixture's mean, with its variance added: its times are never early.
    """
    d, late = reports.delay_max_s, 1.0 - reports.prompt()
    mean = late * d / 2.0
    var = reports.time_sigma_s**2 + late * d**2 / 3.0 - mean**2
    return reports.time_s - mean, 1.0 / var


def _summaries(
    label: IntArray, n: int, xy: FloatArray, info: FloatArray, t: FloatArray, tw: FloatArray,
    delay: FloatArray, kind: IntArray, side: NDArray[np.int8],
) -> _Clusters:  # fmt: skip
    """Inverse-covariance fused position, precision-weighted time, per cluster label 0..n-1.

    ``t`` and ``tw`` are the reports' effective times and precisions (:func:`_effective_time`).
    """
    lam = np.zeros((n, 2, 2))
    eta = np.zeros((n, 2))
    np.add.at(lam, label, info)
    np.add.at(eta, label, np.einsum("nij,nj->ni", info, xy))
    cov = _inv2(lam)
    cxy = np.einsum("nij,nj->ni", cov, eta)
    w = np.bincount(label, tw, n)
    w = np.where(w > 0, w, np.nan)
    ct = np.bincount(label, tw * t, n) / w
    dmax = np.zeros(n)
    np.maximum.at(dmax, label, delay)
    k = np.zeros(n, np.intp)
    np.maximum.at(k, label, kind)
    sd = np.zeros(n, np.intp)
    np.add.at(sd, label, side.astype(np.intp))
    return _Clusters(cxy, cov, ct, 1.0 / np.sqrt(w), dmax, k, np.sign(sd).astype(np.int8))


def _centred_on(reports: Reports) -> LocalFrame:
    """A local plane centred on the reports' mean position (across the antimeridian too)."""
    n = len(reports)
    lon0 = mean_lon(reports.lon) if n else 0.0
    lat0 = float(np.mean(reports.lat)) if n else 0.0
    return LocalFrame.centred(lon0, lat0)


@dataclass(frozen=True)
class Candidates:
    """The reports in a plane and the pairs of them that pass every gate (:func:`candidates`):
    what :func:`fuse` starts from, computed once when a caller also asks :meth:`touch`."""

    gate_d2: float
    time_k: float
    frame: LocalFrame
    xy: FloatArray
    info: FloatArray
    t_eff: FloatArray
    tw: FloatArray
    kind: IntArray
    side: NDArray[np.int8]
    src: IntArray
    a: IntArray
    b: IntArray
    d2: FloatArray

    def touch(self, which: ArrayLike) -> bool:
        """Whether :func:`fuse` could put any of the reports ``which`` (a mask) in an event with
        another report: some pair that passes every gate includes one of them. When none does,
        those reports end alone whatever the others do, and fusing them can be skipped."""
        mask = np.asarray(which, bool)
        return bool((mask[self.a] | mask[self.b]).any())


def _late(reports: Reports) -> FloatArray:
    """How late each report's time may be (0 for a source that is never late)."""
    return np.where(reports.prompt() < 1.0, np.asarray(reports.delay_max_s, np.float64), 0.0)


def _compatible(ka: IntArray, kb: IntArray) -> NDArray[np.bool_]:
    """Kind groups that may describe one event: equal, either unknown, or an explosion and a
    launch (an undetermined explosion heard from afar may be outgoing fire)."""
    ok = (ka == kb) | (ka == 0) | (kb == 0) | ((ka == 1) & (kb == 2)) | ((ka == 2) & (kb == 1))
    return np.asarray(ok, bool)


def candidates(
    reports: Reports,
    *,
    gate_d2: float = GATE_D2_999,
    time_k: float = 4.0,
    frame: LocalFrame | None = None,
) -> Candidates:
    """Candidate pairs from a space-time KD-tree, kept when they pass the position, time, kind,
    side and source gates; the gates and ``frame`` as in :func:`fuse`.

    Time gate: the later report (``b`` - ``a`` = dt) may be late by up to its own delay, the
    earlier one early by up to the other's, plus ``time_k`` combined clock sigmas. In the tree,
    each report sits at the middle of its possible times, and time is scaled so that the largest
    time gate maps to the largest position gate.
    """
    n = len(reports)
    frame = frame if frame is not None else _centred_on(reports)
    x, y = frame.to_xy(reports.lon, reports.lat)
    xy = np.stack([x, y], 1)
    cov = np.asarray(reports.cov_m2, np.float64)
    info = _inv2(cov)
    t_eff, tw = _effective_time(reports)
    t = np.asarray(reports.time_s, np.float64)
    sig = np.asarray(reports.time_sigma_s, np.float64)
    late = _late(reports)
    kind = kind_group(reports.kind)
    side = reports.sides()
    _, src = np.unique(reports.source_id.astype(str), return_inverse=True)
    src = src.ravel().astype(np.intp)
    lam_max = 0.5 * (cov[:, 0, 0] + cov[:, 1, 1]) + np.sqrt(
        0.25 * (cov[:, 0, 0] - cov[:, 1, 1]) ** 2 + cov[:, 0, 1] ** 2
    )
    r_max = math.sqrt(gate_d2 * 2.0 * float(lam_max.max())) if n else 1.0
    t_max = float(late.max()) + time_k * math.sqrt(2.0) * float(sig.max()) if n else 1.0
    scale = r_max / max(t_max, 1e-9)
    mid = t + late / 2.0
    pts = np.column_stack([xy, (mid - mid.min()) * scale]) if n else np.zeros((0, 3))
    from scipy.spatial import cKDTree  # (imported when first needed)

    pairs = (
        cKDTree(pts).query_pairs(r=r_max * math.sqrt(2.0), output_type="ndarray")
        if n > 1
        else np.zeros((0, 2), np.intp)
    )
    a, b = pairs[:, 0].astype(np.intp), pairs[:, 1].astype(np.intp)
    # the cheap gates first (one comparison per pair), then the Mahalanobis distance on the rest
    dt = t[b] - t[a]
    s_ab = time_k * np.sqrt(sig[a] ** 2 + sig[b] ** 2)
    ok = (src[a] != src[b]) & (dt >= -late[a] - s_ab) & (dt <= late[b] + s_ab)
    a, b = a[ok], b[ok]
    ok = _compatible(kind[a], kind[b]) & ((side[a] == side[b]) | (side[a] == 0) | (side[b] == 0))
    a, b = a[ok], b[ok]
    sxx = cov[a, 0, 0] + cov[b, 0, 0]
    sxy = cov[a, 0, 1] + cov[b, 0, 1]
    syy = cov[a, 1, 1] + cov[b, 1, 1]
    dx, dy = xy[b, 0] - xy[a, 0], xy[b, 1] - xy[a, 1]
    d2 = (syy * dx * dx - 2.0 * sxy * dx * dy + sxx * dy * dy) / (sxx * syy - sxy * sxy)
    ok = d2 <= gate_d2
    return Candidates(gate_d2, time_k, frame, xy, info, t_eff, tw, kind, side, src, a[ok], b[ok], d2[ok])


_SQRT_2PI: Final = math.sqrt(2.0 * math.pi)


def _phi(z: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-0.5 * z * z) / _SQRT_2PI, np.float64)


def _g(z: FloatArray) -> FloatArray:
    """The integral of the normal distribution function: G' = Phi."""
    return np.asarray(z * ndtr(z) + _phi(z), np.float64)


def time_density(
    dt: ArrayLike, sigma_s: ArrayLike, late_a: ArrayLike, late_b: ArrayLike,
    prompt_a: ArrayLike, prompt_b: ArrayLike,
) -> FloatArray:  # fmt: skip
    """Density (1/s) of ``dt`` = (time b) - (time a) when both report one event: each time is the
    event's plus a clock error (combined ``sigma_s``) and, unless prompt (``prompt_*``), a delay
    uniform in 0..``late_*``. Exact mixture of a normal with 0, 1 or 2 uniform delays."""
    x, s = np.asarray(dt, np.float64), np.asarray(sigma_s, np.float64)
    da, db = np.asarray(late_a, np.float64), np.asarray(late_b, np.float64)
    wa = np.where(da > 0, np.asarray(prompt_a, np.float64), 1.0)
    wb = np.where(db > 0, np.asarray(prompt_b, np.float64), 1.0)
    sa, sb = np.where(da > 0, da, 1.0), np.where(db > 0, db, 1.0)
    out = wa * wb * _phi(x / s) / s
    out += wa * (1 - wb) * (ndtr(x / s) - ndtr((x - db) / s)) / sb
    out += (1 - wa) * wb * (ndtr((x + da) / s) - ndtr(x / s)) / sa
    both = s * (_g((x + da) / s) - _g((x + da - db) / s) - _g(x / s) + _g((x - db) / s)) / (sa * sb)
    out += (1 - wa) * (1 - wb) * both
    return np.asarray(np.maximum(out, 1e-300), np.float64)


def _categorical_lr(
    code: IntArray, a: IntArray, b: IntArray, known: NDArray[np.bool_], agree: float,
    given: IntArray | None = None,
) -> FloatArray:  # fmt: skip
    """Likelihood ratio of two reports' categories (kind group, weapon class) if one event
    against two: they agree with chance ``agree`` (else one of the other K-1 categories), while
    reports of different events name categories as often as the reports around do (smoothed).

    ``given``: another category of each report that this one depends on (the kind group, for
    the weapon class): the frequencies are then those among the reports of the same ``given``,
    so that what the other already said is not counted twice (a report of small-arms fire names
    small arms as its weapon; the agreement of two such reports on "small arms" says nothing
    their kinds did not). Agreeing never lowers the odds."""
    n_cat = int(code.max()) + 1 if len(code) else 1
    grp = np.zeros(len(code), np.intp) if given is None else np.asarray(given, np.intp)
    n_grp = int(grp.max()) + 1 if len(grp) else 1
    cnt = np.bincount((grp * n_cat + code)[known], minlength=n_grp * n_cat).astype(np.float64)
    cnt = cnt.reshape(n_grp, n_cat)
    k = np.maximum(np.count_nonzero(cnt, axis=1), 2)
    freq = (cnt + 1.0) / (cnt.sum(axis=1) + k)[:, None]
    same = code[a] == code[b]
    both = known[a] & known[b]
    ref = np.sqrt(freq[grp[a], code[a]] * freq[grp[b], code[b]])
    k_ab = np.maximum(k[grp[a]], k[grp[b]])
    lr = np.where(same, np.maximum(agree / ref, 1.0), (1.0 - agree) / (k_ab - 1) / ref)
    return np.asarray(np.where(both, lr, 1.0), np.float64)


def _count_lr(count: IntArray, a: IntArray, b: IntArray, sigma: float) -> FloatArray:
    """Likelihood ratio of two reports' counts if one event against two: one event's reports put
    its count within a factor ``exp(sigma)`` of each other (log-normal ratio), while reports of
    different events give counts as the reports around do (the empirical spread of their log
    ratio, never below ``sigma``). Counts only ever lower the odds (at most 1): neighbouring
    events agree as often (the rounds of a barrage, 1 each), so agreeing counts join nothing."""
    lc = np.log(np.asarray(count, np.float64))
    z = lc[b] - lc[a]
    spread = math.sqrt(sigma**2 + 2.0 * float(np.var(lc)) if len(lc) else sigma**2)
    lr = (np.exp(-0.5 * (z / sigma) ** 2) / sigma) / (np.exp(-0.5 * (z / spread) ** 2) / spread)
    return np.asarray(np.minimum(lr, 1.0), np.float64)


def _coverage(reports: Reports, settings: FusionSettings) -> FloatArray:
    types, inv = np.unique(reports.source_type.astype(str), return_inverse=True)
    cov = np.array([settings.source(t).coverage for t in types.tolist()], np.float64)
    return np.asarray(cov[inv.ravel()] if len(types) else np.zeros(0), np.float64)


def link_probability(reports: Reports, cand: Candidates, settings: FusionSettings) -> FloatArray:
    """The probability that each candidate pair (``cand.a``, ``cand.b``) reports one event.

    Odds: the density of their position difference (a normal under the summed covariances) and
    of their time difference (:func:`time_density`) times the kind and weapon-class likelihood
    ratios, over the density of other events (``settings.event_density_km2_h``, times the share
    of them that the precise report's source misses, 1 - ``coverage``). One source reports an
    event once, so each report's other partners from the other's source compete: the pair's
    probability is its marginal in a one-to-one matching between the two sources' reports,
    each pair weighing its odds (:func:`_matching_marginals`; ``odds / (1 + odds)`` for a pair
    without rivals; ``settings.matching``).

    With ``settings.learn_delays`` each source that may be late has its share of prompt reports,
    its clock error and how late its late reports are (the span of their delays) estimated from
    the reports at hand (:func:`_learn_times`) before the final probabilities.
    """
    return _link_model(reports, cand, settings)[0]


def _link_model(
    reports: Reports, cand: Candidates, settings: FusionSettings
) -> tuple[FloatArray, FloatArray]:
    """:func:`link_probability`'s probabilities and each report's prompt share (as learned)."""
    prompt = reports.prompt()
    if len(cand.a) == 0:
        return np.zeros(0), prompt
    sigma = np.asarray(reports.time_sigma_s, np.float64)
    late = _late(reports)
    p: FloatArray | None = None
    if settings.learn_delays:
        prompt, sigma, late, p = _learn_times(reports, cand, settings, prompt)
    agree = settings.weapon_agreement
    if settings.learn_weapon_agreement:
        if p is None:
            p = _probability(reports, cand, settings, prompt, sigma, late=late)
        agree = _learn_weapon_agreement(reports, cand, settings, p)
    if not settings.learn_coverage and not settings.local_density:
        return _probability(
            reports, cand, settings, prompt, sigma, late=late, weapon_agreement=agree
        ), prompt
    if p is None or settings.learn_coverage:
        p = _probability(reports, cand, settings, prompt, sigma, late=late, weapon_agreement=agree)
    # (the density's first pass may take the last round of the times' learning: one pass less)
    cover = _learn_coverage(reports, cand, settings, p) if settings.learn_coverage else None
    dens = _local_density(cand, settings, p) if settings.local_density else None
    prob = _probability(
        reports, cand, settings, prompt, sigma, cover, dens, late=late, weapon_agreement=agree
    )
    return prob, prompt


def _learn_weapon_agreement(
    reports: Reports, cand: Candidates, settings: FusionSettings, p: FloatArray
) -> float:
    """The chance that two reports of one event name the same weapon class, estimated from the
    candidate pairs whose reports both name one (one step of expectation-maximisation): the
    share naming the same class, each pair weighing its probability of one event ``p``, with
    ``settings.delay_prior_weight`` pairs' worth of the configured ``weapon_agreement``; at most
    :data:`MAX_AGREEMENT`, never below the configured value's half."""
    w = reports.weapons()
    wa, wb = w[cand.a], w[cand.b]
    both = (wa != "") & (wb != "")
    k, a0 = settings.delay_prior_weight, settings.weapon_agreement
    q = (float(np.sum(p[both] * (wa[both] == wb[both]))) + k * a0) / (float(np.sum(p[both])) + k)
    return float(min(max(q, a0 / 2.0), MAX_AGREEMENT))


def calibrated(
    p: ArrayLike, late: ArrayLike, coef: tuple[float, float, float, float] | None
) -> FloatArray:
    """The probabilities ``p`` restated by ``coef`` (:attr:`FusionSettings.calibration`;
    ``late``: each pair's chance that one of its reports is late); ``p`` itself for ``None``."""
    q = np.asarray(p, np.float64)
    if coef is None:
        return q
    c0, c1, c2, c3 = coef
    lt = np.asarray(late, np.float64)
    qc = np.clip(q, 1e-9, 1.0 - 1e-9)
    z = np.log(qc / (1.0 - qc))
    return np.asarray(1.0 / (1.0 + np.exp(-(c0 + c1 * z + lt * (c2 + c3 * z)))), np.float64)


def _local_density(cand: Candidates, settings: FusionSettings, p: FloatArray) -> FloatArray:
    """Each report's event density (per m² per s) from the reports around it: every report
    weighs ``1 / (1 + the sum of its pairs' probabilities)`` (the reports of one sure event sum
    to 1), summed over the reports in a box of ``density_radius_m`` and ``density_window_s`` about
    it (effective times), less its own event (1), plus as many events again as the prior
    density puts in the box, over twice the box."""
    n = len(cand.xy)
    r, half_t = settings.density_radius_m, settings.density_window_s
    psum = np.bincount(cand.a, p, n) + np.bincount(cand.b, p, n)
    w = 1.0 / (1.0 + psum)
    pts = np.column_stack([cand.xy / r, cand.t_eff / half_t])
    from scipy.spatial import cKDTree  # (imported when first needed)

    near = cKDTree(pts).query_pairs(1.0, p=np.inf, output_type="ndarray")
    i, j = near[:, 0].astype(np.intp), near[:, 1].astype(np.intp)
    local = w + np.bincount(i, w[j], n) + np.bincount(j, w[i], n)
    vol = (2.0 * r) ** 2 * 2.0 * half_t
    others = np.maximum(local - 1.0, 0.0)
    return np.asarray((others + settings.density_m2_s * vol) / (2.0 * vol), np.float64)


def _learn_coverage(
    reports: Reports, cand: Candidates, settings: FusionSettings, p: FloatArray
) -> FloatArray:
    """Each source type's coverage (the share of events it reports), estimated from the reports
    at hand: over the reports of the other types, the mean probability that one of its reports
    describes the same event (the most probable of its partners; 0 without one). Reports at the
    edges of the window, and pairs whose probability is short of 1, make this an underestimate:
    the safe side (a higher coverage makes a lone report likelier to be one of its events).
    ``settings.delay_prior_weight`` reports' worth of the configured ``coverage`` keep a type
    with few reports near it; at most 0.95."""
    n = len(reports)
    types, tcode = np.unique(reports.source_type.astype(str), return_inverse=True)
    tcode = tcode.ravel()
    nt = len(types)
    c0 = np.array([settings.source(t).coverage for t in types.tolist()], np.float64)
    a, b = cand.a, cand.b
    # the most probable partner of each type for each report: (report, partner's type) keys
    who = np.concatenate([a, b])
    their = np.concatenate([tcode[b], tcode[a]])
    pp = np.concatenate([p, p])
    best = np.zeros(n * nt)
    np.maximum.at(best, who * nt + their, pp)
    got = np.bincount(np.repeat(np.arange(nt)[None, :], n, 0).ravel(), best, nt)
    others = n - np.bincount(tcode, minlength=nt)
    k = settings.delay_prior_weight
    cov = np.minimum((got + k * c0) / (others + k), 0.95)
    return np.asarray(np.maximum(cov, c0)[tcode], np.float64)


def _learn_times(
    reports: Reports, cand: Candidates, settings: FusionSettings, prompt: FloatArray, rounds: int = 3
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Each delayed source type's share of prompt reports and its time error, estimated by
    expectation-maximisation over its pairs with reports that are never late (acoustic fixes,
    cameras): each pair weighs by its probability of one event, its time difference says how
    likely the report was prompt, and the prompt ones' spread gives the source's time error (a
    patrol's "21:40" is good to its minute, often better than the configured clock error says).
    ``settings.delay_prior_weight`` pairs' worth of the configured share and variance keep a
    source with few such pairs near its defaults; the configured time error is an upper bound
    (a wider spread is put down to delays), and a learned one is never below the rounding of its
    stated precision (``Reports.time_floor_s``; the prior keeps a source with few pairs near its
    configured error).
    The span of the late reports' delays (uniform over 0..span) from the same pairs: twice their
    mean delay (a uniform's mean is half its span), weighed by each pair's probability and
    chance of being late, pulled towards the configured ``delay_max_s`` by the same prior
    weight; never above it (the candidates' gate) nor below :data:`MIN_DELAY_SPAN_S`. A mission
    whose patrols write their times down within 10 minutes then weighs a patrol 8 minutes late
    three times as likely as one whose patrols may be half an hour late.
    Returns the prompt shares, time errors and delay spans of every report, and the
    probabilities of the last round (None when no pair taught anything)."""
    a, b = cand.a, cand.b
    late = _late(reports)
    sig0 = np.asarray(reports.time_sigma_s, np.float64)
    # pairs of one report that may be late (h) with one that never is (m)
    hm = (late[a] > 0) & (late[b] == 0)
    mh = (late[b] > 0) & (late[a] == 0)
    h = np.concatenate([a[hm], b[mh]])
    m = np.concatenate([b[hm], a[mh]])
    sel = np.concatenate([np.flatnonzero(hm), np.flatnonzero(mh)])
    if len(h) == 0:
        return prompt, sig0, late, None
    types, tcode = np.unique(reports.source_type.astype(str), return_inverse=True)
    tcode = tcode.ravel()
    w0 = np.array([settings.source(t).prompt_share for t in types.tolist()], np.float64)
    t = np.asarray(reports.time_s, np.float64)
    # (a third of the configured error was a floor too: it held open sources, configured at
    # 2 min, at 40 s where their times to the minute are good to 17 s; BENCHMARKS.md, step 9)
    floor = reports.time_floors()
    x = t[h] - t[m]
    k = settings.delay_prior_weight
    w = w0.copy()
    scale2 = np.ones(len(types))  # each type's variance as a multiple of the configured one
    d0 = np.array([settings.source(t).delay_max_s for t in types.tolist()], np.float64)
    span = d0.copy()
    sig, lt = sig0, late
    for _ in range(rounds):
        prompt = np.where(late > 0, w[tcode], prompt)
        sig = np.where(late > 0, np.maximum(sig0 * np.sqrt(scale2[tcode]), floor), sig0)
        lt = np.where(late > 0, span[tcode], 0.0)
        p_all = _probability(reports, cand, settings, prompt, sig, late=lt)
        p = p_all[sel]
        s = np.hypot(sig[h], sig[m])
        g_prompt = _phi(x / s) / s
        g_late = (ndtr(x / s) - ndtr((x - lt[h]) / s)) / lt[h]
        wh = w[tcode[h]]
        r = wh * g_prompt / np.maximum(wh * g_prompt + (1.0 - wh) * g_late, 1e-300)
        num = np.bincount(tcode[h], p * r, len(types))
        den = np.bincount(tcode[h], p, len(types))
        w = (num + k * w0) / (den + k)
        # the late pairs' delays: a uniform over 0..span has mean span / 2
        wl = p * (1.0 - r)
        delay = np.bincount(tcode[h], wl * np.clip(x, 0.0, lt[h]), len(types))
        span = (2.0 * delay + k * d0) / (np.bincount(tcode[h], wl, len(types)) + k)
        span = np.where(d0 > 0, np.clip(span, np.minimum(MIN_DELAY_SPAN_S, d0), d0), 0.0)
        # the prompt pairs' squared time differences, less the never-late reports' share, per
        # the configured variance of the late-prone report
        ratio = np.maximum(x**2 - sig[m] ** 2, 0.0) / sig0[h] ** 2
        # at most the configured error: a wider spread is taken for late reports, not clocks
        scale2 = np.minimum((np.bincount(tcode[h], p * r * ratio, len(types)) + k) / (num + k), 1.0)
    prompt = np.where(late > 0, w[tcode], prompt)
    sig = np.where(late > 0, np.maximum(sig0 * np.sqrt(scale2[tcode]), floor), sig0)
    lt = np.where(late > 0, span[tcode], 0.0)
    return np.asarray(prompt, np.float64), np.asarray(sig, np.float64), np.asarray(lt, np.float64), p_all


def _probability(
    reports: Reports, cand: Candidates, settings: FusionSettings, prompt: FloatArray,
    sig: FloatArray, cover: FloatArray | None = None, density: FloatArray | None = None,
    *, late: FloatArray | None = None, weapon_agreement: float | None = None,
) -> FloatArray:  # fmt: skip
    """The probabilities under the given time model (``prompt``, ``sig`` and the delay spans
    ``late``: default the configured ones), coverage, density and weapon classes' agreement
    (default the configured one; :func:`link_probability`)."""
    a, b = cand.a, cand.b
    cov = np.asarray(reports.cov_m2, np.float64)
    sab = cov[a] + cov[b]
    det = sab[:, 0, 0] * sab[:, 1, 1] - sab[:, 0, 1] ** 2
    f_pos = np.exp(-0.5 * cand.d2) / (2.0 * math.pi * np.sqrt(det))
    t = np.asarray(reports.time_s, np.float64)
    late = _late(reports) if late is None else late
    f_t = time_density(t[b] - t[a], np.hypot(sig[a], sig[b]), late[a], late[b], prompt[a], prompt[b])
    lr = _categorical_lr(cand.kind, a, b, cand.kind != 0, settings.kind_agreement)
    _, wcode = np.unique(reports.weapons(), return_inverse=True)
    wcode = wcode.ravel().astype(np.intp)
    weapon_known = reports.weapons() != ""
    agree = settings.weapon_agreement if weapon_agreement is None else weapon_agreement
    if settings.weapon_given_kind:
        lr = lr * _categorical_lr(wcode, a, b, weapon_known, agree, given=cand.kind)
    else:
        lr = lr * _categorical_lr(wcode, a, b, weapon_known, agree)
    lr = lr * _count_lr(reports.counts(), a, b, settings.count_ratio_sigma)
    cover = _coverage(reports, settings) if cover is None else cover
    # The question is where the vaguer report v of the pair came from: the event of the precise
    # one c, another report of c's source near it, or an event c's source missed (odds against
    # the density of those). And c's event may have been reported by another of v's source's
    # reports near it: the pair gets its share of those.
    det_r = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
    a_vague = det_r[a] >= det_r[b]
    v, c = np.where(a_vague, a, b), np.where(a_vague, b, a)
    like = f_pos * f_t * lr
    dens = settings.density_m2_s if density is None else density[c]
    odds = like / (dens * (1.0 - cover[c]))
    if settings.matching == "product":
        n_src = int(cand.src.max()) + 1
        _, inv_v = np.unique(v * n_src + cand.src[c], return_inverse=True)
        inv_v = inv_v.ravel()
        p_v = odds / (1.0 + np.bincount(inv_v, odds)[inv_v])
        _, inv_c = np.unique(c * n_src + cand.src[v], return_inverse=True)
        inv_c = inv_c.ravel()
        share = like / np.bincount(inv_c, like)[inv_c]
        return np.asarray(p_v * share, np.float64)
    return _matching_marginals(cand, odds)


def _matching_marginals(
    cand: Candidates, odds: FloatArray, rounds: int = 100, tol: float = 1e-5
) -> FloatArray:
    """The probability of each candidate pair under a one-to-one matching between the reports of
    each two sources (a source reports an event once): pair e = (a, b) weighs ``odds[e]`` when
    matched, 1 when a or b is matched elsewhere or not at all. Loopy belief propagation for
    data association (Williams and Lau, IEEE T-AES 2014): the message of report a to pair e is
    ``1 / (1 + the sum of odds x message over a's other pairs with b's source)``, and e's
    marginal ``odds m_a m_b / (1 + odds m_a m_b)``. Exact where the pairs form a tree (one pair
    alone: ``odds / (1 + odds)``); both reports' competitors count, where a product of the two
    sides' normalisations undercounts a pair whose two reports each have several candidates
    (late reports: a wide candidate set). Rounds until no message moves by ``tol`` (20-70 on
    the benchmark's mixes), at most ``rounds``.
    """
    a, b, src = cand.a, cand.b, cand.src
    n_src = int(src.max()) + 1
    # each report's pairs with one other source form one group
    _, g = np.unique(np.concatenate([a * n_src + src[b], b * n_src + src[a]]), return_inverse=True)
    g = g.ravel()
    m = len(a)
    ga, gb = g[:m], g[m:]
    n_g = int(g.max()) + 1
    ma, mb = np.ones(m), np.ones(m)
    for _ in range(rounds):
        ca, cb = odds * mb, odds * ma  # what each pair adds to a's group, to b's
        tot = np.bincount(ga, ca, n_g) + np.bincount(gb, cb, n_g)
        na = 1.0 / (1.0 + tot[ga] - ca)
        nb = 1.0 / (1.0 + tot[gb] - cb)
        done = max(float(np.abs(na - ma).max()), float(np.abs(nb - mb).max())) < tol
        ma, mb = na, nb  # undamped: these messages converge (Williams and Lau)
        if done:
            break
    q = odds * ma * mb
    return np.asarray(q / (1.0 + q), np.float64)


def linkable(
    reports: Reports,
    which: ArrayLike,
    *,
    gate_d2: float = GATE_D2_999,
    time_k: float = 4.0,
    frame: LocalFrame | None = None,
) -> bool:
    """Whether :func:`fuse` (same gates) could put any of the reports ``which`` (a mask) in an
    event with another report (:meth:`Candidates.touch`)."""
    return candidates(reports, gate_d2=gate_d2, time_k=time_k, frame=frame).touch(which)


def may_link(
    lon: ArrayLike,
    lat: ArrayLike,
    var_m2: ArrayLike,
    which: ArrayLike,
    *,
    gate_d2: float = GATE_D2_9999,
) -> bool:
    """A quick screen before :func:`linkable`, on position alone: whether some report ``which`` (a
    mask) lies within the position gate of another, for reports at ``lon``, ``lat`` (WGS84 deg)
    whose covariance is ``var_m2`` times the identity.

    Conservative, so that False lets a caller skip fusing: two reports within ``r`` metres of each
    other lie within the ellipse of the degrees that span at least ``r`` (:func:`pad_lon_deg` at
    the farther of their latitudes, :func:`pad_lat_deg`), and ``r`` is the gate's reach with 2 %
    and 10 m to spare. Costs ``len(which) x N`` distances: for a few reports among many.
    """
    new = np.flatnonzero(np.asarray(which, bool))
    if new.size == 0:
        return False
    lon_a, lat_a = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    var = np.asarray(var_m2, np.float64)
    dlon = lon_a[None, :] - lon_a[new][:, None]
    dlon = np.where(np.abs(dlon) > 180.0, (dlon + 180.0) % 360.0 - 180.0, dlon)  # across 180 deg
    dlat = lat_a[None, :] - lat_a[new][:, None]
    far_lat = np.maximum(np.abs(lat_a[None, :]), np.abs(lat_a[new][:, None]))
    reach_m = np.sqrt(gate_d2 * (var[new][:, None] + var[None, :])) * 1.02 + 10.0
    close = np.hypot(dlon / pad_lon_deg(reach_m, far_lat), dlat / pad_lat_deg(reach_m)) <= 1.0
    close[np.arange(new.size), new] = False  # not with itself
    return bool(close.any())


def fuse(
    reports: Reports,
    *,
    settings: FusionSettings | None = None,
    gate_d2: float = GATE_D2_999,
    time_k: float = 4.0,
    max_rounds: int = 64,
    frame: LocalFrame | None = None,
    pairs: Candidates | None = None,
) -> FusionResult:
    """Link the reports of each event and fuse them.

    Parameters
    ----------
    reports
        The reports.
    settings
        Thresholds, the prior event density and the agreement rates of kinds and weapon classes
        (:class:`FusionSettings`; the reports carry their own error models already).
    gate_d2
        Mahalanobis gate on position (squared; 13.82 = 99.9 % for 2 d.o.f.). The gates only bound
        the candidates; the links come from their probabilities (:func:`link_probability`).
    time_k
        Time gate in combined clock sigmas beyond what the reporting delays allow.
    max_rounds
        Rounds of mutual-best merging.
    frame
        The local plane to work in (default: centred on the reports). A caller fusing many small
        batches in one region may pass one it built once: building a frame costs milliseconds,
        and a plane centred within a few tens of km of the reports changes no distance that
        matters here.
    pairs
        :func:`candidates` of these reports with the same gates, when the caller has them already
        (its frame is then the one used).

    Two clusters merge when a pair across them is above ``settings.link_threshold`` (the most
    probable first, mutual best partners in each round), every pair across them passed the
    gates and is at least ``settings.merge_floor``, and they share no source.
    """
    settings = settings if settings is not None else FusionSettings()
    n = len(reports)
    if pairs is not None and (pairs.gate_d2 != gate_d2 or pairs.time_k != time_k):
        raise ValueError("fuse: the candidate pairs were made with other gates")
    p = pairs if pairs is not None else candidates(reports, gate_d2=gate_d2, time_k=time_k, frame=frame)
    src, a, b = p.src, p.a, p.b
    prob, prompt = _link_model(reports, p, settings)
    n_src = int(src.max()) + 1 if n else 1
    strong = prob >= settings.link_threshold

    label = np.arange(n, dtype=np.intp)
    for _ in range(max_rounds):  # each round merges many clusters at once
        la, lb = label[a], label[b]
        cross = la != lb
        lo, hi = np.minimum(la, lb)[cross], np.maximum(la, lb)[cross]
        if not (strong & cross).any():
            break
        # gated pairs between each two clusters: they may merge only if every pair is gated
        # (and, from merge_floor up, likely enough: an event holds no pair unlikely to be one)
        gated_keys, gated_inv, gated_n = np.unique(lo * n + hi, return_inverse=True, return_counts=True)
        if settings.merge_floor > 0.0:
            fine = prob[cross] >= settings.merge_floor
            gated_n = np.bincount(gated_inv.ravel(), fine, len(gated_keys)).astype(np.intp)
        s_cross = strong[cross]
        skey = (lo * n + hi)[s_cross]
        order = np.lexsort((-prob[cross][s_cross], skey))
        skey_o = skey[order]
        first = np.r_[True, skey_o[1:] != skey_o[:-1]]
        ekey, ep = skey_o[first], prob[cross][s_cross][order][first]
        ca, cb = ekey // n, ekey % n
        size = np.bincount(label, minlength=n)
        got = gated_n[np.searchsorted(gated_keys, ekey)]
        good = got == size[ca] * size[cb]
        # at most one report per source per event: the two clusters must share no source
        members = np.argsort(label, kind="stable")
        start = np.concatenate([[0], np.cumsum(size)[:-1]])
        cs_keys = np.unique(label * n_src + src)
        e_idx = np.repeat(np.arange(len(ca)), size[ca])
        offs = np.arange(len(e_idx)) - np.repeat(np.cumsum(size[ca]) - size[ca], size[ca])
        rep = members[start[ca][e_idx] + offs]
        q = cb[e_idx] * n_src + src[rep]
        pos = np.clip(np.searchsorted(cs_keys, q), 0, len(cs_keys) - 1)
        clash = np.bincount(e_idx, cs_keys[pos] == q, len(ca)) > 0
        good &= ~clash
        ca, cb, score = ca[good], cb[good], -ep[good]
        if len(ca) == 0:
            break
        # mutual best partners merge: the most probable link first
        best = np.full(n, np.inf)
        np.minimum.at(best, ca, score)
        np.minimum.at(best, cb, score)
        mutual = (score <= best[ca]) & (score <= best[cb])
        ca, cb = ca[mutual], cb[mutual]
        # a cluster may be mutual best with two partners on ties: keep the first
        _, first_a = np.unique(ca, return_index=True)
        ca, cb = ca[first_a], cb[first_a]
        keep_b = ~np.isin(cb, ca)
        ca, cb = ca[keep_b], cb[keep_b]
        _, first_b = np.unique(cb, return_index=True)
        ca, cb = ca[first_b], cb[first_b]
        if len(ca) == 0:
            break
        remap = np.arange(n)
        remap[cb] = ca
        label = remap[label]
    res = _result(label, reports, p.xy, p.info, p.tw, p.kind, src, a, b, p.d2, p.frame)
    late = 1.0 - prompt[a] * prompt[b]
    return _with_links(res, prob, late, settings, np.asarray(reports.cov_m2, np.float64))


def _with_links(
    res: FusionResult, prob: FloatArray, late: FloatArray, settings: FusionSettings,
    cov_m2: FloatArray,
) -> FusionResult:  # fmt: skip
    """The result with each report's strongest link in its event, the possible duplicates and
    the other pairs of events the count weighs, with their probabilities restated for the count
    (``late``: each pair's chance of a late report; ``cov_m2``: the reports' covariances, to
    put the vaguer report of each pair first)."""
    n = len(res.event_of_report)
    a, b, ev = res.pair_a, res.pair_b, res.event_of_report
    inside = ev[a] == ev[b]
    who = np.concatenate([a[inside], b[inside]])
    other = np.concatenate([b[inside], a[inside]])
    pw = np.concatenate([prob[inside], prob[inside]])
    order = np.lexsort((-pw, who))
    first = order[np.r_[True, who[order][1:] != who[order][:-1]]] if len(order) else order
    link_p, link_to = np.full(n, np.nan), np.full(n, -1, np.intp)
    link_p[who[first]], link_to[who[first]] = pw[first], other[first]
    # pairs of events: their probability as restated for the count (the links keep the model's)
    pc = calibrated(prob, late, settings.calibration)
    # one pair per pair of events, the most probable, from the count's floor (or the offers')
    floor = min(settings.count_floor, settings.offer_threshold)
    cross = np.flatnonzero(~inside & (pc >= floor))
    key = np.minimum(ev[a], ev[b])[cross] * max(len(res), 1) + np.maximum(ev[a], ev[b])[cross]
    order = np.lexsort((-pc[cross], key))
    best = cross[order[np.r_[True, key[order][1:] != key[order][:-1]]]] if len(order) else cross
    offer = best[pc[best] >= settings.offer_threshold]
    keep = offer[_best_offers(a[offer], b[offer], pc[offer], n, settings.offers_per_report)]
    # the queue's share of the reports fused, never fewer than one report's own offers (a
    # small fusion: a single report's): the most probable (ties: the first pairs)
    room = max(math.floor(settings.offer_share * n), settings.offers_per_report)
    if len(keep) > room:
        keep = np.sort(keep[np.argsort(-pc[keep], kind="stable")[:room]])
    rest = best[~np.isin(best, keep) & (pc[best] >= settings.count_floor)]
    det = cov_m2[:, 0, 0] * cov_m2[:, 1, 1] - cov_m2[:, 0, 1] ** 2
    swap = det[b] > det[a]  # the vaguer report first
    va, vb = np.where(swap, b, a), np.where(swap, a, b)
    return replace(
        res, pair_p=prob, link_p=link_p, link_to=link_to,
        dup_a=va[keep], dup_b=vb[keep], dup_p=pc[keep],
        mass_a=va[rest], mass_b=vb[rest], mass_p=pc[rest],
        pair_late=late, dup_pair=keep, mass_pair=rest,
    )  # fmt: skip


def _best_offers(a: IntArray, b: IntArray, p: FloatArray, n: int, per_report: int) -> IntArray:
    """Indices of the offered pairs kept so that no report is in more than ``per_report`` of
    them: rounds of mutual best partners (the most probable first) among the reports with room
    left, so each report keeps its likeliest duplicates and the queue stays short."""
    room = np.full(n, per_report, np.intp)
    left = np.ones(len(a), bool)
    kept: list[IntArray] = []
    while left.any():
        left &= (room[a] > 0) & (room[b] > 0)
        idx = np.flatnonzero(left)
        if idx.size == 0:
            break
        best = np.full(n, -np.inf)
        np.maximum.at(best, a[idx], p[idx])
        np.maximum.at(best, b[idx], p[idx])
        mutual = idx[(p[idx] >= best[a[idx]]) & (p[idx] >= best[b[idx]])]
        # ties: one pair per report per round
        _, first_a = np.unique(a[mutual], return_index=True)
        mutual = mutual[first_a]
        _, first_b = np.unique(b[mutual], return_index=True)
        mutual = mutual[first_b]
        # a report in two of them (tied, one as a, one as b): its first pair only (dropping
        # both would end the rounds with neither offered)
        k = np.arange(len(mutual))
        first = np.full(n, len(mutual), np.intp)
        np.minimum.at(first, a[mutual], k)
        np.minimum.at(first, b[mutual], k)
        mutual = mutual[(first[a[mutual]] == k) & (first[b[mutual]] == k)]
        if mutual.size == 0:
            break
        kept.append(mutual)
        np.subtract.at(room, a[mutual], 1)
        np.subtract.at(room, b[mutual], 1)
        left[mutual] = False
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.intp)


def _result(
    label: IntArray, reports: Reports, xy: FloatArray, info: FloatArray, tw: FloatArray,
    kind: IntArray, src: IntArray, a: IntArray, b: IntArray, d2: FloatArray, frame: LocalFrame,
) -> FusionResult:  # fmt: skip
    _, ev = np.unique(label, return_inverse=True)
    ev = ev.ravel().astype(np.intp)
    n_ev = int(ev.max()) + 1 if len(ev) else 0
    t_eff, tw = _effective_time(reports)
    cl = _summaries(ev, n_ev, xy, info, t_eff, tw, reports.delay_max_s, kind, reports.sides())
    lon, lat = frame.to_lonlat(cl.xy[:, 0], cl.xy[:, 1])
    # independent sources add their log-odds; a source counts once per event (its best report)
    llr = report_log_odds(reports.reliability, reports.credibility)
    key = ev * (int(src.max()) + 1 if len(src) else 1) + src
    uk, inv = np.unique(key, return_inverse=True)
    best = np.full(len(uk), -np.inf)
    np.maximum.at(best, inv.ravel(), llr)
    ev_of_key = uk // (int(src.max()) + 1 if len(src) else 1)
    total = np.bincount(ev_of_key, best, n_ev)
    conf = 1.0 / (1.0 + np.exp(-total))
    n_sources = np.bincount(ev_of_key, minlength=n_ev).astype(np.intp)
    return FusionResult(ev, lon, lat, cl.cov, cl.t, conf, n_sources, a, b, d2, frame)


def _relabel(result: FusionResult, reports: Reports, label: IntArray) -> FusionResult:
    x, y = result.frame.to_xy(reports.lon, reports.lat)
    xy = np.stack([x, y], 1)
    info = _inv2(np.asarray(reports.cov_m2, np.float64))
    _, src = np.unique(reports.source_id.astype(str), return_inverse=True)
    return _result(
        label, reports, xy, info, _effective_time(reports)[1], kind_group(reports.kind),
        src.ravel().astype(np.intp), result.pair_a, result.pair_b, result.pair_d2, result.frame,
    )  # fmt: skip


def split(result: FusionResult, reports: Reports, report_idx: ArrayLike) -> FusionResult:
    """Move the given reports out of their events into one new event (an analyst's decision)."""
    label = result.event_of_report.copy()
    label[np.asarray(report_idx, np.intp)] = label.max() + 1 if len(label) else 0
    return _relabel(result, reports, label)


def merge(result: FusionResult, reports: Reports, events: ArrayLike) -> FusionResult:
    """Merge the given events into one (an analyst's decision; sources may then repeat)."""
    ev = np.asarray(events, np.intp)
    label = result.event_of_report.copy()
    label[np.isin(label, ev)] = ev.min()
    return _relabel(result, reports, label)


def summarise(reports: Reports, label: ArrayLike, *, frame: LocalFrame | None = None) -> FusionResult:
    """Events of a given grouping (e.g. as stored, after analysts' splits and merges).

    ``label`` assigns each report to a group (any integers); events come out in the order of the
    sorted distinct labels, with the same fused position, covariance, time and confidence
    :func:`fuse` gives. No candidate pairs are searched (``pair_*`` are empty). ``frame`` as in
    :func:`fuse`.
    """
    lab = np.asarray(label, np.intp)
    frame = frame if frame is not None else _centred_on(reports)
    x, y = frame.to_xy(reports.lon, reports.lat)
    _, src = np.unique(reports.source_id.astype(str), return_inverse=True)
    none = np.zeros(0, np.intp)
    return _result(
        lab, reports, np.stack([x, y], 1), _inv2(np.asarray(reports.cov_m2, np.float64)),
        _effective_time(reports)[1], kind_group(reports.kind), src.ravel().astype(np.intp),
        none, none, np.zeros(0), frame,
    )  # fmt: skip
