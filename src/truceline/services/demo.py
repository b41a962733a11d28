"""The demo: simulate a day on an agreement, ingest and adjudicate it, and write the day's report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from truceline.core.agreement import Agreement
from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.incidents_io import read_incidents
from truceline.services.report import write_daily_report
from truceline.services.simulation import write_simulation
from truceline.store.db import make_engine, session_factory, upgrade
from truceline.store.service import ingest_incidents, register_agreement

__all__ = ["run_demo"]


def run_demo(
    agreement: Agreement,
    source: Path,
    output: Path,
    *,
    seed: int = 1,
    console: Console | None = None,
) -> dict[str, object]:
    console = console or Console()
    output.mkdir(parents=True, exist_ok=True)
    db = output / "truceline.db"
    day: dt.date = max(
        agreement.effective_from + dt.timedelta(days=45), agreement.versions[-1].effective_from
    )
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("Simulating a day of monitoring", total=4)
        sim = simulate(agreement, SimulationConfig(days=1, seed=seed, start=day))
        counts = write_simulation(sim, output / "simulation")
        progress.update(task, advance=1, description="Validating reports")
        read = read_incidents(output / "simulation" / "reports.csv")
        progress.update(task, advance=1, description="Adjudicating and storing")
        engine = make_engine(str(db))
        upgrade(engine)
        with session_factory(engine)() as session, session.begin():
            register_agreement(session, agreement, source)
            res = ingest_incidents(
                session,
                agreement,
                read.incidents,
                read.rows,
                source=str(output / "simulation" / "reports.csv"),
                earlier_rejects=read.rejects,
            )
        progress.update(task, advance=1, description="Writing the daily report")
        report_path = output / f"report-{day}.html"
        report = write_daily_report(str(db), agreement, day, report_path)
        progress.update(task, advance=1)
    violations = sum(1 for f in report.findings if f.probability >= 0.5)
    console.print(f"[bold]{agreement.name}[/]: simulated {day}")
    console.print(
        f"  {counts['reports']} reports ({counts['truth']} true events) -> {len(res.accepted)} stored, "
        f"{len(res.duplicates)} duplicates, {len(res.rejects)} rejected"
    )
    console.print(f"  {res.findings} findings, {violations} with probability >= 0.5")
    console.print(f"  database:     {db}")
    console.print(f"  ground truth: {output / 'simulation' / 'truth.csv'}")
    console.print(f"  [bold green]daily report: {report_path}[/]  (open it in a browser)")
    return {"db": db, "report": report_path, "day": day, "accepted": len(res.accepted)}
