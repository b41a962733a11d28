"""What a new user sees when something is wrong: one line with the fix, never a traceback.

These run the installed entry point (``truceline.cli.main``) in a subprocess, as a user does.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

HEADER = "id,observed_at,lon,lat,kind,source_type,uncertainty_m,narrative\n"


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("TRUCELINE_DB", None)
    return subprocess.run(
        [sys.executable, "-c", "from truceline.cli import main; main()", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _one_line_error(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    return " ".join(res.stderr.split())


def test_a_bad_date_names_the_option(tmp_path: Path, small_dir: Path) -> None:
    res = _run("report", "-a", str(small_dir), "--date", "2025-13-01", cwd=tmp_path)
    said = _one_line_error(res)
    assert "--date" in said and "YYYY-MM-DD" in said


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--date", "2025-03-01"],
        ["ledger", "verify"],
        ["export", "incidents", "-o", "x.csv"],
        ["token", "list"],
    ],
)
def test_a_mistyped_database_is_refused_not_created(
    args: list[str], tmp_path: Path, small_dir: Path
) -> None:
    extra = ["-a", str(small_dir)] if args[0] == "report" else []
    res = _run(*args, *extra, "--db", "truceline-typo.db", cwd=tmp_path)
    said = _one_line_error(res)
    assert "no database at truceline-typo.db" in said and "--db" in said
    assert not (tmp_path / "truceline-typo.db").exists()
    assert not list(tmp_path.glob("*.html"))


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql+psycopg://nobody@127.0.0.1:{port}/none?connect_timeout=3"
    res = _run("ledger", "roots", "--db", url, cwd=tmp_path)
    said = _one_line_error(res)
    assert "the database failed" in said and "--db" in said
    assert len(res.stderr.strip().splitlines()) <= 2


@pytest.mark.parametrize(
    ("codec", "narrative"),
    [("cp1251", "Обстріл біля села"), ("cp1252", "Tir près de l'école"), ("utf-16", "Вибух, café")],
)
def test_a_legacy_csv_is_read_in_its_encoding(
    codec: str, narrative: str, tmp_path: Path, small_dir: Path
) -> None:
    """Field offices' spreadsheets: the narrative arrives intact whatever the code page."""
    rows = "".join(
        f'r{i},2025-03-01T10:0{i}:00Z,36.95,48.6,armed_personnel,patrol,50,"{narrative} {w}"\n'
        for i, w in enumerate(
            ["один", "два", "три", "чотири"] if codec == "cp1251" else ["un", "deux", "trois", "quatre"]
        )
    )
    (tmp_path / "office.csv").write_bytes((HEADER + rows).encode(codec))
    db = str(tmp_path / "t.db")
    res = _run("import", "office.csv", "-a", str(small_dir), "--db", db, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 accepted" in " ".join(res.stdout.split())
    if codec != "utf-16":
        assert "detected" in res.stderr
    res = _run("export", "incidents", "-o", "out.csv", "--db", db, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    with (tmp_path / "out.csv").open(encoding="utf-8") as fh:
        got = sorted(r["narrative"] for r in csv.DictReader(fh))
    assert all(g.startswith(narrative) for g in got), got


def test_a_file_of_no_known_encoding_is_refused_naming_the_byte(tmp_path: Path, small_dir: Path) -> None:
    rows = (
        "".join(
            f"r{i},2025-03-01T10:00:00Z,36.95,48.6,armed_personnel,patrol,50,x@@y\n" for i in range(4)
        )
        .encode()
        .replace(b"@@", b"\x81\x8d")
    )
    (tmp_path / "odd.csv").write_bytes(HEADER.encode() + rows)
    res = _run("import", "odd.csv", "-a", str(small_dir), "--db", str(tmp_path / "t.db"), cwd=tmp_path)
    said = _one_line_error(res)
    assert "0x81" in said and "--encoding" in said
    res = _run(
        "import", "odd.csv", "-a", str(small_dir), "--db", str(tmp_path / "t.db"),
        "--encoding", "latin-1", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0 and "4 accepted" in " ".join(res.stdout.split()), res.stderr


def test_ledger_roots_says_when_there_are_none(tmp_path: Path, small_dir: Path) -> None:
    (tmp_path / "e.csv").write_text(HEADER)
    db = str(tmp_path / "t.db")
    assert _run("import", "e.csv", "-a", str(small_dir), "--db", db, cwd=tmp_path).returncode == 0
    res = _run("ledger", "roots", "--db", db, cwd=tmp_path)
    assert res.returncode == 0 and "No root stored yet" in res.stdout, res.stdout + res.stderr
