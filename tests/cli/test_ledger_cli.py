"""`truceline ledger ...` and the standalone verifier, as a user runs them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.services.ingest import ingest_incidents
from truceline.store.db import Database

from ..conftest import register_folder
from ..store.test_ledger import _rehash_from

runner = CliRunner()


def test_verify_close_proof_and_detection(tmp_path: Path, small: Agreement, small_dir: Path) -> None:
    db_path = str(tmp_path / "l.db")
    db = Database(db_path)
    db.upgrade()
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    incs = [
        Incident(
            id=f"r{i}",
            observed_at=yesterday,
            lon=36.95 + i * 0.002,
            lat=48.6,
            kind="armed_personnel",
            source_type="patrol",
        )
        for i in range(3)
    ]
    db.write(lambda s: register_folder(s, small_dir, now=yesterday))
    db.write(lambda s: ingest_incidents(s, small, incs, [0, 1, 2], source="t", now=yesterday))
    db.dispose()

    ok = runner.invoke(app, ["ledger", "verify", "--db", db_path])
    assert ok.exit_code == 0 and ok.output.startswith("OK: ")
    proof = tmp_path / "proof.json"
    made = runner.invoke(app, ["ledger", "proof", "finding:1", "-o", str(proof), "--db", db_path])
    assert made.exit_code == 0, made.output
    roots = runner.invoke(app, ["ledger", "roots", "--db", db_path]).output.split()
    root = roots[-1]
    assert json.loads(proof.read_text())["root"] == root
    checked = subprocess.run(
        [sys.executable, "-m", "truceline.ledger_verify", str(proof), "--root", root],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert runner.invoke(app, ["ledger", "proof", "999", "--db", db_path]).exit_code == 2

    db = Database(db_path)
    with db.write_engine.begin() as conn:
        seq = conn.execute(text("select min(seq) from ledger_entries where kind = 'report'")).scalar()
        conn.execute(
            text("update ledger_entries set body = replace(body, 'patrol', 'uav') where seq = :s"),
            {"s": seq},
        )
    db.dispose()
    bad = runner.invoke(app, ["ledger", "verify", "--db", db_path])
    assert bad.exit_code == 1
    assert f"TAMPERED: first problem at entry {seq} (altered)" in bad.output


def _standalone(*args: str, without_cryptography: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m truceline.ledger_verify ARGS`` (optionally as on a machine without the
    cryptography package: its import fails)."""
    block = "import sys; sys.modules['cryptography'] = None; " if without_cryptography else ""
    code = f"{block}import runpy, sys; sys.argv = ['ledger_verify', *{list(args)!r}]; " + (
        "runpy.run_module('truceline.ledger_verify', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_signed_roots_keygen_close_verify_and_the_standalone_check(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    db_path = str(tmp_path / "l.db")
    db = Database(db_path)
    db.upgrade()
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    db.write(lambda s: register_folder(s, small_dir, now=yesterday))
    inc = Incident(
        id="r1", observed_at=yesterday, lon=36.95, lat=48.6, kind="armed_personnel", source_type="patrol"
    )
    db.write(lambda s: ingest_incidents(s, small, [inc], [0], source="t", now=yesterday))
    db.dispose()

    key = tmp_path / "mission.key"
    made = runner.invoke(app, ["ledger", "keygen", "-o", str(key)])
    assert made.exit_code == 0, made.output
    public = made.stdout.strip().splitlines()[-1]
    assert len(bytes.fromhex(public)) == 32 and key.stat().st_mode & 0o077 == 0
    assert runner.invoke(app, ["ledger", "keygen", "-o", str(key)]).exit_code == 2  # one key kept

    closed = runner.invoke(app, ["ledger", "close", "--key", str(key), "--db", db_path])
    assert closed.exit_code == 0 and "signed" in closed.output, closed.output
    roots = tmp_path / "roots.json"
    assert runner.invoke(app, ["ledger", "roots", "-o", str(roots), "--db", db_path]).exit_code == 0
    held = json.loads(roots.read_text())
    # yesterday's root, and a checkpoint of today so far (which holds yesterday's closing)
    assert [bool(r.get("checkpoint")) for r in held] == [False, True]
    assert all(r["public_key"] == public and len(r["signature"]) == 128 for r in held)

    ok = runner.invoke(app, ["ledger", "verify", "--public-key", public, "--db", db_path])
    assert ok.exit_code == 0, ok.output
    other = "ab" * 32
    wrong = runner.invoke(app, ["ledger", "verify", "--public-key", other, "--db", db_path])
    assert wrong.exit_code == 1 and "not by the mission's" in wrong.output

    # the standalone verifier: the roots' signatures, and a proof whose day is signed
    assert _standalone("--roots", str(roots), "--public-key", public).returncode == 0
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps([{**held[0], "root": "0" * 64}]))
    bad = _standalone("--roots", str(forged), "--public-key", public)
    assert bad.returncode == 1 and "does not hold" in bad.stdout, bad.stdout + bad.stderr
    unchecked = _standalone("--roots", str(roots), without_cryptography=True)
    assert unchecked.returncode == 1 and "NOT CHECKED" in unchecked.stdout, unchecked.stderr
    proof = tmp_path / "proof.json"
    assert (
        runner.invoke(
            app, ["ledger", "proof", "incident:1", "-o", str(proof), "--db", db_path]
        ).exit_code
        == 0
    )
    doc = json.loads(proof.read_text())
    assert doc["root_signature"]["public_key"] == public
    good = _standalone(str(proof), "--public-key", public)
    assert good.returncode == 0 and "signature holds" in good.stdout, good.stdout + good.stderr
    blind = _standalone(str(proof), without_cryptography=True)
    assert blind.returncode == 0 and "NOT checked" in blind.stdout, blind.stdout + blind.stderr

    # a signature changed in the database (its closing entry re-hashed) is found
    db = Database(db_path)
    with db.write_engine.begin() as conn:
        seq, body = conn.execute(text("select seq, body from ledger_entries where kind = 'root'")).one()
        doc = json.loads(body)
        doc["content"]["signature"] = "00" * 64
        new = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        prev = conn.execute(
            text("select prev_hash from ledger_entries where seq = :s"), {"s": seq}
        ).scalar()
        from truceline.ledger_verify import entry_hash

        conn.execute(
            text("update ledger_entries set body = :b, entry_hash = :h where seq = :s"),
            {"b": new, "h": entry_hash(prev, new), "s": seq},
        )
        conn.execute(text("update ledger_head set entry_hash = :h"), {"h": entry_hash(prev, new)})
    db.dispose()
    forged_sig = runner.invoke(app, ["ledger", "verify", "--db", db_path])
    assert forged_sig.exit_code == 1 and "the signature over its root does not hold" in forged_sig.output


def _incidents(t: dt.datetime, ids: range) -> list[Incident]:
    return [
        Incident(
            id=f"c{i}",
            observed_at=t,
            lon=36.95 + i * 0.002,
            lat=48.6,
            kind="armed_personnel",
            source_type="patrol",
        )
        for i in ids
    ]


def test_same_day_checkpoint_close_proof_and_the_standalone_verifier(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    """Reports recorded today: `ledger close` checkpoints the day so far, so a proof exists at
    once and the standalone verifier (run as a copied file) accepts it, signature included."""
    db_path = str(tmp_path / "c.db")
    db = Database(db_path)
    db.upgrade()
    now = dt.datetime.now(dt.UTC)
    db.write(lambda s: register_folder(s, small_dir, now=now))
    db.write(
        lambda s: ingest_incidents(s, small, _incidents(now, range(3)), [0, 1, 2], source="t", now=now)
    )
    db.dispose()
    key = tmp_path / "mission.key"
    public = runner.invoke(app, ["ledger", "keygen", "-o", str(key)]).stdout.strip().splitlines()[-1]

    closed = runner.invoke(app, ["ledger", "close", "--key", str(key), "--db", db_path])
    assert closed.exit_code == 0, closed.output
    assert "checkpoint of the day so far" in closed.output and "No day" not in closed.output
    again = runner.invoke(app, ["ledger", "close", "--db", db_path])
    assert again.exit_code == 0 and "Nothing new" in again.output  # an idle ledger gains nothing
    held = json.loads(runner.invoke(app, ["ledger", "roots", "--json", "--db", db_path]).stdout)
    assert len(held) == 1 and held[0]["checkpoint"] and held[0]["day"] == now.date().isoformat()
    proof = tmp_path / "proof.json"
    made = runner.invoke(app, ["ledger", "proof", "finding:1", "-o", str(proof), "--db", db_path])
    assert made.exit_code == 0, made.output
    doc = json.loads(proof.read_text())
    assert doc["root"] == held[0]["root"] and doc["tree_size"] == held[0]["n_entries"]
    verifier = Path(__file__).parents[2] / "src" / "truceline" / "ledger_verify.py"
    copy = tmp_path / "elsewhere" / "ledger_verify.py"  # a party's copy, outside the package
    copy.parent.mkdir()
    copy.write_bytes(verifier.read_bytes())
    checked = subprocess.run(
        [sys.executable, str(copy), str(proof), "--root", held[0]["root"], "--public-key", public],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "signature holds" in checked.stdout
    wrong = subprocess.run(
        [sys.executable, str(copy), str(proof), "--root", "ab" * 32], capture_output=True, text=True
    )
    assert wrong.returncode == 1 and "not the published root" in wrong.stdout

    # More reports the same day: `ledger proof` checkpoints them when asked (no close needed),
    # the earlier checkpoint a party holds still verifies, and so does the whole ledger.
    db = Database(db_path)
    later = now + dt.timedelta(seconds=1)
    db.write(
        lambda s: ingest_incidents(
            s, small, _incidents(later, range(3, 5)), [3, 4], source="t", now=later
        )
    )
    db.dispose()
    proof2 = tmp_path / "proof2.json"
    made = runner.invoke(
        app, ["ledger", "proof", "incident:5", "-o", str(proof2), "--db", db_path, "--key", str(key)]
    )
    assert made.exit_code == 0, made.output
    doc2 = json.loads(proof2.read_text())
    assert doc2["tree_size"] > doc["tree_size"] and doc2["root"] != doc["root"]
    assert subprocess.run([sys.executable, str(copy), str(proof2)], capture_output=True).returncode == 0
    held_file = tmp_path / "held.json"
    held_file.write_text(json.dumps(held))
    ok = runner.invoke(
        app, ["ledger", "verify", "--roots", str(held_file), "--public-key", public, "--db", db_path]
    )
    assert ok.exit_code == 0, ok.output

    # A report changed after the checkpoint and every later hash recomputed (a careful forger):
    # the checkpoint recorded in the chain, and the one the party holds, no longer match.
    db = Database(db_path)
    with db.write_engine.begin() as conn:
        seq = conn.execute(text("select min(seq) from ledger_entries where kind = 'report'")).scalar()
        conn.execute(
            text("update ledger_entries set body = replace(body, 'patrol', 'uav') where seq = :s"),
            {"s": seq},
        )
        _rehash_from(conn, seq)
    db.dispose()
    bad = runner.invoke(app, ["ledger", "verify", "--db", db_path])
    assert bad.exit_code == 1 and f"checkpoint of {now.date()}" in bad.output, bad.output
    bad = runner.invoke(app, ["ledger", "verify", "--roots", str(held_file), "--db", db_path])
    assert bad.exit_code == 1 and "the checkpoint root you hold" in bad.output, bad.output


def test_a_later_day_close_covers_the_checkpointed_day(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    """Checkpoints do not change how days close: the day's root covers every entry of the day
    (checkpoints included), proofs move to it, and a checkpoint a party holds still verifies."""
    from truceline.services.checkpoints import close_all
    from truceline.store import ledger

    t = dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC)
    db = Database(str(tmp_path / "d.db"))
    db.upgrade()
    db.write(lambda s: register_folder(s, small_dir, now=t))
    db.write(lambda s: ingest_incidents(s, small, _incidents(t, range(2)), [0, 1], source="t", now=t))
    cp = db.write(lambda s: close_all(s, now=t + dt.timedelta(minutes=15))).checkpoint
    assert cp is not None and not db.write(lambda s: close_all(s, now=t + dt.timedelta(minutes=30))).days
    t2 = t + dt.timedelta(hours=1)
    db.write(
        lambda s: ingest_incidents(s, small, _incidents(t2, range(2, 4)), [2, 3], source="t", now=t2)
    )
    with db.read() as s:
        early = ledger.export_proof(s, 1)
    assert early["root"] == cp["root"] and "checkpoint" in early
    closed = db.write(lambda s: close_all(s, now=t + dt.timedelta(days=1)))
    (day,) = closed.days
    with db.read() as s:
        n_day = s.execute(text("select count(*) from ledger_entries where day = '2025-03-01'")).scalar()
        assert day.n_entries == n_day and day.last_seq > cp["last_seq"]
        late = ledger.export_proof(s, 1)
        assert late["root"] == day.root and "checkpoint" not in late
        v = ledger.verify(s, held_roots=[cp, ledger.root_documents(s)[0]])
        assert v.ok, v.problems
    db.dispose()
