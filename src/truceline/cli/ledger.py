"""``truceline ledger ...``: verify the chain, close days, list roots, export proofs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from truceline.cli.options import DbOption, console, err_console, fail, output_option
from truceline.errors import TrucelineError

__all__ = ["ledger_app"]

ledger_app = typer.Typer(
    help="The tamper-evident ledger: verify, close days, roots, proofs.", no_args_is_help=True
)


def _db(db: str):  # type: ignore[no-untyped-def]
    from truceline.store.db import Database

    d = Database(db)
    d.upgrade()
    return d


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@ledger_app.command("verify")
def verify_cmd(
    db: DbOption = "truceline.db",
    records: Annotated[
        bool, typer.Option(help="Also check the stored records (incidents, findings, reports, ...)")
    ] = True,
    roots: Annotated[
        Path | None,
        typer.Option(
            "--roots",
            metavar="FILE",
            help="The daily roots you hold (JSON, as `truceline ledger roots --json` or "
            "GET /api/v1/ledger/roots give them): each must still be in the database and match",
        ),
    ] = None,
) -> None:
    """Check every link of the chain, the daily roots and the records; name the first bad entry.

    Exit status 0 when everything holds, 1 otherwise (2: the roots file cannot be read).
    """
    from truceline.store import ledger

    held = None
    if roots is not None:
        try:
            held = json.loads(roots.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            err_console.print(f"[bold red]error:[/] cannot read the roots in {roots}: {exc}")
            raise typer.Exit(code=2) from exc
        if isinstance(held, dict) and isinstance(held.get("roots"), list):
            held = held["roots"]
        if not isinstance(held, list):
            err_console.print(
                f"[bold red]error:[/] {roots} holds no list of roots "
                '(fix: give [{"day": "YYYY-MM-DD", "root": "<hex>"}, ...])'
            )
            raise typer.Exit(code=2)
    d = _db(db)
    try:
        with d.read() as s:
            v = ledger.verify(s, records=records, held_roots=held)
    except TrucelineError as exc:
        raise fail(exc) from exc
    if v.ok:
        against = f", as do the {len(held)} roots you hold" if held is not None else ""
        console.print(
            f"OK: {v.entries} entries chained, {v.days_closed} closed days match their roots"
            f"{against}, {v.incidents} incidents and {v.findings} findings match the ledger"
        )
        return
    first = v.first
    console.print(f"[bold red]TAMPERED:[/] first problem at {first}")
    for p in v.problems[1:10]:
        console.print(f"  also: {p}")
    raise typer.Exit(code=1)


@ledger_app.command("close")
def close_cmd(db: DbOption = "truceline.db") -> None:
    """Close every finished day (before today, UTC): store its Merkle root."""
    from truceline.store import ledger

    d = _db(db)
    rows = d.write(lambda s: [(r.day, r.n_entries, r.root) for r in ledger.close_days(s, now=_now())])
    for day, n, root in rows:
        console.print(f"{day}  {n:>7} entries  {root}")
    if not rows:
        console.print("No day to close.")


@ledger_app.command("roots")
def roots_cmd(
    db: DbOption = "truceline.db",
    as_json: Annotated[
        bool, typer.Option("--json", help="As JSON (what `ledger verify --roots` reads)")
    ] = False,
    output: Annotated[Path | None, output_option("Write the roots here (JSON)")] = None,
) -> None:
    """Print the stored daily roots (what is published to the parties)."""
    from truceline.store import ledger

    d = _db(db)
    with d.read() as s:
        rows = [
            {
                "day": r.day.isoformat(),
                "root": r.root,
                "first_seq": r.first_seq,
                "last_seq": r.last_seq,
                "n_entries": r.n_entries,
                "closed_at": ledger.stored_time(r.closed_at),
            }
            for r in ledger.roots(s)
        ]
    if output is not None:
        output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        err_console.print(f"{len(rows)} daily roots -> {output}")
    elif as_json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            console.print(f"{r['day']}  {r['n_entries']:>7} entries  {r['root']}")


@ledger_app.command("proof")
def proof_cmd(
    entry: Annotated[
        str,
        typer.Argument(
            metavar="ENTRY", help="Entry number, or a record such as finding:12 or incident:3"
        ),
    ],
    output: Annotated[
        Path | None, output_option("Write the proof here (JSON; default: print it)")
    ] = None,
    db: DbOption = "truceline.db",
) -> None:
    """Export an entry with its Merkle inclusion proof and its day's root.

    Check it anywhere with `python -m truceline.ledger_verify PROOF --root ROOT`. Finished days are
    closed first.
    """
    from truceline.store import ledger

    d = _db(db)
    try:
        d.write(lambda s: ledger.close_days(s, now=_now()))
        with d.read() as s:
            seq = int(entry) if entry.isdigit() else ledger.entry_of(s, entry).seq
            doc = ledger.export_proof(s, seq)
    except TrucelineError as exc:
        raise fail(exc) from exc
    text = json.dumps(doc, indent=2)
    if output is None:
        console.print_json(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err_console.print(
            f"Entry {doc['entry']['seq']} of {doc['day']} (root {doc['root']}) -> {output}"
        )
