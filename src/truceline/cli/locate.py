"""``truceline locate``: group acoustic detections into events, locate them and write events.csv."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["locate", "run_locate"]


def run_locate(
    sensors: Path,
    detections: Path,
    weather: Path | None,
    output: Path,
    rejects: Path | None = None,
    now_s: float | None = None,
) -> dict[str, int]:
    """Read the inputs, locate the events, write ``output`` and the rejects file; return counts."""
    from truceline.core.acoustic import Weather, locate_detections
    from truceline.io.acoustic_csv import (
        read_detections,
        read_sensors,
        read_weather,
        write_events,
        write_rejects,
    )

    sens = read_sensors(sensors)
    dets = read_detections(detections, sens, now_s=now_s)
    bad = list(sens.rejects) + list(dets.rejects)
    wx: Weather | None = None
    if weather is not None:
        wx, w_rej = read_weather(weather)
        bad += w_rej
    rej_path = rejects or output.with_name(output.stem + ".rejects.csv")
    if sens.network is None or len(dets.sensor) == 0:
        from truceline.core.acoustic import LocatedEvents

        empty = LocatedEvents.empty()
        write_events(output, empty, dets.detection_id)
        n_rej = write_rejects(rej_path, bad)
        return {"events": 0, "detections": len(dets.sensor), "rejected": n_rej, "unassigned": 0}
    res = locate_detections(
        sens.network, dets.sensor, dets.arrival_s, weather=wx, det_signal=dets.signal,
        det_amplitude_db=dets.amplitude_db,
    )  # fmt: skip
    write_events(output, res.events, dets.detection_id)
    n_rej = write_rejects(
        rej_path, bad, res.unassigned, dets.detection_id, dets.line, detections.name
    )
    return {
        "events": len(res.events),
        "detections": len(dets.sensor),
        "rejected": len(bad),
        "unassigned": len(res.unassigned.detection),
        "rows_in_rejects_file": n_rej,
    }


def locate(
    sensors: Annotated[Path, typer.Option("--sensors", help="sensors.csv", exists=True)],
    detections: Annotated[Path, typer.Option("--detections", help="detections.csv", exists=True)],
    weather: Annotated[
        Path | None, typer.Option("--weather", help="weather.csv (time, temperature_c, ...)")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="events.csv to write")] = Path(
        "events.csv"
    ),
    rejects: Annotated[
        Path | None, typer.Option("--rejects", help="rows left out, with reasons")
    ] = None,
) -> None:
    """Group acoustic detections into events, locate them, and write events.csv.

    Every row left out (bad input, or a detection that fits no event) goes to the rejects file
    with its reason.
    """
    console = Console(stderr=True)
    counts = run_locate(sensors, detections, weather, output, rejects)
    console.print(
        f"{counts['events']} events located from {counts['detections']} detections; "
        f"{counts['rejected']} input rows rejected, {counts['unassigned']} detections in no event "
        f"(reasons in {(rejects or output.with_name(output.stem + '.rejects.csv'))}); "
        f"wrote {output}"
    )
