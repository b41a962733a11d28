"""``truceline sensors ...``: register a network from sensors.csv, store detections.csv.

The same services as ``POST /api/v1/sensors`` and ``POST /api/v1/detections``: one verdict per
row, every change audited, detections idempotent by (sensor, detection id).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from truceline.cli.options import (
    AgreementOption,
    DbOption,
    cli_principal,
    console,
    err_console,
    fail,
    read_agreement_folder,
)
from truceline.errors import TrucelineError

__all__ = ["sensors_app"]

sensors_app = typer.Typer(
    help="Acoustic sensors and their detections in the store.", no_args_is_help=True
)


def _run(db: str, agreement: Path, work: Any) -> list[Any]:
    from truceline.store.db import Database

    try:
        folder = read_agreement_folder(agreement)
    except TrucelineError as exc:
        raise fail(exc) from exc
    d = Database(db)
    d.upgrade()
    now = dt.datetime.now(dt.UTC)

    def unit(s: Any) -> list[Any]:
        folder.register(s, now)
        out: list[Any] = work(s, folder.agreement, cli_principal(), now)
        return out

    try:
        return d.write(unit)
    finally:
        d.dispose()


def _report(name: str, path: Path, results: list[Any]) -> None:
    counts = Counter(str(r.status) for r in results)
    console.print(f"{name} {path}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    for r in [r for r in results if r.status == "rejected"][:10]:
        err_console.print(f"  row {r.index + 2} ({r.id}): {r.field}: {r.reason} (fix: {r.fix})")
    if counts.get("rejected"):
        raise typer.Exit(code=1)


@sensors_app.command("import")
def import_cmd(
    file: Annotated[
        Path, typer.Argument(metavar="SENSORS_FILE", help="sensors.csv (sensor_id, lon, lat, ...)")
    ],
    agreement: AgreementOption,
    db: DbOption = "truceline.db",
) -> None:
    """Register or update the sensors of sensors.csv (exit 1 when a row was rejected)."""
    from truceline.io.acoustic_csv import sensor_records
    from truceline.services.sensors import register_sensors

    records = sensor_records(file)
    res = _run(
        db, agreement, lambda s, ag, who, now: register_sensors(s, ag, records, actor=who, now=now)
    )
    _report("Sensors", file, res)


@sensors_app.command("detections")
def detections_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="DETECTIONS_FILE", help="detections.csv (detection_id, sensor_id, arrival_time)"
        ),
    ],
    agreement: AgreementOption,
    db: DbOption = "truceline.db",
) -> None:
    """Store the detections of detections.csv (idempotent; exit 1 when a row was rejected)."""
    from truceline.io.acoustic_csv import detection_records
    from truceline.services.sensors import submit_detections

    records = detection_records(file)
    res = _run(
        db, agreement, lambda s, ag, who, now: submit_detections(s, ag, records, actor=who, now=now)
    )
    _report("Detections", file, res)
