"""``truceline attach INCIDENT FILE...``: file evidence on an incident, with its ledger entry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from truceline.cli.options import DIR, DbOption, cli_principal, console, fail
from truceline.errors import TrucelineError

__all__ = ["attach_cmd"]


def attach_cmd(
    incident: Annotated[
        str,
        typer.Argument(
            metavar="INCIDENT",
            help="The incident: its number (pk) or the report's own id",
        ),
    ],
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE...", help="Photos, video, audio or PDFs to attach"),
    ],
    db: DbOption = "truceline.db",
    attachments_dir: Annotated[
        Path | None,
        typer.Option(
            "--attachments-dir",
            metavar=DIR,
            envvar="TRUCELINE_ATTACHMENTS_DIR",
            help="Where the files' bytes are kept (default: beside a SQLite database, "
            "`<name>-attachments/`)",
        ),
    ] = None,
    content_type: Annotated[
        str | None,
        typer.Option(
            "--type",
            metavar="MEDIA_TYPE",
            help="The type the files are declared as (e.g. image/jpeg); checked against their bytes",
        ),
    ] = None,
) -> None:
    """Attach evidence files to an incident: checked whole, hashed into the ledger, compared.

    Each file's type is detected from its bytes, it is checked whole, its SHA-256 goes into the
    ledger with who filed it and when, and its own time and position (EXIF) are compared with the
    report's. Prints each file's hash, type and consistency. A file refused (type unknown or not
    what it is declared, truncated, corrupt) stores nothing; the same bytes attached twice are
    filed once.
    """
    from sqlalchemy import select

    from truceline.services.attachments import Filed, file_attachment
    from truceline.settings import default_attachments_dir
    from truceline.store.attachments import LocalStore
    from truceline.store.db import Database
    from truceline.store.models import IncidentRow

    for f in files:
        if not f.is_file():
            raise fail(TrucelineError(f"{f} is not a file", field="FILE", fix="give the files' paths"))
    store = LocalStore(attachments_dir or default_attachments_dir(db))
    who = cli_principal()
    database = Database(db)
    status = 0
    try:
        database.upgrade()
        with database.read() as s:
            q = select(IncidentRow.pk).where(
                IncidentRow.pk == int(incident)
                if incident.isdigit()
                else IncidentRow.report_id == incident
            )
            pks = list(s.execute(q).scalars())
        if len(pks) != 1:
            raise TrucelineError(
                f"incident {incident!r} "
                + ("names no stored report" if not pks else f"names {len(pks)} reports"),
                field="INCIDENT",
                value=incident,
                fix="give the incident's number (pk), as `truceline export` or the API shows it",
            )
        for f in files:
            data = f.read_bytes()
            try:
                r: Filed = database.write(
                    lambda s, data=data, name=f.name: file_attachment(  # type: ignore[misc]
                        s,
                        store,
                        pks[0],
                        data,
                        filename=name,
                        declared_type=content_type,
                        actor=who,
                        now=dt.datetime.now(dt.UTC),
                        max_bytes=2**40,
                    )
                )
            except TrucelineError as exc:
                console.print(
                    f"[bold red]refused[/] {f}: {exc.message}"
                    + (f" (fix: {exc.fix})" if exc.fix else "")
                )
                status = 1
                continue
            a = r.row
            flag = {True: "consistent", False: "INCONSISTENT", None: "no time or position"}[a.consistent]
            again = "" if r.created else " (filed before: unchanged)"
            console.print(
                f"{a.sha256}  {a.media_type}  attachment {a.pk}{again}  {f.name}\n"
                f"  {flag}: {a.consistency}\n  {a.c2pa}"
            )
    except TrucelineError as exc:
        raise fail(exc) from exc
    finally:
        database.dispose()
    if status:
        raise typer.Exit(code=status)
