"""LineIndex's search tables exported and imported as arrays (issue 18): the same answers as
tables filled on the spot, and impossible tables refused whole."""

from __future__ import annotations

import numpy as np
import pytest

from truceline.core.geodesy import LineIndex

LINE = [np.array([[30.0, 48.0], [30.6, 48.3], [31.2, 48.1], [31.5, 48.6]])]


def _points(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(29.5, 32.0, n), rng.uniform(47.5, 49.0, n)


def _same(a: LineIndex, b: LineIndex, lon: np.ndarray, lat: np.ndarray) -> None:
    na, nb = a.nearest(lon, lat), b.nearest(lon, lat)
    for f in ("distance_m", "side", "foot_lon", "foot_lat", "chainage_m"):
        assert np.array_equal(getattr(na, f), getattr(nb, f)), f


def test_imported_tables_answer_as_filled_ones() -> None:
    lon, lat = _points(1, 20_000)
    warm = LineIndex(LINE, max_segment_m=2000.0)
    warm.nearest(lon, lat)
    state = warm.export_state()
    assert state["cells"].size == warm.filled_cells > 0
    cold = LineIndex(LINE, max_segment_m=2000.0)
    assert cold.state_key() == warm.state_key()
    assert cold.import_state(state) == warm.filled_cells
    assert cold.import_state(state) == 0  # cells filled already keep their rows
    lon2, lat2 = _points(2, 20_000)  # some new cells, filled on the spot beside the imported
    _same(cold, LineIndex(LINE, max_segment_m=2000.0), lon2, lat2)
    _same(cold, LineIndex(LINE, max_segment_m=2000.0), lon, lat)
    assert cold.import_state(LineIndex(LINE, max_segment_m=2000.0).export_state()) == 0


def test_keys_differ_with_the_line_and_the_step() -> None:
    key = LineIndex(LINE, max_segment_m=2000.0).state_key()
    assert LineIndex(LINE, max_segment_m=1000.0).state_key() != key
    moved = [LINE[0] + np.array([0.0, 1e-9])]
    assert LineIndex(moved, max_segment_m=2000.0).state_key() != key


def test_impossible_tables_are_refused_whole() -> None:
    lon, lat = _points(3, 5_000)
    src = LineIndex(LINE, max_segment_m=2000.0)
    src.nearest(lon, lat)
    good = src.export_state()

    def spoil(**change: np.ndarray) -> dict[str, np.ndarray]:
        return {**{k: v.copy() for k, v in good.items()}, **change}

    bad_cell = good["cells"].copy()
    bad_cell[0] = -5
    twice = good["cells"].copy()
    twice[1] = twice[0]
    bad_seg = good["segs"].copy()
    bad_seg[0, 0] = 10**6
    nan = good["dists"].copy()
    nan[0, 0] = np.nan
    grid = good["grid"].copy()
    grid[0] += 0.02
    cases = [
        (spoil(cells=bad_cell), "off the grid"),
        (spoil(cells=twice), "twice"),
        (spoil(segs=bad_seg), "segment"),
        (spoil(dists=nan), "distance"),
        (spoil(grid=grid), "another grid"),
        (spoil(segs=good["segs"].astype(np.int64)), "shape or type"),
        ({k: v for k, v in good.items() if k != "dists"}, "lack"),
        (LineIndex(LINE, max_segment_m=1000.0).export_state(), "another grid"),
    ]
    for state, why in cases:
        target = LineIndex(LINE, max_segment_m=2000.0)
        with pytest.raises(ValueError, match=why):
            target.import_state(state)
        assert target.filled_cells == 0
