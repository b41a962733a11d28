"""Engines and migrations: SQLite (WAL) by default, PostgreSQL when given its URL."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    insert,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import QueryableAttribute, Session, sessionmaker

from truceline.errors import ValidationError

__all__ = ["Database", "bulk_insert", "make_engine", "session_factory", "upgrade"]

_MIGRATIONS = Path(__file__).with_name("migrations")
T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, synchronous: str, manual_begin: bool) -> None:
    if manual_begin:
        # pysqlite's own BEGIN is deferred; we emit BEGIN IMMEDIATE ourselves (see make_engine).
        dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # NORMAL: durable at each commit in WAL mode except on power loss; FULL: also then.
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(
    url: str,
    *,
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    begin_immediate: bool = False,
    **kwargs: Any,
) -> Engine:
    """An engine for ``url``; a plain path is taken as a SQLite file.

    Parameters
    ----------
    synchronous
        SQLite's fsync policy (ignored on PostgreSQL).
    begin_immediate
        SQLite only: start every transaction with ``BEGIN IMMEDIATE`` so that writers queue for the
        write lock up front instead of failing when a read transaction tries to upgrade.
    **kwargs
        Passed to :func:`sqlalchemy.create_engine` (pool sizes, ...).
    """
    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{url}"
    try:
        engine = create_engine(url, **kwargs)
    except ModuleNotFoundError as exc:  # a driver that is an optional extra
        fix = (
            "pip install 'truceline[postgres]'"
            if url.startswith("postgresql")
            else "install the driver the URL names"
        )
        raise ValidationError(
            f"the database driver for {url.split('://', 1)[0]} ({exc.name}) is not installed: {fix}",
            field="db",
            fix=fix,
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(
            engine,
            "connect",
            partial(_sqlite_pragmas, synchronous=synchronous, manual_begin=begin_immediate),
        )
        if begin_immediate:
            event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def _alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply the Alembic migrations up to ``revision``."""
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def one_of(
    column: ColumnElement[Any] | QueryableAttribute[Any], name: str, dialect: str
) -> ColumnElement[bool]:
    """``column IN (the values of parameter name)``, as each dialect runs it best.

    PostgreSQL: ``= ANY(:name)`` with one array parameter, so the statement's text is the same
    for any number of values (an expanding ``IN`` is new text for each count: parsed again by the
    driver and the server, 2-5 ms for a few thousand values). SQLite: an expanding ``IN``.
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(BigInteger)))
    return column.in_(bindparam(name, expanding=True))


#: (database, table, column) -> the column's sequence: looked up once, not per insert.
_SEQUENCES: dict[tuple[str, str, str], str] = {}
#: ``n`` keys from a sequence as one array value (half the time of ``n`` rows), in order.
_NEXTVALS = text(
    "SELECT array_agg(k ORDER BY k) FROM (SELECT nextval(:s) AS k FROM generate_series(1, :n)) AS q"
)


def bulk_insert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]] | Sequence[tuple[Any, ...]],
    *,
    new_pks: str | None = None,
    columns: Sequence[str] | None = None,
) -> list[int]:
    """Insert ``rows`` (same keys each) into ``table`` within the connection's transaction.

    ``rows`` are mappings, or with ``columns`` tuples of those columns' values in that order (no
    mapping per row to build). With ``new_pks`` (the name of a serial primary key column),
    assigns and returns the new keys in the order of ``rows``. PostgreSQL gets a binary ``COPY``
    (keys drawn from the column's sequence first); SQLite one prepared ``INSERT`` run over all
    rows by the driver, with the keys SQLite itself would give (the next after the largest; the
    write transaction holds the lock). Column defaults the rows leave out (e.g. a status) are
    applied here, as an ``INSERT`` would.
    """
    if not rows:
        return []
    cols = list(columns) if columns is not None else list(rows[0])
    defaults: dict[str, Any] = {}
    for c in table.columns:
        if c.name not in cols and c.name != new_pks and c.default is not None:
            if not c.default.is_scalar:  # computed per row by SQLAlchemy: let it do that
                return _insert_core(conn, table, _mappings(rows, columns), new_pks)
            # is_scalar: a ScalarElementColumnDefault, whose value is .arg (typed on the base as absent)
            defaults[c.name] = c.default.arg  # type: ignore[attr-defined]
    names = ([new_pks] if new_pks else []) + cols + list(defaults)
    extra = tuple(defaults.values())
    values: list[Any]
    if columns is not None:
        values = list(rows)
    else:
        # One tuple per row in column order, built without a Python-level loop over the columns.
        get = operator.itemgetter(*cols)
        values = [(v,) for v in map(get, rows)] if len(cols) == 1 else list(map(get, rows))
    dialect = conn.dialect.name
    if dialect not in ("postgresql", "sqlite"):
        return _insert_core(conn, table, _mappings(rows, columns), new_pks)
    pks: list[int] = []
    if new_pks is not None:
        pks = _next_keys(conn, table, new_pks, len(rows))
        values = [(pk, *v, *extra) for pk, v in zip(pks, values, strict=True)]
    elif extra:
        values = [(*v, *extra) for v in values]
    if dialect == "sqlite":
        values = _sqlite_values(conn, table, names, values)
        marks = ", ".join("?" * len(names))
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        cur.executemany(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})", values)
        cur.close()
        return pks
    oids = _column_oids(conn, table.name)
    raw = conn.connection.driver_connection
    assert raw is not None  # a live connection inside the caller's transaction
    # Binary COPY: a quarter of the client's CPU of text COPY (no number formatting), same rows.
    with raw.cursor().copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN (FORMAT BINARY)") as cp:
        cp.set_types([oids[n] for n in names])
        for v in values:
            cp.write_row(v)
    return pks


def _mappings(rows: Sequence[Any], columns: Sequence[str] | None) -> list[dict[str, Any]]:
    return list(rows) if columns is None else [dict(zip(columns, r, strict=True)) for r in rows]


def _insert_core(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], new_pks: str | None
) -> list[int]:
    if new_pks is None:
        conn.execute(insert(table), list(rows))
        return []
    stmt = insert(table).returning(table.c[new_pks], sort_by_parameter_order=True)
    return [pk for (pk,) in conn.execute(stmt, list(rows))]


def _next_keys(conn: Connection, table: Table, column: str, n: int) -> list[int]:
    """``n`` new keys of a serial column: from its sequence (PostgreSQL), or the next after the
    largest (SQLite's own rule for an INTEGER PRIMARY KEY without AUTOINCREMENT)."""
    if conn.dialect.name == "sqlite":
        top = conn.exec_driver_sql(f"SELECT COALESCE(MAX({column}), 0) FROM {table.name}").scalar()
        return list(range(int(top or 0) + 1, int(top or 0) + 1 + n))
    key = (conn.engine.url.render_as_string(), table.name, column)
    seq = _SEQUENCES.get(key)
    if seq is None:
        seq = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column}
        ).scalar_one()
        _SEQUENCES[key] = seq
    return list(conn.execute(_NEXTVALS, {"s": seq, "n": n}).scalar_one())


#: (table, columns) -> the SQLite bind conversions of those columns: worked out once.
_SQLITE_BINDS: dict[tuple[str, tuple[str, ...]], list[tuple[int, Callable[[Any], Any]]]] = {}


def _sqlite_values(conn: Connection, table: Table, names: list[str], values: list[Any]) -> list[Any]:
    """Values as SQLAlchemy would bind them on SQLite (its text for dates and times, ...):
    converted column by column, only for the columns whose type converts."""
    key = (table.name, tuple(names))
    procs = _SQLITE_BINDS.get(key)
    if procs is None:
        procs = []
        for k, n in enumerate(names):
            p = table.c[n].type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
            if p is not None:
                procs.append((k, p))
        _SQLITE_BINDS[key] = procs
    if not procs:
        return values
    cols = [list(c) for c in zip(*values, strict=True)]
    for k, convert in procs:
        cols[k] = [None if v is None else convert(v) for v in cols[k]]
    return list(zip(*cols, strict=True))


#: (database, table) -> {column: type oid}, for binary COPY: looked up once per table.
_OIDS: dict[tuple[str, str], dict[str, int]] = {}
_COLUMN_OIDS = text(
    "SELECT attname, atttypid::int FROM pg_attribute "
    "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"
)


def _column_oids(conn: Connection, table: str) -> dict[str, int]:
    key = (conn.engine.url.render_as_string(), table)
    got = _OIDS.get(key)
    if got is None:
        got = _OIDS[key] = {n: int(o) for n, o in conn.execute(_COLUMN_OIDS, {"t": table})}
    return got


def _retryable(exc: DBAPIError) -> bool:
    """Conflicts that a fresh transaction resolves: a unique key taken by a concurrent commit,
    a PostgreSQL serialisation failure or deadlock, a SQLite lock held past the busy timeout."""
    if isinstance(exc, IntegrityError):
        return True
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40001", "40P01"):
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


class Database:
    """The server's handle on its database: sessions for reading and retried units of work.

    On SQLite, writes go through a second engine whose transactions begin ``IMMEDIATE``, so
    concurrent writers wait in turn instead of failing; reads never take the write lock.
    """

    def __init__(self, url: str, *, synchronous: Literal["NORMAL", "FULL"] = "NORMAL") -> None:
        self.url = url
        # A server's connections to PostgreSQL can be cut; a SQLite file's cannot (no ping per checkout).
        ping = "://" in url and not url.startswith("sqlite")
        self.engine = make_engine(url, synchronous=synchronous, pool_pre_ping=ping)
        if self.engine.dialect.name == "sqlite":
            self.write_engine = make_engine(url, synchronous=synchronous, begin_immediate=True)
        else:
            self.write_engine = self.engine
        self._read = session_factory(self.engine)
        self._write = session_factory(self.write_engine)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        upgrade(self.write_engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; rolled back at the end."""
        with self._read() as session:
            yield session

    def write(self, fn: Callable[[Session], T], *, attempts: int = 4) -> T:
        """Run ``fn(session)`` in a transaction and commit; retry on a transient conflict.

        The commit has returned before this function does, so a caller may acknowledge the
        result: it is durable.
        """
        for attempt in range(attempts):
            try:
                with self._write() as session, session.begin():
                    return fn(session)
            except DBAPIError as exc:
                if attempt == attempts - 1 or not _retryable(exc):
                    raise
                time.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def at_head(self) -> bool:
        """Whether the schema is at the newest migration (for the readiness probe)."""
        script = ScriptDirectory.from_config(_alembic_config())
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = MigrationContext.configure(conn).get_current_heads()
        return set(current) == set(script.get_heads())

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()
