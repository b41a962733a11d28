"""Old command names kept, hidden, for one release: each warns on stderr and runs its replacement.

``ingest`` -> ``import``, ``agreement export`` -> ``export zones``, ``ingest-acoustic`` ->
``locate --store``. Remove this module (and its one call in :mod:`truceline.cli`) in the release
after the one that hid them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from truceline.cli.exchange import export_zones_cmd, import_cmd
from truceline.cli.locate import locate
from truceline.cli.options import (
    AgreementArg,
    AgreementOption,
    DbOption,
    date_option,
    err_console,
    output_option,
)

__all__ = ["ALIASES", "add_aliases"]

ALIASES: dict[str, str] = {
    "ingest": "import",
    "agreement export": "export zones",
    "ingest-acoustic": "locate --store",
}
"""Each deprecated command line and the one that replaces it."""


def _help(old: str, summary: str) -> str:
    new = ALIASES[old]
    return (
        f"Deprecated: use `truceline {new}` ({summary}).\n\n"
        f"`truceline {old}` still runs it in this release and is removed in the next."
    )


def _warn(old: str) -> None:
    err_console.print(
        f"warning: `truceline {old}` is deprecated and will be removed in the next release; "
        f"use `truceline {ALIASES[old]}`",
        markup=False,
        highlight=False,
    )


def _ingest() -> Callable[..., None]:
    # The same parameters as `import` (a superset of the old ones), so every old line still parses.
    @functools.wraps(import_cmd)
    def ingest(*args: Any, **kwargs: Any) -> None:
        _warn("ingest")
        import_cmd(*args, **kwargs)

    return ingest


def agreement_export(
    path: AgreementArg,
    output: Annotated[Path, output_option("GeoJSON file to write")],
    date: Annotated[str | None, date_option("Version in force on this date")] = None,
) -> None:
    _warn("agreement export")
    # Always GeoJSON, whatever the suffix, as before.
    export_zones_cmd(
        output=output, agreement=path, fmt="geojson", date=date, db="truceline.db", agreement_id=None
    )


def ingest_acoustic(
    sensors: Annotated[
        Path, typer.Option("--sensors", metavar="SENSORS_FILE", help="sensors.csv", exists=True)
    ],
    detections: Annotated[
        Path,
        typer.Option("--detections", metavar="DETECTIONS_FILE", help="detections.csv", exists=True),
    ],
    agreement: AgreementOption,
    weather: Annotated[
        Path | None,
        typer.Option("--weather", metavar="WEATHER_FILE", help="weather.csv (time, temperature_c, ...)"),
    ] = None,
    db: DbOption = "truceline.db",
) -> None:
    _warn("ingest-acoustic")
    locate(
        sensors=sensors,
        detections=detections,
        weather=weather,
        output=Path("events.csv"),
        rejects=None,
        agreement=agreement,
        store=True,
        db=db,
    )


def add_aliases(app: typer.Typer, agreement_app: typer.Typer) -> None:
    """Register the hidden aliases on the root app and the ``agreement`` group."""
    app.command(
        "ingest",
        hidden=True,
        help=_help("ingest", "the same options; it also reads gpkg, kml, kmz and ACLED"),
    )(_ingest())
    agreement_app.command(
        "export",
        hidden=True,
        help=_help("agreement export", "give the folder as -a AGREEMENT_DIR; any format"),
    )(agreement_export)
    app.command(
        "ingest-acoustic",
        hidden=True,
        help=_help("ingest-acoustic", "the same options"),
    )(ingest_acoustic)
