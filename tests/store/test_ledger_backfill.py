"""Rows stored before the ledger kept their table: `ledger verify` counts them (never a silent OK),
`ledger backfill` records them (batched, resumable, idempotent, audited), and then an edit of any
of their columns is caught (SQLite and PostgreSQL).

The "older" database is made by running the writers with the ledgering of whole rows and of the
audit log switched off (what the code did before), then a few writes with it on, so that older
and newer rows sit side by side.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.services import backfill as backfill_service
from truceline.services.auth import Principal, Role, create_token
from truceline.services.backfill import backfill, uncovered
from truceline.services.ingest import ingest_incidents
from truceline.services.sensors import register_sensors
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import AuditRow, Base, LedgerEntryRow

from .test_ledger_columns import KEPT_WHOLE, T0, _build, _changed, _pg_edit, _report

ADMIN = Principal(subject="admin-1", role=Role.admin)
#: Every table whose older rows the backfill covers (tokens follow their audit rows).
BACKFILLED = (*KEPT_WHOLE, "audit_log")


def _older(db: Database, files: Path, small: Agreement, small_dir: Path) -> None:
    """``_build``'s database as the code before whole rows and the audit log were ledgered made it,
    then newer rows (a batch, a sensor, a token) written with the ledger on."""
    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(ledger, "record_rows", lambda *a, **k: None)
        append = ledger.append
        mp.setattr(
            ledger,
            "append",
            lambda s, items, now: append(s, [i for i in items if i[0] != "audit"], now=now),
        )
        _build(db, files, small, small_dir)
    finally:
        mp.undo()
    later = T0 + dt.timedelta(days=2)
    db.write(
        lambda s: ingest_incidents(
            s, small, [_report("new-1", 36.97, "patrol", 3000)], [0], source="api",
            submitted_by="m9", now=later,
        )
    )  # fmt: skip
    sensor = {"id": "mic-9", "network": "north", "lon": 36.93, "lat": 48.62}
    db.write(lambda s: register_sensors(s, small, [sensor], actor=ADMIN, now=later))
    db.write(lambda s: create_token(s, role="monitor", name="newer", actor=ADMIN, now=later))


def _verify(db: Database) -> ledger.Verification:
    with db.read() as s:
        return ledger.verify(s, limit=1000)


def _entries(db: Database) -> int:
    with db.read() as s:
        return int(s.execute(select(func.count()).select_from(LedgerEntryRow)).scalar_one())


class _StopError(Exception):
    pass


def _backfill_in_steps(db: Database) -> None:
    """A backfill interrupted after three batches (of one row each), then run to its end."""
    seen: list[int] = []

    def stop_after_three(table: str, done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 3:
            raise _StopError

    with pytest.raises(_StopError):
        backfill(
            db, actor=ADMIN, now=lambda: dt.datetime.now(dt.UTC), batch=1, progress=stop_after_three
        )
    # stopped halfway: what is left is still "not covered", never "no ledger entry"
    half = _verify(db)
    assert half.ok, half.problems
    assert sum(half.uncovered.values()) > 0 and seen == [1, 2, 3]
    done = backfill(db, actor=ADMIN, now=lambda: dt.datetime.now(dt.UTC), batch=3)
    assert sum(done.values()) == sum(half.uncovered.values()) - half.uncovered.get("api_tokens", 0)


def _check_before_and_after(db: Database) -> dict[str, int]:
    before = _verify(db)
    assert before.ok, before.problems
    assert set(before.uncovered) == {*BACKFILLED, "api_tokens"}, before.uncovered
    assert uncovered(db) == {t: n for t, n in before.uncovered.items() if t != "api_tokens"}
    _backfill_in_steps(db)
    after = _verify(db)
    assert after.ok and after.uncovered == {}, (after.problems, after.uncovered)
    # a second run adds nothing
    n = _entries(db)
    assert backfill(db, actor=ADMIN, now=lambda: dt.datetime.now(dt.UTC)) == {}
    assert _entries(db) == n
    # audited: who, and how many of each table (the two runs that recorded rows)
    with db.read() as s:
        audits = s.execute(select(AuditRow).where(AuditRow.action == "backfill")).scalars().all()
    assert [a.actor for a in audits] == ["admin-1"] * 2
    recorded: list[dict[str, int]] = [a.after["rows"] for a in audits if a.after]  # type: ignore[misc]
    assert sum(sum(r.values()) for r in recorded) == sum(
        n for t, n in before.uncovered.items() if t != "api_tokens"
    )
    return before.uncovered


@pytest.fixture(scope="module")
def backfilled(
    tmp_path_factory: pytest.TempPathFactory, small: Agreement, small_dir: Path
) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("older") / "older.db"
    db = Database(str(path))
    db.upgrade()
    _older(db, path.parent / "files", small, small_dir)
    db.dispose()  # its write-ahead log checkpointed: the file alone holds the database
    shutil.copy(path, path.parent / "before.db")
    db = Database(str(path))
    counts = _check_before_and_after(db)
    db.dispose()
    return path, counts


def test_verify_counts_what_it_does_not_cover_and_backfill_covers_it(
    backfilled: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    _, counts = backfilled
    # the older rows of every table were counted: those _build wrote (two sensors, ...)
    assert counts["sensors"] == 2 and counts["ingest_batches"] >= 4 and counts["rejects"] == 1
    assert counts["api_tokens"] == 2


def test_the_cli_says_what_is_not_covered_and_backfills_it(
    backfilled: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    path, counts = backfilled
    copy = tmp_path / "copy.db"
    shutil.copy(path.parent / "before.db", copy)
    runner = CliRunner()
    out = runner.invoke(app, ["ledger", "verify", "--db", str(copy)])
    assert out.exit_code == 3, out.output  # intact, but not every row is covered: not a plain OK
    assert "OK:" in out.output and "NOT COVERED:" in out.output
    assert f"sensors {counts['sensors']}" in out.output, out.output
    out = runner.invoke(app, ["ledger", "backfill", "--db", str(copy), "--batch", "2"])
    assert out.exit_code == 0, out.output
    assert "Backfilled" in out.output and f"rejects {counts['rejects']}" in out.output, out.output
    out = runner.invoke(app, ["ledger", "verify", "--db", str(copy)])
    assert out.exit_code == 0 and "NOT COVERED" not in out.output, out.output
    out = runner.invoke(app, ["ledger", "backfill", "--db", str(copy)])
    assert out.exit_code == 0 and "Nothing to backfill" in out.output, out.output


def _cases() -> list[tuple[str, str]]:
    return [(t, c.name) for t in (*BACKFILLED, "api_tokens") for c in Base.metadata.tables[t].columns]


@pytest.mark.parametrize(("table", "column"), _cases(), ids=[f"{t}.{c}" for t, c in _cases()])
def test_an_edit_of_a_backfilled_row_is_found(
    backfilled: tuple[Path, dict[str, int]], tmp_path: Path, table: str, column: str
) -> None:
    path, _ = backfilled
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    col = Base.metadata.tables[table].c[column]
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        # the oldest row: one stored before the ledger kept its table, then backfilled
        first = conn.execute(text(f"select rowid, {column} from {table} order by rowid")).first()
        assert first is not None, f"the test database has no {table}"
        rowid, value = first
        new = _changed(value, col)
        conn.execute(text(f"update {table} set {column} = :v where rowid = :r"), {"v": new, "r": rowid})
    engine.dispose()
    db = Database(str(copy))
    try:
        v = _verify(db)
    finally:
        db.dispose()
    assert not v.ok, f"{table}.{column}: {value!r} -> {new!r} was not found"


def test_backfill_on_postgresql(
    pg_cluster: Any, tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    db = Database(pg_cluster.new_database())
    try:
        _older(db, tmp_path / "files", small, small_dir)
        _check_before_and_after(db)
        missed = []
        for table in KEPT_WHOLE:
            t = Base.metadata.tables[table]
            pk = t.primary_key.columns.values()[0].name
            for col in t.columns:
                with db.engine.connect() as conn:
                    tx = conn.begin()
                    conn.execute(text("SET LOCAL session_replication_role = replica"))
                    key = conn.execute(text(f"select min({pk}) from {table}")).scalar()
                    n = conn.execute(
                        text(f"update {table} set {col.name} = {_pg_edit(col)} where {pk} = :k"),
                        {"k": key},
                    ).rowcount
                    assert n == 1
                    with Session(bind=conn) as s:
                        if ledger.verify(s, limit=1000).ok:
                            missed.append(f"{table}.{col.name}")
                    tx.rollback()
        assert not missed, f"edits of backfilled rows not found on PostgreSQL: {missed}"
    finally:
        db.dispose()


def test_batch_must_be_positive(tmp_path: Path) -> None:
    db = Database(str(tmp_path / "x.db"))
    db.upgrade()
    try:
        with pytest.raises(ValueError):
            backfill_service.backfill(db, actor=ADMIN, now=lambda: dt.datetime.now(dt.UTC), batch=0)
    finally:
        db.dispose()


def test_a_row_inserted_behind_the_ledgers_back_after_the_backfill_has_no_entry(
    backfilled: tuple[Path, dict[str, int]], tmp_path: Path
) -> None:
    """Not "not covered": a patrol position (a table only the backfill recorded) and a sensor (one
    recorded live too) made after the ledger began recording them."""
    path, _ = backfilled
    copy = tmp_path / "copy.db"
    shutil.copy(path, copy)
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "insert into patrol_positions (agreement_id, uid, callsign, group_name, group_role, "
                "cot_type, observed_at, lon, lat, uncertainty_m, received_at, submitted_by) select "
                "agreement_id, 'FAKE', '', '', '', cot_type, observed_at, lon, lat, uncertainty_m, "
                ":now, '' from patrol_positions limit 1"
            ),
            {"now": dt.datetime.now(dt.UTC).isoformat(" ")},
        )
        conn.execute(
            text(
                "insert into sensors (id, agreement_id, network, kind, lon, lat, elevation_m, "
                "timing_sigma_ms, sector, registered_at, registered_by) select 'mic-fake', "
                "agreement_id, network, kind, lon, lat, elevation_m, timing_sigma_ms, sector, "
                ":now, '' from sensors limit 1"
            ),
            {"now": dt.datetime.now(dt.UTC).isoformat(" ")},
        )
    engine.dispose()
    db = Database(str(copy))
    try:
        v = _verify(db)
    finally:
        db.dispose()
    found = sorted(p.message for p in v.problems)
    assert found == [
        "patrol_positions row 3 has no ledger entry",
        "sensors row mic-fake has no ledger entry",
    ], found
    assert v.uncovered == {}
