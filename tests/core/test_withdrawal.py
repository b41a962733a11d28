"""Withdrawal lines of the small agreement: one per party and distance in force, at that distance."""

from __future__ import annotations

import datetime as dt

import numpy as np
import shapely

from truceline.core.agreement import Agreement
from truceline.core.withdrawal import withdrawal_lines

DAY = dt.date(2025, 3, 1)


def test_one_line_per_party_and_distance_in_force(small: Agreement) -> None:
    # wd-art 25 km both sides; wd-tank 15 km (A) and 10 km (B) from 2025-02-01, 20 km from June.
    lines = withdrawal_lines(small, DAY)
    assert [(ln.party, ln.distance_km) for ln in lines] == [
        ("A", 15.0),
        ("A", 25.0),
        ("B", 10.0),
        ("B", 25.0),
    ]
    assert {ln.distance_km: [r.id for r in ln.rules] for ln in lines if ln.party == "A"} == {
        15.0: ["wd-tank"],
        25.0: ["wd-art"],
    }
    assert [ln.distance_km for ln in withdrawal_lines(small, dt.date(2025, 1, 15))] == [25.0, 25.0]
    assert {ln.distance_km for ln in withdrawal_lines(small, dt.date(2025, 7, 1))} == {20.0, 25.0}


def test_every_vertex_lies_at_the_distance_on_the_partys_side(small: Agreement) -> None:
    cv = small.version_at(DAY)
    for ln in withdrawal_lines(small, DAY):
        assert ln.geometry.geom_type == "MultiLineString" and not ln.geometry.is_empty
        for part in shapely.get_parts(ln.geometry):
            xy = shapely.get_coordinates(part)
            side, near = cv.locate(xy[:, 0], xy[:, 1])
            assert np.all(np.abs(near.distance_m - ln.distance_km * 1000.0) < 10.0)
            # A part's two ends may touch the line's extension past its ends, where sides meet.
            assert np.all(side[1:-1] == small.side_of_party(ln.party))
