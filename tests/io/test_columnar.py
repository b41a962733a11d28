"""Incident files read in blocks as columns: the same incidents, rejects and output as row by row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from truceline.cli import app
from truceline.io import columnar
from truceline.io.agreement_files import load_agreement
from truceline.io.csv_safe import safe_row
from truceline.io.incidents_io import (
    CLASSIFY_COLUMNS,
    classification_rows,
    read_incidents,
    write_rejects,
)
from truceline.services import adjudicate

from ..conftest import EXAMPLES
from .hostile_incidents import write_hostile

UKR = EXAMPLES / "ukraine-2024"


def row_by_row(path: Path, out: Path) -> tuple[bytes, bytes]:
    """What ``classify`` wrote before it read in blocks (incidents_io + adjudicate, in memory)."""
    read = read_incidents(path)
    adj = adjudicate(load_agreement(UKR), read.incidents, read.rows)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CLASSIFY_COLUMNS))
        w.writeheader()
        w.writerows(safe_row(r) for r in classification_rows(adj.incidents, adj.classification))
    rej = out.with_suffix(".rejects.csv")
    write_rejects(rej, sorted(read.rejects + adj.rejects, key=lambda r: r.row))
    return out.read_bytes(), rej.read_bytes()


@pytest.mark.parametrize("stray_byte", [False, True])
@pytest.mark.parametrize("block_bytes", [1 << 14, 1 << 24])
def test_blocks_read_as_row_by_row(tmp_path: Path, stray_byte: bool, block_bytes: int) -> None:
    src = write_hostile(tmp_path / "in.csv", stray_byte=stray_byte)
    old = read_incidents(src)
    blocks = list(columnar.ColumnarRead(src, block_bytes=block_bytes))
    assert len(blocks) > (3 if block_bytes < 1 << 16 else 0)
    rejects = [r for b in blocks for r in b.rejects]
    assert sorted(rejects, key=lambda r: r.row) == sorted(old.rejects, key=lambda r: r.row)
    assert len(old.rejects) > 40  # the file is hostile indeed
    assert [r for b in blocks for r in b.incidents.rows.tolist()] == old.rows
    assert [r for b in blocks for r in b.duplicates] == old.duplicates
    t = [b.incidents.table for b in blocks]
    ids = [v for part in t for v in part.column("id").to_pylist()]
    assert ids == [i.id for i in old.incidents]
    narratives = [v for part in t for v in part.column("narrative").to_pylist()]
    assert narratives == [i.narrative for i in old.incidents]
    times = [v for part in t for v in part.column("observed_at").to_pylist()]
    assert times == [i.observed_at.replace(tzinfo=None) for i in old.incidents]


@pytest.mark.parametrize("by_day", [True, False])
def test_classify_cli_writes_what_row_by_row_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_day: bool
) -> None:
    """Through the command line, in small blocks: the output and the rejects byte for byte."""
    src = write_hostile(tmp_path / "in.csv", by_day=by_day)
    want_out, want_rej = row_by_row(src, tmp_path / "want.csv")
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 1 << 14)
    out = tmp_path / "got.csv"
    res = CliRunner().invoke(app, ["classify", str(UKR), str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == want_out
    assert out.with_suffix(".rejects.csv").read_bytes() == want_rej
    # a file in day order streams; one out of it is read whole (count caps sum whole days)
    assert ("not in day order" in res.output) is (not by_day)
    assert "findings" in res.output and "rejected" in res.output


def test_the_whitespace_python_strips_is_listed() -> None:
    import sys

    assert columnar.PY_SPACE == "".join(
        chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()
    )
