"""The sensor network: the sensors, the local frames that tile it, and a KD-tree per frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from truceline.core.acoustic.propagation import AcousticError
from truceline.core.arrays import FloatArray, IntArray
from truceline.core.geodesy import LocalFrame

__all__ = ["SensorNetwork"]


@dataclass(frozen=True, eq=False)
class SensorNetwork:
    """Acoustic sensors, with their coordinates in every frame.

    Build with :meth:`build`. ``xy_m[f, i]`` is sensor ``i`` in frame ``f``; ``frame_of_sensor[i]``
    is the frame that holds sensor ``i`` (events are solved in the frame of their first arrival).
    """

    sensor_id: NDArray[np.str_]
    lon: FloatArray
    lat: FloatArray
    elevation_m: FloatArray
    timing_sigma_ms: FloatArray
    frames: tuple[LocalFrame, ...]
    frame_of_sensor: IntArray
    xy_m: FloatArray
    trees: tuple[cKDTree, ...] = field(repr=False)

    @classmethod
    def build(
        cls,
        sensor_id: ArrayLike,
        lon: ArrayLike,
        lat: ArrayLike,
        *,
        elevation_m: ArrayLike | None = None,
        timing_sigma_ms: ArrayLike | None = None,
        frame_size_km: float = 50.0,
    ) -> SensorNetwork:
        """Build a network from WGS84 positions.

        Parameters
        ----------
        sensor_id, lon, lat
            One entry per sensor; ids must be unique.
        elevation_m, timing_sigma_ms
            Defaults 0 m and 5 ms.
        frame_size_km
            Width of the square tiles that become local frames.
        """
        ids = np.asarray(sensor_id).astype(str)
        lon_a = np.asarray(lon, np.float64)
        lat_a = np.asarray(lat, np.float64)
        n = len(ids)
        if n < 3:
            raise AcousticError(f"sensors: a network needs at least 3 sensors, got {n}")
        if len(np.unique(ids)) != n:
            raise AcousticError("sensors: sensor_id values must be unique")
        if not (np.all(np.isfinite(lon_a)) and np.all(np.isfinite(lat_a))):
            raise AcousticError("sensors: every sensor needs a finite lon and lat")
        elev = np.zeros(n) if elevation_m is None else np.asarray(elevation_m, np.float64)
        sig = np.full(n, 5.0) if timing_sigma_ms is None else np.asarray(timing_sigma_ms, np.float64)
        if np.any(~np.isfinite(sig) | (sig <= 0)):
            raise AcousticError("sensors: timing_sigma_ms must be a positive number of milliseconds")
        elev = np.where(np.isfinite(elev), elev, 0.0)
        glob = LocalFrame.centred_on(lon_a, lat_a)
        gx, gy = glob.to_xy(lon_a, lat_a)
        size = frame_size_km * 1000.0
        cells = np.stack([np.floor(gx / size), np.floor(gy / size)], axis=1)
        _, frame_of = np.unique(cells, axis=0, return_inverse=True)
        frame_of = frame_of.ravel().astype(np.intp)
        n_frames = int(frame_of.max()) + 1
        cnt = np.bincount(frame_of, minlength=n_frames)
        cx = np.bincount(frame_of, gx, n_frames) / cnt
        cy = np.bincount(frame_of, gy, n_frames) / cnt
        clon, clat = glob.to_lonlat(cx, cy)
        frames = tuple(LocalFrame.centred(float(a), float(b)) for a, b in zip(clon, clat, strict=True))
        xy = np.empty((n_frames, n, 2))
        for f, fr in enumerate(frames):  # one pass per frame (a handful), vectorised inside
            xy[f, :, 0], xy[f, :, 1] = fr.to_xy(lon_a, lat_a)
        trees = tuple(cKDTree(xy[f]) for f in range(n_frames))
        return cls(ids, lon_a, lat_a, elev, sig, frames, frame_of, xy, trees)

    @property
    def n_sensors(self) -> int:
        """Number of sensors."""
        return len(self.sensor_id)

    def index_of(self, sensor_id: ArrayLike) -> IntArray:
        """Positions of the given ids in the network (-1 for an unknown id)."""
        ids = np.asarray(sensor_id).astype(str)
        order = np.argsort(self.sensor_id)
        sorted_ids = self.sensor_id[order]
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(order) - 1)
        found = sorted_ids[pos] == ids
        return np.where(found, order[pos], -1).astype(np.intp)
