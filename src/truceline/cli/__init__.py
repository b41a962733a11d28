"""The ``truceline`` command line: thin wrappers that parse, call the services and print."""

from __future__ import annotations

import csv
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from truceline.cli.aliases import add_aliases
from truceline.cli.attach import attach_cmd
from truceline.cli.exchange import export_app, import_cmd
from truceline.cli.ledger import ledger_app
from truceline.cli.locate import locate
from truceline.cli.options import (
    DIR,
    FILE,
    FORMAT,
    KM,
    KM_LIST,
    PORT,
    AgreementArg,
    AgreementOption,
    DbOption,
    EncodingOption,
    N,
    agreement_option,
    console,
    date_option,
    err_console,
    fail,
    output_option,
    require_database,
    upload_limits,
    working,
)
from truceline.cli.plan import plan_app
from truceline.cli.sensors import sensors_app
from truceline.cli.server import serve as serve_cmd
from truceline.cli.server import token_app
from truceline.cli.territory import from_territory_cmd
from truceline.errors import TrucelineError, ValidationError

if TYPE_CHECKING:
    from typer._click import Context  # what TyperGroup.list_commands takes (typer vendors click)

__all__ = ["app", "main"]

# The panels of `truceline --help`, in this order.
AGREEMENT = "Agreement"
DATA = "Data"
ANALYSIS = "Analysis"
SERVER = "Server"
LEDGER = "Ledger"
PANELS = (AGREEMENT, DATA, ANALYSIS, SERVER, LEDGER)


class _PanelOrder(TyperGroup):
    """Lists the commands panel by panel in :data:`PANELS` order (typer puts every single command
    before every group, so a panel of groups alone would come after the others)."""

    def list_commands(self, ctx: Context) -> list[str]:
        def rank(name: str) -> int:
            panel = getattr(self.commands[name], "rich_help_panel", None)
            return PANELS.index(panel) if panel in PANELS else len(PANELS)

        return sorted(super().list_commands(ctx), key=rank)


app = typer.Typer(
    name="truceline",
    cls=_PanelOrder,
    help="Truceline: the information system of a ceasefire-verification mission.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agreement_app = typer.Typer(help="Validate and summarise an agreement folder.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance: create or migrate the schema.", no_args_is_help=True)

# What is not defined below; panels and order as `truceline --help` shows them.
app.add_typer(agreement_app, name="agreement", rich_help_panel=AGREEMENT)
app.add_typer(plan_app, name="plan", rich_help_panel=AGREEMENT)
app.command("import", rich_help_panel=DATA)(import_cmd)
app.command("attach", rich_help_panel=DATA)(attach_cmd)
app.add_typer(export_app, name="export", rich_help_panel=DATA)
app.add_typer(sensors_app, name="sensors", rich_help_panel=DATA)
app.add_typer(db_app, name="db", rich_help_panel=DATA)
app.command("locate", rich_help_panel=ANALYSIS)(locate)
app.command("serve", rich_help_panel=SERVER)(serve_cmd)
app.add_typer(token_app, name="token", rich_help_panel=SERVER)
app.add_typer(ledger_app, name="ledger", rich_help_panel=LEDGER)
add_aliases(app, agreement_app)  # hidden, for one release


def _load(path: Path):  # type: ignore[no-untyped-def]
    from truceline.io.agreement_files import load_agreement

    try:
        with working(f"Reading and checking the agreement {path}"):
            return load_agreement(path, upload_limits())
    except TrucelineError as exc:
        raise fail(exc) from exc


agreement_app.command("from-territory")(from_territory_cmd)


@agreement_app.command("check")
def agreement_check(path: AgreementArg) -> None:
    """Validate an agreement and print its line length, zone areas per side and sectors."""
    ag = _load(path)
    from truceline.services.agreement import agreement_summary

    with working("Measuring the line, zones and sectors"):
        s = agreement_summary(ag)
    console.print(f"[bold]{ag.name}[/] ({ag.id}) - valid")
    console.print(f"Parties: left {ag.left}, right {ag.right}; effective from {ag.effective_from}")
    for v in s["versions"]:
        console.print(
            f"Version from {v['effective_from']}: line {v['line_length_km']:.1f} km (geodesic), "
            f"{v['n_rules']} rules"
        )
        terr = ", ".join(f"{p} {v['territory_km2'][p]:,.0f}" for p in (ag.left, ag.right))
        console.print(
            f"  Area of application {v['area_km2']:,.0f} km2; each party's side of the line: {terr} km2",
            highlight=False,
        )
        console.print("  Geometry, as Truceline reads it:")
        for a in v["assumptions"]:
            console.print(f"  - {a}", highlight=False, soft_wrap=True)
        t = Table("zone", *(f"{p} side km2" for p in (ag.left, ag.right)), title="Zones")
        for z in v["zones"]:
            t.add_row(z["id"], f"{z['area_km2'][ag.left]:,.1f}", f"{z['area_km2'][ag.right]:,.1f}")
        console.print(t)
    if s["sectors"]:
        t = Table("sector", "nation", "name", "line km", title="Sectors")
        for sec in s["sectors"]:
            t.add_row(sec["id"], sec["nation"], sec["name"], f"{sec['line_km']:.1f}")
        console.print(t)
    console.print(f"Observation posts: {len(ag.observation_posts)}")


@app.command("classify", rich_help_panel=ANALYSIS)
def classify_cmd(
    agreement: AgreementArg,
    incidents: Annotated[
        Path, typer.Argument(metavar="INCIDENTS_FILE", help="Incidents CSV, GeoJSON or GeoParquet")
    ],
    output: Annotated[Path, output_option("CSV or GeoParquet (.parquet) to write")],
    rejects: Annotated[
        Path | None,
        typer.Option(metavar=FILE, help="Where bad rows go (default: OUTPUT with .rejects.csv)"),
    ] = None,
    encoding: EncodingOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="Output format: csv or parquet (GeoParquet); default: from OUTPUT's suffix",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            metavar="N",
            help="Processes running the rule engine on blocks while this one reads "
            "(0: all in this process; default: the cores available, at most 4)",
        ),
    ] = None,
) -> None:
    """Adjudicate incidents without a database: one output row per accepted input row.

    INCIDENTS_FILE is CSV, GeoJSON or GeoParquet (.parquet). A CSV or GeoParquet file in day
    order streams through in blocks of columns, with a progress bar (rows/s).
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from truceline.io.columnar import ColumnarRead
    from truceline.io.index_cache import default_cache_dir
    from truceline.services.adjudication import classify_file
    from truceline.settings import load_settings

    out_fmt = fmt or ("parquet" if output.suffix.lower() in (".parquet", ".geoparquet") else "csv")
    if out_fmt not in ("csv", "parquet"):
        raise fail(ValidationError(f"--format {fmt}: use csv or parquet", field="format"))
    ag = _load(agreement)
    rej_path = rejects or output.with_suffix(".rejects.csv")
    read = ColumnarRead(incidents, upload_limits(), encoding)
    settings = load_settings()
    cache = (settings.index_cache_dir or default_cache_dir()) if settings.index_cache else None
    with Progress(
        TextColumn("[bold]Classifying[/] {task.fields[rows]:>12,} rows"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[rate]:>10,.0f} rows/s"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("classify", total=1, rows=0, rate=0.0)

        def progress(rows: int, done: int, size: int) -> None:
            elapsed = bar.tasks[0].elapsed or 1e-9
            bar.update(task, total=max(size, 1), completed=done, rows=rows, rate=rows / elapsed)

        try:
            res = classify_file(
                ag,
                read,
                output,
                rej_path,
                fmt=out_fmt,
                progress=progress,
                index_cache=cache,
                workers=workers,
                index_cache_max_bytes=settings.index_cache_max_mb << 20,
            )
        except TrucelineError as exc:
            raise fail(exc) from exc
    if res.encoding_detected:
        err_console.print(f"{incidents}: read as {res.encoding} (detected; --encoding to override)")
    if res.whole:
        err_console.print(
            f"{incidents}: not in day order, and the agreement caps counts per day: read whole, in "
            "memory (sort the file by observed_at to stream it)"
        )
    console.print(
        f"Classified {res.classified} incidents ({res.findings} findings) -> {output}; "
        f"{res.n_rejects} rejected -> {rej_path}; {res.duplicates} repeated rows skipped"
    )
    for r in res.rejects[:10]:
        err_console.print(f"  rejected {r}")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = "truceline.db") -> None:
    """Create or migrate the database schema (Alembic)."""
    from truceline.store.db import make_engine, upgrade

    upgrade(make_engine(db))
    console.print(f"Database {db} is at the latest schema")
    from truceline.services.selection import stale_agreements
    from truceline.store.db import Database

    database = Database(db)
    waiting = sum(stale_agreements(database).values())
    database.dispose()
    if waiting:
        console.print(
            f"The map's summary has {waiting:,} days to build: `truceline db summarise --db {db}` "
            "(or the server builds them in the background; the map counts the rows meanwhile)"
        )


@db_app.command("summarise")
def db_summarise(
    db: DbOption = "truceline.db",
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild", help="Build every day again (after `ledger verify` found the summary edited)"
        ),
    ] = False,
) -> None:
    """Build the map's summary for every day waiting for it, e.g. after `db upgrade`.

    The summary holds the counts the dashboard's overview and timeline read. It is built in
    steps of a few days, each committed, with a progress bar; interrupted, it resumes where it
    stopped. The server works meanwhile (its map counts the rows until the build ends).
    `ledger verify` checks the summary against the records it sums; `--rebuild` builds it
    again from them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from truceline.services.selection import mark_for_rebuild, stale_agreements, sum_years, summarise
    from truceline.store.db import Database

    database = Database(require_database(db))
    try:
        database.upgrade()
        if rebuild:
            mark_for_rebuild(database)
        waiting = stale_agreements(database)
        if not waiting:
            for agreement_id, n in sum_years(database).items():  # a summary built before years were
                console.print(f"{agreement_id}: the map's summary of {n:,} years summed")
            console.print(f"The map's summary of {db} is up to date")
            return
        with Progress(
            TextColumn("[bold]Summarising[/] {task.description} days"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            for agreement_id, n in waiting.items():
                task = bar.add_task(agreement_id, total=n)

                def progress(done: int, total: int, task: Any = task) -> None:
                    bar.update(task, completed=done, total=max(total, 1))

                built = summarise(database, agreement_id, progress=progress)
                console.print(f"{agreement_id}: the map's summary of {built:,} days built")
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()


@app.command("simulate", rich_help_panel=DATA)
def simulate_cmd(
    agreement: AgreementArg,
    output: Annotated[Path, output_option("Folder to write reports.csv and truth.csv", metavar=DIR)],
    days: Annotated[int, typer.Option(min=1, max=3650, metavar=N, help="Days to simulate")] = 1,
    seed: Annotated[int, typer.Option(metavar=N, help="Random seed (the same seed, the same data)")] = 0,
    start: Annotated[
        str | None,
        date_option("First day (default: the agreement's effective date)", "--start"),
    ] = None,
    events_per_day: Annotated[
        int, typer.Option(min=1, metavar=N, help="Mean true events per day, whole line")
    ] = 400,
    violation_rate: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, metavar="FRACTION", help="Share of events that break a rule"),
    ] = 0.25,
    acoustic: Annotated[
        bool, typer.Option(help="Also an acoustic network: sensors, detections, weather, truth")
    ] = False,
    acoustic_shots: Annotated[
        int, typer.Option(min=1, metavar=N, help="Shots (blast and impact each)")
    ] = 200,
    sensor_spacing_km: Annotated[
        float, typer.Option(min=0.5, metavar=KM, help="Sensor spacing (km)")
    ] = 5.0,
    sensor_depths_km: Annotated[
        str,
        typer.Option(
            metavar=KM_LIST, help="Depths (km) of the sensor rows behind the line on each side"
        ),
    ] = "2,8",
) -> None:
    """Simulate monitoring: reports (with errors, misses, duplicates) and a separate ground truth."""
    from truceline.services.simulation import run_simulation

    ag = _load(agreement)
    with working(f"Simulating {days} day(s) of monitoring"):
        out = run_simulation(
            ag,
            output,
            days=days,
            seed=seed,
            start=dt.date.fromisoformat(start) if start else None,
            events_per_day=events_per_day,
            violation_rate=violation_rate,
        )
    console.print(f"Wrote {out['reports']} reports and {out['truth']} true events to {output}")
    if acoustic:
        from truceline.services.acoustic import simulate_acoustic

        ac = simulate_acoustic(
            ag,
            output,
            seed=seed,
            start=dt.date.fromisoformat(start) if start else None,
            n_shots=acoustic_shots,
            spacing_km=sensor_spacing_km,
            depths_km=tuple(float(d) for d in sensor_depths_km.split(",")),
        )
        console.print(
            f"Acoustic: {ac['sensors']} sensors, {ac['events']} true events, {ac['detections']} "
            f"detections, {ac['reports']} duplicate reports -> {output}"
        )


@app.command("report", rich_help_panel=ANALYSIS)
def report_cmd(
    agreement: AgreementOption,
    date: Annotated[str, date_option("Day to report")],
    output: Annotated[
        Path | None, output_option("File to write (default: report-AGREEMENT-DAY.FORMAT)")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar=FORMAT,
            help="html or pdf (default: from the output's suffix, else html)",
        ),
    ] = None,
    db: DbOption = "truceline.db",
    released_only: Annotated[
        bool,
        typer.Option(
            "--released-only",
            help="Published edition: only findings released to the parties (default: internal draft)",
        ),
    ] = False,
) -> None:
    """Write the day's report: HTML, or PDF typeset from the same page (WeasyPrint)."""
    from truceline.services.report import write_daily_report

    ag = _load(agreement)
    day = dt.date.fromisoformat(date)
    require_database(db)
    fmt = (fmt or (output.suffix.lstrip(".") if output and output.suffix else "html")).lower()
    out = output or Path(f"report-{ag.id}-{day}.{fmt}")
    try:
        with working(f"Writing the {fmt.upper()} report for {day}"):
            write_daily_report(db, ag, day, out, fmt=fmt, released_only=released_only)
    except TrucelineError as exc:
        raise fail(exc) from exc
    console.print(f"Report for {day} -> {out}")


@app.command("duplicates", rich_help_panel=ANALYSIS)
def duplicates_cmd(
    output: Annotated[Path, output_option("CSV file to write")],
    db: DbOption = "truceline.db",
    min_probability: Annotated[
        float,
        typer.Option(
            "--min-probability", metavar="P", min=0.0, max=1.0, help="Only pairs at least this probable"
        ),
    ] = 0.0,
) -> None:
    """Write the possible duplicates still open: both reports' ids and their probability.

    Fusion's pairs below its automatic-link threshold, with the evidence (distance, time apart,
    kinds, sources), until an analyst's merge or a later link puts them in one event. Also says
    how many distinct events the stored reports make, expected from fusion's probabilities."""
    import json

    from truceline.io.csv_safe import safe_cell
    from truceline.services.events import expected_events, list_duplicates
    from truceline.store.db import Database

    database = Database(require_database(db))
    try:
        database.upgrade()
        with database.read() as s:
            rows = list_duplicates(s, min_probability=min_probability)
            n_events, expected = expected_events(s)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    cols = (
        "a_report_id", "b_report_id", "probability", "a_pk", "b_pk", "a_event_id", "b_event_id",
        "a_source_type", "b_source_type", "a_observed_at", "b_observed_at", "reason",
    )  # fmt: skip
    with output.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for d in rows:
            w.writerow(
                safe_cell(v)  # ids as a sensor sent them: never a formula in a spreadsheet
                for v in (
                    d.a_report_id, d.b_report_id, f"{d.probability:.4f}", d.a_pk, d.b_pk,
                    "" if d.a_event_id is None else d.a_event_id,
                    "" if d.b_event_id is None else d.b_event_id, d.a_source_type, d.b_source_type,
                    d.a_observed_at.isoformat(), d.b_observed_at.isoformat(),
                    json.dumps(d.reason, separators=(",", ":")),
                )
            )  # fmt: skip
    console.print(
        f"{len(rows)} possible duplicates -> {output}; {n_events:,} events stored, "
        f"{expected:,.1f} distinct expected (less the chance that each is another's duplicate)"
    )


@app.command("relink", rich_help_panel=ANALYSIS)
def relink_cmd(
    agreement: AgreementOption,
    date: Annotated[str, date_option("First day to fuse again")],
    db: DbOption = "truceline.db",
    days: Annotated[int, typer.Option(metavar=N, min=1, max=366, help="How many days")] = 1,
) -> None:
    """Fuse a day's stored reports again, all at once: the day's final links.

    During the day each batch is fused with the reports stored by then, so the links depend on
    the order of arrival. Run this once the day's reports are in (the longest reporting delay,
    30 minutes by default, after midnight): the links, the possible duplicates and the day's
    expected count are then those one batch of the same reports gives. An analyst's split or
    merge stands. `truceline serve` does this by itself for each closed day (relink_minutes)."""
    from truceline.services.events import relink
    from truceline.store.db import Database

    ag = _load(agreement)
    first = dt.datetime.combine(dt.date.fromisoformat(date), dt.time(), dt.UTC)
    database = Database(require_database(db))
    try:
        database.upgrade()
        res = database.write(
            lambda s: relink(
                s, ag.id, start=first, end=first + dt.timedelta(days=days),
                now=dt.datetime.now(dt.UTC), settings=ag.fusion,
            )
        )  # fmt: skip
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    console.print(
        f"Fused {days} day(s) from {date} again: {res.linked} reports moved, "
        f"{len(res.new_events)} events made, {len(res.grown_events)} changed"
    )


@app.command("demo", rich_help_panel=SERVER)
def demo_cmd(
    agreement: Annotated[Path, agreement_option()] = Path("examples/ukraine-2024"),
    output: Annotated[Path, output_option("Folder for everything", metavar=DIR)] = Path("out/demo"),
    seed: Annotated[int, typer.Option(metavar=N, help="Random seed")] = 1,
    days: Annotated[
        int, typer.Option(min=1, max=60, metavar=N, help="Days to simulate, ending on the demo day")
    ] = 7,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then run the server with the demo data (dashboard at /)")
    ] = False,
    host: Annotated[str, typer.Option(metavar="HOST", help="With --serve: interface")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(metavar=PORT, help="With --serve: port (default 8000, or the next free one)"),
    ] = None,
) -> None:
    """Run the demo: a simulated week adjudicated, reviewed, published and reported; --serve serves it.

    Simulates a week on the example agreement, adjudicates it, reviews and publishes part of it and
    writes the last day's report; with --serve, runs the server on the result and prints how to
    sign in.
    """
    from truceline.cli.server import pick_port
    from truceline.services.demo import demo_tokens, run_demo

    ag = _load(agreement)
    try:
        if serve:  # before the work: a taken --port fails at once
            port = pick_port(host, port or 8000, explicit=port is not None)
        out = run_demo(ag, agreement, output, seed=seed, days=days, console=console)
    except TrucelineError as exc:
        raise fail(exc) from exc
    if not serve:
        return
    tokens = demo_tokens(Path(str(out["db"])), (ag.left, ag.right))
    token_file = output / "tokens.txt"
    token_file.write_text("".join(f"{k}\t{v}\n" for k, v in tokens.items()), encoding="utf-8")
    token_file.chmod(0o600)
    console.print(f"\n[bold]Sign in to the dashboard with one of these[/] (also in {token_file}):")
    for name, secret in tokens.items():
        console.print(f"  {name:<12} {secret}")
    console.print(f"\n[bold green]Dashboard: http://{host}:{port}/[/]  (Ctrl+C stops the server)")
    serve_cmd(host=host, port=port, db=str(out["db"]), agreement=[agreement], config=None)


def main() -> None:  # pragma: no cover - console entry point (tests/cli/test_errors.py runs it)
    """``truceline``: every error a one-line message with its fix, never a traceback.

    ``TRUCELINE_DEBUG=1`` shows the traceback of an unexpected error (a bug to report).
    """
    import os

    from rich.markup import escape
    from sqlalchemy.exc import DBAPIError

    try:
        app()
    except TrucelineError as exc:
        raise SystemExit(fail(exc).exit_code) from None
    except DBAPIError as exc:  # the database refused or could not be reached
        detail = str(exc.orig or exc).strip().splitlines()
        reason = detail[0] if detail else type(exc).__name__
        err_console.print(
            f"[bold red]error:[/] the database failed: {escape(reason)} "
            "(fix: check --db / $TRUCELINE_DB and that the server is running and reachable)",
            highlight=False,
        )
        sys.exit(2)
    except Exception as exc:  # a file the system refused, or a bug: one line unless debugging
        if os.environ.get("TRUCELINE_DEBUG"):
            raise
        what = "" if isinstance(exc, OSError) else " (unexpected: please report it)"
        err_console.print(
            f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}{what}; "
            "TRUCELINE_DEBUG=1 shows the traceback",
            highlight=False,
        )
        sys.exit(2)
