"""Acoustic localisation (sound ranging): sensor networks, association and batched location.

Model (``../shared/brief/technical.md``): a detection at sensor ``i`` arrives at
``t_i = t0 + d_i / (c + w . u_i) + n_i`` with ``d_i`` the 3-D distance from the source to the sensor,
``u_i`` the unit vector of propagation, ``c = 331.3 + 0.606 T`` m/s the speed of sound at ``T`` deg C,
``w`` the wind (east, north; m/s) and ``n_i ~ N(0, sigma_i^2)``.

Everything is computed in local azimuthal-equidistant planes (metres, x east, y north) centred on
*frames*: tiles of the network about 50 km wide, so that a 1,300 km network stays exact to well under a
metre; positions are returned in WGS84 lon/lat.

The hot paths are vectorised over events: association builds and scores hypotheses for all seeds at
once, and :func:`solve_events` runs one batched Levenberg-Marquardt over all events (robust soft-L1
IRLS, outlier rejection, then plain maximum likelihood on the inliers).

Modules, each importing only those above it: :mod:`.propagation` (speed of sound, wind, weather,
:class:`AcousticError`), :mod:`.network` (:class:`SensorNetwork`), :mod:`.solver` (the batched
solver, the Cramér-Rao bound, error ellipses), :mod:`.detections` (signal codes, the detection
index, padded groups), :mod:`.associate` (association), :mod:`.salvo` (rounds of one firing
point) and :mod:`.locate` (the pipeline).
"""

from __future__ import annotations

from truceline.core.acoustic.associate import AssociationOptions, associate
from truceline.core.acoustic.detections import SIGNALS
from truceline.core.acoustic.locate import (
    LocatedEvents,
    LocationResult,
    Unassigned,
    locate_detections,
)
from truceline.core.acoustic.network import SensorNetwork
from truceline.core.acoustic.propagation import (
    AcousticError,
    Weather,
    speed_of_sound_mps,
    wind_vector_mps,
)
from truceline.core.acoustic.salvo import SalvoOptions, Salvos, find_salvos
from truceline.core.acoustic.solver import (
    SolveResult,
    SolverOptions,
    cramer_rao_bound,
    error_ellipse,
    solve_events,
)

__all__ = [
    "SIGNALS",
    "AcousticError",
    "AssociationOptions",
    "LocatedEvents",
    "LocationResult",
    "SalvoOptions",
    "Salvos",
    "SensorNetwork",
    "SolveResult",
    "SolverOptions",
    "Unassigned",
    "Weather",
    "associate",
    "cramer_rao_bound",
    "error_ellipse",
    "find_salvos",
    "locate_detections",
    "solve_events",
    "speed_of_sound_mps",
    "wind_vector_mps",
]
