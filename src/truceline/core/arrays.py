"""Array type aliases shared by the core's vectorised kernels (one owner for each)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BoolArray", "FloatArray", "IntArray", "unique_inverse"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]


_MULT = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime
_FEW_ROWS = 4096


def unique_inverse(values: NDArray[Any]) -> tuple[NDArray[Any], NDArray[np.intp]]:
    """``np.unique(values, return_inverse=True)`` for a 1-D column, the same result, faster for
    text: a column of text (numpy ``str_``) is grouped by a 64-bit hash of its characters (integers
    sort far faster than text), every row checked equal to its group's first, and only the few
    distinct values sorted as text. A hash shared by two texts (never seen; checked) falls back to
    ``np.unique``."""
    a = np.ascontiguousarray(values)
    if a.ndim != 1 or a.dtype.kind != "U" or a.size < _FEW_ROWS or a.dtype.itemsize == 0:
        uniq, inv = np.unique(a, return_inverse=True)
        return uniq, inv.reshape(-1)
    chars = a.view(np.uint32).reshape(a.size, -1)
    h = np.full(a.size, 0xCBF29CE484222325, np.uint64)
    with np.errstate(over="ignore"):
        for j in range(chars.shape[1]):  # per character position (a few dozen), not per row
            h = (h ^ chars[:, j]) * _MULT
    _, first, group = np.unique(h, return_index=True, return_inverse=True)
    group = group.reshape(-1)
    cand = a[first]
    if not np.array_equal(cand[group], a):  # two texts with one hash: the plain way
        uniq, inv = np.unique(a, return_inverse=True)
        return uniq, inv.reshape(-1)
    order = np.argsort(cand, kind="stable")
    rank = np.empty(order.size, np.intp)
    rank[order] = np.arange(order.size)
    return cand[order], rank[group]
