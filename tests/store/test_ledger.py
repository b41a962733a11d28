"""The tamper-evident ledger against a real database: every kind of tampering is found and named."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.ledger_verify import canonical_json, entry_hash, verify_proof
from truceline.services.auth import Principal, Role
from truceline.services.ingest import ingest_incidents
from truceline.services.review import Action, review
from truceline.store import db as db_module
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import FindingRow

from ..conftest import register_folder
from ..core.test_rules import point_at

DAY = dt.date(2025, 3, 1)
T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
ANALYST = Principal(subject="analyst-1", role=Role.analyst)


def incident(i: int, lon: float = 36.95, lat: float = 48.6) -> Incident:
    return Incident(
        id=f"r{i}",
        observed_at=dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC),
        lon=lon,
        lat=lat,
        uncertainty_m=50,
        kind="armed_personnel",
        source_type="patrol",
    )


@dataclass
class Ledgered:
    db: Database
    findings: list[int]


@pytest.fixture()
def ledgered(db_url: str, small: Agreement, small_dir: Path) -> Ledgered:
    """Two batches on 1 March (reports and findings), a review, the day closed on 2 March."""
    db = Database(db_url)
    db.write(lambda s: register_folder(s, small_dir, now=T0))
    db.write(
        lambda s: ingest_incidents(
            s,
            small,
            [incident(i, 36.95 + i * 0.002) for i in range(4)],
            list(range(4)),
            source="t",
            submitted_by="m1",
            now=T0,
        )
    )
    db.write(
        lambda s: ingest_incidents(
            s,
            small,
            [incident(i, 36.95 + i * 0.002) for i in range(4, 6)],
            [0, 1],
            source="t",
            submitted_by="m2",
            now=T0 + dt.timedelta(hours=1),
        )
    )
    with db.read() as s:
        fpks = list(s.execute(text("select pk from findings order by pk")).scalars())
        ipk = s.get(FindingRow, fpks[0]).incident_pk
    db.write(lambda s: review(s, ipk, Action.verify, actor=ANALYST, now=T0 + dt.timedelta(hours=2)))
    db.write(
        lambda s: review(
            s, ipk, Action.release, finding_pks=[fpks[0]], actor=ANALYST, now=T0 + dt.timedelta(hours=2)
        )
    )
    closed = db.write(lambda s: [r.day for r in ledger.close_days(s, now=T0 + dt.timedelta(days=1))])
    assert closed == [DAY]
    yield Ledgered(db, fpks)
    db.dispose()


def _sql(db: Database, sql: str, **params: object) -> None:
    with db.write_engine.begin() as conn:
        conn.execute(text(sql), params)


def _entries(db: Database) -> list[tuple[int, str, str, str, str]]:
    with db.read() as s:
        return [
            tuple(r)
            for r in s.execute(
                text("select seq, kind, ref, body, entry_hash from ledger_entries order by seq")
            )
        ]


def test_untouched_ledger_verifies(ledgered: Ledgered) -> None:
    with ledgered.db.read() as s:
        v = ledger.verify(s)
    assert v.ok, v.problems
    kinds = [e[1] for e in _entries(ledgered.db)]
    assert kinds.count("report") == 6 and kinds.count("finding") == len(ledgered.findings)
    assert [k for k in kinds if k not in ("audit", "root")][-2:] == ["review", "review"]
    assert kinds[-1] == "root"  # closing the day
    assert "audit" in kinds  # the audit log is in the ledger too
    assert v.days_closed == 1 and v.incidents == 6


def _rehash_from(conn: Connection, seq: int) -> None:
    """What a careful forger does: recompute every hash from ``seq`` on, and the head."""
    rows = conn.execute(
        text("select seq, body, prev_hash from ledger_entries where seq >= :s order by seq"), {"s": seq}
    ).all()
    prev = rows[0][2]
    for s_, body, _ in rows:
        h = entry_hash(prev, body)
        conn.execute(
            text("update ledger_entries set prev_hash=:p, entry_hash=:h where seq=:s"),
            {"p": prev, "h": h, "s": s_},
        )
        prev = h
    conn.execute(text("update ledger_head set entry_hash=:h"), {"h": prev})


def _alter_body(ld: Ledgered, seq: int, rehash: bool) -> None:
    with ld.db.write_engine.begin() as conn:
        body = conn.execute(
            text("select body from ledger_entries where seq=:s"), {"s": seq}
        ).scalar_one()
        doc = json.loads(body)
        doc["content"]["probability"] = 0.01
        conn.execute(
            text("update ledger_entries set body=:b where seq=:s"), {"b": canonical_json(doc), "s": seq}
        )
        if rehash:
            _rehash_from(conn, seq)


def _finding_seq(ld: Ledgered, k: int = 1) -> int:
    return next(e[0] for e in _entries(ld.db) if e[2] == f"finding:{ld.findings[k]}")


def _report_seq(ld: Ledgered, i: int) -> int:
    return [e[0] for e in _entries(ld.db) if e[1] == "report"][i]


Tamper = Callable[[Ledgered], tuple[int, str]]  # does it; returns (first bad entry, kind)


def t_altered(ld: Ledgered) -> tuple[int, str]:
    seq = _finding_seq(ld)
    _alter_body(ld, seq, rehash=False)
    return seq, "altered"


def t_altered_and_rehashed(ld: Ledgered) -> tuple[int, str]:
    seq = _finding_seq(ld)
    _alter_body(ld, seq, rehash=True)
    return seq, "root"  # chain consistent again: the closed day's root gives it away


def t_altered_rehashed_one(ld: Ledgered) -> tuple[int, str]:
    seq = _finding_seq(ld)
    with ld.db.write_engine.begin() as conn:
        body, prev = conn.execute(
            text("select body, prev_hash from ledger_entries where seq=:s"), {"s": seq}
        ).one()
        body = body.replace('"rule_id":"bz-ban"', '"rule_id":"none"')
        conn.execute(
            text("update ledger_entries set body=:b, entry_hash=:h where seq=:s"),
            {"b": body, "h": entry_hash(prev, body), "s": seq},
        )
    return seq, "altered"


def t_deleted(ld: Ledgered) -> tuple[int, str]:
    seq = _report_seq(ld, 2)
    _sql(ld.db, "delete from ledger_entries where seq=:s", s=seq)
    return seq, "deleted"


def t_tail_deleted(ld: Ledgered) -> tuple[int, str]:
    last = _entries(ld.db)[-1][0]
    _sql(ld.db, "delete from ledger_entries where seq >= :s", s=last - 1)
    return last - 1, "deleted"


def t_reordered(ld: Ledgered) -> tuple[int, str]:
    a, b = _report_seq(ld, 1), _report_seq(ld, 2)
    with ld.db.write_engine.begin() as conn:
        ra = conn.execute(
            text("select body, prev_hash, entry_hash from ledger_entries where seq=:s"), {"s": a}
        ).one()
        rb = conn.execute(
            text("select body, prev_hash, entry_hash from ledger_entries where seq=:s"), {"s": b}
        ).one()
        for seq, (body, prev, h) in ((a, rb), (b, ra)):
            conn.execute(
                text("update ledger_entries set body=:b, prev_hash=:p, entry_hash=:h where seq=:s"),
                {"b": body, "p": prev, "h": h, "s": seq},
            )
    return a, "reordered"


def t_incident_row_altered(ld: Ledgered) -> tuple[int, str]:
    _sql(ld.db, "update incidents set lon = lon + 0.01 where report_id = 'r3'")
    return _report_seq(ld, 3), "record"


def t_finding_row_deleted(ld: Ledgered) -> tuple[int, str]:
    _sql(ld.db, "delete from findings where pk = :p", p=ld.findings[2])
    return _finding_seq(ld, 2), "record"


def t_finding_released_behind_the_back(ld: Ledgered) -> tuple[int, str]:
    _sql(
        ld.db,
        "update findings set released_at = received where pk = :p".replace("received", "created_at"),
        p=ld.findings[1],
    )
    return _finding_seq(ld, 1), "record"


def _edit_numbers(ld: Ledgered, k: int, **change: object) -> None:
    def edit(s: Session) -> None:
        row = s.get(FindingRow, ld.findings[k])
        assert row is not None and row.numbers is not None
        row.numbers = {**row.numbers, **change}

    ld.db.write(edit)


def t_finding_distance_edited(ld: Ledgered) -> tuple[int, str]:
    _edit_numbers(ld, 1, distance_km=40.0)  # the report shows the numbers: they are evidence too
    return _finding_seq(ld, 1), "record"


def t_finding_numbers_removed(ld: Ledgered) -> tuple[int, str]:
    _sql(ld.db, "update findings set numbers = null where pk = :p", p=ld.findings[2])
    return _finding_seq(ld, 2), "record"


def t_status_changed(ld: Ledgered) -> tuple[int, str]:
    _sql(ld.db, "update incidents set status = 'rejected' where report_id = 'r5'")
    return _report_seq(ld, 5), "record"


TAMPERS: list[Tamper] = [
    t_altered,
    t_altered_and_rehashed,
    t_altered_rehashed_one,
    t_deleted,
    t_tail_deleted,
    t_reordered,
    t_incident_row_altered,
    t_finding_row_deleted,
    t_finding_released_behind_the_back,
    t_finding_distance_edited,
    t_finding_numbers_removed,
    t_status_changed,
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.__name__[2:] for t in TAMPERS])
def test_tampering_is_found_and_named(ledgered: Ledgered, tamper: Tamper) -> None:
    seq, kind = tamper(ledgered)
    with ledgered.db.read() as s:
        v = ledger.verify(s)
    assert not v.ok
    first = v.first
    assert first is not None
    if kind == "root":
        assert any(p.kind == "root" for p in v.problems), v.problems
        assert any(p.seq == seq and p.kind == "record" for p in v.problems), v.problems
    else:
        assert (first.seq, first.kind) == (seq, kind), v.problems
    assert str(first)


def test_proof_of_a_finding_verifies_standalone(ledgered: Ledgered) -> None:
    with ledgered.db.read() as s:
        seq = ledger.entry_of(s, f"finding:{ledgered.findings[0]}").seq
        doc = ledger.export_proof(s, seq)
        root = ledger.roots(s)[0].root
    assert verify_proof(json.loads(json.dumps(doc)), root=root) == []
    assert json.loads(doc["entry"]["body"])["content"]["finding"] == ledgered.findings[0]


def test_appends_never_go_back_into_a_closed_day(ledgered: Ledgered, small: Agreement) -> None:
    late = dt.datetime(2025, 3, 1, 23, 59, tzinfo=dt.UTC)  # a clock running behind
    with pytest.raises(Exception, match="closed"):
        ledgered.db.write(lambda s: ledger.append(s, [("note", "x", {})], now=late))
    ledgered.db.write(lambda s: ledger.append(s, [("note", "x", {})], now=T0 + dt.timedelta(days=1)))
    with ledgered.db.read() as s:
        assert ledger.verify(s).ok
        with pytest.raises(Exception, match="not closed"):
            ledger.export_proof(s, _entries(ledgered.db)[-1][0])


def test_every_body_is_the_canonical_json_of_its_entry(
    db_url: str, small: Agreement, small_dir: Path
) -> None:
    """Bodies assembled around pre-serialised content (reports, with ASCII and non-ASCII records)
    are byte for byte what serialising the whole entry gives: a party's own verifier, which
    re-serialises, agrees."""
    db = Database(db_url)
    try:
        db.write(lambda s: register_folder(s, small_dir, now=T0))
        incs = [
            incident(1).model_copy(update={"narrative": "plain text"}),
            incident(2, 36.952).model_copy(update={"narrative": 'Обстріл "поблизу" — 3 × 152 мм'}),
        ]
        db.write(
            lambda s: ingest_incidents(
                s, small, incs, [0, 1], source="t", submitted_by="монітор 1", now=T0
            )
        )
        entries = _entries(db)
        assert {k for _, k, *_ in entries} >= {"report", "finding"}
        for seq, _, _, body, _ in entries:
            assert canonical_json(json.loads(body)) == body, seq
        with db.read() as s:
            assert ledger.verify(s).ok
    finally:
        db.dispose()


def test_entry_body_matches_canonical_json() -> None:
    content = {"b": [1, 2.5, None], "a": 'ä \u2028 "q"', "c": {"z": True, "y": "x"}}
    text_ = ledger.CanonicalJSON(canonical_json(content))
    full = {"seq": 7, "time": T0.isoformat(), "kind": "réport", "ref": 'x:"1"', "content": content}
    assert ledger.entry_body(7, T0.isoformat(), "réport", 'x:"1"', text_) == canonical_json(full)


@pytest.mark.parametrize(
    "value", ["incident:12", "", 'a"b', "back\\slash", "tab\there", "nl\n", "\x7f", "é", "\u2028", "x y"]
)
def test_strings_in_bodies_are_written_as_canonical_json_writes_them(value: str) -> None:
    assert ledger.json_text(value) == canonical_json(value)


# -- the numbers on a finding ---------------------------------------------------------------------

#: What a finding's ledger entry held before findings carried numbers.
_CONTENT_BEFORE_NUMBERS = {
    "agreement", "explanation", "finding", "incident", "probability", "report_hash", "responsible",
    "rule_id", "rule_type",
}  # fmt: skip


def _heavy_weapon(small: Agreement) -> Incident:
    """Artillery 18.4 km from the line on A's side, where the limit is 25 km (a withdrawal finding)."""
    lon, lat = point_at(small, 18.4, -1)
    return Incident(
        id="hw1",
        observed_at=dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC),
        lon=lon,
        lat=lat,
        uncertainty_m=0,
        kind="heavy_weapon",
        weapon_class="art100",
        source_type="patrol",
    )


def _finding_entry(s: Session, rule_id: str) -> tuple[FindingRow, dict[str, object]]:
    f = s.execute(select(FindingRow).where(FindingRow.rule_id == rule_id)).scalar_one()
    content = json.loads(ledger.entry_of(s, f"finding:{f.pk}").body)["content"]
    return f, content


@pytest.mark.parametrize("number", ["distance_km", "limit_km"])
def test_the_ledger_holds_a_findings_numbers_and_an_edit_is_found(
    db_url: str, small: Agreement, small_dir: Path, number: str
) -> None:
    db = Database(db_url)
    try:
        db.write(lambda s: register_folder(s, small_dir, now=T0))
        db.write(
            lambda s: ingest_incidents(
                s, small, [_heavy_weapon(small)], [0], source="t", submitted_by="m1", now=T0
            )
        )
        with db.read() as s:
            f, content = _finding_entry(s, "wd-art")
            assert f.numbers is not None and content["numbers"] == f.numbers
            assert f.numbers["limit_km"] == 25.0 and f.numbers["side_party"] == "A"
            assert f.numbers["distance_km"] == pytest.approx(18.4, abs=1e-3)
            assert ledger.verify(s).ok
            seq = ledger.entry_of(s, f"finding:{f.pk}").seq

        def edit(s: Session) -> None:
            row = s.get(FindingRow, f.pk)
            assert row is not None and row.numbers is not None
            row.numbers = {**row.numbers, number: row.numbers[number] + 10.0}

        db.write(edit)
        with db.read() as s:
            v = ledger.verify(s)
        assert not v.ok and v.first is not None
        assert (v.first.seq, v.first.kind) == (seq, "record"), v.problems
        assert f"finding {f.pk} differs" in v.first.message
    finally:
        db.dispose()


def test_findings_recorded_before_numbers_still_verify(
    db_url: str, small: Agreement, small_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finding stored and ledgered without numbers (as before migration 0006) verifies; the
    migration keeps it, both ways; giving it numbers behind the ledger's back is found."""
    db = Database(db_url)
    try:
        db.write(lambda s: register_folder(s, small_dir, now=T0))
        with monkeypatch.context() as m:  # ingest as it was: no numbers (nor commitments, 0015)
            m.setattr("truceline.store.incidents.numbers_texts", lambda f: [None] * len(f))
            m.setattr("truceline.store.incidents.new_salts", lambda n: [None] * n)
            db.write(
                lambda s: ingest_incidents(
                    s, small, [_heavy_weapon(small)], [0], source="t", submitted_by="m1", now=T0
                )
            )
        with db.read() as s:
            f, content = _finding_entry(s, "wd-art")
            assert f.numbers is None and set(content) - {"created_at"} == _CONTENT_BEFORE_NUMBERS
            assert ledger.verify(s).ok
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db_module.__file__).with_name("migrations")))
        for step, rev in ((command.downgrade, "0005"), (command.upgrade, "head")):
            with db.write_engine.begin() as conn:
                cfg.attributes["connection"] = conn
                step(cfg, rev)
        with db.read() as s:
            assert ledger.verify(s).ok
            assert s.execute(select(FindingRow.numbers)).scalars().all() == [None]
        _sql(db, "update findings set numbers = :n", n='{"limit_km":30.0}')
        with db.read() as s:
            v = ledger.verify(s)
        assert not v.ok and v.first is not None and v.first.kind == "record"
    finally:
        db.dispose()
