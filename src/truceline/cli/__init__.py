"""The ``truceline`` command line: thin wrappers that parse, call the services and print."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from truceline.cli.exchange import export_app, import_cmd
from truceline.cli.ledger import ledger_app
from truceline.cli.locate import ingest_acoustic_cmd, locate
from truceline.cli.options import DbOption, console, err_console
from truceline.cli.plan import plan_app
from truceline.cli.sensors import sensors_app
from truceline.cli.server import serve as serve_cmd
from truceline.cli.server import token_app
from truceline.errors import TrucelineError

app = typer.Typer(
    name="truceline",
    help="Truceline: the information system of a ceasefire-verification mission.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
agreement_app = typer.Typer(
    help="Validate, summarise and export an agreement folder.", no_args_is_help=True
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(agreement_app, name="agreement")
app.add_typer(db_app, name="db")
app.command("locate")(locate)
app.add_typer(plan_app, name="plan")
app.command("serve")(serve_cmd)
app.add_typer(token_app, name="token")
app.add_typer(ledger_app, name="ledger")
app.command("ingest-acoustic")(ingest_acoustic_cmd)
app.add_typer(export_app, name="export")
app.command("import")(import_cmd)
app.add_typer(sensors_app, name="sensors")


def _fail(exc: TrucelineError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc.message}")
    return typer.Exit(code=2)


def _load(path: Path):  # type: ignore[no-untyped-def]
    from truceline.io.agreement_files import load_agreement

    try:
        return load_agreement(path)
    except TrucelineError as exc:
        raise _fail(exc) from exc


@agreement_app.command("check")
def agreement_check(path: Annotated[Path, typer.Argument(help="Agreement folder")]) -> None:
    """Validate an agreement and print its line length, zone areas per side and sectors."""
    ag = _load(path)
    from truceline.services.agreement import agreement_summary

    s = agreement_summary(ag)
    console.print(f"[bold]{ag.name}[/] ({ag.id}) - valid")
    console.print(f"Parties: left {ag.left}, right {ag.right}; effective from {ag.effective_from}")
    for v in s["versions"]:
        console.print(
            f"Version from {v['effective_from']}: line {v['line_length_km']:.1f} km (geodesic), "
            f"{v['n_rules']} rules"
        )
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


@agreement_app.command("export")
def agreement_export(
    path: Annotated[Path, typer.Argument(help="Agreement folder")],
    output: Annotated[Path, typer.Option("-o", "--output", help="GeoJSON file to write")],
    date: Annotated[str | None, typer.Option(help="Version in force on this date (YYYY-MM-DD)")] = None,
) -> None:
    """Write every zone (per side, built geodesically), the line and the sectors as GeoJSON."""
    ag = _load(path)
    from truceline.services.agreement import zones_feature_collection

    day = dt.date.fromisoformat(date) if date else ag.effective_from
    fc = zones_feature_collection(ag, day)
    output.write_text(json.dumps(fc), encoding="utf-8")
    console.print(f"Wrote {len(fc['features'])} features to {output}")


@app.command("classify")
def classify_cmd(
    agreement: Annotated[Path, typer.Argument(help="Agreement folder")],
    incidents: Annotated[Path, typer.Argument(help="Incidents CSV or GeoJSON")],
    output: Annotated[Path, typer.Option("-o", "--output", help="CSV to write")],
    rejects: Annotated[
        Path | None, typer.Option(help="Where bad rows go (default: OUTPUT with .rejects.csv)")
    ] = None,
) -> None:
    """Adjudicate incidents without a database: one output row per accepted input row."""
    from truceline.io.incidents_io import read_incidents, write_rejects
    from truceline.services import CLASSIFY_COLUMNS, adjudicate, classification_rows

    ag = _load(agreement)
    try:
        read = read_incidents(incidents)
    except TrucelineError as exc:
        raise _fail(exc) from exc
    adj = adjudicate(ag, read.incidents, read.rows)
    rows = classification_rows(adj.incidents, adj.classification)
    with output.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CLASSIFY_COLUMNS))
        w.writeheader()
        w.writerows(rows)
    all_rejects = read.rejects + adj.rejects
    rej_path = rejects or output.with_suffix(".rejects.csv")
    write_rejects(rej_path, sorted(all_rejects, key=lambda r: r.row))
    n_find = len(adj.classification.findings)
    console.print(
        f"Classified {len(rows)} incidents ({n_find} findings) -> {output}; "
        f"{len(all_rejects)} rejected -> {rej_path}; {len(read.duplicates)} repeated rows skipped"
    )
    for r in all_rejects[:10]:
        err_console.print(f"  rejected {r}")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = "truceline.db") -> None:
    """Create or migrate the database schema (Alembic)."""
    from truceline.store.db import make_engine, upgrade

    upgrade(make_engine(db))
    console.print(f"Database {db} is at the latest schema")


@app.command("ingest")
def ingest_cmd(
    file: Annotated[Path, typer.Argument(help="Incidents CSV or GeoJSON")],
    agreement: Annotated[Path, typer.Option("--agreement", "-a", help="Agreement folder")],
    db: DbOption = "truceline.db",
) -> None:
    """Store incidents idempotently, adjudicate them and keep rejects with their reasons."""
    from truceline.io.incidents_io import read_incidents
    from truceline.services.agreement_store import register_agreement
    from truceline.services.ingest import ingest_incidents
    from truceline.store.db import make_engine, session_factory, upgrade

    ag = _load(agreement)
    try:
        read = read_incidents(file)
    except TrucelineError as exc:
        raise _fail(exc) from exc
    engine = make_engine(db)
    upgrade(engine)
    from rich.progress import Progress

    with (
        Progress(console=err_console, transient=True) as progress,
        session_factory(engine)() as session,
        session.begin(),
    ):
        task = progress.add_task(f"Adjudicating and storing {len(read.incidents):,} reports", total=None)
        register_agreement(session, ag, agreement)
        res = ingest_incidents(
            session,
            ag,
            read.incidents,
            read.rows,
            source=str(file),
            earlier_rejects=read.rejects,
            earlier_duplicates=[str(r) for r in read.duplicates],
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    console.print(
        f"Ingested {file}: {len(res.accepted)} accepted, {len(res.duplicates)} duplicates, "
        f"{len(res.rejects)} rejected, {res.findings} findings (batch {res.batch_id}, db {db})"
    )
    for r in res.rejects[:10]:
        err_console.print(f"  rejected {r}")


@app.command("simulate")
def simulate_cmd(
    agreement: Annotated[Path, typer.Argument(help="Agreement folder")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder to write reports.csv and truth.csv")
    ],
    days: Annotated[int, typer.Option(min=1, max=3650)] = 1,
    seed: Annotated[int, typer.Option()] = 0,
    start: Annotated[
        str | None, typer.Option(help="First day (default: the agreement's effective date)")
    ] = None,
    events_per_day: Annotated[int, typer.Option(min=1)] = 400,
    violation_rate: Annotated[float, typer.Option(min=0.0, max=1.0)] = 0.25,
    acoustic: Annotated[
        bool, typer.Option(help="Also an acoustic network: sensors, detections, weather, truth")
    ] = False,
    acoustic_shots: Annotated[int, typer.Option(min=1, help="Shots (blast and impact each)")] = 200,
    sensor_spacing_km: Annotated[float, typer.Option(min=0.5, help="Sensor spacing (km)")] = 5.0,
    sensor_depths_km: Annotated[
        str, typer.Option(help="Depths (km) of the sensor rows behind the line on each side")
    ] = "2,8",
) -> None:
    """Simulate monitoring: reports (with errors, misses, duplicates) and a separate ground truth."""
    from truceline.services.simulation import run_simulation

    ag = _load(agreement)
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


@app.command("report")
def report_cmd(
    agreement: Annotated[Path, typer.Option("--agreement", "-a", help="Agreement folder")],
    date: Annotated[str, typer.Option(help="Day to report (YYYY-MM-DD)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write")] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="html or pdf (default: from the output's suffix, else html)"),
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
    fmt = (fmt or (output.suffix.lstrip(".") if output and output.suffix else "html")).lower()
    out = output or Path(f"report-{ag.id}-{day}.{fmt}")
    try:
        write_daily_report(db, ag, day, out, fmt=fmt, released_only=released_only)
    except TrucelineError as exc:
        raise _fail(exc) from exc
    console.print(f"Report for {day} -> {out}")


@app.command("demo")
def demo_cmd(
    agreement: Annotated[Path, typer.Option(help="Agreement folder")] = Path("examples/ukraine-2024"),
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for everything")] = Path(
        "out/demo"
    ),
    seed: Annotated[int, typer.Option()] = 1,
    days: Annotated[
        int, typer.Option(min=1, max=60, help="Days to simulate, ending on the demo day")
    ] = 7,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then run the server with the demo data (dashboard at /)")
    ] = False,
    host: Annotated[str, typer.Option(help="With --serve: interface")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="With --serve: port")] = 8000,
) -> None:
    """Simulate a week on the example agreement, adjudicate, review and publish part of it, write
    the last day's report; with --serve, run the server on the result and print how to sign in."""
    from truceline.services.demo import demo_tokens, run_demo

    ag = _load(agreement)
    try:
        out = run_demo(ag, agreement, output, seed=seed, days=days, console=console)
    except TrucelineError as exc:
        raise _fail(exc) from exc
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


def main() -> None:  # pragma: no cover - console entry point
    try:
        app()
    except TrucelineError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}")
        sys.exit(2)
