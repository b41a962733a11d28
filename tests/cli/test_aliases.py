"""The old command names, hidden for one release: each still does its job, says on stderr that it is
deprecated and what replaces it, and stays out of the lists of ``--help``.

The names are written out here (not read from ``truceline.cli.aliases``) so that a test fails when
an alias disappears before its release.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.services.acoustic import simulate_acoustic

runner = CliRunner()
OLD_AND_NEW = [
    (("ingest",), "truceline import"),
    (("agreement", "export"), "truceline export zones"),
    (("ingest-acoustic",), "truceline locate --store"),
]


def _warned(res_stderr: str, old: str, new: str) -> bool:
    said = " ".join(res_stderr.split())
    return f"`truceline {old}` is deprecated" in said and f"use `{new}`" in said


@pytest.mark.parametrize(("old", "new"), OLD_AND_NEW, ids=[" ".join(o) for o, _ in OLD_AND_NEW])
def test_alias_is_hidden_and_its_help_names_the_replacement(old: tuple[str, ...], new: str) -> None:
    cmd = get_command(app)
    for name in old:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    assert cmd.hidden
    listed = runner.invoke(app, [*old[:-1], "--help"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and not re.search(rf"│ {old[-1]}\s", listed.output), listed.output
    res = runner.invoke(app, [*old, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Deprecated" in res.output and f"`{new}`" in res.output


def _reports(path: Path) -> Path:
    rows = [
        f"r{i},2025-03-01T0{i}:00:00Z,{36.95 + i * 0.002},48.6,armed_personnel,patrol" for i in range(3)
    ]
    path.write_text("id,observed_at,lon,lat,kind,source_type\n" + "\n".join(rows) + "\n")
    return path


def test_ingest_warns_and_imports(tmp_path: Path, small_dir: Path) -> None:
    file, db = str(_reports(tmp_path / "r.csv")), str(tmp_path / "t.db")
    old = runner.invoke(app, ["ingest", file, "-a", str(small_dir), "--db", db])
    assert old.exit_code == 0, old.output
    assert _warned(old.stderr, "ingest", "truceline import"), old.stderr
    assert "deprecated" not in old.stdout and "3 accepted" in old.stdout
    new = runner.invoke(app, ["import", file, "-a", str(small_dir), "--db", db])
    assert new.exit_code == 0, new.output
    assert "deprecated" not in new.output
    assert "0 accepted, 3 duplicates" in " ".join(new.stdout.split())  # the alias stored them


def test_agreement_export_warns_and_exports_zones(tmp_path: Path, small_dir: Path) -> None:
    old_file, new_file = tmp_path / "zones.json", tmp_path / "zones.geojson"
    old = runner.invoke(app, ["agreement", "export", str(small_dir), "-o", str(old_file)])
    assert old.exit_code == 0, old.output
    assert _warned(old.stderr, "agreement export", "truceline export zones"), old.stderr
    new = runner.invoke(app, ["export", "zones", "-a", str(small_dir), "-o", str(new_file)])
    assert new.exit_code == 0 and "deprecated" not in new.output, new.output
    # GeoJSON whatever the suffix, as before; the same features as the new command.
    assert json.loads(old_file.read_text()) == json.loads(new_file.read_text())


def test_ingest_acoustic_warns_and_stores(tmp_path: Path, small: Agreement, small_dir: Path) -> None:
    sim = tmp_path / "sim"
    simulate_acoustic(small, sim, seed=2, n_shots=3, duration_s=120.0)
    args = ["--sensors", str(sim / "sensors.csv"), "--detections", str(sim / "detections.csv"),
            "-a", str(small_dir), "--db", str(tmp_path / "t.db")]  # fmt: skip
    old = runner.invoke(app, ["ingest-acoustic", *args])
    assert old.exit_code == 0, old.output
    assert _warned(old.stderr, "ingest-acoustic", "truceline locate --store"), old.stderr
    m = re.search(r"(\d+) events located, (\d+) accepted", old.stdout)
    assert m and int(m.group(1)) > 0 and m.group(2) == m.group(1), old.stdout
    new = runner.invoke(app, ["locate", "--store", *args])
    assert new.exit_code == 0 and "deprecated" not in new.output, new.output
    assert f"0 accepted, {m.group(1)} duplicates" in new.stdout  # the alias stored them
