"""``truceline import`` and ``truceline export ...``: files in the formats analysts use.

Formats: csv, geojson, gpkg (GeoPackage, opens in QGIS), kml, kmz, acled (ACLED-layout CSV) and,
for incidents, parquet (GeoParquet, read and written in blocks of columns);
by default from the file's suffix. Exports take the API's filters and write exactly what the same
filter lists.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from truceline.cli.options import (
    AGREEMENT_ID,
    TIME,
    AgreementOption,
    DbOption,
    EncodingOption,
    agreement_option,
    cli_principal,
    console,
    date_option,
    err_console,
    fail,
    format_option,
    output_option,
    read_agreement_folder,
    require_database,
    upload_limits,
    working,
)
from truceline.errors import TrucelineError

__all__ = ["export_app", "export_zones_cmd", "import_cmd"]


export_app = typer.Typer(
    help="Export incidents (any filtered view) or reference geodata: csv, geojson, gpkg, kml, kmz.\n\n"
    "Incidents also as acled and as parquet (GeoParquet).",
    no_args_is_help=True,
)

FormatOption = Annotated[
    str | None,
    format_option(
        "csv, geojson, gpkg, kml, kmz, acled or parquet (GeoParquet) (default: from the suffix)", "-f"
    ),
]


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for v in values or ():
        name, sep, party = v.rpartition("=")
        if not sep or not name or not party:
            raise typer.BadParameter(f"give NAME=PARTY, got {v!r}", param_hint=option)
        out[name] = party
    return out


def _when(text: str | None, name: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter("give ISO 8601, e.g. 2025-03-01T00:00:00Z", param_hint=name) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC) if len(text) <= 10 else t
        if t.tzinfo is None:
            raise typer.BadParameter("give a UTC offset, e.g. 2025-03-01T00:00:00Z", param_hint=name)
    return t.astimezone(dt.UTC)


@export_app.command("incidents")
def export_incidents_cmd(
    output: Annotated[Path, output_option("File to write")],
    fmt: FormatOption = None,
    db: DbOption = "truceline.db",
    agreement_id: Annotated[
        str | None,
        typer.Option(metavar=AGREEMENT_ID, help="Agreement (default: the only one stored)"),
    ] = None,
    bbox: Annotated[
        str | None, typer.Option(metavar="W,S,E,N", help="west,south,east,north (WGS84 deg)")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            metavar=TIME,
            help="observed_at >= start (ISO 8601, e.g. 2025-03-01T06:00Z; a date is UTC midnight)",
        ),
    ] = None,
    end: Annotated[str | None, typer.Option(metavar=TIME, help="observed_at < end")] = None,
    kind: Annotated[list[str] | None, typer.Option(metavar="KIND", help="Kind (repeatable)")] = None,
    party: Annotated[str | None, typer.Option(metavar="PARTY")] = None,
    sector: Annotated[str | None, typer.Option(metavar="SECTOR")] = None,
    rule: Annotated[str | None, typer.Option(metavar="RULE", help="Has a finding of this rule")] = None,
    status: Annotated[
        str | None,
        typer.Option(metavar="STATUS", help="Review status: new, verified, rejected, sent_back"),
    ] = None,
    source_type: Annotated[str | None, typer.Option(metavar="SOURCE_TYPE")] = None,
    actor: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=PARTY",
            help="ACLED: 'actor name=PARTY' written in actor1 (repeatable; as for import)",
        ),
    ] = None,
) -> None:
    """Write the incidents a filter selects (the same filter as GET /api/v1/incidents)."""
    from truceline.services import queries
    from truceline.services.agreement_store import AgreementCache
    from truceline.services.exchange import export_incidents
    from truceline.store.db import Database

    names = {p: n for n, p in _pairs(actor, "--actor").items()}
    database = Database(require_database(db))
    try:
        database.upgrade()
        with database.read() as s:
            flt = queries.IncidentFilter(
                agreement_id=AgreementCache().default_id(s, agreement_id),
                bbox=queries.BBox.parse(bbox) if bbox else None,
                start=_when(start, "--start"),
                end=_when(end, "--end"),
                kind=list(kind or ()),
                party=party,
                sector=sector,
                rule=rule,
                status=status,
                source_type=source_type,
            )
            with working(f"Writing {output}"):
                n = export_incidents(s, flt, output, fmt, scope=cli_principal().scope, party_names=names)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    console.print(f"Wrote {n} incidents of {flt.agreement_id} to {output}")


@export_app.command("zones")
def export_zones_cmd(
    output: Annotated[Path, output_option("File to write")],
    agreement: Annotated[
        Path | None, agreement_option("Agreement folder (or --db with --agreement-id)")
    ] = None,
    fmt: Annotated[
        str | None, format_option("csv, geojson, gpkg, kml or kmz (default: from the suffix)", "-f")
    ] = None,
    date: Annotated[
        str | None,
        date_option("Version in force on this day (default: today, or entry into force if later)"),
    ] = None,
    db: DbOption = "truceline.db",
    agreement_id: Annotated[
        str | None,
        typer.Option(metavar=AGREEMENT_ID, help="Stored agreement, without -a (default: the only one)"),
    ] = None,
) -> None:
    """Write the line, the zones per side, sectors and observation posts (reference geodata)."""
    from truceline.services.exchange import export_geodata

    try:
        if agreement is not None:
            from truceline.io.agreement_files import load_agreement

            ag = load_agreement(agreement, upload_limits())
        else:
            from truceline.services.agreement_store import AgreementCache
            from truceline.store.db import Database

            database = Database(require_database(db))
            try:
                database.upgrade()
                cache = AgreementCache()
                with database.read() as s:
                    ag = cache.get(s, cache.default_id(s, agreement_id))
            finally:
                database.dispose()
        if date:
            day = dt.date.fromisoformat(date)
        else:  # the version in force today; before entry into force, the first one
            day = max(dt.datetime.now(dt.UTC).date(), ag.effective_from)
        n = export_geodata(ag, day, output, fmt)
    except TrucelineError as exc:
        raise fail(exc) from exc
    console.print(f"Wrote {n} features of {ag.id} (in force on {day}) to {output}")


ImportFormatOption = Annotated[
    str | None,
    format_option(
        "csv, parquet (GeoParquet), geojson, gpkg, kml, kmz, acled (CSV or the API's JSON), "
        "acled-deletions or cot "
        "(default: from the suffix)",
        "-f",
    ),
]


def _import_deletions(file: Path, agreement: Path, db: str, rejects: Path | None) -> None:
    """``import --format acled-deletions``: withdraw the stored reports ACLED deleted."""
    from truceline.io.incidents_io import write_rejects
    from truceline.services.exchange import import_acled_deletions
    from truceline.store.db import Database

    database = Database(db)
    try:
        folder = read_agreement_folder(agreement)
        database.upgrade()

        def work(s):  # type: ignore[no-untyped-def]
            now = dt.datetime.now(dt.UTC)
            folder.register(s, now)
            return import_acled_deletions(s, folder.agreement, file, principal=cli_principal(), now=now)

        out = database.write(work)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    console.print(
        f"Applied {file} (acled-deletions): {len(out.withdrawn)} withdrawn, {len(out.already)} "
        f"already withdrawn, {len(out.not_stored)} not stored here, {len(out.rejects)} rejected, "
        f"{out.findings_withdrawn} findings withdrawn"
    )
    for r in out.rejects[:10]:
        err_console.print(f"  rejected {r}")
    if rejects is not None:
        write_rejects(rejects, out.rejects)


def _import_cot(file: Path, agreement: Path, db: str, rejects: Path | None) -> None:
    """``import --format cot``: a capture of CoT events, through the listener's path."""
    from truceline.io.incidents_io import write_rejects
    from truceline.services.submissions import Verdict
    from truceline.store.db import Database
    from truceline.tak.capture import import_capture

    database = Database(db)
    try:
        folder = read_agreement_folder(agreement)
        database.upgrade()

        def work(s):  # type: ignore[no-untyped-def]
            now = dt.datetime.now(dt.UTC)
            folder.register(s, now)
            return import_capture(s, folder.agreement, file, principal=cli_principal(), now=now)

        with err_console.status(f"Importing {file}: adjudicating and storing"):
            out = database.write(work)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    ignored = ", ".join(f"{k}* {n}" for k, n in sorted(out.ignored.items())) or "none"
    if out.positions is not None:
        console.print(
            f"Patrol positions (PLI): {out.positions.stored} stored, "
            f"{out.positions.duplicates} already stored"
        )
    console.print(
        f"Imported {file} (cot): {out.events} events, {out.count(Verdict.accepted)} accepted, "
        f"{out.count(Verdict.revised)} revised, {out.count(Verdict.duplicate)} duplicates, "
        f"{len(out.rejects)} rejected, {out.findings} findings; not reports: {ignored}"
    )
    for r in out.rejects[:10]:
        err_console.print(f"  rejected event {r}")
    if rejects is not None:
        write_rejects(rejects, out.rejects)


def _streamed(file: Path, fmt: str | None) -> bool:
    from truceline.io.formats import format_of
    from truceline.services.exchange import STREAMED_FORMATS

    try:
        return format_of(file, fmt) in STREAMED_FORMATS
    except TrucelineError:
        return False  # said by the whole-file path, as before


def _import_blocks(
    file: Path, agreement: Path, fmt: str | None, db: str, rejects: Path | None, encoding: str | None
) -> None:
    """A CSV or GeoParquet file stored block by block, each committed (bounded memory; a rerun
    after a failure stores the rest and counts the stored blocks as duplicates)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from truceline.io.incidents_io import write_rejects
    from truceline.services.exchange import BlockImport, import_incident_blocks
    from truceline.store.db import Database

    database = Database(db)
    try:
        folder = read_agreement_folder(agreement)
        limits = upload_limits()
        database.upgrade()
        database.write(lambda s: folder.register(s, dt.datetime.now(dt.UTC)))
        with Progress(
            TextColumn("[bold]Importing[/] {task.fields[rows]:>12,} rows"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%  {task.fields[rate]:>10,.0f} rows/s"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("import", total=1, rows=0, rate=0.0)

            def progress(so_far: BlockImport, done: int, size: int) -> None:
                elapsed = bar.tasks[0].elapsed or 1e-9
                bar.update(
                    task, total=max(size, 1), completed=done, rows=so_far.records,
                    rate=so_far.records / elapsed,
                )  # fmt: skip

            out = import_incident_blocks(
                database, folder.agreement, file, fmt, principal=cli_principal(),
                encoding=encoding, limits=limits, progress=progress,
            )  # fmt: skip
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    if out.encoding_detected:
        err_console.print(f"{file}: read as {out.encoding} (detected; --encoding to override)")
    ids = out.batch_ids
    batches = f"batch {ids[0]}" if len(ids) == 1 else f"batches {ids[0]}-{ids[-1]}" if ids else "-"
    console.print(
        f"Imported {file} ({out.format}): {out.accepted} accepted, {out.duplicates} "
        f"duplicates, {len(out.rejects)} rejected, {out.revised} revised, {out.findings} "
        f"findings ({batches}; {out.records:,} rows in {out.blocks} block(s), each committed)"
    )
    for r in out.rejects[:10]:
        err_console.print(f"  rejected {r}")
    if rejects is not None:
        write_rejects(rejects, out.rejects)


def import_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="INCIDENTS_FILE",
            help="csv, parquet (GeoParquet), geojson, gpkg, kml, kmz, ACLED csv or API JSON "
            "(--format acled), ACLED's "
            "deletions list (--format acled-deletions: withdraws those reports) or a file of CoT "
            "events (--format cot)",
        ),
    ],
    agreement: AgreementOption,
    fmt: ImportFormatOption = None,
    db: DbOption = "truceline.db",
    actor: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=PARTY",
            help="ACLED: 'actor name=PARTY' (repeatable); party ids and names match already",
        ),
    ] = None,
    rejects: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write the rejected rows here (CSV)")
    ] = None,
    encoding: EncodingOption = None,
) -> None:
    """Import incidents from a file: validated, adjudicated and stored idempotently by id.

    Rejected rows are kept in the store with their reasons (and written to --rejects if given).
    """
    from truceline.io.incidents_io import write_rejects
    from truceline.services.exchange import import_incidents
    from truceline.store.db import Database

    if (fmt or "").lower() == "cot":
        _import_cot(file, agreement, db, rejects)
        return
    if (fmt or "").lower() == "acled-deletions":
        _import_deletions(file, agreement, db, rejects)
        return
    actors = _pairs(actor, "--actor")
    if _streamed(file, fmt):
        _import_blocks(file, agreement, fmt, db, rejects, encoding)
        return
    database = Database(db)
    try:
        folder = read_agreement_folder(agreement)
        limits = upload_limits()
        database.upgrade()

        def work(s):  # type: ignore[no-untyped-def]
            now = dt.datetime.now(dt.UTC)
            folder.register(s, now)
            return import_incidents(
                s,
                folder.agreement,
                file,
                fmt,
                principal=cli_principal(),
                now=now,
                actors=actors,
                encoding=encoding,
                limits=limits,
            )

        # The import service reports no progress yet: a spinner says the command is working.
        with err_console.status(f"Importing {file}: adjudicating and storing"):
            out = database.write(work)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    res = out.stored
    if out.read.read.encoding_detected:
        err_console.print(f"{file}: read as {out.read.read.encoding} (detected; --encoding to override)")
    console.print(
        f"Imported {file} ({out.read.format}): {len(res.accepted)} accepted, {len(res.duplicates)} "
        f"duplicates, {len(res.rejects)} rejected, {len(res.revised)} revised, {res.findings} "
        f"findings (batch {res.batch_id})"
    )
    if out.read.report is not None:
        for line in out.read.report.lines():
            console.print(f"  {line}")
    for r in res.rejects[:10]:
        err_console.print(f"  rejected {r}")
    if rejects is not None:
        write_rejects(rejects, sorted(res.rejects, key=lambda r: r.row))
