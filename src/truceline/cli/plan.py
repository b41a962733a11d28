"""``truceline plan``: compare candidate lines and replay a stored history under another one.

Thin: parse options, call :mod:`truceline.services.planner`, print a table, write the HTML.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from truceline.cli.options import (
    KM,
    KM_LIST,
    AgreementArg,
    DbOption,
    N,
    console,
    date_option,
    err_console,
    fail,
    output_option,
    require_database,
    upload_limits,
)
from truceline.errors import TrucelineError

BLOCK_ROWS = 200_000  # as truceline.services.sweep.BLOCK_ROWS (not imported: dask loads late)

if TYPE_CHECKING:
    from truceline.services.sweep import SweepResult

__all__ = ["plan_app"]

plan_app = typer.Typer(
    help="Planner: compare candidate lines (scenarios) and replay history under another line.",
    no_args_is_help=True,
)
SCENARIO = "SCENARIO"


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise typer.BadParameter(f"{what}: give comma-separated numbers, e.g. -8,-2,2,8") from exc


@plan_app.command("compare")
def compare_cmd(
    agreement: AgreementArg,
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(metavar=SCENARIO, help="Scenario ids (default: all, in file order)"),
    ] = None,
    output: Annotated[
        Path | None, output_option("HTML file to write (default: plan-AGREEMENT.html)")
    ] = None,
    min_population: Annotated[
        int, typer.Option(metavar=N, help="Smallest settlement counted: 500, 1000, 5000 or 15000")
    ] = 1000,
    density: Annotated[
        str,
        typer.Option(metavar="PRESET", help="Troop density preset: osce-smm, unficyp, undof or unifil"),
    ] = "undof",
    troops_per_km: Annotated[
        float | None,
        typer.Option(min=0, metavar=N, help="Troops per km of line (overrides --density)"),
    ] = None,
    op_spacing_km: Annotated[
        float, typer.Option(min=0.1, metavar=KM, help="Km of line per post")
    ] = 10.0,
    op_crew: Annotated[int, typer.Option(min=1, metavar=N, help="On duty at each post")] = 4,
    patrol_cycle_h: Annotated[
        float, typer.Option(min=0.1, metavar="HOURS", help="Hours between visits")
    ] = 24.0,
    patrol_speed_kmh: Annotated[
        float, typer.Option(min=0.1, metavar="KM/H", help="Patrol speed, stops included (km/h)")
    ] = 10.0,
    patrol_crew: Annotated[int, typer.Option(min=1, metavar=N, help="Persons per patrol")] = 8,
    rotation: Annotated[
        float, typer.Option(min=1.0, metavar="FACTOR", help="Persons per position manned 24 h")
    ] = 3.0,
    accuracy_m: Annotated[
        float, typer.Option(min=0.1, metavar="METRES", help="Target: 95 % semi-major axis (m)")
    ] = 25.0,
    depth_km: Annotated[
        float, typer.Option(min=0, metavar=KM, help="Sources this far from the line")
    ] = 10.0,
    rows_km: Annotated[
        str, typer.Option(metavar=KM_LIST, help="Sensor rows, km from the line (+ left)")
    ] = "-8,-2,2,8",
    range_km: Annotated[float, typer.Option(min=0.5, metavar=KM, help="Detection range (km)")] = 15.0,
    timing_ms: Annotated[float, typer.Option(min=0.01, metavar="MS", help="Timing sigma (ms)")] = 5.0,
    sensors: Annotated[
        Path | None,
        typer.Option(
            metavar="SENSORS_FILE", help="A sensor layout (sensors.csv or GeoJSON) to find gaps in"
        ),
    ] = None,
    no_sensors: Annotated[bool, typer.Option("--no-sensors", help="Skip the acoustic plan")] = False,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="html (a table here, the page with maps in -o) or json (every figure, on stdout)",
        ),
    ] = "html",
) -> None:
    """Compare scenarios: line length, areas, buffer zone, people, force and sensors; write HTML."""
    from truceline.core.planner import DENSITY_PRESETS, ForceParameters, SensorParameters
    from truceline.io.settlements import data_limits
    from truceline.report.planner import comparison_rows, render_comparison_html
    from truceline.services.planner import compare_plan

    if fmt not in ("html", "json"):
        raise typer.BadParameter("use html or json", param_hint="--format")
    if troops_per_km is None and density not in DENSITY_PRESETS:
        raise typer.BadParameter(f"--density: use one of {', '.join(DENSITY_PRESETS)}")
    try:
        force = ForceParameters(
            troops_per_km=troops_per_km if troops_per_km is not None else DENSITY_PRESETS[density],
            op_spacing_km=op_spacing_km, op_crew=op_crew, patrol_cycle_h=patrol_cycle_h,
            patrol_speed_kmh=patrol_speed_kmh, patrol_crew=patrol_crew, rotation_factor=rotation,
        )  # fmt: skip
        sens = None if no_sensors else SensorParameters(
            target_accuracy_m=accuracy_m, depth_km=depth_km, rows_km=_floats(rows_km, "--rows-km"),
            detection_range_km=range_km, timing_sigma_ms=timing_ms,
        )  # fmt: skip
        status = (
            contextlib.nullcontext()
            if fmt == "json"
            else console.status("Comparing scenarios (settlements, zones, force, sensors)")
        )
        with status:
            comp = compare_plan(
                agreement, scenarios or (), force=force, sensors=sens, layout=sensors,
                min_population=min_population,
            )  # fmt: skip
    except TrucelineError as exc:
        raise fail(exc) from exc
    if fmt == "json":
        from truceline.services.planner import comparison_view

        view = comparison_view(comp)
        view.pop("geojson")  # the figures; the maps are the HTML's (and the API's)
        typer.echo(json.dumps(view, ensure_ascii=False, indent=1))
        return
    ids = [m.scenario.id for m in comp.scenarios]
    table = Table("figure", *ids, title=f"{comp.reference.scenario.agreement.name}: scenarios")
    for r in comparison_rows(comp):
        table.add_row(r["label"], *r["cells"])
    console.print(table)
    limits = data_limits(min_population)
    for m in comp.scenarios:
        for note in m.scenario.notes:
            console.print(f"{m.scenario.id}: {note}", highlight=False)
    console.print(f"[dim]{limits}[/]")
    out = output or Path(f"plan-{comp.reference.scenario.agreement.id}.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_comparison_html(comp, data_limits=limits), encoding="utf-8")
    console.print(f"HTML with maps -> {out}")


SchedulerOption = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        help="A Dask scheduler (tcp://HOST:8786) to run the blocks of days on "
        "(its workers must reach --db); "
        "default: this machine (in this process when the history is one block or --workers 1, "
        "else a local cluster of --workers processes)",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, metavar=N, help="Local worker processes (default: the machine's cores)"),
]
BlockRowsOption = Annotated[
    int,
    typer.Option(min=1, metavar=N, help="Incidents per block of whole days (a task; bounds memory)"),
]
SinceOption = Annotated[str | None, date_option("First day replayed", "--since")]
HistoryOption = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="Read the history from this GeoParquet (or CSV) file of incidents, in day order, "
        "instead of --db; needs --from (the baseline is a classification under it)",
    ),
]
RecomputeOption = Annotated[
    bool, typer.Option("--recompute", help="Classify under --from again, not the stored findings")
]
ThresholdOption = Annotated[
    float, typer.Option(min=0.0, max=1.0, metavar="PROBABILITY", help="Violation: P >= this")
]


def _sweep(
    agreement: Path,
    targets: list[str],
    from_: str | None,
    db: str,
    since: str | None,
    recompute: bool,
    threshold: float,
    scheduler: str | None,
    workers: int | None,
    block_rows: int,
    history: Path | None = None,
    layouts: list[Path] | None = None,
    accuracy_m: float = 25.0,
) -> tuple[SweepResult, dt.date | None]:
    """Run :func:`truceline.services.sweep.run_sweep` for a command; errors become exit code 2."""
    from truceline.core.planner import SensorParameters
    from truceline.io.agreement_files import files_of_folder
    from truceline.services.sweep import run_sweep

    try:
        day = dt.date.fromisoformat(since) if since else None
    except ValueError as exc:
        raise typer.BadParameter("--since: use YYYY-MM-DD") from exc
    try:
        url = ""
        if history is None:
            url = require_database(db)
            if "://" not in url:  # workers may run in another folder: give them the absolute path
                url = str(Path(url).resolve())
        folder = agreement.parent if agreement.is_file() else agreement
        files = files_of_folder(folder)
        lays = []
        for path in layouts or ():  # layout files (a handful)
            from truceline.services.planner import read_sensor_layout
            from truceline.services.sweep import Layout

            lon, lat = read_sensor_layout(path)
            lays.append(Layout(path.stem, tuple(lon.tolist()), tuple(lat.tolist())))
        if len({lay.name for lay in lays}) != len(lays):
            raise typer.BadParameter("give sensor layouts distinct file names", param_hint="--sensors")
        with console.status("Replaying the history in blocks of days"):
            res = run_sweep(
                url, files, targets, from_=from_, since=day, recompute=recompute,
                threshold=threshold, scheduler=scheduler, workers=workers, max_rows=block_rows,
                history=history, limits=upload_limits(), layouts=lays,
                sensors=SensorParameters(target_accuracy_m=accuracy_m),
            )  # fmt: skip
    except TrucelineError as exc:
        raise fail(exc) from exc
    if history is not None:
        console.print(
            f"[dim]{history}: {res.rows_read:,} rows read, {len(res.rejects):,} left out[/]",
            highlight=False,
        )
        for r in res.rejects[:10]:
            err_console.print(f"  left out {r}", markup=False, highlight=False)
    console.print(
        f"[dim]{res.blocks} block(s) of days, {res.mode}"
        + (f" ({res.workers} worker processes ran them)" if res.mode != "in-process" else "")
        + f"; peak memory of a process that replayed: {res.peak_rss_mb:,.0f} MB[/]"
    )
    return res, day


@plan_app.command("replay")
def replay_cmd(
    agreement: AgreementArg,
    to: Annotated[
        str, typer.Option("--to", metavar=SCENARIO, help="Scenario to replay the history under")
    ],
    from_: Annotated[
        str | None,
        typer.Option("--from", metavar=SCENARIO, help="Scenario the history was adjudicated under"),
    ] = None,
    db: DbOption = "truceline.db",
    since: SinceOption = None,
    recompute: RecomputeOption = False,
    threshold: ThresholdOption = 0.5,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    block_rows: BlockRowsOption = BLOCK_ROWS,
    history: HistoryOption = None,
) -> None:
    """How many stored findings would have been violations under another scenario's line."""
    out, day = _sweep(
        agreement, [to], from_, db, since, recompute, threshold, scheduler, workers, block_rows,
        history,
    )  # fmt: skip
    res = out.results[to]
    before = from_ or "stored findings"
    if from_ and not recompute:
        before = f"{from_} (stored findings)"
    console.print(
        f"{res.n_incidents:,} incidents{f' since {day}' if day else ''}: violations (P >= "
        f"{threshold:g}) {res.before:,} under {before} -> {res.after:,} under {to}; "
        f"{res.kept:,} kept, {res.new:,} new, {res.cleared:,} cleared; incidents with a violation "
        f"{res.incidents_before:,} -> {res.incidents_after:,}"
    )
    t = Table("rule", "before", "after", "kept", "new", "cleared", title="By rule")
    for r in res.by_rule:
        t.add_row(r.rule_id, f"{r.before:,}", f"{r.after:,}", f"{r.kept:,}", f"{r.new:,}",
                  f"{r.cleared:,}")  # fmt: skip
    console.print(t)
    parties = sorted(set(res.before_by_party) | set(res.after_by_party))
    t = Table("responsible", "before", "after", title="By party")
    for p in parties:
        t.add_row(p, f"{res.before_by_party.get(p, 0):,}", f"{res.after_by_party.get(p, 0):,}")
    console.print(t)


@plan_app.command("sweep")
def sweep_cmd(
    agreement: AgreementArg,
    scenarios: Annotated[
        list[str] | None,
        typer.Argument(
            metavar=SCENARIO, help="Scenarios to replay under (default: all but --from, file order)"
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option("--from", metavar=SCENARIO, help="Scenario the history was adjudicated under"),
    ] = None,
    db: DbOption = "truceline.db",
    since: SinceOption = None,
    recompute: RecomputeOption = False,
    threshold: ThresholdOption = 0.5,
    scheduler: SchedulerOption = None,
    workers: WorkersOption = None,
    block_rows: BlockRowsOption = BLOCK_ROWS,
    history: HistoryOption = None,
    sensors: Annotated[
        list[Path] | None,
        typer.Option(
            "--sensors",
            metavar="SENSORS_FILE",
            help="A sensor layout (sensors.csv or GeoJSON of points) to sweep against the same "
            "history (repeatable): the acoustic incidents it would have heard and located",
        ),
    ] = None,
    accuracy_m: Annotated[
        float,
        typer.Option(
            min=0.1, metavar="METRES", help="--sensors: located if the 95 % semi-major axis <= this"
        ),
    ] = 25.0,
) -> None:
    """The stored history replayed under many scenarios at once: one row per candidate line.

    With --sensors, each sensor layout is swept against the same history too (one row each).
    """
    from truceline.io.scenarios import load_scenarios

    targets = list(scenarios or ())
    if not targets:
        try:
            targets = [s.id for s in load_scenarios(agreement) if s.id != from_]
        except TrucelineError as exc:
            raise fail(exc) from exc
    out, day = _sweep(
        agreement, targets, from_, db, since, recompute, threshold, scheduler, workers, block_rows,
        history, sensors, accuracy_m,
    )  # fmt: skip
    first = next(iter(out.results.values()))
    console.print(
        f"{first.n_incidents:,} incidents{f' since {day}' if day else ''}: violations (P >= "
        f"{threshold:g}) {first.before:,} under {from_ or 'the stored findings'}"
        f"{' (recomputed)' if recompute else ''}"
    )
    t = Table("scenario", "after", "kept", "new", "cleared", "incidents with a violation",
              title="Violations under each scenario")  # fmt: skip
    for sid, r in out.results.items():
        t.add_row(sid, f"{r.after:,}", f"{r.kept:,}", f"{r.new:,}", f"{r.cleared:,}",
                  f"{r.incidents_after:,}")  # fmt: skip
    console.print(t)
    if out.layouts:
        t = Table("layout", "acoustic incidents", "heard", f"located (<= {accuracy_m:g} m)",
                  "violations located", title="Sensor layouts against the history")  # fmt: skip
        for name, lr in out.layouts.items():
            t.add_row(name, f"{lr.sources:,}", f"{lr.heard:,}", f"{lr.located:,}",
                      f"{lr.violations_located:,} of {lr.violations:,}")  # fmt: skip
        console.print(t)
