"""`truceline import` of a CSV or GeoParquet file stores it block by block (issue 18): each block
committed on its own, so memory is bounded by a block; the store ends up as after one whole-file
import; a run stopped part way and run again stores the rest and no report twice; every bad row is
named (row, id, field) and its neighbours land.

The files are made here with numpy and pyarrow (not Truceline's simulator or writers).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.io.agreement_files import load_agreement
from truceline.store.models import FindingRow, IncidentRow, IngestBatchRow, RejectRow

from ..conftest import EXAMPLES

runner = CliRunner()
UKR = EXAMPLES / "ukraine-2024"
HEADER = ["id", "observed_at", "lon", "lat", "uncertainty_m", "kind", "weapon_class", "count",
          "source_type"]  # fmt: skip
#: bad rows put among the good ones: (id, what is changed, the field the reject must name)
BAD = [
    ("bad-lat", {"lat": "123.0"}, "lat"),
    ("bad-time", {"observed_at": "9999-01-01T00:00:00Z"}, "observed_at"),
    ("bad-kind", {"kind": "unicorn"}, "kind"),
    ("bad-count", {"count": "true"}, "count"),
    ("bad-unc", {"uncertainty_m": "-5"}, "uncertainty_m"),
]


def _rows(n: int, seed: int) -> tuple[list[dict[str, str]], set[str], dict[str, str]]:
    """``n`` good incidents over three days in the agreement's area (a third heavy weapons: APCs
    in numbers, which the daily caps count across blocks) with the bad rows spread among them and
    one good row repeated word for word; returns the rows, the good ids and bad id -> field."""
    rng = np.random.default_rng(seed)
    cv = load_agreement(UKR).compiled(0)
    geo = json.loads((UKR / "line.geojson").read_text())  # near the line, where the zones are
    line = np.array(geo["features"][0]["geometry"]["coordinates"], dtype=float)
    lon, lat = np.empty(0), np.empty(0)
    while len(lon) < n:
        at = line[rng.integers(0, len(line), 4 * n)]
        x, y = at[:, 0] + rng.uniform(-0.6, 0.6, 4 * n), at[:, 1] + rng.uniform(-0.35, 0.35, 4 * n)
        keep = shapely.contains_xy(cv.area, x, y)
        lon, lat = np.r_[lon, x[keep]], np.r_[lat, y[keep]]
    start = np.datetime64("2025-03-01T00:00:00")
    secs = np.sort(rng.integers(0, 3 * 86400, n))
    kinds = ["heavy_weapon", "explosion", "armed_personnel"]
    rows = []
    for i in range(n):
        kind = kinds[i % 3]
        rows.append({
            "id": f"g{i}", "observed_at": str(start + np.timedelta64(int(secs[i]), "s")) + "Z",
            "lon": f"{lon[i]:.6f}", "lat": f"{lat[i]:.6f}",
            "uncertainty_m": f"{rng.uniform(10, 800):.1f}", "kind": kind,
            "weapon_class": "apc" if kind == "heavy_weapon" else "",
            "count": str(int(rng.integers(1, 15))) if kind == "heavy_weapon" else "1",
            "source_type": "patrol",
        })  # fmt: skip
    good = {r["id"] for r in rows}
    bad = {}
    for k, (rid, change, fld) in enumerate(BAD):
        at = (k + 1) * n // (len(BAD) + 1)
        rows.insert(at, {**rows[at], "id": rid, **change})
        bad[rid] = fld
    rows.insert(n // 2, dict(next(r for r in rows if r["id"] == f"g{n // 3}")))  # a record twice
    return rows, good, bad


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, HEADER, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def _write_parquet(path: Path, rows: list[dict[str, str]]) -> None:
    """GeoParquet: the columns as text (the reader checks them as the CSV's cells) and a point."""
    cols = {h: pa.array([r[h] for r in rows], pa.string()) for h in HEADER if h not in ("lon", "lat")}
    lon = np.array([float(r["lon"]) for r in rows])
    lat = np.array([float(r["lat"]) for r in rows])
    cols["geometry"] = pa.array(shapely.to_wkb(shapely.points(lon, lat)), pa.binary())
    geo = b'{"version":"1.1.0","primary_column":"geometry","columns":{"geometry":{"encoding":"WKB"}}}'
    pq.write_table(pa.table(cols).replace_schema_metadata({b"geo": geo}), path)


def _import(src: Path, db: Path, *extra: str) -> str:
    res = runner.invoke(app, ["import", str(src), "-a", str(UKR), "--db", str(db), *extra])
    assert res.exit_code == 0, res.output
    return " ".join(res.stdout.split())


def _store(db: Path) -> tuple[set[tuple[str, str, str, float]], int, list[str]]:
    """(report id, rule, party, probability) of every finding, the incident rows, duplicated ids."""
    eng = create_engine(f"sqlite:///{db}")
    try:
        with eng.connect() as c:
            found = c.execute(
                select(
                    IncidentRow.report_id,
                    FindingRow.rule_id,
                    FindingRow.responsible,
                    FindingRow.probability,
                ).join(FindingRow.incident)
            ).all()
            n = c.execute(select(func.count()).select_from(IncidentRow)).scalar_one()
            twice = c.execute(
                select(IncidentRow.report_id).group_by(IncidentRow.report_id).having(func.count() > 1)
            ).scalars()
            return {(r, u, p, round(q, 9)) for r, u, p, q in found}, n, list(twice)
    finally:
        eng.dispose()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_import_in_blocks_stores_what_one_block_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    rows, good, bad = _rows(1500, seed=18)
    src = tmp_path / f"in.{fmt}"
    (_write_csv if fmt == "csv" else _write_parquet)(src, rows)

    whole = _import(src, tmp_path / "whole.db")  # one block: the file is far under a block
    assert "1 block(s)" in whole
    monkeypatch.setattr("truceline.services.exchange.IMPORT_BLOCK_BYTES", 16 << 10)  # CSV: 16 KB
    monkeypatch.setattr("truceline.io.columnar.PARQUET_ROWS", 250)
    rej = tmp_path / "rejects.csv"
    out = _import(src, tmp_path / "blocks.db", "--rejects", str(rej))
    blocks = int(out.split(" block(s)")[0].rsplit(" ", 1)[1])
    assert blocks >= 5, out
    assert f"{len(good)} accepted, 1 duplicates, {len(bad)} rejected" in out, out

    one, n_one, _ = _store(tmp_path / "whole.db")
    many, n_many, twice = _store(tmp_path / "blocks.db")
    assert n_one == n_many == len(good) and not twice
    assert any(r[1].startswith("cap-") for r in many), "the daily caps were judged"
    assert many == one  # caps over days split across blocks included
    with rej.open(encoding="utf-8") as fh:
        named = {r["id"]: r["field"] for r in csv.DictReader(fh)}
    assert named == bad
    eng = create_engine(f"sqlite:///{tmp_path / 'blocks.db'}")
    with eng.connect() as c:  # one ingest batch per block, each holding its own rejects
        assert c.execute(select(func.count()).select_from(IngestBatchRow)).scalar_one() == blocks
        stored_rejects = c.execute(select(RejectRow.report_id, RejectRow.field)).all()
    eng.dispose()
    assert dict(stored_rejects) == bad


def test_a_stopped_import_run_again_stores_the_rest_and_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import truceline.services.exchange as exchange

    rows, good, bad = _rows(1200, seed=5)
    src, db = tmp_path / "in.csv", tmp_path / "t.db"
    _write_csv(src, rows)
    monkeypatch.setattr("truceline.services.exchange.IMPORT_BLOCK_BYTES", 16 << 10)
    real = exchange.ingest_incidents
    calls = []

    def fail_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(exchange, "ingest_incidents", fail_third)
    stopped = runner.invoke(app, ["import", str(src), "-a", str(UKR), "--db", str(db)])
    assert stopped.exit_code != 0
    _, n_first, _ = _store(db)
    assert 0 < n_first < len(good)  # the first two blocks were committed
    monkeypatch.setattr(exchange, "ingest_incidents", real)

    out = _import(src, db)
    # the stored blocks' reports are duplicates now (and the one repeated in the file)
    assert f"{len(good) - n_first} accepted, {n_first + 1} duplicates, {len(bad)} rejected" in out
    again, n, twice = _store(db)
    assert n == len(good) and not twice
    _import(src, tmp_path / "once.db")
    assert again == _store(tmp_path / "once.db")[0]
