"""Incident records and the column arrays the rule engine works on.

:class:`Incident` is one validated report (the interchange model for CSV, GeoJSON and the API);
:class:`IncidentBatch` holds many of them as NumPy columns so that the engine never loops per incident.

Position uncertainty ``uncertainty_m`` is one standard deviation of the position error in any
horizontal direction (a circular Gaussian), in metres.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_core import ValidationError as PydanticValidationError

__all__ = [
    "FIRE_KINDS",
    "NO_NUL",
    "OBSERVED_MAX",
    "OBSERVED_MIN",
    "PRESENCE_KINDS",
    "Incident",
    "IncidentBatch",
    "Kind",
    "SourceType",
    "TimePrecision",
    "refuse_boolean_numbers",
    "refuse_booleans",
    "second_fix",
    "second_fix_text",
    "utc_time",
]


class Kind(StrEnum):
    """What was observed (covers the OSCE SMM's categories and the agreement's bans)."""

    explosion = "explosion"
    projectile = "projectile"
    muzzle_flash = "muzzle_flash"
    flare = "flare"
    small_arms_fire = "small_arms_fire"
    heavy_weapon = "heavy_weapon"
    armed_personnel = "armed_personnel"
    vehicle_movement = "vehicle_movement"
    drone_flight = "drone_flight"
    fortification_works = "fortification_works"
    movement_restriction = "movement_restriction"
    civilian_casualty = "civilian_casualty"
    damage = "damage"
    #: fire at or near the mission's monitors (where it landed; the party: the fire's origin)
    threat_to_monitors = "threat_to_monitors"


#: Kinds that are fire: with an origin (or a bearing) they can cross the line.
FIRE_KINDS = frozenset(
    {Kind.explosion, Kind.projectile, Kind.muzzle_flash, Kind.small_arms_fire, Kind.heavy_weapon}
)
#: Kinds whose position is where a weapon stands (for withdrawal-line checks).
PRESENCE_KINDS = frozenset({Kind.heavy_weapon, Kind.vehicle_movement, Kind.muzzle_flash})


class SourceType(StrEnum):
    patrol = "patrol"
    observation_post = "observation_post"
    camera = "camera"
    uav = "uav"
    acoustic = "acoustic"
    party_complaint = "party_complaint"
    open_source = "open_source"


class TimePrecision(StrEnum):
    second = "second"
    minute = "minute"
    hour = "hour"
    day = "day"


#: Text without NUL characters: PostgreSQL cannot store them in text (checked in pydantic-core).
#: Any pattern also makes pydantic-core refuse text that is not Unicode scalar values (a lone
#: surrogate such as ``"\ud800"``, which no database can store), as ``string_unicode``.
NO_NUL = r"^[^\x00]*$"

#: The times a report may carry (``OBSERVED_MIN <= observed_at < OBSERVED_MAX``, UTC): wide enough
#: for any archive or clock error worth storing, narrow enough that fusion's time windows (hours
#: either side) and every database's timestamp type can compute on them (year 1 and 9999 cannot).
OBSERVED_MIN = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
OBSERVED_MAX = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def utc_time(v: dt.datetime, *, end_inclusive: bool = False) -> dt.datetime:
    """``v`` in UTC; ``ValueError`` (a message safe to show) when it has no offset or lies outside
    ``OBSERVED_MIN .. OBSERVED_MAX`` (``OBSERVED_MAX`` itself allowed with ``end_inclusive``: an
    exclusive bound of a query)."""
    if v.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2025-03-01T04:12:00Z")
    try:
        utc = v.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        utc = OBSERVED_MIN - dt.timedelta(days=1)
    if not (OBSERVED_MIN <= utc < OBSERVED_MAX or (end_inclusive and utc == OBSERVED_MAX)):
        raise ValueError(
            f"must lie from {OBSERVED_MIN:%Y-%m-%d} to before {OBSERVED_MAX:%Y-%m-%d} (UTC); "
            "check the clock and the year"
        )
    return utc


def refuse_booleans(model: str, data: object) -> object:
    """For a ``mode="before"`` model validator: refuse ``true``/``false`` in any field, named.

    Lax numbers take ``true`` as 1 (a position at longitude 1); strict ones would refuse the text
    numbers of CSV and CoT. No field of these records is a boolean, so one check per record does.
    """
    if isinstance(data, dict):
        for key, value in data.items():
            if value.__class__ is bool:
                raise PydanticValidationError.from_exception_data(
                    model,
                    [
                        {
                            "type": PydanticCustomError(
                                "bool_type", "a boolean (true or false) is not a valid value here"
                            ),
                            "loc": (key,),
                            "input": value,
                        }
                    ],
                )
    return data


def _numeric(annotation: Any) -> bool:
    """Whether a field's type holds a number anywhere (``float``, ``dict[str, float]``, ...)."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    return any(_numeric(a) for a in get_args(annotation))


def _boolean_in(value: Any) -> bool:
    if value.__class__ is bool:
        return True
    if isinstance(value, dict):
        return any(_boolean_in(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_boolean_in(v) for v in value)
    return False


def refuse_boolean_numbers(model: type[BaseModel], data: object) -> object:
    """For a ``mode="before"`` model validator of a model that has boolean fields too (an
    agreement's sections): refuse ``true``/``false`` (YAML's ``yes``/``no``) in a field that holds
    numbers (``float``, ``int``, ``dict[str, float]``, ...), which lax validation reads as 1 or 0."""
    if isinstance(data, dict):
        for key, value in data.items():
            field = model.model_fields.get(key) if isinstance(key, str) else None
            if field is not None and _numeric(field.annotation) and _boolean_in(value):
                raise ValueError(
                    f"`{key}`: a boolean (true/false, yes/no) is not a number; give a number"
                )
    return data


class Incident(BaseModel):
    """One report of something observed, as submitted (WGS84 lon/lat, UTC times)."""

    # allow_inf_nan=False: every number finite, checked in pydantic-core (not a Python call each)
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, allow_inf_nan=False
    )

    id: str = Field(
        min_length=1,
        max_length=128,
        pattern=NO_NUL,
        description="The reporter's own id (idempotency key)",
    )
    observed_at: dt.datetime = Field(
        description="When it happened, ISO 8601 with a UTC offset; from 1900-01-01 to before 2100"
    )
    time_precision: TimePrecision = TimePrecision.minute
    lon: float = Field(ge=-180, le=180, description="WGS84 longitude (deg)")
    lat: float = Field(ge=-90, le=90, description="WGS84 latitude (deg)")
    uncertainty_m: float = Field(
        default=100.0, ge=0, le=200_000, description="1-sigma position error (m)"
    )
    kind: Kind
    weapon_class: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    count: int = Field(default=1, ge=1, le=100_000)
    party: str | None = Field(
        default=None, max_length=32, pattern=NO_NUL, description="Observed actor, when known"
    )
    origin_lon: float | None = Field(default=None, ge=-180, le=180)
    origin_lat: float | None = Field(default=None, ge=-90, le=90)
    origin_uncertainty_m: float | None = Field(default=None, ge=0, le=200_000)
    bearing_deg: float | None = Field(
        default=None,
        ge=0,
        lt=360,
        description="Azimuth from the impact towards where fire came from",
    )
    source_type: SourceType
    reliability: str = Field(default="F", pattern=r"^[A-F]$", description="Admiralty reliability A-F")
    credibility: int = Field(default=6, ge=1, le=6, description="Admiralty credibility 1-6")
    narrative: str = Field(default="", max_length=4000, pattern=NO_NUL)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: object) -> object:
        return refuse_booleans(cls.__name__, data)

    @field_validator("observed_at")
    @classmethod
    def _in_utc(cls, v: dt.datetime) -> dt.datetime:
        return utc_time(v)

    @field_validator("weapon_class", "party", mode="before")
    @classmethod
    def _blank_none(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _origin_pair(self) -> Incident:
        if (self.origin_lon is None) != (self.origin_lat is None):
            raise ValueError("origin_lon and origin_lat go together; give both or neither")
        return self


@dataclass(frozen=True, slots=True)
class IncidentBatch:
    """Incidents as columns (all arrays of length ``n``); NaN where an optional value is absent."""

    id: NDArray[np.str_]
    observed_at: NDArray[np.datetime64]  # datetime64[us], UTC
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    uncertainty_m: NDArray[np.float64]
    kind: NDArray[np.str_]
    weapon_class: NDArray[np.str_]  # "" when absent
    count: NDArray[np.int64]
    party: NDArray[np.str_]  # "" when unknown
    origin_lon: NDArray[np.float64]
    origin_lat: NDArray[np.float64]
    origin_uncertainty_m: NDArray[np.float64]
    bearing_deg: NDArray[np.float64]
    source_type: NDArray[np.str_]

    def __len__(self) -> int:
        return int(self.lon.size)

    @property
    def day(self) -> NDArray[np.datetime64]:
        return self.observed_at.astype("datetime64[D]")

    def take(self, idx: NDArray[np.intp]) -> IncidentBatch:
        return IncidentBatch(**{f: getattr(self, f)[idx] for f in self.__dataclass_fields__})

    @classmethod
    def from_incidents(cls, items: Sequence[Incident]) -> IncidentBatch:
        """Columns from validated records (an edge step: the engine itself never loops)."""

        # One pass over the records for the numbers (None becomes NaN), one per text column.
        nums = np.array(
            [
                (i.lon, i.lat, i.uncertainty_m, i.origin_lon, i.origin_lat, i.origin_uncertainty_m,
                 i.bearing_deg)
                for i in items
            ],
            dtype=np.float64,
        ).reshape(len(items), 7)  # fmt: skip
        return cls(
            id=np.array([i.id for i in items], dtype=str),
            observed_at=np.array(
                [i.observed_at.replace(tzinfo=None) for i in items], dtype="datetime64[us]"
            ),
            lon=nums[:, 0].copy(),
            lat=nums[:, 1].copy(),
            uncertainty_m=nums[:, 2].copy(),
            kind=np.array([i.kind._value_ for i in items], dtype=str),
            weapon_class=np.array([i.weapon_class or "" for i in items], dtype=str),
            count=np.array([i.count for i in items], dtype=np.int64),
            party=np.array([i.party or "" for i in items], dtype=str),
            origin_lon=nums[:, 3].copy(),
            origin_lat=nums[:, 4].copy(),
            origin_uncertainty_m=nums[:, 5].copy(),
            bearing_deg=nums[:, 6].copy(),
            source_type=np.array([i.source_type._value_ for i in items], dtype=str),
        )

    @classmethod
    def from_columns(cls, **cols: object) -> IncidentBatch:
        """Columns from arrays (simulation, benchmarks); optional columns default to absent."""
        n = np.asarray(cols["lon"]).size
        nan = np.full(n, np.nan)
        defaults: dict[str, object] = {
            "id": np.array([f"i{k}" for k in range(n)]),
            "uncertainty_m": np.full(n, 100.0),
            "weapon_class": np.full(n, "", dtype="<U1"),
            "count": np.ones(n, dtype=np.int64),
            "party": np.full(n, "", dtype="<U1"),
            "origin_lon": nan,
            "origin_lat": nan,
            "origin_uncertainty_m": nan,
            "bearing_deg": nan,
            "source_type": np.full(n, "patrol"),
        }
        merged = {**defaults, **cols}
        return cls(**{k: np.asarray(v) for k, v in merged.items()})


#: How a report's narrative states a second fix (an acoustic event whose likelihood has two modes,
#: e.g. the mirror image across a near-linear array): :func:`second_fix_text` writes it and
#: :func:`second_fix` reads it back, so the stored columns of the second fix are those of the
#: narrative, which the record's content hash (and so the ledger) covers.
_SECOND_FIX = re.compile(
    r"AMBIGUOUS: a second fix \(the mirror image across the sensors' line\) at "
    r"(-?\d{1,3}\.\d+), (-?\d{1,2}\.\d+) with probability (\d\.\d+)"
)


def second_fix_text(lon: float, lat: float, weight: float) -> str:
    """The narrative's statement of a second fix at ``lon``, ``lat`` (WGS84 deg) of probability
    ``weight``, as :func:`second_fix` reads it (6 decimals of a degree, 3 of the probability)."""
    return (
        f"AMBIGUOUS: a second fix (the mirror image across the sensors' line) at {lon:.6f}, "
        f"{lat:.6f} with probability {weight:.3f}"
    )


def second_fix(narrative: str) -> tuple[float, float, float] | None:
    """The second fix a narrative states (lon, lat, probability), None when it states none."""
    if "AMBIGUOUS" not in narrative:  # the usual report: no search
        return None
    m = _SECOND_FIX.search(narrative)
    if m is None:
        return None
    lon, lat, w = float(m.group(1)), float(m.group(2)), float(m.group(3))
    if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0 and 0.0 <= w <= 1.0):
        return None
    return lon, lat, w
