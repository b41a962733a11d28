"""The standalone verifier: Merkle trees and proofs (standard library only)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import truceline.ledger_verify as lv


def _hashes(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


def test_rfc6962_small_trees() -> None:
    h = _hashes(3)
    leaf = [lv.leaf_hash(x) for x in h]
    node = lambda a, b: hashlib.sha256(b"\x01" + a + b).digest()  # noqa: E731
    assert lv.merkle_root(h[:1]) == leaf[0].hex()
    assert lv.merkle_root(h[:2]) == node(leaf[0], leaf[1]).hex()
    assert lv.merkle_root(h) == node(node(leaf[0], leaf[1]), leaf[2]).hex()
    assert lv.merkle_root([]) == hashlib.sha256(b"").hexdigest()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.data())
def test_every_path_leads_to_the_root(n: int, data: st.DataObject) -> None:
    h = _hashes(n)
    i = data.draw(st.integers(0, n - 1))
    root = lv.merkle_root(h)
    path = lv.inclusion_path(h, i)
    assert lv.root_from_path(i, n, h[i], path) == root
    # Any other leaf, index or size fails.
    assert lv.root_from_path(i, n, h[(i + 1) % n], path) != root or n == 1
    if n > 1:
        j = (i + 1) % n
        assert lv.root_from_path(j, n, h[i], path) != root
        assert lv.root_from_path(i, n, h[i], path[:-1]) is None  # a path too short


def _proof(
    n: int = 5, i: int = 3, content: dict[str, object] | None = None
) -> tuple[dict[str, object], str]:
    prev = lv.GENESIS
    bodies, hashes = [], []
    for k in range(1, n + 1):
        body = lv.canonical_json(
            {
                "seq": k,
                "time": "2025-03-01T10:00:00+00:00",
                "kind": "report",
                "ref": f"incident:{k}",
                "content": content if content is not None and k == i + 1 else {"x": k},
            }
        )
        bodies.append((prev, body))
        prev = lv.entry_hash(prev, body)
        hashes.append(prev)
    doc = {
        "format": lv.FORMAT,
        "entry": {
            "seq": i + 1,
            "body": bodies[i][1],
            "prev_hash": bodies[i][0],
            "entry_hash": hashes[i],
        },
        "day": "2025-03-01",
        "leaf_index": i,
        "tree_size": n,
        "path": lv.inclusion_path(hashes, i),
        "root": lv.merkle_root(hashes),
    }
    return doc, lv.merkle_root(hashes)


def test_verify_proof_and_each_kind_of_forgery() -> None:
    doc, root = _proof()
    assert lv.verify_proof(doc, root=root) == []
    forged = json.loads(json.dumps(doc))
    forged["entry"]["body"] = forged["entry"]["body"].replace('"x":4', '"x":5')
    assert any("does not match its body" in p for p in lv.verify_proof(forged))
    wrong_root = lv.verify_proof(doc, root="ab" * 32)
    assert any("not the published root" in p for p in wrong_root)
    moved = dict(doc, leaf_index=2)
    assert lv.verify_proof(moved)
    short = dict(doc, path=doc["path"][:-1])  # type: ignore[index]
    assert any("wrong length" in p for p in lv.verify_proof(short))
    assert lv.verify_proof({"format": "nope"})


def test_runs_alone_with_the_standard_library(tmp_path: Path) -> None:
    doc, root = _proof()
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(doc))
    # A copy of the one file, run by an isolated interpreter (no site-packages, no truceline).
    alone = tmp_path / "ledger_verify.py"
    shutil.copy(lv.__file__, alone)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    ok = subprocess.run(
        [sys.executable, "-I", "-S", str(alone), str(proof), "--root", root],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: entry 4")
    bad = subprocess.run(
        [sys.executable, "-I", "-S", str(alone), str(proof), "--root", "0" * 64],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 1 and "FAILED" in bad.stdout
    as_module = subprocess.run(
        [sys.executable, "-m", "truceline.ledger_verify", str(proof)], capture_output=True, text=True
    )
    assert as_module.returncode == 0, as_module.stderr


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 1000])
def test_root_from_path_sizes(n: int) -> None:
    h = _hashes(n)
    root = lv.merkle_root(h)
    for i in {0, n // 2, n - 1}:
        assert lv.root_from_path(i, n, h[i], lv.inclusion_path(h, i)) == root


def test_a_proof_must_lead_to_a_root_the_party_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc, _ = _proof()
    proof = tmp_path / "proof.json"
    proof.write_text(json.dumps(doc))
    held = tmp_path / "roots.json"
    held.write_text(json.dumps([{"day": doc["day"], "root": "ab" * 32, "n_entries": 3}]))
    assert lv.main([str(proof), "--roots", str(held)]) == 1
    assert "none of the 1 roots" in capsys.readouterr().out


def test_openings_of_committed_values_run_alone(tmp_path: Path) -> None:
    """A proof whose entry commits to values: without openings it verifies and shows none of
    them; with them, the isolated verifier checks each against its commitment."""
    salt = "5a" * 16
    keys = {n: lv.opening_key(salt, n) for n in ("incident", "report_hash")}
    values: dict[str, object] = {"incident": 12, "report_hash": "ab" * 32}
    held = {n: lv.commitment(keys[n], values[n]) for n in keys}
    doc, root = _proof(content={"finding": 7, "commitments": held})
    assert lv.verify_proof(doc, root=root) == [] and "ab" * 32 not in json.dumps(doc)
    opened = {**doc, "openings": {n: {"value": values[n], "key": keys[n]} for n in keys}}
    assert lv.verify_proof(opened, root=root) == []
    # another value under the same key, or one key for the other value: refused
    lied = json.loads(json.dumps(opened))
    lied["openings"]["incident"]["value"] = 13
    swapped = json.loads(json.dumps(opened))
    swapped["openings"]["incident"]["key"] = keys["report_hash"]
    assert lv.verify_proof(lied) == ["the opened 'incident' (13) is not the value committed to"]
    assert lv.verify_proof(swapped) == ["the opened 'incident' (12) is not the value committed to"]
    assert lv.verify_proof({**opened, "openings": {"x": 1}}) == [
        "the opening of 'x' needs a value and a key (64 hex digits)"
    ]
    alone = tmp_path / "ledger_verify.py"
    shutil.copy(lv.__file__, alone)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = {}
    for name, d, code in (("ok.json", opened, 0), ("lied.json", lied, 1)):
        (tmp_path / name).write_text(json.dumps(d))
        run = subprocess.run(
            [sys.executable, "-I", "-S", str(alone), str(tmp_path / name), "--root", root],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert run.returncode == code, run.stdout + run.stderr
        out[name] = run.stdout
    assert "the committed values opened hold (incident = 12, report_hash = 'abab" in out["ok.json"]
    assert "the opened 'incident' (13) is not the value committed to" in out["lied.json"]
