"""The demo: simulate a week on an agreement, ingest and adjudicate it, review part of it, publish a
report, write the last day's report, and (``truceline demo --serve``) hand over to the server.

The days before the last show a mission at work: on each, an analyst has verified and released to
the parties the most serious findings and sent back a couple of doubtful reports; the day before
the last is published. The last day (the demo day) is fresh: everything on it awaits review.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import files_of_folder
from truceline.io.incidents_io import read_incidents
from truceline.services.agreement_store import register_agreement
from truceline.services.auth import IssuedToken, Principal, Role, create_token
from truceline.services.checkpoints import close_all
from truceline.services.ingest import ingest_incidents
from truceline.services.publication import publish_report
from truceline.services.report import write_daily_report
from truceline.services.review import Action, review
from truceline.services.simulation import write_simulation
from truceline.store.db import make_engine, session_factory, upgrade
from truceline.store.models import FindingRow, IncidentRow

__all__ = ["DEMO_ANALYST", "demo_day", "demo_tokens", "run_demo"]

#: Who reviewed the earlier days in the demo (recorded in the audit trail and the ledger).
DEMO_ANALYST = Principal(subject="demo:analyst", role=Role.analyst)
#: Who set the demo up: registered its agreement, made its tokens.
DEMO_SETUP = Principal(subject="demo:setup", role=Role.admin)
#: Per earlier day: the most probable findings verified and released, the least sent back.
RELEASED_PER_DAY = 20
SENT_BACK_PER_DAY = 2


def demo_day(agreement: Agreement) -> dt.date:
    """The demo's last day: 45 days into the agreement, and no earlier than its newest version."""
    return max(agreement.effective_from + dt.timedelta(days=45), agreement.versions[-1].effective_from)


def _review_earlier_days(session: Session, agreement_id: str, last: dt.date, now: dt.datetime) -> int:
    """An analyst's work on the days before ``last``; returns the number of review decisions."""
    q = (
        select(IncidentRow.day, IncidentRow.pk, func.max(FindingRow.probability))
        .join(FindingRow, FindingRow.incident_pk == IncidentRow.pk)
        .where(IncidentRow.agreement_id == agreement_id, IncidentRow.day < last)
        .group_by(IncidentRow.day, IncidentRow.pk)
        .order_by(IncidentRow.day, IncidentRow.pk)
    )
    per_day: dict[dt.date, list[tuple[float, int]]] = {}
    for day, pk, p in session.execute(q):
        per_day.setdefault(day, []).append((float(p), int(pk)))
    n = 0
    for rows in per_day.values():
        rows.sort(key=lambda r: (-r[0], r[1]))
        for p, pk in rows[:RELEASED_PER_DAY]:
            review(session, pk, Action.verify, comment="corroborated", actor=DEMO_ANALYST, now=now)
            if p >= 0.5:
                review(session, pk, Action.release, actor=DEMO_ANALYST, now=now)
            n += 1
        for _, pk in rows[RELEASED_PER_DAY:][-SENT_BACK_PER_DAY:]:
            review(
                session,
                pk,
                Action.send_back,
                comment="position too uncertain for a finding: re-survey the site",
                actor=DEMO_ANALYST,
                now=now,
            )
            n += 1
    return n


def run_demo(
    agreement: Agreement,
    source: Path,
    output: Path,
    *,
    seed: int = 1,
    days: int = 7,
    console: Console | None = None,
) -> dict[str, object]:
    """Build the demo database ``output/truceline.db`` afresh and write the last day's report.

    Parameters
    ----------
    days
        Days simulated, ending on :func:`demo_day` (never before the agreement takes effect).
    """
    console = console or Console()
    output.mkdir(parents=True, exist_ok=True)
    db = output / "truceline.db"
    for stale in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        stale.unlink(missing_ok=True)  # a demo starts from nothing: earlier reviews would conflict
    day = demo_day(agreement)
    first = max(day - dt.timedelta(days=days - 1), agreement.effective_from)
    n_days = (day - first).days + 1
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"Simulating {n_days} days of monitoring", total=6)
        sim = simulate(agreement, SimulationConfig(days=n_days, seed=seed, start=first))
        counts = write_simulation(sim, output / "simulation")
        progress.update(task, advance=1, description="Validating reports")
        read = read_incidents(output / "simulation" / "reports.csv")
        progress.update(task, advance=1, description="Adjudicating and storing")
        engine = make_engine(str(db))
        upgrade(engine)
        now = dt.datetime.now(dt.UTC)
        with session_factory(engine)() as session, session.begin():
            register_agreement(
                session, files_of_folder(source), source=str(source), actor=DEMO_SETUP, now=now
            )
            res = ingest_incidents(
                session,
                agreement,
                read.incidents,
                read.rows,
                source=str(output / "simulation" / "reports.csv"),
                earlier_rejects=read.rejects,
                now=now,
            )
        progress.update(task, advance=1, description="Locating the acoustic network's detections")
        acoustic = _acoustic_demo(engine, agreement, day, output / "acoustic", seed=seed, now=now)
        progress.update(task, advance=1, description="Reviewing the earlier days")
        published = None
        with session_factory(engine)() as session, session.begin():
            decisions = _review_earlier_days(session, agreement.id, day, now)
            if n_days > 1:
                published = day - dt.timedelta(days=1)
                publish_report(session, agreement, published, actor=DEMO_ANALYST, now=now)
        with session_factory(engine)() as session, session.begin():
            # a checkpoint of everything recorded: the report prints its root, proofs are available
            close_all(session, now=dt.datetime.now(dt.UTC))
        progress.update(task, advance=1, description="Writing the daily report")
        report_path = output / f"report-{day}.html"
        report = write_daily_report(str(db), agreement, day, report_path)
        progress.update(task, advance=1)
        engine.dispose()
    violations = sum(1 for f in report.findings if f.probability >= 0.5)
    console.print(f"[bold]{agreement.name}[/]: simulated {first} to {day}")
    console.print(
        f"  {counts['reports']} reports ({counts['truth']} true events) -> {len(res.accepted)} stored, "
        f"{len(res.duplicates)} duplicates, {len(res.rejects)} rejected; {res.findings} findings"
    )
    console.print(
        f"  acoustic network: {acoustic['sensors']} sensors, {acoustic['detections']} detections -> "
        f"{acoustic['located']} events located on {day}"
        f" (and {acoustic['reports']} other reports of them)"
    )
    console.print(
        f"  earlier days: {decisions} incidents reviewed"
        + (f", report of {published} published" if published else "")
    )
    console.print(f"  {day}: {len(report.findings)} findings, {violations} with probability >= 0.5")
    console.print(f"  database:     {db}")
    console.print(f"  ground truth: {output / 'simulation' / 'truth.csv'}")
    console.print(f"  [bold green]daily report: {report_path}[/]  (open it in a browser)")
    return {
        "db": db,
        "report": report_path,
        "day": day,
        "first": first,
        "accepted": len(res.accepted),
        "findings": len(report.findings),
        "published": published,
    }


#: The demo's acoustic network registers itself and submits its detections as this device.
DEMO_NETWORK = Principal(subject="demo:acoustic-network", role=Role.sensor)


def _acoustic_demo(
    engine: Any, agreement: Agreement, day: dt.date, folder: Path, *, seed: int, now: dt.datetime
) -> dict[str, int]:
    """An hour of fire heard by a sensor network on the demo day, through the server's services:
    sensors registered, detections stored, located and adjudicated, other reports of the same
    shots ingested and fused with them."""
    from truceline.io.acoustic_csv import detection_records, sensor_records
    from truceline.services.acoustic import simulate_acoustic
    from truceline.services.sensors import locate_stored, register_sensors, submit_detections

    made = simulate_acoustic(agreement, folder, seed=seed, start=day, n_shots=60)
    reports = read_incidents(folder / "acoustic_reports.csv")
    with session_factory(engine)() as session, session.begin():
        sensors = [{**r, "network": "demo-network"} for r in sensor_records(folder / "sensors.csv")]
        register_sensors(session, agreement, sensors, actor=DEMO_NETWORK, now=now)
        submit_detections(
            session, agreement, detection_records(folder / "detections.csv"), actor=DEMO_NETWORK, now=now
        )
        located = locate_stored(
            session,
            agreement,
            start=dt.datetime.combine(day, dt.time(0, 0), tzinfo=dt.UTC),  # the whole demo day
            end=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 0), tzinfo=dt.UTC),
            weather=None,
            actor=DEMO_ANALYST,
            now=now,
        )
        ingest_incidents(
            session,
            agreement,
            reports.incidents,
            reports.rows,
            source=str(folder / "acoustic_reports.csv"),
            earlier_rejects=reports.rejects,
            submitted_by=[f"demo:{i.source_type.value}" for i in reports.incidents],
            now=now,
        )
    return {
        "sensors": made["sensors"],
        "detections": made["detections"],
        "located": located.accepted,
        "reports": len(reports.incidents),
    }


def demo_tokens(db: Path, parties: tuple[str, str]) -> dict[str, str]:
    """Tokens to sign in to the demo's dashboard: an analyst, an admin, a liaison per party.

    Returns ``{name: secret}``; the secrets are shown once (only their hashes are stored).
    """
    from truceline.store.db import Database

    d = Database(str(db))
    d.upgrade()
    now = dt.datetime.now(dt.UTC)
    out: dict[str, str] = {}
    for name, role, party in (
        ("analyst", "analyst", None),
        ("admin", "admin", None),
        *((f"liaison-{p}", "liaison", p) for p in parties),
    ):

        def issue(
            s: Session, name: str = name, role: str = role, party: str | None = party
        ) -> IssuedToken:
            return create_token(
                s, role=role, name=f"demo-{name}", party=party, actor=DEMO_SETUP, now=now
            )

        t = d.write(issue)
        out[name] = t.secret
    d.dispose()
    return out
