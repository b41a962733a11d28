"""What every command group shares: the consoles and the ``--db`` option."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

__all__ = ["DbOption", "console", "err_console"]

console = Console(soft_wrap=True)  # never break paths and messages across lines
err_console = Console(stderr=True, soft_wrap=True)

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="TRUCELINE_DB",
        help="Database: a SQLite file path or a SQLAlchemy URL (postgresql+psycopg://...).",
    ),
]
