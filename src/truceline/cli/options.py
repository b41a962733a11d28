"""What the commands share: the consoles, the options that recur, the error exit, the caller and
the agreement folder a command registers.

Every option that takes a value names what it wants with a metavar in capitals (``--db DATABASE``,
``--date YYYY-MM-DD``, ``-a AGREEMENT_DIR``, ``--seed N``), never the Python type typer would show
(``<str>``, ``<int>``, ``<path>``). The constants below are that vocabulary, and an option that
recurs is defined here once, so it reads the same in every command (tests/cli/test_help.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.status import Status

from truceline.errors import TrucelineError

if TYPE_CHECKING:  # imported by the commands that use them: `truceline --help` stays quick
    from sqlalchemy.orm import Session

    from truceline.core.agreement import Agreement
    from truceline.io.limits import UploadLimits
    from truceline.services.agreement_store import AgreementCache, Registration
    from truceline.services.auth import Principal

__all__ = [
    "AGREEMENT_DIR",
    "AGREEMENT_ID",
    "DATABASE",
    "DATE",
    "DIR",
    "FILE",
    "FORMAT",
    "KM",
    "KM_LIST",
    "PORT",
    "TIME",
    "AgreementArg",
    "AgreementFolder",
    "AgreementOption",
    "DbOption",
    "EncodingOption",
    "N",
    "agreement_option",
    "cli_principal",
    "console",
    "date_option",
    "err_console",
    "fail",
    "format_option",
    "output_option",
    "read_agreement_folder",
    "require_database",
    "working",
]

console = Console(soft_wrap=True)  # never break paths and messages across lines
err_console = Console(stderr=True, soft_wrap=True)

# Metavars used by more than one command.
AGREEMENT_DIR = "AGREEMENT_DIR"
AGREEMENT_ID = "AGREEMENT_ID"
DATABASE = "DATABASE"
DATE = "YYYY-MM-DD"
TIME = "TIME"  # ISO 8601: the option's help gives an example
DIR = "DIR"
FILE = "FILE"
FORMAT = "FORMAT"
KM = "KM"
KM_LIST = "KM,KM,..."
N = "N"
PORT = "PORT"

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="TRUCELINE_DB",
        metavar=DATABASE,
        help="Database: a SQLite file path or a SQLAlchemy URL (postgresql+psycopg://...).",
    ),
]
"""``--db DATABASE`` (or ``$TRUCELINE_DB``); commands give it the default ``"truceline.db"``."""


def agreement_option(help_text: str = "Agreement folder") -> Any:
    """``-a/--agreement AGREEMENT_DIR`` with this help."""
    return typer.Option("--agreement", "-a", metavar=AGREEMENT_DIR, help=help_text)


def output_option(help_text: str, *, metavar: str = FILE) -> Any:
    """``-o/--output FILE`` (``DIR`` for a folder) with this help."""
    return typer.Option("-o", "--output", metavar=metavar, help=help_text)


def _day(text: str | None) -> str | None:
    """A ``--date``'s text, checked: a bad day is a usage error naming the option, not a traceback."""
    if text is not None:
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not a day: give YYYY-MM-DD, e.g. 2025-01-20"
            ) from None
    return text


def date_option(help_text: str, name: str = "--date") -> Any:
    """A day, shown as ``YYYY-MM-DD`` (checked when parsed)."""
    return typer.Option(name, metavar=DATE, help=help_text, callback=_day)


EncodingOption = Annotated[
    str | None,
    typer.Option(
        "--encoding",
        metavar="ENCODING",
        help="The CSV's text encoding (utf-8, cp1251, cp1252, latin-1, utf-16); default: detected",
    ),
]
"""``--encoding ENCODING`` for commands that read CSV files (see truceline.io.text_encoding)."""


def require_database(db: str) -> str:
    """``db`` if it names a database that exists; a command that reads one never creates it.

    A SQLite path (or ``sqlite:///`` URL) must be an existing file: a mistyped ``--db`` would
    otherwise create an empty database and print an empty report. A server URL is taken as given
    (an unreachable server is reported when first connected to).
    """
    path = None
    if "://" not in db:
        path = Path(db)
    elif db.startswith("sqlite:///") and db != "sqlite:///:memory:":
        path = Path(db.removeprefix("sqlite:///").split("?", 1)[0])
    if path is not None and not path.is_file():
        raise fail(
            TrucelineError(
                f"no database at {path}",
                fix="check --db (or $TRUCELINE_DB); `truceline import` or `truceline serve` creates one",
            )
        )
    return db


def format_option(help_text: str, *names: str) -> Any:
    """``--format FORMAT`` (and any short name given) with this help."""
    return typer.Option("--format", *names, metavar=FORMAT, help=help_text)


AgreementOption = Annotated[Path, agreement_option()]
"""A required ``-a/--agreement AGREEMENT_DIR``."""

AgreementArg = Annotated[Path, typer.Argument(metavar=AGREEMENT_DIR, help="Agreement folder")]
"""An agreement folder given first on the command line."""


def working(text: str) -> Status:
    """A spinner on stderr saying what a long step is doing (nothing when not a terminal).

    ``with working("Adjudicating") as w: ...; w.update("Writing")`` names each phase in turn.
    """
    return err_console.status(text)


def fail(exc: TrucelineError) -> typer.Exit:
    """Print a user-safe error (and its fix) on stderr; the exit (status 2) to raise from it."""
    from rich.markup import escape  # a message may hold brackets: truceline[postgres], a list

    text = exc.message + (f" (fix: {exc.fix})" if exc.fix and exc.fix not in exc.message else "")
    err_console.print("[bold red]error:[/] " + escape(text))
    return typer.Exit(code=2)


def cli_principal() -> Principal:
    """Who acts from the command line: the operating-system user, as an administrator."""
    import getpass

    from truceline.services.auth import Principal, Role

    return Principal(subject=f"cli:{getpass.getuser()}", role=Role.admin)


@dataclass(frozen=True, slots=True)
class AgreementFolder:
    """An agreement folder as a command reads it: its files, the agreement loaded from them."""

    folder: Path
    files: Mapping[str, bytes]
    agreement: Agreement
    cache: AgreementCache  # holds the agreement: registering does not load it again

    def register(self, session: Session, now: dt.datetime) -> Registration:
        """Register the agreement as the CLI's principal (a new revision only if the files changed)."""
        from truceline.services.agreement_store import register_agreement

        return register_agreement(
            session,
            self.files,
            source=str(self.folder),
            actor=cli_principal(),
            now=now,
            cache=self.cache,
        )


def upload_limits() -> UploadLimits:
    """What a file the command reads may hold: the settings' ``[uploads]`` (``TRUCELINE_CONFIG``,
    ``TRUCELINE_UPLOADS``), or the defaults."""
    from truceline.settings import load_settings

    return load_settings().uploads


def read_agreement_folder(path: Path) -> AgreementFolder:
    """Read and validate an agreement folder (or its ``agreement.yaml``).

    Raises
    ------
    AgreementError
        Naming the file under the folder, the field and the fix.
    """
    from truceline.io.agreement_files import files_of_folder
    from truceline.services.agreement_store import AgreementCache

    folder = path.parent if path.is_file() else path
    files = files_of_folder(folder)
    cache = AgreementCache()
    ag = cache.load(files, origin=str(folder), limits=upload_limits())
    return AgreementFolder(folder, files, ag, cache)
