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
    records: Annotated[bool, typer.Option(help="Also check the incident and finding tables")] = True,
) -> None:
    """Check every link of the chain, the daily roots and the records; name the first bad entry.

    Exit status 0 when everything holds, 1 otherwise.
    """
    from truceline.store import ledger

    d = _db(db)
    with d.read() as s:
        v = ledger.verify(s, records=records)
    if v.ok:
        console.print(
            f"OK: {v.entries} entries chained, {v.days_closed} closed days match their roots, "
            f"{v.incidents} incidents and {v.findings} findings match the ledger"
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
def roots_cmd(db: DbOption = "truceline.db") -> None:
    """Print the stored daily roots (what is published to the parties)."""
    from truceline.store import ledger

    d = _db(db)
    with d.read() as s:
        for r in ledger.roots(s):
            console.print(f"{r.day}  {r.n_entries:>7} entries  {r.root}")


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
