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
    "AcousticError",
    "Weather",
    "speed_of_sound_mps",
    "wind_vector_mps",
]


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
    """

    time_s: FloatArray
    temperature_c: FloatArray
    wind_speed_mps: FloatArray
    wind_from_deg: FloatArray

    @classmethod
    def constant(
        cls, temperature_c: float = 15.0, wind_speed_mps: float = 0.0, wind_from_deg: float = 0.0
    ) -> Weather:
        """Weather that does not change."""
        one = np.ones(1)
        return cls(np.zeros(1), one * temperature_c, one * wind_speed_mps, one * wind_from_deg)

    def __post_init__(self) -> None:
        n = len(self.time_s)
        if n == 0 or any(
            len(a) != n for a in (self.temperature_c, self.wind_speed_mps, self.wind_from_deg)
        ):
            raise AcousticError("weather: give at least one row, every column the same length")
        if n > 1 and np.any(np.diff(self.time_s) <= 0):
            raise AcousticError("weather: times must be strictly increasing; sort the rows")

    def at(self, time_s: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Speed of sound (m/s) and wind vector (east, north; m/s) at the given times."""
        t = np.asarray(time_s, dtype=np.float64)
        temp = np.interp(t, self.time_s, self.temperature_c)
        w = wind_vector_mps(self.wind_speed_mps, self.wind_from_deg)
        wind = np.stack([np.interp(t, self.time_s, w[:, 0]), np.interp(t, self.time_s, w[:, 1])], -1)
        return speed_of_sound_mps(temp), wind
