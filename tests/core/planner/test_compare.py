"""The comparison's line lengths against :class:`pyproj.Geod` directly."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import BASE, BUMP, G

# -- lengths and areas -------------------------------------------------------------------------


def test_line_length_matches_geod(comparison) -> None:  # type: ignore[no-untyped-def]
    for m, line in zip(comparison.scenarios, (BASE, BUMP), strict=True):
        xy = np.asarray(line)
        expected = G.line_length(xy[:, 0], xy[:, 1]) / 1000.0
        assert m.line_length_km == pytest.approx(expected, abs=1e-3)
