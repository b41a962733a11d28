"""Salvos: located events fired from one point seconds apart.

Two located events are rounds of one salvo when they are close in time (at most ``max_gap_s``
apart) and their positions agree within their stated uncertainty (the difference of the two
fixes, under the sum of their covariances, inside the chi-square quantile at ``level`` for two
degrees of freedom), with the same signal. A salvo is a chain of such links (consecutive rounds),
so a long salvo is one salvo even when its first and last rounds are far apart in time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from truceline.core.arrays import FloatArray, IntArray

__all__ = ["SalvoOptions", "Salvos", "find_salvos"]


@dataclass(frozen=True)
class SalvoOptions:
    """Options of :func:`find_salvos`.

    Attributes
    ----------
    max_gap_s
        Longest time between two consecutive rounds of one salvo (s).
    level
        Probability of the chi-square test that two fixes are of one point.
    max_neighbours
        Later events (in time order) each event is compared with: a salvo's next round is among
        them unless that many other events were emitted in between.
    floor_m
        Added in quadrature to each fix's standard deviation (m): how far apart two guns of one
        battery may stand and still count as one firing point.
    """

    max_gap_s: float = 30.0
    level: float = 0.99
    max_neighbours: int = 16
    floor_m: float = 10.0


@dataclass(frozen=True)
class Salvos:
    """For every event, its salvo (the index of the salvo's first round; -1 when it is alone) and
    the number of rounds in that salvo (1 when alone)."""

    first: IntArray
    size: IntArray


def find_salvos(
    xy_m: FloatArray,
    emitted_s: FloatArray,
    cov_m2: FloatArray,
    signal: IntArray | None = None,
    options: SalvoOptions | None = None,
) -> Salvos:
    """Group located events into salvos.

    Parameters
    ----------
    xy_m
        (E, 2) positions in one plane (m).
    emitted_s
        (E,) emission times (s).
    cov_m2
        (E, 2, 2) covariances of the positions (m^2).
    signal
        (E,) signal codes; events of different known codes (> 0) are never one salvo.
    options
        Options.
    """
    opt = options or SalvoOptions()
    n = len(emitted_s)
    if n == 0:
        z = np.zeros(0, np.intp)
        return Salvos(z, z)
    order = np.argsort(emitted_s, kind="stable")
    t = np.asarray(emitted_s, np.float64)[order]
    xy = np.asarray(xy_m, np.float64)[order]
    cov = np.asarray(cov_m2, np.float64)[order] + np.eye(2) * opt.floor_m**2
    sg = np.zeros(n, np.intp) if signal is None else np.asarray(signal, np.intp)[order]
    limit = -2.0 * math.log1p(-opt.level)  # the chi-square quantile at 2 degrees of freedom
    ii: list[IntArray] = []
    jj: list[IntArray] = []
    for k in range(1, min(opt.max_neighbours, n - 1) + 1):  # a fixed number of shifts, not events
        i = np.arange(n - k)
        j = i + k
        near = (t[j] - t[i]) <= opt.max_gap_s
        near &= (sg[i] == sg[j]) | (sg[i] == 0) | (sg[j] == 0)
        if not near.any():
            break  # later shifts are further apart in time still
        i, j = i[near], j[near]
        d = xy[j] - xy[i]
        s = cov[i] + cov[j]
        det = s[:, 0, 0] * s[:, 1, 1] - s[:, 0, 1] ** 2
        ok = np.isfinite(det) & (det > 0) & np.all(np.isfinite(d), axis=1)
        det = np.where(ok, det, 1.0)
        m2 = (
            s[:, 1, 1] * d[:, 0] ** 2 - 2 * s[:, 0, 1] * d[:, 0] * d[:, 1] + s[:, 0, 0] * d[:, 1] ** 2
        ) / det
        link = ok & (m2 <= limit)
        ii.append(i[link])
        jj.append(j[link])
    rows = np.concatenate([*ii, np.zeros(0, np.intp)])
    cols = np.concatenate([*jj, np.zeros(0, np.intp)])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    size_of = np.bincount(label, minlength=int(label.max()) + 1)
    # a salvo's first round: the earliest in time (``order`` is time order: its first position)
    first_t = np.full(len(size_of), n, np.intp)
    np.minimum.at(first_t, label, np.arange(n))
    size = np.empty(n, np.intp)
    first = np.empty(n, np.intp)
    size[order] = size_of[label]
    first[order] = np.where(size_of[label] > 1, order[first_t[label]], -1)
    return Salvos(first, size)
