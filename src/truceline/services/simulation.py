"""Run the simulator and write its reports and ground truth (``truceline simulate``)."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

from truceline.core.agreement import Agreement
from truceline.core.simulate import Simulation, SimulationConfig, simulate
from truceline.io.incidents_io import write_incidents_csv

__all__ = ["run_simulation", "write_simulation"]


def write_simulation(sim: Simulation, folder: Path) -> dict[str, int]:
    """``reports.csv`` (what sources submitted) and ``truth.csv`` (what really happened)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_incidents_csv(folder / "reports.csv", sim.reports)
    keys: list[str] = []
    for t in sim.truth:
        for k in t:
            if k not in keys:
                keys.append(k)
    with (folder / "truth.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for t in sim.truth:
            w.writerow({k: (json.dumps(v) if isinstance(v, list | dict) else v) for k, v in t.items()})
    return {"reports": len(sim.reports), "truth": len(sim.truth)}


def run_simulation(
    agreement: Agreement,
    folder: Path,
    *,
    days: int = 1,
    seed: int = 0,
    start: dt.date | None = None,
    events_per_day: int = 400,
    violation_rate: float = 0.25,
) -> dict[str, int]:
    cfg = SimulationConfig(
        days=days,
        seed=seed,
        start=start,
        events_per_day=events_per_day,
        violation_rate=violation_rate,
    )
    return write_simulation(simulate(agreement, cfg), folder)
