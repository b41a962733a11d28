"""Detections as arrays: their signal codes, an index by (sensor, time), the detections of each
event padded into rows, and the solver's inputs gathered from those rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import numpy as np

from truceline.core.acoustic.network import SensorNetwork
from truceline.core.acoustic.solver import nanmedian_rows
from truceline.core.arrays import BoolArray, FloatArray, IntArray

__all__ = ["SIGNALS"]


SIGNALS: Final = ("unknown", "muzzle_blast", "impact")
"""Signal codes: index into this tuple (0 unknown, 1 muzzle blast, 2 impact)."""


@dataclass(frozen=True)
class DetectionIndex:
    """Detections sorted by (sensor, time), searchable with one float key."""

    keys: FloatArray
    det: IntArray
    stride: float
    t_base: float

    @classmethod
    def build(
        cls, det: IntArray, sensor: IntArray, t: FloatArray, stride: float, t_base: float
    ) -> DetectionIndex:
        """Index the detections ``det`` (sensor and time of each in ``sensor``, ``t``); ``stride``
        exceeds the span of the times (s) and ``t_base`` is their minimum."""
        keys = sensor[det] * stride + (t[det] - t_base)
        o = np.argsort(keys, kind="stable")
        return cls(keys[o], det[o], stride, t_base)

    @functools.cached_property
    def _padded(self) -> FloatArray:
        """The keys between -inf and +inf."""
        return np.concatenate([[-np.inf], self.keys, [np.inf]])

    def key(self, sensor: IntArray, t: FloatArray) -> FloatArray:
        """The search key of a time at a sensor."""
        return sensor * self.stride + (t - self.t_base)

    def two_nearest(
        self, sensor: IntArray, t_pred: FloatArray, tol: FloatArray, sensor_ok: BoolArray
    ) -> tuple[tuple[IntArray, FloatArray], tuple[IntArray, FloatArray]]:
        """The nearest detection at ``sensor`` before and after ``t_pred`` within ``tol`` (-1)."""
        if len(self.keys) == 0:
            none = (np.full(np.shape(t_pred), -1, np.intp), np.full(np.shape(t_pred), np.inf))
            return none, none
        kq = self.key(np.where(sensor_ok, sensor, 0), t_pred)
        pos = np.searchsorted(self.keys, kq)
        out = []
        for p in (pos - 1, pos):  # the one before and the one after
            pc = np.clip(p, 0, len(self.keys) - 1)
            d = np.abs(self.keys[pc] - kq)
            good = sensor_ok & (p >= 0) & (p < len(self.keys)) & (d <= tol)
            out.append((np.where(good, self.det[pc], -1), np.where(good, d, np.inf)))
        return out[0], out[1]

    def nearest(
        self, sensor: IntArray, t_pred: FloatArray, tol: FloatArray, sensor_ok: BoolArray
    ) -> tuple[IntArray, FloatArray]:
        """Nearest detection at ``sensor`` to ``t_pred`` within ``tol`` (-1 when none)."""
        if len(self.keys) == 0:
            return np.full(np.shape(t_pred), -1, np.intp), np.full(np.shape(t_pred), np.inf)
        kq = self.key(np.where(sensor_ok, sensor, 0), t_pred)
        # in the keys padded with -inf and +inf, pos and pos + 1 are the neighbours below and above
        pos = np.searchsorted(self.keys, kq)
        padded = self._padded
        dlo = np.abs(padded[pos] - kq)
        dhi = np.abs(padded[pos + 1] - kq)
        below = dlo <= dhi
        dist = np.where(below, dlo, dhi)
        good = sensor_ok & (dist <= tol)
        pick = np.where(below, pos - 1, pos)
        return np.where(good, self.det[np.where(good, pick, 0)], -1), np.where(good, dist, np.inf)


def pad_groups(event: IntArray, n_events: int, order_key: FloatArray) -> IntArray:
    """(E, K) detection indices per event (sorted by ``order_key``), -1 padded."""
    sel = np.flatnonzero(event >= 0)
    if n_events == 0 or len(sel) == 0:
        return np.full((n_events, 1), -1, np.intp)
    o = sel[np.lexsort((order_key[sel], event[sel]))]
    ev = event[o]
    counts = np.bincount(ev, minlength=n_events)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(len(o)) - start[ev]
    out = np.full((n_events, max(int(counts.max()), 1)), -1, np.intp)
    out[ev, pos] = o
    return out


def gather(
    net: SensorNetwork,
    groups: IntArray,
    det_sensor: IntArray,
    det_time_s: FloatArray,
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray, BoolArray, FloatArray]:
    """The solver's inputs for (E, K) padded groups of detections (:func:`pad_groups`).

    Returns each event's frame (that of its first arrival), the sensors' positions in it (m), the
    arrival times relative to the first (s), the timing sigmas (s), the sensors' heights above the
    source (m; the source at the group's median elevation), the mask of filled slots, and each
    event's reference time (the first arrival, POSIX s).
    """
    mask = groups >= 0
    g = np.where(mask, groups, 0)
    sens = det_sensor[g]
    t_abs = det_time_s[g]
    t_ref = np.min(np.where(mask, t_abs, np.inf), axis=1)
    t_ref = np.where(np.isfinite(t_ref), t_ref, 0.0)
    first = sens[np.arange(len(g)), np.argmin(np.where(mask, t_abs, np.inf), axis=1)]
    frame = net.frame_of_sensor[first]
    sxy = net.xy_m[frame[:, None], sens]
    elev = net.elevation_m[sens]
    src_elev = nanmedian_rows(np.where(mask, elev, np.nan), axis=1) if mask.any() else np.zeros(len(g))
    dz = elev - np.nan_to_num(src_elev)[:, None]
    sig = net.timing_sigma_ms[sens] * 1e-3
    return frame, sxy, np.where(mask, t_abs - t_ref[:, None], 0.0), sig, dz, mask, t_ref
