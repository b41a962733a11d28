"""``truceline serve`` and ``truceline token ...``: the mission server from the command line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from truceline.cli.options import (
    DATABASE,
    FILE,
    PORT,
    DbOption,
    N,
    agreement_option,
    cli_principal,
    console,
    err_console,
    fail,
    require_database,
)
from truceline.errors import TrucelineError

if TYPE_CHECKING:
    from truceline.store.db import Database

__all__ = ["pick_port", "serve", "token_app"]


token_app = typer.Typer(
    help="API tokens: create, list, revoke (secrets are stored hashed).", no_args_is_help=True
)


def serve(
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="Interface (default 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(metavar=PORT, help="Port (default 8000)")] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", metavar=DATABASE, help="SQLite path or SQLAlchemy URL (default truceline.db)"
        ),
    ] = None,
    agreement: Annotated[
        list[Path] | None, agreement_option("Agreement folder to register (repeatable)")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(metavar=FILE, help="TOML settings file (default $TRUCELINE_CONFIG)")
    ] = None,
    cot_tls_port: Annotated[
        int | None,
        typer.Option(
            metavar=PORT,
            help="Cursor-on-Target TLS listener for TAK devices, with client certificates "
            "(convention 8089; certificates in the config file's [cot] table)",
        ),
    ] = None,
    cot_port: Annotated[
        int | None,
        typer.Option(
            metavar=PORT,
            help="CoT plain TCP listener (convention 8087): no authentication, so only with "
            "--cot-plain-networks and --cot-plain-role",
        ),
    ] = None,
    cot_plain_networks: Annotated[
        list[str] | None,
        typer.Option(
            metavar="CIDR",
            help="Network that may use the plain TCP listener, e.g. 10.1.0.0/16 (repeatable); "
            "anyone else is disconnected at once",
        ),
    ] = None,
    cot_plain_role: Annotated[
        str | None,
        typer.Option(
            metavar="ROLE",
            help="Role of plain-TCP clients: sensor (submits only), monitor or analyst",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(metavar=N, help="Server processes (default 1; the number of cores for throughput)"),
    ] = None,
) -> None:
    """Run the mission server (REST API under /api/v1; docs at /api/v1/docs).

    The database is created and migrated on start. Settings: options > TRUCELINE_* environment
    variables > the config file > defaults (README, server section).
    """
    import uvicorn

    from truceline.api import build_context, create_app, settle
    from truceline.settings import load_settings

    try:
        cot = {
            k: v
            for k, v in (
                ("port", cot_port),
                ("tls_port", cot_tls_port),
                ("plain_networks", cot_plain_networks or None),
                ("plain_role", cot_plain_role),
            )
            if v is not None
        }
        settings = load_settings(
            config,
            host=host,
            port=port,
            db=db,
            agreements=agreement or None,
            workers=workers,
            cot=cot or None,  # merged key by key into the file's [cot] table
        )
        chosen = pick_port(settings.host, settings.port, explicit="port" in settings.model_fields_set)
        if chosen != settings.port:
            console.print(f"Port {settings.port} is in use: serving on port {chosen} instead")
            settings = settings.model_copy(update={"port": chosen})
        ctx = build_context(settings)  # after the port: a taken port creates no database
    except TrucelineError as exc:
        raise fail(exc) from exc
    console.print(
        f"Truceline server on http://{settings.host}:{settings.port}/api/v1 "
        f"(database {ctx.db.dialect}: {settings.db})"
    )
    if settings.cot.enabled:  # the TAK listeners share the API's event loop and context
        from truceline.tak.server import serve_with_cot

        console.print(f"Cursor on Target: tcp {settings.cot.port}, tls {settings.cot.tls_port}")
        try:
            app = create_app(ctx)
            settle(ctx)
            _summary_at_start(ctx.db)
            serve_with_cot(app, ctx, settings)
        except TrucelineError as exc:
            raise fail(exc) from exc
        return
    if settings.workers > 1:
        # Each worker opens its own context; the database is already migrated and the agreements
        # registered (above), so their start-up finds nothing to do.
        import os

        from truceline.api import SETTINGS_ENV

        ctx.close()
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        console.print(f"{settings.workers} worker processes")
        uvicorn.run(
            "truceline.api:app_from_env",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            access_log=settings.log_level == "debug",
        )
        return
    app = create_app(ctx)
    settle(ctx)
    _summary_at_start(ctx.db)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
    )


def _summary_at_start(db: Database) -> None:
    """Start building the map's summary where days wait (after an upgrade, or an import made
    while no server ran), and say so: the map counts the rows until it is built."""
    from truceline.api import start_builds

    for agreement_id, days in start_builds(db).items():
        console.print(
            f"{agreement_id}: building the map's summary of {days:,} days in the background "
            "(the map counts the rows meanwhile)"
        )


def _port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on now (as uvicorn binds: with SO_REUSEADDR)."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise TrucelineError(
            f"cannot listen on {host}: the host name does not resolve ({exc.strerror})",
            field="host",
            value=host,
            fix="give an address of this machine with --host, e.g. --host 127.0.0.1",
        ) from exc
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise TrucelineError(
                f"cannot listen on {host}:{port} ({exc.strerror})",
                field="port",
                value=port,
                fix="choose another interface or port with --host HOST / --port N",
            ) from exc
    return True


def pick_port(host: str, port: int, *, explicit: bool, tries: int = 100) -> int:
    """The port to serve on: ``port`` if free; if it was not asked for explicitly (the default), the
    next free one above it; an explicit port that is taken is an error naming it and the fix."""
    if _port_free(host, port):
        return port
    if explicit:
        raise TrucelineError(
            f"port {port} on {host} is already in use (another server, or a demo, is running there)",
            field="port",
            value=port,
            fix="stop that server, choose a free port with --port N, "
            "or leave --port out to take the next free one",
        )
    for candidate in range(port + 1, min(port + tries, 65535) + 1):
        if _port_free(host, candidate):
            return candidate
    raise TrucelineError(
        f"ports {port} to {min(port + tries, 65535)} on {host} are all in use",
        field="port",
        value=port,
        fix="choose a free port with --port N",
    )


def _db(db: str):  # type: ignore[no-untyped-def]
    from truceline.store.db import Database

    d = Database(db)
    d.upgrade()
    return d


@token_app.command("create")
def token_create(
    role: Annotated[
        str, typer.Option(metavar="ROLE", help="admin, analyst, monitor, sensor, liaison or public")
    ],
    name: Annotated[str, typer.Option(metavar="NAME", help="Who or what holds it (person, device)")],
    party: Annotated[
        str | None, typer.Option(metavar="PARTY", help="Liaison tokens: the party they speak for")
    ] = None,
    sector: Annotated[
        str | None, typer.Option(metavar="SECTOR", help="Monitor tokens: their sector")
    ] = None,
    db: DbOption = "truceline.db",
) -> None:
    """Create a token and print its secret (once: only its hash is stored)."""
    from truceline.services.auth import create_token

    d = _db(db)
    try:
        t = d.write(
            lambda s: create_token(
                s,
                role=role,
                name=name,
                party=party,
                sector=sector,
                actor=cli_principal(),
                now=dt.datetime.now(dt.UTC),
            )
        )
    except TrucelineError as exc:
        raise fail(exc) from exc
    err_console.print(f"Created {t.id} ({t.role.value}, {t.name}); the secret follows, store it now:")
    console.print(t.secret)


@token_app.command("list")
def token_list(db: DbOption = "truceline.db") -> None:
    """List tokens (never their secrets)."""
    from truceline.services.auth import list_tokens

    d = _db(require_database(db))
    with d.read() as s:
        rows = list_tokens(s)
    t = Table("name", "role", "party", "sector", "created", "revoked")
    t.add_column("id", no_wrap=True, min_width=20)  # people copy it into `token revoke`
    for r in rows:
        t.add_row(
            r.name,
            r.role,
            r.party or "",
            r.sector or "",
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "",
            r.id,
        )
    console.print(t)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="Token id (tok_...)")],
    db: DbOption = "truceline.db",
) -> None:
    """Revoke a token: it stops working at once."""
    from truceline.services.auth import revoke_token

    d = _db(require_database(db))
    try:
        d.write(lambda s: revoke_token(s, token_id, actor=cli_principal(), now=dt.datetime.now(dt.UTC)))
    except TrucelineError as exc:
        raise fail(exc) from exc
    console.print(f"Revoked {token_id}")
