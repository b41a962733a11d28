"""The flagship example's line follows the late-2024 front (issue 16): places the front ran by
(published coordinates, GeoNames) lie within a few km of it on the side open sources put them in
November-December 2024; the agreement stays labelled illustrative."""

from __future__ import annotations

import numpy as np
import pytest

from truceline.io.agreement_files import load_agreement

from ..conftest import EXAMPLES

#: (place, lon, lat, side in late 2024, farthest from the line in km)
PLACES = [
    ("Vovchansk", 36.94, 50.29, None, 3.0),  # contested: on the line
    ("Kupiansk", 37.615, 49.71, "UA", 6.0),
    ("Siversk", 38.09, 48.87, "UA", 10.0),
    ("Chasiv Yar", 37.84, 48.59, None, 3.0),  # contested
    ("Toretsk", 37.85, 48.40, None, 3.0),  # contested
    ("Pokrovsk", 37.18, 48.28, "UA", 10.0),
    ("Selydove", 37.30, 48.15, "RU", 15.0),  # taken October 2024
    ("Kurakhove", 37.28, 47.98, None, 5.0),  # contested in December 2024
    ("Vuhledar", 37.25, 47.78, "RU", 25.0),  # taken October 2024
    ("Velyka Novosilka", 36.83, 47.84, None, 5.0),
    ("Robotyne", 35.83, 47.45, None, 3.0),
    ("Kherson", 32.62, 46.64, "UA", 5.0),  # the Dnipro is the line
    ("Avdiivka", 37.75, 48.14, "RU", 30.0),  # taken February 2024
]


@pytest.mark.parametrize(("name", "lon", "lat", "side", "max_km"), PLACES, ids=[p[0] for p in PLACES])
def test_the_flagship_line_runs_by_the_late_2024_front(
    name: str, lon: float, lat: float, side: str | None, max_km: float
) -> None:
    ag = load_agreement(EXAMPLES / "ukraine-2024")
    assert "illustrative" in ag.name
    s, d = ag.compiled(0).sides(np.array([lon]), np.array([lat]))
    assert d[0] / 1000.0 <= max_km, f"{name}: {d[0] / 1000.0:.1f} km from the line"
    if side is not None:
        assert ag.party_on_side(int(s[0])) == side, name
