"""The simulated line network that the acoustic tests locate events on."""

from __future__ import annotations

import numpy as np
import pytest

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths
from truceline.core.simulate import acoustic as S  # noqa: N812 - short module aliases read like the maths

LINE_LON = np.array([37.0, 37.5, 38.0])
LINE_LAT = np.array([47.8, 48.0, 48.1])


@pytest.fixture(scope="package")
def sim_net() -> S.SimNetwork:
    return S.line_network(LINE_LON, LINE_LAT, spacing_km=5, chainage_km=(0, 80))


@pytest.fixture(scope="package")
def net(sim_net: S.SimNetwork) -> A.SensorNetwork:
    return A.SensorNetwork.build(
        sim_net.sensor_id, sim_net.lon, sim_net.lat,
        elevation_m=sim_net.elevation_m, timing_sigma_ms=sim_net.timing_sigma_ms,
    )  # fmt: skip
