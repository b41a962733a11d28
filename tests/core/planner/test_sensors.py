"""Acoustic sensors: the Cramér-Rao bound against its closed form (emission time eliminated), the
spacing, and the coverage of a layout along a straight line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from truceline.core.planner.scenario import PlannerError
from truceline.core.planner.sensors import (
    SensorParameters,
    coverage,
    line_layout,
    sensor_spacing_km,
)
from truceline.core.planner.sensors import _accuracy_m as accuracy_m
from truceline.core.planner.sensors import _template_accuracy as template_accuracy

from .conftest import G, _agreement

# -- acoustic sensors --------------------------------------------------------------------------


def _crb_closed_form(src: np.ndarray, sens: np.ndarray, sigma_s: float, c: float) -> float:
    """95 % semi-major axis from J_x = sum (u_i - mean u)(u_i - mean u)^T / (c^2 sigma^2)."""
    u = sens - src
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    du = u - u.mean(axis=0)
    j = du.T @ du / (c * c * sigma_s * sigma_s)
    lam = np.linalg.eigvalsh(np.linalg.inv(j)).max()
    return math.sqrt(-2.0 * math.log(0.05) * lam)


def test_bound_matches_closed_form() -> None:
    p = SensorParameters(estimate_weather=False, timing_sigma_ms=5.0, temperature_c=15.0)
    rng = np.random.default_rng(3)
    sens = rng.uniform(-8000, 8000, (9, 2))
    src = np.array([[500.0, -300.0], [4000.0, 2500.0], [-6000.0, 1000.0]])
    got = accuracy_m(src, np.broadcast_to(sens, (3, 9, 2)).copy(), np.ones((3, 9), bool), p)
    c = 331.3 + 0.606 * 15.0
    for k in range(3):
        assert got[k] == pytest.approx(_crb_closed_form(src[k], sens, 0.005, c), rel=1e-6)


def test_too_few_or_collinear_sensors_give_no_position() -> None:
    p = SensorParameters(estimate_weather=True, min_sensors=3)
    sens = np.column_stack([np.arange(4) * 1000.0, np.zeros(4)])
    src = np.array([[1500.0, 0.0], [1500.0, 3000.0]])
    acc = accuracy_m(src, np.broadcast_to(sens, (2, 4, 2)).copy(), np.ones((2, 4), bool), p)
    assert np.isinf(acc[0]) or acc[0] > 1e6  # on the row itself: no fix across it
    few = accuracy_m(src, np.broadcast_to(sens, (2, 4, 2)).copy(), np.array([[1, 1, 0, 0]] * 2, bool), p)
    assert np.all(np.isinf(few))


def test_spacing_is_the_widest_that_meets_the_target() -> None:
    p = SensorParameters(target_accuracy_m=25.0)
    s, acc = sensor_spacing_km(p)
    assert acc <= 25.0
    assert template_accuracy(s + 0.25, p) > 25.0
    tighter, _ = sensor_spacing_km(p.model_copy(update={"target_accuracy_m": 10.0}))
    assert tighter < s
    with pytest.raises(PlannerError, match="no sensor spacing"):
        sensor_spacing_km(p.model_copy(update={"target_accuracy_m": 0.5}))


def test_coverage_on_a_straight_line_matches_the_template_and_finds_a_hole() -> None:
    ag = _agreement([[34.0, 48.0], [38.0, 48.0]])
    cv = ag.compiled(0)
    p = SensorParameters()
    s, acc = sensor_spacing_km(p)
    lon, lat = line_layout(cv, s, p.rows_km)
    # Four rows every s km along ~298 km: about 4 x 298 / s sensors, a few more round the ends.
    length_km = cv.line_length_km
    assert 4 * length_km / s < lon.size < 4 * (length_km / s + 8)
    ch, worst, gaps = coverage(cv, lon, lat, p)
    inner = (ch > 30) & (ch < length_km - 30)
    assert np.max(worst[inner]) == pytest.approx(acc, rel=0.15)
    assert all(g.end_km < 10 or g.start_km > length_km - 10 for g in gaps)  # only at the ends
    # Take every sensor out between 36.0 and 36.3 E: a gap opens there, about that long or more.
    hole = (lon > 36.0) & (lon < 36.3)
    _, _, gaps2 = coverage(cv, lon[~hole], lat[~hole], p)
    mid = [g for g in gaps2 if 10 < g.start_km < length_km - 10]
    x0 = G.line_length([34.0, 36.0], [48.0, 48.0]) / 1000.0
    x1 = G.line_length([34.0, 36.3], [48.0, 48.0]) / 1000.0
    assert mid and all(x0 - 20 < g.start_km and g.end_km < x1 + 20 for g in mid)
    worst = max(mid, key=lambda g: g.length_km)
    assert worst.start_km < x0 + 5 and worst.end_km > x1 - 5
    assert 35.9 < worst.lon < 36.4 and math.isinf(worst.worst_accuracy_m)
