"""Settlements (populated places as columns) and the count of places and people in a selection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from truceline.core.arrays import BoolArray, FloatArray

__all__ = ["PlaceCount", "Settlements"]

_NAMES_SHOWN = 12  # the largest places a PlaceCount names, at most


@dataclass(frozen=True, slots=True)
class Settlements:
    """Populated places as columns (WGS84 lon/lat, population in persons)."""

    name: NDArray[np.str_]
    lon: FloatArray
    lat: FloatArray
    population: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.lon.size)

    @classmethod
    def from_columns(
        cls, name: ArrayLike, lon: ArrayLike, lat: ArrayLike, population: ArrayLike
    ) -> Settlements:
        return cls(
            np.asarray(name, dtype=str),
            np.asarray(lon, dtype=np.float64),
            np.asarray(lat, dtype=np.float64),
            np.asarray(population, dtype=np.int64),
        )

    def take(self, idx: NDArray[np.intp] | BoolArray) -> Settlements:
        return Settlements(self.name[idx], self.lon[idx], self.lat[idx], self.population[idx])


@dataclass(frozen=True, slots=True)
class PlaceCount:
    """How many settlements and people a selection holds; the largest places by name."""

    count: int
    population: int
    largest: tuple[tuple[str, int], ...] = ()
    index: tuple[int, ...] = ()  # of the largest, into the settlements counted

    @classmethod
    def of(cls, places: Settlements, mask: BoolArray) -> PlaceCount:
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return cls(0, 0)
        top = idx[np.argsort(-places.population[idx], kind="stable")[:_NAMES_SHOWN]]
        return cls(
            int(idx.size),
            int(places.population[idx].sum()),
            tuple((str(places.name[i]), int(places.population[i])) for i in top),
            tuple(int(i) for i in top),
        )
