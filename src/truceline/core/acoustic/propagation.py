"""Sound propagation: the speed of sound, the wind, and the told weather they come from.

:class:`AcousticError`, the package's one exception, is drawn here, beneath everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from truceline.core.arrays import FloatArray
from truceline.errors import ValidationError

__all__ = [
    "TOLD_TEMPERATURE_SIGMA_C",
    "TOLD_WIND_SIGMA_MPS",
    "UNTOLD_TEMPERATURE_SIGMA_C",
    "UNTOLD_WIND_SIGMA_MPS",
    "AcousticError",
    "Weather",
    "speed_of_sound_mps",
    "wind_vector_mps",
]


TOLD_TEMPERATURE_SIGMA_C = 2.0
"""Uncertainty (1 sigma, deg C) of a told temperature when weather.csv gives no ``temperature_sigma_c``
(a station's reading a few kilometres and minutes away from the sound's path)."""
TOLD_WIND_SIGMA_MPS = 2.0
"""Uncertainty (1 sigma, m/s, per component) of a told wind when weather.csv gives no ``wind_sigma_mps``
(wind near the ground is gusty: a 10-minute mean differs from the wind along a path by this much)."""
UNTOLD_TEMPERATURE_SIGMA_C = 10.0
"""Uncertainty of the default 15 deg C when no weather is told (about 6 m/s of speed of sound)."""
UNTOLD_WIND_SIGMA_MPS = 5.0
"""Uncertainty of the default calm when no weather is told (per component)."""


class AcousticError(ValidationError):
    """Input to the acoustic pipeline that cannot be used (message names the field and the fix)."""


def speed_of_sound_mps(temperature_c: ArrayLike) -> FloatArray:
    """Speed of sound in air, ``c(T) = 331.3 + 0.606 T`` m/s (``T`` in deg C)."""
    return 331.3 + 0.606 * np.asarray(temperature_c, dtype=np.float64)


def wind_vector_mps(speed_mps: ArrayLike, from_deg: ArrayLike) -> FloatArray:
    """Wind vector (east, north) in m/s from a speed and the direction it blows *from* (deg).

    Returns
    -------
    ndarray, shape (..., 2)
    """
    speed = np.asarray(speed_mps, dtype=np.float64)
    az = np.radians(np.asarray(from_deg, dtype=np.float64))
    return np.stack([-speed * np.sin(az), -speed * np.cos(az)], axis=-1)


@dataclass(frozen=True)
class Weather:
    """Temperature and wind by time, interpolated linearly (held constant beyond the ends).

    Parameters
    ----------
    time_s
        POSIX seconds, increasing.
    temperature_c, wind_speed_mps, wind_from_deg
        Values at ``time_s``.
    temperature_sigma_c, wind_sigma_mps
        Their uncertainty (1 sigma; the wind's per east and north component); default
        :data:`TOLD_TEMPERATURE_SIGMA_C` and :data:`TOLD_WIND_SIGMA_MPS`. Known weather is a prior
        with this spread: association widens its windows by it and the solver estimates the speed of
        sound and the wind around it (maximum a posteriori), never from scratch.
    """

    time_s: FloatArray
    temperature_c: FloatArray
    wind_speed_mps: FloatArray
    wind_from_deg: FloatArray
    temperature_sigma_c: FloatArray | None = None
    wind_sigma_mps: FloatArray | None = None

    @classmethod
    def constant(
        cls,
        temperature_c: float = 15.0,
        wind_speed_mps: float = 0.0,
        wind_from_deg: float = 0.0,
        *,
        temperature_sigma_c: float = TOLD_TEMPERATURE_SIGMA_C,
        wind_sigma_mps: float = TOLD_WIND_SIGMA_MPS,
    ) -> Weather:
        """Weather that does not change."""
        one = np.ones(1)
        return cls(
            np.zeros(1), one * temperature_c, one * wind_speed_mps, one * wind_from_deg,
            one * temperature_sigma_c, one * wind_sigma_mps,
        )  # fmt: skip

    @classmethod
    def untold(cls) -> Weather:
        """What is assumed when no weather is told: 15 deg C and calm, both very uncertain."""
        return cls.constant(
            temperature_sigma_c=UNTOLD_TEMPERATURE_SIGMA_C, wind_sigma_mps=UNTOLD_WIND_SIGMA_MPS
        )

    def __post_init__(self) -> None:
        n = len(self.time_s)
        if self.temperature_sigma_c is None:
            object.__setattr__(self, "temperature_sigma_c", np.full(n, TOLD_TEMPERATURE_SIGMA_C))
        if self.wind_sigma_mps is None:
            object.__setattr__(self, "wind_sigma_mps", np.full(n, TOLD_WIND_SIGMA_MPS))
        cols = (
            self.temperature_c, self.wind_speed_mps, self.wind_from_deg, self.temperature_sigma_c,
            self.wind_sigma_mps,
        )  # fmt: skip
        if n == 0 or any(a is None or len(a) != n for a in cols):
            raise AcousticError("weather: give at least one row, every column the same length")
        if n > 1 and np.any(np.diff(self.time_s) <= 0):
            raise AcousticError("weather: times must be strictly increasing; sort the rows")
        sig = np.concatenate([np.asarray(self.temperature_sigma_c), np.asarray(self.wind_sigma_mps)])
        if np.any(~np.isfinite(sig) | (sig <= 0)):
            raise AcousticError(
                "weather: temperature_sigma_c and wind_sigma_mps must be positive numbers"
            )

    def at(self, time_s: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Speed of sound (m/s) and wind vector (east, north; m/s) at the given times."""
        t = np.asarray(time_s, dtype=np.float64)
        temp = np.interp(t, self.time_s, self.temperature_c)
        w = wind_vector_mps(self.wind_speed_mps, self.wind_from_deg)
        wind = np.stack([np.interp(t, self.time_s, w[:, 0]), np.interp(t, self.time_s, w[:, 1])], -1)
        return speed_of_sound_mps(temp), wind

    def sigma_at(self, time_s: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Uncertainty (1 sigma) of the speed of sound (m/s) and of each wind component (m/s)."""
        t = np.asarray(time_s, dtype=np.float64)
        ts = np.interp(t, self.time_s, np.asarray(self.temperature_sigma_c))
        return 0.606 * ts, np.interp(t, self.time_s, np.asarray(self.wind_sigma_mps))
