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


def _incidents_csv(path: Path, n: int, seed: int, folder: Path = UKR) -> None:
    """``n`` plain incidents scattered over the agreement's area and a little beyond it, with a
    few bad rows; written with numpy (not Truceline's simulator or writers)."""
    rng = np.random.default_rng(seed)
    cv = load_agreement(folder).compiled(0)
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


def _classify(src: Path, out: Path, folder: Path = UKR) -> tuple[bytes, bytes]:
    res = runner.invoke(app, ["classify", str(folder), str(src), "-o", str(out)])
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


def test_the_cache_is_pruned_to_its_cap_least_recently_used_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``index_cache_max_mb`` 0 each write keeps only the files it just wrote: classifying
    under a second agreement prunes the first one's tables, and back again; outputs unchanged."""
    kor = EXAMPLES / "korea-dmz"
    for name, folder in (("ukr", UKR), ("kor", kor)):
        _incidents_csv(tmp_path / f"{name}.csv", 400, seed=7, folder=folder)
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE", "false")
    plain = {
        n: _classify(tmp_path / f"{n}.csv", tmp_path / f"{n}-plain.csv", f)
        for n, f in (("ukr", UKR), ("kor", kor))
    }
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE", "true")
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE_DIR", str(cache))

    assert _classify(tmp_path / "ukr.csv", tmp_path / "u1.csv", UKR) == plain["ukr"]
    ukr_files = set(cache.glob("*.npz"))
    assert ukr_files
    monkeypatch.setenv("TRUCELINE_INDEX_CACHE_MAX_MB", "0")
    assert _classify(tmp_path / "kor.csv", tmp_path / "k1.csv", kor) == plain["kor"]
    kor_files = set(cache.glob("*.npz"))
    assert kor_files and not kor_files & ukr_files, "the other line's tables were pruned"
    assert _classify(tmp_path / "kor.csv", tmp_path / "k2.csv", kor) == plain["kor"]  # warm
    assert set(cache.glob("*.npz")) == kor_files  # nothing written, nothing pruned
    assert _classify(tmp_path / "ukr.csv", tmp_path / "u2.csv", UKR) == plain["ukr"]
    assert set(cache.glob("*.npz")) == ukr_files


def test_prune_removes_the_least_recently_used_files_first(tmp_path: Path) -> None:
    """Access time orders the files (set when a file is read); the files named in ``keep`` stay."""
    import os

    from truceline.io.index_cache import LineIndexCache

    names = ["a", "b", "c", "d"]
    used = {"a": 400, "b": 100, "c": 300, "d": 200}  # seconds after the epoch's start below
    for n in names:
        p = tmp_path / f"{n}.npz"
        p.write_bytes(b"x" * 1000)
        t = 1_700_000_000 + used[n]
        os.utime(p, (t, 1_700_000_000))  # all written at once, used at different times
    (tmp_path / "note.txt").write_bytes(b"y" * 5000)  # not a cache file: neither counted nor removed
    cache = LineIndexCache(tmp_path, max_bytes=2500)
    removed = cache.prune(keep=frozenset({tmp_path / "b.npz"}))
    # b is the oldest used but kept; d and c go next; a (most recent) stays
    assert [p.name for p in removed] == ["d.npz", "c.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz", "b.npz", "note.txt"]
    assert LineIndexCache(tmp_path, max_bytes=2000).prune() == []  # fits already
    assert [p.name for p in LineIndexCache(tmp_path, max_bytes=0).prune()] == ["b.npz", "a.npz"]
    with pytest.raises(ValueError, match="max_bytes"):
        LineIndexCache(tmp_path, max_bytes=-1)


def test_processes_filling_different_cells_leave_them_all(tmp_path: Path) -> None:
    """Two processes (two workers of one ``classify``) load the same file, fill different cells
    and save one after the other: the file keeps both's cells (the second takes the first's)."""
    from truceline.io.index_cache import LineIndexCache

    rng = np.random.default_rng(7)
    indexes = []
    for _ in range(2):  # each "process": its own agreement, index and cache object
        ag = load_agreement(UKR)
        ag.use_index_store(LineIndexCache(tmp_path / "cache"))
        indexes.append((ag, ag.compiled(0).line))
    for (_, index), west in zip(indexes, (True, False), strict=True):
        minx, miny, maxx, maxy = index.lon.min(), index.lat.min(), index.lon.max(), index.lat.max()
        mid = (minx + maxx) / 2
        lon = rng.uniform(minx, mid) if west else rng.uniform(mid, maxx)
        index.distance_m(np.full(200, lon) + rng.normal(0, 0.3, 200), rng.uniform(miny, maxy, 200))
    own = [set(index.export_state()["cells"].tolist()) for _, index in indexes]
    assert own[0] - own[1] and own[1] - own[0]  # each filled cells the other did not
    for ag, _ in indexes:
        assert ag.__dict__["_index_store"].save() == 1
    fresh = load_agreement(UKR)
    fresh.use_index_store(LineIndexCache(tmp_path / "cache"))
    kept = set(fresh.compiled(0).line.export_state()["cells"].tolist())
    assert kept == own[0] | own[1]  # the second saver took the first's cells
