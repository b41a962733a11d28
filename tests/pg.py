"""A throwaway PostgreSQL + PostGIS cluster for the tests, from the installed server binaries.

One cluster per test session (per xdist worker): ``initdb`` into a temporary folder, ``pg_ctl start``
on a free loopback port, a template database with PostGIS and the migrated schema, and a fresh
database per test cloned from the template. Without the binaries the PostgreSQL half of the
parametrised tests is skipped with the reason; with ``CI=true`` that skip is a failure.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .live import free_port

__all__ = ["PgCluster", "db_url", "pg_cluster", "pg_unavailable"]

TEMPLATE = "truceline_template"


def _bindir() -> Path | None:
    env = os.environ.get("TRUCELINE_PG_BINDIR")
    candidates = [env] if env else sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def pg_unavailable() -> str | None:
    """Why the PostGIS tests cannot run here, or None."""
    bindir = _bindir()
    if bindir is None:
        return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb)"
    version = bindir.parent.name
    if not glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"):
        return f"PostGIS is not installed for PostgreSQL {version} (postgresql-{version}-postgis-3)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run the server as"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed"
    return None


@dataclass
class PgCluster:
    bindir: Path
    root: Path
    port: int
    _n: itertools.count[int]

    @property
    def base_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}"

    def url(self, dbname: str) -> str:
        return f"{self.base_url}/{dbname}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def new_database(self) -> str:
        """A fresh, migrated database (cloned from the template); returns its SQLAlchemy URL."""
        name = f"t{os.getpid()}_{next(self._n)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE} STRATEGY FILE_COPY")
        return self.url(name)


def _run(cmd: list[str], *, as_postgres: bool) -> None:
    if as_postgres:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)


def start_cluster(*, fsync: bool = False) -> PgCluster:
    """initdb + pg_ctl start in a new temporary folder; the caller stops it with :func:`stop_cluster`."""
    bindir = _bindir()
    assert bindir is not None
    as_postgres = os.geteuid() == 0  # initdb refuses to run as root
    root = Path(tempfile.mkdtemp(prefix="truceline-pg-"))
    if as_postgres:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data = root / "data"
    _run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        as_postgres=as_postgres,
    )
    port = free_port()
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not fsync:  # tests only: durability is not what they measure
        opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    _run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "start"],
        as_postgres=as_postgres,
    )
    return PgCluster(bindir, root, port, itertools.count(1))


def stop_cluster(c: PgCluster) -> None:
    try:
        _run(
            [str(c.bindir / "pg_ctl"), "-D", str(c.root / "data"), "-m", "immediate", "stop"],
            as_postgres=os.geteuid() == 0,
        )
    finally:
        shutil.rmtree(c.root, ignore_errors=True)


def make_template(c: PgCluster) -> None:
    """A database with PostGIS and the migrated schema, to clone per test."""
    from truceline.store.db import make_engine, upgrade

    c._admin(f"CREATE DATABASE {TEMPLATE}")
    engine = make_engine(c.url(TEMPLATE))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS postgis")
        upgrade(engine)
    finally:
        engine.dispose()


def require_postgis() -> None:
    """Skip the calling test with the reason when PostGIS cannot run here; under CI=true, fail it."""
    reason = pg_unavailable()
    if reason is None:
        return
    msg = (
        f"PostgreSQL/PostGIS tests cannot run: {reason}. "
        "Install Debian's postgresql and postgresql-15-postgis-3 (as .ci/run does)."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + " CI=true: a skipped PostGIS test is a failure.")
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's PostgreSQL cluster; skipped (failed under CI=true) when it cannot run."""
    require_postgis()
    c = start_cluster()
    try:
        make_template(c)
        yield c
    finally:
        stop_cluster(c)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, migrated database of each kind: a SQLite file, or a PostGIS database."""
    if request.param == "sqlite":
        from truceline.store.db import make_engine, upgrade

        path = str(tmp_path / "truceline.db")
        engine = make_engine(path)
        upgrade(engine)
        engine.dispose()
        return path
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()
