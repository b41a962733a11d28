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
from truceline.services import adjudicate, adjudication

from ..conftest import EXAMPLES
from .hostile_incidents import HEADER, write_hostile

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


def _colliding_keys(hasher: object, ids: object) -> object:
    """Id keys of three values only: most different ids share one, as if their hashes collided."""
    import numpy as np
    import pyarrow.compute as pc

    lengths = pc.fill_null(pc.binary_length(ids), 0).to_numpy(zero_copy_only=False)  # type: ignore[call-overload]
    return (np.asarray(lengths) % 3).astype(np.uint64)


@pytest.mark.parametrize(
    ("by_day", "workers", "colliding"),
    [(True, 0, False), (True, 1, False), (True, 3, False), (False, 2, False), (True, 2, True)],
)
def test_classify_cli_writes_what_row_by_row_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, by_day: bool, workers: int, colliding: bool
) -> None:
    """Through the command line, in small blocks: the output and the rejects byte for byte, in
    one process (``--workers 0``) or with worker processes checking the blocks and running the
    engine on them (results taken back out of order, written in order). ``colliding``: the
    repeated-id index's keys made to collide for most ids, which must still be told apart."""
    src = write_hostile(tmp_path / "in.csv", by_day=by_day)
    want_out, want_rej = row_by_row(src, tmp_path / "want.csv")
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 1 << 14)
    if colliding:
        monkeypatch.setattr(columnar, "_id_key", _colliding_keys)
    monkeypatch.setattr(adjudication, "ENGINE_ROWS", 23)  # the engine on pieces of blocks too
    out = tmp_path / "got.csv"
    args = ["classify", str(UKR), str(src), "-o", str(out), "--workers", str(workers)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert out.read_bytes() == want_out
    assert out.with_suffix(".rejects.csv").read_bytes() == want_rej
    # a file in day order streams; one out of it is read whole (count caps sum whole days)
    assert ("not in day order" in res.output) is (not by_day)
    assert "findings" in res.output and "rejected" in res.output


def test_the_whitespace_python_strips_is_listed() -> None:
    import sys

    assert "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()) == columnar.PY_SPACE


# -- GeoParquet ---------------------------------------------------------------------------------------


def clean_csv(path: Path, n: int = 600) -> Path:
    """Plain good incidents in day order, some with a weapon class or a fire origin."""
    lines = [HEADER]
    for k in range(n):
        wc = ("mortar", "", "tank")[k % 3]
        origin = f"37.{300 + k % 500},48.{400 + k % 300},800" if k % 4 == 0 else ",,"
        lines.append(
            f"c{k},2025-02-{1 + k * 9 // n:02d}T{k % 24:02d}:{k % 60:02d}:00Z,minute,37.{100 + k % 800},"
            f"48.{200 + k % 700},150,{('explosion', 'heavy_weapon')[k % 2]},{wc},{1 + k % 3},,{origin},,"
            f"patrol,B,2,clean {k}"
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _classify(src: Path, out: Path, *extra: str) -> str:
    res = CliRunner().invoke(app, ["classify", str(UKR), str(src), "-o", str(out), *extra])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("layout", ["text", "typed", "geometry-only"])
def test_csv_to_geoparquet_classifies_the_same(tmp_path: Path, layout: str) -> None:
    """A GeoParquet written by GeoPandas from the CSV (text columns, typed columns, or the
    position in the geometry alone) classifies exactly as the CSV does."""
    import geopandas as gpd
    import pandas as pd

    src = clean_csv(tmp_path / "in.csv")
    _classify(src, tmp_path / "from_csv.csv")
    if layout == "typed":
        df = pd.read_csv(src)
        df["observed_at"] = pd.to_datetime(df["observed_at"], utc=True)
        lon, lat = df["lon"], df["lat"]
    else:
        df = pd.read_csv(src, dtype=str, keep_default_na=False)
        lon, lat = df["lon"].astype(float), df["lat"].astype(float)
    gdf = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(lon, lat), crs=4326)
    if layout == "geometry-only":
        gdf = gdf.drop(columns=["lon", "lat"])
    pq_in = tmp_path / "in.parquet"
    gdf.to_parquet(pq_in)
    _classify(pq_in, tmp_path / "from_parquet.csv")
    assert (tmp_path / "from_parquet.csv").read_bytes() == (tmp_path / "from_csv.csv").read_bytes()
    got = (tmp_path / "from_parquet.rejects.csv").read_text()
    assert got == (tmp_path / "from_csv.rejects.csv").read_text()


def test_geoparquet_output_reads_in_geopandas(tmp_path: Path) -> None:
    import geopandas as gpd
    import pyarrow.parquet as pq

    src = clean_csv(tmp_path / "in.csv")
    _classify(src, tmp_path / "out.csv")
    said = _classify(src, tmp_path / "out.parquet")
    assert "Classified 600 incidents" in said
    gdf = gpd.read_parquet(tmp_path / "out.parquet")
    assert gdf.crs is not None and gdf.crs.to_string() == "OGC:CRS84"  # lon, lat on WGS84
    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(gdf["id"]) == [r["id"] for r in rows]
    assert list(gdf["distance_km"]) == [float(r["distance_km"]) for r in rows]
    assert list(gdf["findings"]) == [r["findings"] for r in rows]
    assert sum(bool(f) for f in gdf["findings"]) > 10
    with src.open(newline="") as fh:
        src_rows = list(csv.DictReader(fh))
    assert list(gdf.geometry.x) == [float(r["lon"]) for r in src_rows]
    assert list(gdf.geometry.y) == [float(r["lat"]) for r in src_rows]
    geo = pq.read_schema(tmp_path / "out.parquet").metadata[b"geo"]
    assert b'"encoding": "WKB"' in geo and b'"version": "1.1.0"' in geo


def test_geoparquet_output_reads_in_gdal(tmp_path: Path) -> None:
    """``ogrinfo`` and pyogrio (GDAL) read it, where GDAL has its Parquet driver (GDAL >= 3.5
    built with Arrow; Debian's GDAL 3.6 and pyogrio's wheels are built without it)."""
    import shutil
    import subprocess

    import pyogrio

    if "Parquet" not in pyogrio.list_drivers() and not (
        shutil.which("ogrinfo")
        and "Parquet" in subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True).stdout
    ):
        pytest.skip("no GDAL here has the Parquet driver")
    src = clean_csv(tmp_path / "in.csv")
    _classify(src, tmp_path / "out.parquet")
    if shutil.which("ogrinfo"):
        info = subprocess.run(
            ["ogrinfo", "-so", "-al", str(tmp_path / "out.parquet")], capture_output=True, text=True
        )
        if "Parquet" in subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True).stdout:
            assert info.returncode == 0, info.stderr
            assert "Feature Count: 600" in info.stdout and "Point" in info.stdout
    if "Parquet" in pyogrio.list_drivers():
        df = pyogrio.read_dataframe(tmp_path / "out.parquet")
        assert len(df) == 600


def test_classification_csv_is_what_csv_writer_writes() -> None:
    """Awkward values in every text column (quotes, commas, line ends, formula starts, repeated
    and distinct categories, incidents with several findings or none): the lines built from
    columns are byte for byte ``csv.writer``'s over ``classification_rows``."""
    import io
    from types import SimpleNamespace

    import numpy as np
    import pyarrow as pa

    from truceline.core.rules import Classification, Findings

    n = 9
    ids = ["a", "b,1", 'c"q', "=d", "-5", "e\nf", "g", "+x", "h"]
    zones = np.array(["", "z1;z2", 'z,"3"', "", "=z", "z1;z2", "", "", "z\r"], dtype=str)
    sector = np.array(["s1", "", "s,2", "@s", "s1", "", "s1", "s1", '"'], dtype=str)
    findings = Findings(
        incident=np.array([1, 1, 4, 8, 8, 8], np.intp),
        rule_id=np.array(["r1", "r,2", "r1", "=r", "r1", "r3"], dtype=str),
        rule_type=np.array(["t"] * 6, dtype=str),
        responsible=np.array(["A", "B", "", "A", '"B"', "A"], dtype=str),
        probability=np.array([0.1234, 0.5, 1.0, 0.0005, 0.9995, 0.25]),
        explanation=np.array(["x, y", "two\nlines", "-3 km", "plain", 'say "hi"', "end"], dtype=str),
    )
    cls = Classification(
        side=np.array([1, -1, 0, 1, 1, -1, 0, 1, -1], np.int8),
        party_side=np.array(["L", "R", "", "L", "L", "R", "", "L", "R"], dtype=str),
        distance_km=np.array([1.0, -2.5, 0.0, 123.45678, -0.00004, 3e-5, 1e17, 7.0, -0.1]),
        p_side=np.array([1.0, 0.5, 0.0, 0.99999, 0.12345, 1.0, 0.0, 0.3, 0.7]),
        zones=zones,
        sector=sector,
        version=np.zeros(n, np.intp),
        in_force=np.array([True, False, True, True, True, True, False, True, True]),
        in_area=np.array([True, True, False, True, True, True, False, True, True]),
        findings=findings,
    )
    want = io.StringIO(newline="")
    w = csv.DictWriter(want, fieldnames=list(CLASSIFY_COLUMNS))
    incidents = [SimpleNamespace(id=i) for i in ids]
    rows = classification_rows(incidents, cls)  # type: ignore[arg-type]
    # as text (numpy's str_ is not ``str``, which safe_cell checks: a sector id "@s" is guarded)
    text = [{k: str(v) if isinstance(v, np.str_) else v for k, v in r.items()} for r in rows]
    w.writerows(safe_row(r) for r in text)
    got = columnar.classification_csv(pa.array(ids), cls)
    assert "".join(got.to_pylist()) == want.getvalue()
    empty = columnar.classification_csv(pa.array([], pa.string()), cls)
    assert len(empty) == 0


def test_a_row_as_long_as_the_cell_limit_allows_is_read(tmp_path: Path) -> None:
    """pyarrow reads 1 MB at a time unless rows may be longer: a row with every cell at the
    limit in 4-byte characters (4.3 MB, over four such reads) is read and rejected by name, and
    its neighbours land."""
    good = "{},2025-02-01T04:12:00Z,minute,37.5,48.5,100,explosion,,1,,,,,,patrol,B,2,plain"
    cells = HEADER.count(",") + 1
    huge = ",".join(["\U0001f600" * 60_000] * cells)
    lines = [HEADER, *(good.format(f"a{k}") for k in range(50)), huge]
    lines += [good.format(f"b{k}") for k in range(50)]
    src = tmp_path / "in.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert src.stat().st_size > 4 << 20
    blocks = list(columnar.ColumnarRead(src))
    ids = [v for b in blocks for v in b.incidents.table.column("id").to_pylist()]
    assert ids == [f"a{k}" for k in range(50)] + [f"b{k}" for k in range(50)]
    rejects = [r for b in blocks for r in b.rejects]
    assert [r.row for r in rejects] == [51]
