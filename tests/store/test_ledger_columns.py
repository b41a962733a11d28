"""Every stored field the ledger covers, edited one at a time: `ledger verify` finds each edit.

The database holds one of everything (an agreement, tokens (one revoked), reports fused into an
event, findings (one released), a review, a published report, a closed day). Each column of each
ledgered table is then changed in one row, in a copy of the database, and verification must fail.
Deleting the daily roots and re-hashing the whole chain is caught against the roots a party holds.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    create_engine,
    text,
)
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident, second_fix_text
from truceline.io.incidents_io import Reject
from truceline.ledger_verify import GENESIS, canonical_json, entry_hash, merkle_root
from truceline.services.attachments import file_attachment
from truceline.services.attachments import release as release_attachment
from truceline.services.auth import Principal, Role, create_token, revoke_token
from truceline.services.ingest import ingest_incidents
from truceline.services.patrols import PatrolPosition, store_positions
from truceline.services.publication import publish_report
from truceline.services.review import Action, review
from truceline.services.sensors import register_sensors, submit_detections
from truceline.store import ledger, map_cells
from truceline.store.attachments import LocalStore
from truceline.store.db import Database
from truceline.store.models import Base, FindingRow, IncidentRow, JSONText

from ..conftest import register_folder
from ..media_samples import photo

DAY = dt.date(2025, 3, 1)
T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
ADMIN = Principal(subject="admin-1", role=Role.admin)
ANALYST = Principal(subject="analyst-1", role=Role.analyst)

#: The tables whose every column the ledger covers.
LEDGERED = (
    "incidents",
    "findings",
    "published_reports",
    "audit_log",
    "api_tokens",
    "agreements",
    "agreement_revisions",
    "ledger_entries",
    "ledger_head",
    "ledger_roots",
    "attachments",
    "events",
    "incident_revisions",
    "fusion_pairs",
    "patrol_positions",
    "sensors",
    "detections",
    "ingest_batches",
    "rejects",
)


def _report(rid: str, lon: float, source: str, second: int, kind: str = "explosion") -> Incident:
    return Incident(
        id=rid,
        observed_at=T0.replace(hour=10) + dt.timedelta(seconds=second),
        time_precision="second",
        lon=lon,
        lat=48.6,
        uncertainty_m=50.0,
        kind=kind,
        source_type=source,
    )


def _build(db: Database, files: Path, small: Agreement, small_dir: Path) -> None:
    """One of everything, in ``db`` (migrated): see the module's doc."""
    db.write(lambda s: register_folder(s, small_dir, now=T0))
    t1 = db.write(lambda s: create_token(s, role="monitor", name="patrol", actor=ADMIN, now=T0))
    t2 = db.write(lambda s: create_token(s, role="analyst", name="desk", actor=ADMIN, now=T0))
    db.write(lambda s: revoke_token(s, t2.id, actor=ADMIN, now=T0 + dt.timedelta(minutes=1)))
    # reports with findings, then two sources of one explosion, one at a time (fused on arrival)
    plain = [_report(f"r{i}", 36.95 + i * 0.002, "patrol", 600 * i, "armed_personnel") for i in range(3)]
    # one with a second fix (an ambiguous acoustic fix: its columns come from the narrative)
    plain[2] = plain[2].model_copy(
        update={"narrative": "acoustic fix; " + second_fix_text(36.9541, 48.6123, 0.31)}
    )
    db.write(
        lambda s: ingest_incidents(
            s,
            small,
            plain,
            [0, 1, 2],
            source="t",
            submitted_by=t1.id,
            now=T0,
            earlier_rejects=[Reject(3, "bad-1", "lon", "not a number: 'east'")],
        )
    )
    for k, (rid, lon, src, sec) in enumerate(
        [("e1", 36.951, "patrol", 0), ("e2", 36.9512, "camera", 5)]
    ):
        db.write(
            lambda s, r=_report(rid, lon, src, sec), k=k: ingest_incidents(  # noqa: B008
                s, small, [r], [k], source="api", submitted_by=f"m{k}", now=T0
            )
        )
    # a versioned report sent again with another content: a revision (the earlier one kept)
    v1 = _report("v1", 36.99, "patrol", 1200, "armed_personnel")
    for version, unc in ((1000.0, 50.0), (2000.0, 80.0)):
        db.write(
            lambda s, r=v1.model_copy(update={"uncertainty_m": unc}), v=version: ingest_incidents(  # noqa: B008
                s, small, [r], [0], source="acled", submitted_by="acled", now=T0, versions=[v]
            )
        )
    # an acoustic network's sensors, one retired (every column set)
    sensors = [
        {"id": f"mic-{k}", "network": "north", "lon": 36.9 + k * 0.01, "lat": 48.62,
         "elevation_m": 120.0, "timing_sigma_ms": 4.0,
         "retired_at": "2025-03-01T11:00:00Z" if k else None}
        for k in range(2)
    ]  # fmt: skip
    verdicts = db.write(lambda s: register_sensors(s, small, sensors, actor=ADMIN, now=T0))
    assert [v.status for v in verdicts] == ["created", "created"], verdicts
    arrivals = [
        {"sensor_id": "mic-0", "detection_id": f"d{k}", "signal": "impact", "amplitude_db": 92.5,
         "arrival_time": f"2025-03-01T10:0{k}:00.123456Z"}
        for k in range(2)
    ]  # fmt: skip
    verdicts = db.write(lambda s: submit_detections(s, small, arrivals, actor=ADMIN, now=T0))
    assert [v.status for v in verdicts] == ["accepted", "accepted"], verdicts
    # a patrol's track (TAK position reports), one re-sent
    track = [
        PatrolPosition(
            uid="ANDROID-1", cot_type="a-f-G-U-C", observed_at=T0.replace(hour=9, minute=m),
            lon=36.9 + m * 1e-4, lat=48.6, uncertainty_m=9.5, callsign="Alpha", group_name="Cyan",
            group_role="Team Member",
        )
        for m in (0, 1, 1)
    ]  # fmt: skip
    kept = db.write(
        lambda s: store_positions(s, small.id, track, submitted_by=t1.id, now=T0 + dt.timedelta(hours=1))
    )
    assert (kept.stored, kept.duplicates) == (2, 1)
    with db.read() as s:
        assert s.execute(text("select count(*) from incident_revisions")).scalar() == 1
        fpk = s.execute(text("select min(pk) from findings")).scalar()
        ipk = s.get(FindingRow, fpk).incident_pk
        assert s.execute(text("select count(*) from incidents where event_id is not null")).scalar() == 2
    later = T0 + dt.timedelta(hours=2)
    db.write(lambda s: review(s, ipk, Action.verify, actor=ANALYST, now=later))
    db.write(lambda s: review(s, ipk, Action.release, finding_pks=[fpk], actor=ANALYST, now=later))
    db.write(lambda s: publish_report(s, small, DAY, actor=ANALYST, now=later))
    # an evidence photo with its own time and position, filed and released (every column set)
    store = LocalStore(files)
    photo_bytes = photo(lon=36.99, lat=48.9, taken=T0.replace(hour=10, minute=5))
    att = db.write(
        lambda s: file_attachment(
            s, store, ipk, photo_bytes, filename="crater.jpg", declared_type="image/jpeg",
            actor=ANALYST, now=later, max_bytes=10**7,
        ).row.pk
    )  # fmt: skip
    db.write(lambda s: release_attachment(s, store, att, actor=ANALYST, now=later))
    db.write(lambda s: ledger.close_days(s, now=T0 + dt.timedelta(days=1)))
    # the map's summary, built (a later day's report marks its day and leaves it waiting)
    db.write(lambda s: map_cells.refresh(s, small.id))
    # and its years summed from the months (the last rows written: a year's lean rows)
    assert db.write(lambda s: map_cells.sum_years(s, small.id)) == [dt.date(2025, 1, 1)]
    with db.read() as s:
        v = ledger.verify(s)
        assert s.execute(text("select count(*) from map_cells")).scalar()
        last = "select period, sector from map_cells where pk = (select max(pk) from map_cells)"
        assert tuple(s.execute(text(last)).one()) == ("y", map_cells.LEAN)
    assert v.ok, v.problems


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, small: Agreement, small_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("ledgered") / "all.db"
    db = Database(str(path))
    db.upgrade()
    _build(db, path.parent / "files", small, small_dir)
    db.dispose()
    return path


def _changed(value: object, column: object) -> object:
    """A different value of the column's type (as SQLite holds it)."""
    t = column.type  # type: ignore[attr-defined]
    if value is None:
        return {Integer: 1, Float: 1.0, Date: "2025-03-02", DateTime: "2025-03-01 12:00:00.000000"}.get(
            type(t), '{"x": 1}' if isinstance(t, JSON) else "x"
        )
    if isinstance(t, Boolean):
        return 0 if int(str(value)) else 1
    if isinstance(t, DateTime):
        return (dt.datetime.fromisoformat(str(value)) + dt.timedelta(seconds=1)).isoformat(" ")
    if isinstance(t, Date):
        return (dt.date.fromisoformat(str(value)) + dt.timedelta(days=1)).isoformat()
    if isinstance(t, Integer):
        return int(value) + (1000 if column.primary_key else 1)  # type: ignore[attr-defined]
    if isinstance(t, Float):
        return float(value) + 0.5
    if isinstance(value, str):
        if isinstance(t, JSON) or value.startswith(("{", "[")):  # JSON: still JSON, changed
            doc = json.loads(value)
            if isinstance(doc, list):
                return json.dumps([*doc, {"x": 1}])
            return json.dumps({**doc, "x": 1} if isinstance(doc, dict) else {"x": 1})
        return value + "x"
    raise AssertionError(f"no edit for {column} = {value!r}")


def _cases() -> list[tuple[str, str]]:
    return [(t, c.name) for t in LEDGERED for c in Base.metadata.tables[t].columns]


def test_the_ledgered_tables_are_the_stored_ones() -> None:
    assert isinstance(Base.metadata.tables["incidents"].c.zones.type, String | Text)
    assert len(_cases()) >= 90


@pytest.mark.parametrize(("table", "column"), _cases(), ids=[f"{t}.{c}" for t, c in _cases()])
def test_an_edit_of_any_column_is_found(built: Path, tmp_path: Path, table: str, column: str) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    col = Base.metadata.tables[table].c[column]
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        rows = conn.execute(text(f"select rowid, {column} from {table} order by rowid")).all()
        assert rows, f"the test database has no {table}"
        rowid, value = next(((r, v) for r, v in rows if v is not None), rows[0])
        new = _changed(value, col)
        conn.execute(text(f"update {table} set {column} = :v where rowid = :r"), {"v": new, "r": rowid})
    engine.dispose()
    db = Database(str(copy))
    try:
        with db.read() as s:
            v = ledger.verify(s, limit=1000)
    finally:
        db.dispose()
    assert not v.ok, f"{table}.{column}: {value!r} -> {new!r} was not found"


def _json_cases() -> list[tuple[str, str]]:
    return [(t, c) for t, c in _cases() if isinstance(Base.metadata.tables[t].c[c].type, JSONText)]


@pytest.mark.parametrize(("table", "column"), _json_cases(), ids=[f"{t}.{c}" for t, c in _json_cases()])
def test_a_json_column_made_unreadable_is_reported_not_a_crash(
    built: Path, tmp_path: Path, table: str, column: str
) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        rows = conn.execute(text(f"select rowid from {table} where {column} is not null")).all()
        if not rows:
            pytest.skip(f"the test database has no {table}.{column} to spoil")
        conn.execute(
            text(f"update {table} set {column} = '{{broken' where rowid = :r"), {"r": rows[0][0]}
        )
    engine.dispose()
    db = Database(str(copy))
    try:
        with db.read() as s:
            v = ledger.verify(s, limit=1000)
    finally:
        db.dispose()
    assert not v.ok, f"{table}.{column} made unreadable was not found"


def _rehash(conn: Connection) -> None:
    prev = GENESIS
    for s, b in conn.execute(text("select seq, body from ledger_entries order by seq")).all():
        h = entry_hash(prev, b)
        conn.execute(
            text("update ledger_entries set prev_hash = :p, entry_hash = :h where seq = :s"),
            {"p": prev, "h": h, "s": s},
        )
        prev = h
    conn.execute(text("update ledger_head set entry_hash = :h"), {"h": prev})


def _rewrite_history(path: Path) -> None:
    """What an insider with the database could do: change a report, re-hash every entry after
    it, delete the daily roots and close the days again, so the chain holds together."""
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        pk = conn.execute(text("select min(pk) from incidents")).scalar()
        conn.execute(text("update incidents set sector = 'elsewhere' where pk = :p"), {"p": pk})
        seq, body = conn.execute(
            text("select seq, body from ledger_entries where ref = :r and kind = 'report'"),
            {"r": f"incident:{pk}"},
        ).one()
        doc = json.loads(body)
        doc["content"]["sector"] = "elsewhere"  # the entry now records the new sector
        conn.execute(
            text("update ledger_entries set body = :b where seq = :s"),
            {"b": canonical_json(doc), "s": seq},
        )
        _rehash(conn)
        for (day,) in conn.execute(text("select day from ledger_roots")).all():
            hashes = [
                h
                for (h,) in conn.execute(
                    text("select entry_hash from ledger_entries where day = :d order by seq"), {"d": day}
                )
            ]
            root = merkle_root(hashes)
            conn.execute(text("update ledger_roots set root = :r where day = :d"), {"r": root, "d": day})
            # the closing entry (of the next day) records the new root too
            seq, body = conn.execute(
                text("select seq, body from ledger_entries where ref = :r"), {"r": f"day:{day}"}
            ).one()
            doc = json.loads(body)
            doc["content"]["root"] = root
            conn.execute(
                text("update ledger_entries set body = :b where seq = :s"),
                {"b": canonical_json(doc), "s": seq},
            )
        _rehash(conn)
    engine.dispose()


def test_deleting_roots_and_rehashing_is_found_against_the_roots_a_party_holds(
    built: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    held = tmp_path / "roots.json"
    out = runner.invoke(app, ["ledger", "roots", "-o", str(held), "--db", str(copy)])
    assert out.exit_code == 0, out.output
    assert [r["day"] for r in json.loads(held.read_text())] == [DAY.isoformat()]
    ok = runner.invoke(app, ["ledger", "verify", "--roots", str(held), "--db", str(copy)])
    assert ok.exit_code == 0 and "as do the 1 roots you hold" in ok.output, ok.output

    _rewrite_history(copy)
    # the database alone cannot tell: the chain, its roots and the records agree
    plain = runner.invoke(app, ["ledger", "verify", "--db", str(copy)])
    assert plain.exit_code == 0, plain.output
    caught = runner.invoke(app, ["ledger", "verify", "--roots", str(held), "--db", str(copy)])
    assert caught.exit_code == 1
    assert f"day {DAY}: the root you hold is" in caught.output, caught.output

    # a deleted root (and its closing entry with it, the chain re-hashed) is missing
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(text("delete from ledger_roots"))
    engine.dispose()
    gone = runner.invoke(app, ["ledger", "verify", "--roots", str(held), "--db", str(copy)])
    assert gone.exit_code == 1 and "the database has no root for it" in gone.output, gone.output

    bad = tmp_path / "bad.json"
    bad.write_text('[{"day": "yesterday"}]')
    refused = runner.invoke(app, ["ledger", "verify", "--roots", str(bad), "--db", str(copy)])
    assert refused.exit_code == 2 and "held root 1" in refused.output, refused.output


def test_event_membership_changed_without_a_decision_is_found(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(text("update incidents set event_id = null where event_id is not null"))
    engine.dispose()
    db = Database(str(copy))
    with db.read() as s:
        v = ledger.verify(s)
        n = s.query(IncidentRow).count()
    db.dispose()
    assert n == 6
    assert (
        not v.ok and sum("the ledger's last link or decision says" in p.message for p in v.problems) == 2
    )


#: The tables issue 17 added to the ledger, edited column by column on PostgreSQL as well.
KEPT_WHOLE = (
    "events",
    "incident_revisions",
    "fusion_pairs",
    "patrol_positions",
    "sensors",
    "detections",
    "ingest_batches",
    "rejects",
)


def _pg_edit(column: Any) -> str:
    """SQL (PostgreSQL) for a different value of ``column``, whatever it holds now."""
    c, t = column.name, column.type
    if isinstance(t, JSONText | JSON):
        return """'{"x": 1}'"""
    if isinstance(t, Boolean):
        return f"NOT coalesce({c}, false)"
    if isinstance(t, DateTime):
        return f"coalesce({c}, now()) + interval '1 second'"
    if isinstance(t, Date):
        return f"coalesce({c}, current_date) + 1"
    if isinstance(t, Integer):
        return f"coalesce({c}, 0) + {1000 if column.primary_key else 1}"
    if isinstance(t, Float):
        return f"coalesce({c}, 0) + 0.5"
    v = f"coalesce({c}, '')"  # its last character changed (the column's length is a limit)
    return f"left({v}, -1) || CASE WHEN right({v}, 1) = 'x' THEN 'y' ELSE 'x' END"


def test_an_edit_of_any_column_is_found_on_postgresql(
    pg_cluster: Any, tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    db = Database(pg_cluster.new_database())
    try:
        _build(db, tmp_path / "files", small, small_dir)
        missed = []
        for table in KEPT_WHOLE:
            for col in Base.metadata.tables[table].columns:
                with db.engine.connect() as conn:
                    tx = conn.begin()
                    # an insider with the database: foreign keys do not stop them
                    conn.execute(text("SET LOCAL session_replication_role = replica"))
                    pk = Base.metadata.tables[table].primary_key.columns.values()[0].name
                    key = conn.execute(text(f"select min({pk}) from {table}")).scalar()
                    assert key is not None, f"the test database has no {table}"
                    n = conn.execute(
                        text(f"update {table} set {col.name} = {_pg_edit(col)} where {pk} = :k"),
                        {"k": key},
                    ).rowcount
                    assert n == 1
                    with Session(bind=conn) as s:
                        v = ledger.verify(s, limit=1000)
                    if v.ok:
                        missed.append(f"{table}.{col.name}")
                    tx.rollback()
        assert not missed, f"edits not found on PostgreSQL: {missed}"
        # the map's summary, summed again from the records (a base row, and a year's lean row)
        for column in SUMMARY_COLUMNS:
            col = Base.metadata.tables["map_cells"].c[column]
            for which in ("min", "max"):
                with db.engine.connect() as conn:
                    tx = conn.begin()
                    sql = f"update map_cells set {column} = {_pg_edit(col)} where pk = "
                    conn.execute(text(sql + f"(select {which}(pk) from map_cells)"))
                    with Session(bind=conn) as s:
                        v = ledger.verify(s, limit=1000)
                    if v.ok or {p.kind for p in v.problems} != {"summary"}:
                        missed.append(f"map_cells.{column} ({which})")
                    tx.rollback()
        assert not missed, f"summary edits not found on PostgreSQL: {missed}"
    finally:
        db.dispose()


#: The map's summary: derived from the ledgered incidents and findings, so `ledger verify` sums
#: it again from them rather than ledgering it (its ``pk`` is a row number nothing shows).
SUMMARY_COLUMNS = [c.name for c in Base.metadata.tables["map_cells"].columns if c.name != "pk"]


def _verified(path: Path) -> ledger.Verification:
    db = Database(str(path))
    try:
        with db.read() as s:
            return ledger.verify(s, limit=1000)
    finally:
        db.dispose()


@pytest.mark.parametrize("column", SUMMARY_COLUMNS)
def test_an_edit_of_the_map_summary_is_found(built: Path, tmp_path: Path, column: str) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    col = Base.metadata.tables["map_cells"].c[column]
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        # a row at each level and period in turn: the last, a year's lean row, is summed from
        # others; the first, a day's base row, is counted from the incidents
        for pk in (
            conn.execute(text("select min(pk) from map_cells union select max(pk) from map_cells"))
            .scalars()
            .all()
        ):
            value = conn.execute(
                text(f"select {column} from map_cells where pk = :k"), {"k": pk}
            ).scalar()
            new = _changed(value, col)
            conn.execute(text(f"update map_cells set {column} = :v where pk = :k"), {"v": new, "k": pk})
    engine.dispose()
    v = _verified(copy)
    assert not v.ok, f"map_cells.{column}: the edit was not found"
    assert all(p.kind == "summary" for p in v.problems), v.problems
    assert "db summarise --rebuild" in str(v.problems[0])


@pytest.mark.parametrize(
    "sql",
    [
        "delete from map_cells where pk = (select max(pk) from map_cells where period = 'd')",
        "insert into map_cells (agreement_id, zoom, period, day, gx, gy, finding, kind, sector, "
        "source_type, rule_id, party, status, released, in_force, in_area, n, sx, sy) select "
        "agreement_id, zoom, period, day, gx, gy, finding, kind, sector, source_type, rule_id, party, "
        "status, released, in_force, in_area, n, sx, sy from map_cells "
        "where pk = (select min(pk) from map_cells)",
        # a day's rows moved to a day without reports
        "update map_cells set day = '2025-03-09' where period = 'd' and day = '2025-03-01'",
        # a year's row at the finest level deleted; a year's rows moved off its 1st of January
        "delete from map_cells where pk = (select max(pk) from map_cells where period = 'y' "
        "and zoom = 10)",
        "update map_cells set day = '2025-03-01' where period = 'y' and zoom = 8",
    ],
    ids=["row-deleted", "row-copied", "day-moved", "year-row-deleted", "year-moved"],
)
def test_rows_deleted_copied_or_moved_in_the_map_summary_are_found(
    built: Path, tmp_path: Path, sql: str
) -> None:
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        assert conn.execute(text(sql)).rowcount
    engine.dispose()
    v = _verified(copy)
    assert not v.ok and v.problems[0].kind == "summary", v.problems


def test_a_summary_left_stale_behind_the_map_s_back_is_found_and_rebuilt(
    built: Path, tmp_path: Path
) -> None:
    """An incident's sector edited in SQL marks its day (a trigger); deleting the mark too leaves
    the map reading rows that no longer sum the records. Verify names it (beside the incident's
    own edit), and `db summarise --rebuild` makes the summary right again."""
    copy = tmp_path / "copy.db"
    shutil.copy(built, copy)
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        conn.execute(
            text(
                "update incidents set sector = sector || 'x' where pk = (select min(pk) from incidents)"
            )
        )
        assert conn.execute(text("delete from map_stale_days")).rowcount
    engine.dispose()
    kinds = {p.kind for p in _verified(copy).problems}
    assert {"summary", "record"} <= kinds, kinds
    out = CliRunner().invoke(app, ["db", "summarise", "--db", str(copy), "--rebuild"])
    assert out.exit_code == 0, out.output
    kinds = {p.kind for p in _verified(copy).problems}
    assert "summary" not in kinds and "record" in kinds, kinds
