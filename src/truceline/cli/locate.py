"""``truceline locate`` and ``truceline ingest-acoustic``: thin wrappers over
:mod:`truceline.services.acoustic`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["ingest_acoustic_cmd", "locate", "run_locate"]

_AgreementOpt = Annotated[
    Path | None,
    typer.Option("--agreement", "-a", help="Agreement folder: adds who fired (p_<party>) to each event"),
]


def _agreement(path: Path | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    from truceline.io.agreement_files import load_agreement

    return load_agreement(path)


def run_locate(
    sensors: Path,
    detections: Path,
    weather: Path | None,
    output: Path,
    rejects: Path | None = None,
    now_s: float | None = None,
    agreement: Path | None = None,
) -> dict[str, int]:
    """Read the inputs, locate (and attribute) the events, write ``output`` and the rejects file."""
    from truceline.services.acoustic import run_acoustic, write_locate_outputs

    run = run_acoustic(sensors, detections, weather, agreement=_agreement(agreement), now_s=now_s)
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
    agreement: _AgreementOpt = None,
) -> None:
    """Group acoustic detections into events, locate them, and write events.csv.

    Every row left out (bad input, or a detection that fits no event) goes to the rejects file
    with its reason. With an agreement, each event also says which party fired it and how likely.
    """
    console = Console(stderr=True)
    counts = run_locate(sensors, detections, weather, output, rejects, agreement=agreement)
    extra = (
        f"{counts['attributed']} attributed to a party at p >= 0.8 or <= 0.2; "
        if "attributed" in counts
        else ""
    )
    console.print(
        f"{counts['events']} events located from {counts['detections']} detections; {extra}"
        f"{counts['rejected']} input rows rejected, {counts['unassigned']} detections in no event "
        f"(reasons in {(rejects or output.with_name(output.stem + '.rejects.csv'))}); "
        f"wrote {output}"
    )


def ingest_acoustic_cmd(
    sensors: Annotated[Path, typer.Option("--sensors", help="sensors.csv", exists=True)],
    detections: Annotated[Path, typer.Option("--detections", help="detections.csv", exists=True)],
    agreement: Annotated[Path, typer.Option("--agreement", "-a", help="Agreement folder")],
    weather: Annotated[
        Path | None, typer.Option("--weather", help="weather.csv (time, temperature_c, ...)")
    ] = None,
    db: Annotated[
        str,
        typer.Option("--db", envvar="TRUCELINE_DB", help="SQLite file path or SQLAlchemy URL"),
    ] = "truceline.db",
) -> None:
    """Locate acoustic detections and store the events as incidents (idempotent), adjudicated.

    Detections that fit no event and bad input rows are stored as rejects with their reasons.
    """
    from truceline.services.acoustic import ingest_acoustic
    from truceline.store.db import make_engine, session_factory, upgrade

    ag = _agreement(agreement)
    engine = make_engine(db)
    upgrade(engine)
    with session_factory(engine)() as session, session.begin():
        res = ingest_acoustic(session, ag, agreement, sensors, detections, weather)
    Console().print(
        f"Ingested {detections}: {res.events} events located, {res.accepted} accepted, "
        f"{res.duplicates} duplicates, {res.rejected} input rows rejected, {res.unassigned} "
        f"detections in no event, {res.findings} findings (batch {res.batch_id}, db {db})"
    )
