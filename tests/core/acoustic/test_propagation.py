"""Propagation: the speed of sound and the wind vector."""

from __future__ import annotations

import numpy as np
import pytest

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths


def test_speed_of_sound_and_wind() -> None:
    assert A.speed_of_sound_mps(0.0) == pytest.approx(331.3)
    assert A.speed_of_sound_mps(20.0) == pytest.approx(343.42)
    # wind from the west blows towards the east
    np.testing.assert_allclose(A.wind_vector_mps(5.0, 270.0), [5.0, 0.0], atol=1e-12)
