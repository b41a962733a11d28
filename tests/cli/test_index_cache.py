"""`truceline classify` keeps the line's search tables between processes (issue 18): the output
is byte for byte the same cold, warm, with a spoiled cache file and without a cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import shapely
from typer.testing import CliRunner

from truceline.cli import app
from truceline.io.agreement_files import load_agreement

from ..conftest import EXAMPLES

runner = CliRunner()
UKR = EXAMPLES / "ukraine-2024"


def _incidents_csv(path: Path, n: int, seed: int) -> None:
    """``n`` plain incidents scattered over the agreement's area and a little beyond it, with a
    few bad rows; written with numpy (not Truceline's simulator or writers)."""
    rng = np.random.default_rng(seed)
    cv = load_agreement(UKR).compiled(0)
    minx, miny, maxx, maxy = cv.area.bounds
    lon = rng.uniform(minx - 0.5, maxx + 0.5, n)
    lat = rng.uniform(miny - 0.5, maxy + 0.5, n)
    inside = shapely.contains_xy(cv.area, lon, lat)
    keep = inside | (rng.random(n) < 0.02)  # a few outside the area: rejected, named
    lon, lat = lon[keep], lat[keep]
    kinds = ["heavy_weapon", "explosion", "armed_personnel", "drone_flight"]
    lines = ["id,observed_at,lon,lat,uncertainty_m,kind,source_type"]
    start = np.datetime64(cv.version.effective_from, "s") + np.timedelta64(1, "D")
    for i, (x, y) in enumerate(zip(lon, lat, strict=True)):
        t = str(start + np.timedelta64(int(i * 37), "s")) + "Z"
        lines.append(f"s{i},{t},{x:.6f},{y:.6f},{rng.uniform(10, 900):.1f},{kinds[i % 4]},patrol")
    lines.append(f"bad-lat,{t},{lon[0]:.6f},123.0,50,explosion,patrol")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _classify(src: Path, out: Path) -> tuple[bytes, bytes]:
    res = runner.invoke(app, ["classify", str(UKR), str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out.read_bytes(), out.with_suffix(".rejects.csv").read_bytes()


def test_classify_cold_warm_and_spoiled_cache_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "in.csv"
    _incidents_csv(src, 1500, seed=18)
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE", "false")
    plain = _classify(src, tmp_path / "plain.csv")
    assert not cache.exists()
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE", "true")
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE_DIR", str(cache))

    cold = _classify(src, tmp_path / "cold.csv")
    files = sorted(cache.glob("*.npz"))
    assert files, "a cold run leaves the filled tables behind"
    assert not list(cache.glob("*.tmp"))
    stamp = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}

    warm = _classify(src, tmp_path / "warm.csv")
    # nothing new to fill: every cell came from the cache, so no file was written again
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files} == stamp
    assert b"bad-lat" in plain[1] and plain[0].count(b"\n") > 100
    assert cold == plain and warm == plain

    # spoiled three ways: flipped bytes, cut short, someone else's arrays under this name
    biggest = max(files, key=lambda f: f.stat().st_size)
    good = biggest.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    other = tmp_path / "other.npz"
    np.savez(other, grid=np.zeros(8), cells=np.zeros(0, np.int64))
    for spoiled in (bytes(flipped), good[: len(good) // 3], other.read_bytes()):
        biggest.write_bytes(spoiled)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="truceline.io.index_cache"):
            again = _classify(src, tmp_path / "again.csv")
        assert again == plain
        assert any("rebuilt" in r.getMessage() for r in caplog.records)
        assert biggest.read_bytes() != spoiled  # rebuilt and written again, whole
    # and the rewritten file serves the next run
    assert _classify(src, tmp_path / "last.csv") == plain


def test_a_cache_that_cannot_be_written_costs_only_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "in.csv"
    _incidents_csv(src, 300, seed=5)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE", "false")
    plain = _classify(src, tmp_path / "plain.csv")
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE", "true")
    assert _classify(src, tmp_path / "out.csv") == plain
