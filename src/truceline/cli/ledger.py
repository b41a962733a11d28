"""``truceline ledger ...``: verify the chain, close (and sign) days, list roots, export proofs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer

from truceline.cli.options import (
    DbOption,
    console,
    err_console,
    fail,
    output_option,
    require_database,
)
from truceline.errors import TrucelineError

__all__ = ["ledger_app"]

ledger_app = typer.Typer(
    help="The tamper-evident ledger: verify, close days, roots, proofs.", no_args_is_help=True
)


def _db(db: str):  # type: ignore[no-untyped-def]
    from truceline.store.db import Database

    d = Database(require_database(db))
    d.upgrade()
    return d


def _count(n: int, noun: str) -> str:
    """``1 entry``, ``2 entries``, ``1 daily root``."""
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


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
    public_key: Annotated[
        str | None,
        typer.Option(
            "--public-key",
            metavar="HEX",
            help="The mission's public key (`ledger keygen` printed it): every closed day must "
            "be signed by it",
        ),
    ] = None,
) -> None:
    """Check every link of the chain, the daily roots and the records; name the first bad entry.

    Exit status 0 when everything holds and the ledger covers every row; 1 when something was
    changed; 2 when the roots file cannot be read; 3 when everything checked holds but some rows
    are NOT COVERED (stored before the ledger kept their table: `ledger backfill` covers them),
    so a script never takes a partial check for a whole one.
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
            v = ledger.verify(s, records=records, held_roots=held, public_key=public_key)
    except TrucelineError as exc:
        raise fail(exc) from exc
    if v.ok:
        against = f", as do the {len(held)} roots you hold" if held is not None else ""
        console.print(
            f"OK: {v.entries} entries chained, {v.days_closed} closed days match their roots"
            f"{against}, {v.incidents} incidents, {v.findings} findings and {v.attachments} "
            "attachments match the ledger"
        )
        _print_uncovered(v.uncovered)
        if v.uncovered:
            raise typer.Exit(code=3)
        return
    first = v.first
    console.print(f"[bold red]TAMPERED:[/] first problem at {first}")
    for p in v.problems[1:10]:
        console.print(f"  also: {p}")
    _print_uncovered(v.uncovered)
    raise typer.Exit(code=1)


def _print_uncovered(uncovered: dict[str, int]) -> None:
    """Rows the ledger does not cover, by table: never left out of an OK."""
    if not uncovered:
        return
    each = ", ".join(f"{t} {n:,}" for t, n in sorted(uncovered.items()))
    console.print(
        f"[bold yellow]NOT COVERED:[/] {sum(uncovered.values()):,} rows were stored before the "
        f"ledger kept their table, so an edit of them cannot be found ({each}); "
        "`truceline ledger backfill` records them as they are now"
    )


@ledger_app.command("backfill")
def backfill_cmd(
    db: DbOption = "truceline.db",
    batch: Annotated[
        int, typer.Option(min=1, max=100_000, metavar="N", help="Rows per entry and transaction")
    ] = 2000,
) -> None:
    """Record in the ledger the rows stored before it kept their table, as they are now.

    Events, incident revisions, fusion pairs, patrol positions, sensors, detections, ingest
    batches, rejects and audit rows older than their ledgering are not covered (`ledger verify`
    counts them). Each batch is one entry and one transaction: interrupted, run it again and it
    records the rest; run on a covered database, it adds nothing. Audited (who, how many); an
    edit of any backfilled column is caught by `ledger verify` from then on. Command line only
    (the operator of the database), not an API route.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from truceline.cli.options import cli_principal
    from truceline.services.backfill import backfill, uncovered

    d = _db(db)
    try:
        waiting = uncovered(d)
        if not waiting:
            console.print(f"Nothing to backfill: the ledger covers every row of {db}")
            return
        with Progress(
            TextColumn("[bold]Backfilling[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("rows", total=sum(waiting.values()))

            def progress(table: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=table)

            counts = backfill(d, actor=cli_principal(), now=_now, batch=batch, progress=progress)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        d.dispose()
    each = ", ".join(f"{t} {n:,}" for t, n in sorted(counts.items()))
    console.print(
        f"Backfilled {sum(counts.values()):,} rows ({each}): `truceline ledger verify` now covers them"
    )


KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        metavar="FILE",
        envvar="TRUCELINE_LEDGER_KEY",
        help="The mission's signing key (`truceline ledger keygen`): each day closed is signed",
    ),
]


def _signer(key: Path | None):  # type: ignore[no-untyped-def]
    if key is None:
        return None
    from truceline.services.ledger_keys import load_signer

    try:
        return load_signer(key)
    except TrucelineError as exc:
        raise fail(exc) from exc


@ledger_app.command("keygen")
def keygen_cmd(
    output: Annotated[Path, output_option("Write the private key here (PEM, mode 0600)")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file")] = False,
) -> None:
    """Make the mission's Ed25519 key for signing the daily roots; print its public key.

    Publish the public key to the parties (reports print it); keep the file secret and give it
    to `ledger close --key` (or the server's `ledger_key` setting).
    """
    from truceline.services.ledger_keys import keygen

    try:
        public = keygen(output, overwrite=force)
    except TrucelineError as exc:
        raise fail(exc) from exc
    err_console.print(f"Private key -> {output}; the public key (publish it):")
    print(public)


@ledger_app.command("close")
def close_cmd(db: DbOption = "truceline.db", key: KeyOption = None) -> None:
    """Close the ledger up to now: finished days get their roots, today a checkpoint (signed: --key).

    Each finished day (before today, UTC) gets its Merkle root, and today's entries so far a
    checkpoint (the root the day would close with now), all signed with --key. A proof
    (`ledger proof`) is then available for every entry recorded so far, today's included.
    """
    from truceline.services.checkpoints import close_all

    sign = _signer(key)
    d = _db(db)
    try:
        closed = d.write(lambda s: close_all(s, now=_now(), sign=sign))
    except TrucelineError as exc:
        raise fail(exc) from exc
    signed = "  signed" if sign else ""
    for r in closed.days:
        console.print(f"{r.day}  {_count(r.n_entries, 'entry'):>13}  {r.root}{signed}")
    cp = closed.checkpoint
    if cp is not None:
        console.print(
            f"{cp['day']}  {_count(cp['n_entries'], 'entry'):>13}  {cp['root']}{signed}  "
            f"(checkpoint of the day so far, through entry {cp['last_seq']})"
        )
    if not closed.days and cp is None:
        console.print("Nothing new to close: every entry is already in a closed day or checkpoint.")


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
        rows = ledger.root_documents(s)
    if output is not None:
        output.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        err_console.print(f"{_count(len(rows), 'daily root')} -> {output}")
    elif as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        console.print(
            "No root stored yet: `truceline ledger close` closes the ledger up to now "
            "(finished days, and a checkpoint of today)."
        )
    else:
        for r in rows:
            signed = "  signed" if "signature" in r else ""
            cp = f" (checkpoint through #{r['last_seq']})" if r.get("checkpoint") else ""
            console.print(f"{r['day']}  {_count(r['n_entries'], 'entry'):>13}{cp}  {r['root']}{signed}")


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
    key: KeyOption = None,
) -> None:
    """Export an entry with its Merkle inclusion proof and its day's root.

    Check it anywhere with `python -m truceline.ledger_verify PROOF --root ROOT`. Finished days are
    closed first, and an entry of today is proved against a checkpoint of the day so far (made now
    if none covers it yet).
    """
    from truceline.services.checkpoints import prepare_proof
    from truceline.store import ledger

    sign = _signer(key)
    d = _db(db)
    try:
        seq = d.write(lambda s: prepare_proof(s, entry, now=_now(), sign=sign))
        with d.read() as s:
            doc = ledger.export_proof(s, seq)
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        d.dispose()  # a server's connections closed (PostgreSQL), not left to the collector
    text = json.dumps(doc, indent=2)
    if output is None:
        console.print_json(text)
    else:
        output.write_text(text + "\n", encoding="utf-8")
        err_console.print(
            f"Entry {doc['entry']['seq']} of {doc['day']} (root {doc['root']}) -> {output}"
        )
