"""Filling the search tables ahead of time (``prepare``) changes no result and leaves no cell to fill."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import truceline.core.rules as R  # noqa: N812
from truceline.core.agreement import Agreement, PolygonLookup
from truceline.core.geodesy import GEOD, LineIndex
from truceline.core.incidents import IncidentBatch
from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import load_agreement

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ukraine-2024"


def _fresh() -> Agreement:
    return load_agreement(EXAMPLE)


def _around(index: LineIndex, n: int, max_m: float, seed: int) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    k = rng.integers(0, index.lon.size, n)
    lon, lat, _ = GEOD.fwd(index.lon[k], index.lat[k], rng.uniform(0, 360, n), rng.uniform(0, max_m, n))
    return np.asarray(lon), np.asarray(lat)


def _no_fill(*_: object) -> None:
    raise AssertionError("a cell was filled after prepare")


@pytest.mark.parametrize("zone", [False, True], ids=["line", "zone-outline"])
def test_line_index_prepare_fills_every_cell_within_reach(
    zone: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After prepare(within_m), queries within that reach fill nothing, and every field equals,
    bitwise, what an index filled lazily (point by point, then in one batch) gives."""
    ag = _fresh()
    cv = ag.compiled(0)
    polygon = next(z for z in cv.zones.values() if z.type == "polygon")
    ready, within = (cv.zone_boundary(polygon), 30_000.0) if zone else (cv.line, 100_000.0)
    assert ready.prepare(within) > 0
    assert ready.prepare(within) == 0
    # the same line, built apart and filled on first use
    parts = [
        np.column_stack([ready.lon[ready.part_of_vertex == p], ready.lat[ready.part_of_vertex == p]])
        for p in range(ready.n_parts)
    ]
    lazy_one = LineIndex(parts, max_segment_m=1e12)
    lazy_all = LineIndex(parts, max_segment_m=1e12)
    np.testing.assert_array_equal(lazy_one.xyz, ready.xyz)
    # chords are shorter than geodesics: stay a little inside the reach
    lon, lat = _around(ready, 1500, 0.98 * within, seed=5)
    one = [lazy_one.nearest(lon[i : i + 1], lat[i : i + 1]) for i in range(300)]
    whole = lazy_all.nearest(lon, lat)
    with monkeypatch.context() as m:
        m.setattr(LineIndex, "_fill", _no_fill)
        got = ready.nearest(lon, lat)
        got_one = [ready.nearest(lon[i : i + 1], lat[i : i + 1]) for i in range(300)]
    for name in got.__dataclass_fields__:
        np.testing.assert_array_equal(getattr(got, name), getattr(whole, name), err_msg=name)
        a = np.concatenate([getattr(x, name) for x in got_one])
        b = np.concatenate([getattr(x, name) for x in one])
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b, err_msg=name)
    # beyond the reach, cells are still filled on first use
    far_lon, far_lat = _around(ready, 50, 3.0 * within, seed=6)
    far_lon = far_lon + 1.5 * within / 75_000.0
    ready.nearest(far_lon, far_lat)


def test_polygon_lookup_prepare_matches_cell_by_cell() -> None:
    """The blocks of prepare() give every cell the state that classifying it alone gives."""
    cv = _fresh().compiled(0)
    for lookup in (cv._area_lookup, cv._side_lookup, cv.sector_lookup):
        fresh = PolygonLookup(lookup.polygons, cell_deg=lookup.cell)
        assert lookup.prepare() == lookup.state.size
        assert lookup.prepare() == 0
        every = np.arange(fresh.state.size, dtype=np.int64)
        np.testing.assert_array_equal(lookup.state, fresh._classify(every))
        assert (lookup.state == -2).sum() < lookup.state.size // 10  # the blocks did the work


def test_rules_prepare_changes_no_finding_and_leaves_nothing_to_fill(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Simulated reports classified one by one after rules.prepare: the same as on an agreement
    filled on first use, with no cell of any line, outline or polygon lookup filled on the way."""
    lazy, ready = _fresh(), _fresh()
    R.prepare(ready)
    assert ready.compiled(0).line is ready.compiled(1).line  # one index for the unchanged line
    start = max(lazy.effective_from + dt.timedelta(days=45), lazy.versions[-1].effective_from)
    sim = simulate(lazy, SimulationConfig(days=1, seed=23, start=start, events_per_day=300))
    batch = IncidentBatch.from_incidents(sim.reports)
    want = [R.classify(lazy, batch.take(np.array([i]))) for i in range(len(batch))]
    with monkeypatch.context() as m:
        m.setattr(LineIndex, "_fill", _no_fill)
        m.setattr(PolygonLookup, "_classify", _no_fill)
        got = [R.classify(ready, batch.take(np.array([i]))) for i in range(len(batch))]
    for a, b in zip(got, want, strict=True):
        for name in ("side", "distance_km", "p_side", "zones", "sector"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
        for name in a.findings.__dataclass_fields__:
            np.testing.assert_array_equal(
                getattr(a.findings, name), getattr(b.findings, name), err_msg=name
            )
