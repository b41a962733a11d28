"""core.arrays.unique_inverse: np.unique's answer, by hashing text columns."""

from __future__ import annotations

import numpy as np
import pytest

from truceline.core import arrays
from truceline.core.arrays import unique_inverse


@pytest.mark.parametrize(
    "values",
    [
        ["heavy_weapon", "explosion", "", "drone_flight", "ок-кирилиця", "x" * 40, "a\x00"],
        [str(i) for i in range(3000)],
        ["", " "],
    ],
)
def test_same_as_np_unique(values: list[str]) -> None:
    rng = np.random.default_rng(5)
    a = np.array(values)[rng.integers(0, len(values), 20_000)]
    want_u, want_i = np.unique(a, return_inverse=True)
    got_u, got_i = unique_inverse(a)
    assert got_u.dtype == want_u.dtype
    assert got_u.tolist() == want_u.tolist()
    assert got_i.tolist() == want_i.reshape(-1).tolist()
    assert got_u[got_i].tolist() == a.tolist()


def test_a_shared_hash_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every text hashed alike (a multiplier of 0): the check sees it and np.unique decides."""
    monkeypatch.setattr(arrays, "_MULT", np.uint64(0))
    a = np.array(["b", "a", "c", "a"] * 2000)
    u, i = unique_inverse(a)
    assert u.tolist() == ["a", "b", "c"]
    assert u[i].tolist() == a.tolist()
