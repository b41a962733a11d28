"""``truceline locate``: acoustic detections to located events, written to a file or stored.

Thin wrappers over :mod:`truceline.services.acoustic`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from truceline.cli.options import (
    FILE,
    DbOption,
    agreement_option,
    console,
    err_console,
    fail,
    output_option,
    read_agreement_folder,
)
from truceline.errors import TrucelineError

__all__ = ["locate", "run_locate"]


def _agreement(path: Path | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    from truceline.cli.options import upload_limits
    from truceline.io.agreement_files import load_agreement

    return load_agreement(path, upload_limits())


def run_locate(
    sensors: Path,
    detections: Path,
    weather: Path | None,
    output: Path,
    rejects: Path | None = None,
    now_s: float | None = None,
    agreement: Path | None = None,
    max_range_km: float | None = None,
) -> dict[str, int]:
    """Read the inputs, locate (and attribute) the events, write ``output`` and the rejects file."""
    from truceline.services.acoustic import run_acoustic, write_locate_outputs

    run = run_acoustic(
        sensors, detections, weather, agreement=_agreement(agreement), now_s=now_s,
        max_range_km=max_range_km,
    )  # fmt: skip
    rej_path = rejects or output.with_name(output.stem + ".rejects.csv")
    n_rej = write_locate_outputs(run, output, rej_path, detections_file=detections.name)
    counts = {
        "events": len(run.events),
        "detections": len(run.detections.sensor),
        "rejected": len(run.rejects),
        "unassigned": len(run.result.unassigned.detection),
        "rows_in_rejects_file": n_rej,
    }
    if run.attribution is not None:
        counts["attributed"] = int(sum(r not in ("", "undetermined") for r in
                                       run.attribution.responsible.tolist()))  # fmt: skip
    return counts


def locate(
    sensors: Annotated[
        Path,
        typer.Option(
            "--sensors",
            metavar="SENSORS_FILE",
            help="sensors.csv (sensor_id, lon, lat, ...)",
            exists=True,
        ),
    ],
    detections: Annotated[
        Path,
        typer.Option(
            "--detections",
            metavar="DETECTIONS_FILE",
            help="detections.csv (detection_id, sensor_id, arrival_time, ...)",
            exists=True,
        ),
    ],
    weather: Annotated[
        Path | None,
        typer.Option(
            "--weather",
            metavar="WEATHER_FILE",
            help="weather.csv (time, temperature_c, wind_speed_mps, wind_from_deg, and their "
            "uncertainties temperature_sigma_c, wind_sigma_mps: default 2 deg C, 2 m/s); a prior: "
            "speed of sound and wind are estimated around it, and a reading the detections "
            "contradict is replaced by what the network measures",
        ),
    ] = None,
    max_range_km: Annotated[
        float | None,
        typer.Option(
            "--max-range-km",
            metavar="KM",
            min=0.1,
            help="Association radius: sensors farther than this from an event are not expected to "
            "hear it (default: 25 km, or on a sparse network 1.2 x the distance at which every "
            "sensor has 4 others)",
        ),
    ] = None,
    output: Annotated[Path, output_option("events.csv to write (without --store)")] = Path("events.csv"),
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects",
            metavar=FILE,
            help="Rows left out, with reasons (without --store; default: OUTPUT.rejects.csv)",
        ),
    ] = None,
    agreement: Annotated[
        Path | None,
        agreement_option(
            "Agreement folder: adds who fired (p_<party>) to each event; needed by --store"
        ),
    ] = None,
    store: Annotated[
        bool,
        typer.Option(
            "--store",
            help="Store the events in --db as adjudicated incidents (idempotent), not in files",
        ),
    ] = False,
    db: DbOption = "truceline.db",
) -> None:
    """Locate acoustic events from detections: write events.csv, or store them (--store).

    Detections are grouped into events and each event is located. Every row left out (bad input, or
    a detection that fits no event) goes to the rejects file, or with --store to the batch's rejects,
    with its reason. With an agreement, each event also says which party fired it and how likely.
    """
    try:
        if store:
            if agreement is None:
                raise typer.BadParameter(
                    "--store needs the agreement: give -a AGREEMENT_DIR", param_hint="--store"
                )
            _store(sensors, detections, weather, agreement, db, max_range_km)
            return
        counts = run_locate(
            sensors, detections, weather, output, rejects, agreement=agreement,
            max_range_km=max_range_km,
        )  # fmt: skip
    except TrucelineError as exc:
        raise fail(exc) from exc
    extra = (
        f"{counts['attributed']} attributed to a party at p >= 0.8 or <= 0.2; "
        if "attributed" in counts
        else ""
    )
    err_console.print(
        f"{counts['events']} events located from {counts['detections']} detections; {extra}"
        f"{counts['rejected']} input rows rejected, {counts['unassigned']} detections in no event "
        f"(reasons in {(rejects or output.with_name(output.stem + '.rejects.csv'))}); "
        f"wrote {output}"
    )


def _store(
    sensors: Path,
    detections: Path,
    weather: Path | None,
    agreement: Path,
    db: str,
    max_range_km: float | None = None,
) -> None:
    import datetime as dt

    from truceline.services.acoustic import ingest_acoustic
    from truceline.store.db import make_engine, session_factory, upgrade

    folder = read_agreement_folder(agreement)
    engine = make_engine(db)
    upgrade(engine)
    with session_factory(engine)() as session, session.begin():
        folder.register(session, dt.datetime.now(dt.UTC))
        res = ingest_acoustic(
            session, folder.agreement, sensors, detections, weather, max_range_km=max_range_km
        )
    console.print(
        f"Ingested {detections}: {res.events} events located, {res.accepted} accepted, "
        f"{res.duplicates} duplicates, {res.rejected} input rows rejected, {res.unassigned} "
        f"detections in no event, {res.findings} findings (batch {res.batch_id}, db {db})"
    )
