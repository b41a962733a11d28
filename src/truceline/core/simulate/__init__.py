"""Simulators: what a mission would see, with the ground truth to measure the system against.

:mod:`.incidents` simulates the events along an agreement's line and the reports of them;
:mod:`.acoustic` an acoustic sensor network along a line, fire from both sides, its detections and
the reports they make.
"""

from __future__ import annotations

from truceline.core.simulate.incidents import Simulation, SimulationConfig, simulate

__all__ = ["Simulation", "SimulationConfig", "simulate"]
