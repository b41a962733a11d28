"""Benchmark: classify 1,000,000 incidents on the Ukraine example.

Truceline's vectorised engine (exact geodesic distance, side, zones with probabilities, sector, every
rule) against a GeoPandas baseline doing less (project to one UTM zone, planar distance to the line,
spatial join to the sectors), in the same run, on one core. Prints throughput, the ratio and both
methods' maximum distance error against an independent geodesic reference (GeographicLib) on a
random subsample of points within 200 km of the line.

Run: ``make bench`` or ``.venv/bin/python benchmarks/classify.py [--n 1000000]``.

``--end-to-end``: the command a user types, ``truceline classify`` on a CSV of N plain incidents
(written here, in day order, with ``--bad`` rows spoiled in ways a file arrives spoiled), against
the GeoPandas script ``benchmarks/classify_e2e_baseline.py`` (read the CSV, project to UTM 37N,
distance to the line, write a CSV), each in its own process, in the same run: wall time, the
ratio, and each one's peak resident memory (the child's ``ru_maxrss``: its largest process) and
the peak PSS of its processes together (sampled every 0.1 s: ``truceline classify`` forks worker
processes). ``truceline classify`` runs cold (empty line-index cache), warm (the default: worker
processes) and warm with ``--workers 0`` (one process). Every spoiled row must be in the rejects
file, named, and every good row in the output.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import shapely  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.geodesic_reference
from tests.geodesic_reference import reference_distance_m  # noqa: E402

from truceline.core.incidents import IncidentBatch  # noqa: E402
from truceline.core.rules import classify  # noqa: E402
from truceline.io.agreement_files import load_agreement  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_incidents(ag, n: int, seed: int = 42) -> IncidentBatch:  # type: ignore[no-untyped-def]
    """Points spread over the area within ~200 km of the line, with a mix of kinds."""
    rng = np.random.default_rng(seed)
    cv = ag.compiled(len(ag.versions) - 1)
    minx, miny, maxx, maxy = cv.area.bounds
    lon = rng.uniform(minx, maxx, 3 * n)
    lat = rng.uniform(miny, maxy, 3 * n)
    keep = shapely.contains_xy(cv.area, lon, lat)
    lon, lat = lon[keep][:n], lat[keep][:n]
    kinds = np.array(
        ["heavy_weapon", "explosion", "armed_personnel", "drone_flight", "vehicle_movement"]
    )
    wcs = np.array(sorted(ag.weapon_class_ids) + [""] * 3)
    k = rng.integers(0, kinds.size, lon.size)
    olon = np.where(kinds[k] == "explosion", lon + rng.normal(0, 0.1, lon.size), np.nan)
    olat = np.where(kinds[k] == "explosion", lat + rng.normal(0, 0.1, lon.size), np.nan)
    day = np.datetime64(cv.version.effective_from, "us") + np.timedelta64(10, "D")
    return IncidentBatch.from_columns(
        id=np.char.add("b", np.arange(lon.size).astype(str)),
        observed_at=np.full(lon.size, day),
        lon=lon,
        lat=lat,
        uncertainty_m=rng.uniform(10, 2000, lon.size),
        kind=kinds[k],
        weapon_class=wcs[rng.integers(0, wcs.size, lon.size)],
        origin_lon=olon,
        origin_lat=olat,
        origin_uncertainty_m=np.full(lon.size, 500.0),
    )


def baseline(ag, lon, lat):  # type: ignore[no-untyped-def]
    import geopandas as gpd

    cv = ag.compiled(len(ag.versions) - 1)
    utm = 32637  # UTM 37N: the zone holding most of the line
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326).to_crs(utm)
    line = gpd.GeoSeries([cv.version.line], crs=4326).to_crs(utm).iloc[0]
    dist = pts.distance(line).to_numpy()
    sectors = gpd.GeoDataFrame(
        {"sector": [s.id for s in ag.sectors]}, geometry=[s.geometry for s in ag.sectors], crs=4326
    ).to_crs(utm)
    joined = gpd.sjoin(pts, sectors, how="left", predicate="within")
    return dist, joined


def locate_stage(ag, b):  # type: ignore[no-untyped-def]
    """The same work as the baseline, done exactly: geodesic distance, side and sector."""
    from truceline.core.rules import _sector_chainage

    cv = ag.compiled(len(ag.versions) - 1)
    side, near = cv.locate(b.lon, b.lat)
    sector = cv.sector_lookup.lookup(b.lon, b.lat)
    _sector_chainage(cv)
    return side, near.distance_m, sector


#: Ways a row arrives spoiled (field, cell) for ``--bad``.
SPOILS = [
    (3, "200"),  # lon out of range
    (1, "2025-02-30T04:00:00Z"),  # no such day
    (6, "explosions"),  # not a kind
    (8, "0"),  # count below 1
    (3, "nan"),
    (14, "satellite"),  # not a source type
    (1, "yesterday"),
]


def write_csv(ag, path: Path, n: int, bad: int, seed: int = 3) -> int:  # type: ignore[no-untyped-def]
    """``n`` plain incidents (no origins) in day order over 90 days, ``bad`` of them spoiled;
    written in chunks with numpy (never Truceline's own writer). Returns the rows spoiled."""
    rng = np.random.default_rng(seed)
    cv = ag.compiled(len(ag.versions) - 1)
    minx, miny, maxx, maxy = cv.area.bounds
    kinds = np.array(
        ["heavy_weapon", "explosion", "armed_personnel", "drone_flight", "vehicle_movement"]
    )
    sources = np.array(["patrol", "observation_post", "uav", "camera"])
    wcs = np.array([*sorted(ag.weapon_class_ids), "", "", ""])
    start = np.datetime64(cv.version.effective_from, "s") + np.timedelta64(1, "D")
    seconds = np.sort(rng.integers(0, 90 * 86400, n))
    spoil_rows = set(rng.choice(n, size=min(bad, n), replace=False).tolist()) if bad else set()
    header = (
        "id,observed_at,time_precision,lon,lat,uncertainty_m,kind,weapon_class,count,party,"
        "origin_lon,origin_lat,origin_uncertainty_m,bearing_deg,source_type,reliability,"
        "credibility,narrative\n"
    )
    chunk = 200_000
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(header)
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            lon, lat = np.empty(0), np.empty(0)
            while lon.size < m:
                x, y = rng.uniform(minx, maxx, 2 * m), rng.uniform(miny, maxy, 2 * m)
                keep = shapely.contains_xy(cv.area, x, y)
                lon, lat = np.r_[lon, x[keep]], np.r_[lat, y[keep]]
            t = (start + seconds[a : a + m].astype("timedelta64[s]")).astype(str)
            cols = [
                np.char.add("r", np.arange(a, a + m).astype(str)),
                np.char.add(t, "Z"),
                np.full(m, "minute"),
                np.char.mod("%.6f", lon[:m]),
                np.char.mod("%.6f", lat[:m]),
                np.char.mod("%.1f", rng.uniform(10, 2000, m)),
                kinds[rng.integers(0, kinds.size, m)],
                wcs[rng.integers(0, wcs.size, m)],
                rng.integers(1, 4, m).astype(str),
                np.full(m, ""),
                np.full(m, ""),
                np.full(m, ""),
                np.full(m, ""),
                np.full(m, ""),
                sources[rng.integers(0, sources.size, m)],
                np.full(m, "B"),
                np.full(m, "2"),
                np.full(m, "bench"),
            ]
            rows = [list(r) for r in zip(*(c.tolist() for c in cols), strict=True)]
            for k, r in enumerate(rows):
                if a + k in spoil_rows:
                    f, v = SPOILS[(a + k) % len(SPOILS)]
                    r[f] = v
            fh.write("".join(",".join(r) + "\n" for r in rows))
    return len(spoil_rows)


#: CPU seconds (user + system) of each child run, by label: on a shared machine the wall times
#: move with the load; the CPU a command used moves far less.
CPU: dict[str, float] = {}


#: Peak proportional set size (GB) of each child run and its own children together, by label:
#: ``ru_maxrss`` is the largest single process's peak, not the sum over worker processes (and
#: their RSS counts the pages they share with the parent once each; PSS splits them).
TREE_PSS: dict[str, float] = {}


def _pss_kb(pid: int) -> int:
    """The PSS (kB) of a process and its descendants now (0 for those gone meanwhile)."""
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            continue
    return total


def _run(cmd: list[str], env: dict[str, str] | None = None, label: str = "") -> tuple[float, float, int]:
    """Wall seconds, peak resident memory (GB) and exit status of a child process (its CPU
    seconds in :data:`CPU` and its tree's peak PSS in :data:`TREE_PSS` under ``label``)."""
    import subprocess
    import threading

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:  # every 0.1 s: a peak shorter than that may be missed
        while not stop.wait(0.1):
            peak[0] = max(peak[0], _pss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    took = time.perf_counter() - t0
    stop.set()
    sampler.join()
    TREE_PSS[label or cmd[-1]] = peak[0] / 1024**2
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.stderr and proc.stderr.close()
    if status:
        print(err[-2000:])
    CPU[label or cmd[-1]] = usage.ru_utime + usage.ru_stime
    return took, usage.ru_maxrss / 1024**2, status


def end_to_end(
    n: int, bad: int, workdir: Path, before_src: Path | None = None, reuse: bool = False
) -> None:
    import csv as csvmod
    import shutil

    ag_dir = ROOT / "examples" / "ukraine-2024"
    ag = load_agreement(ag_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / f"incidents-{n}.csv"
    t0 = time.perf_counter()
    # the same seeds write the same file: --reuse keeps it between runs
    spoiled = min(bad, n) if reuse and src.exists() else write_csv(ag, src, n, bad)
    print(
        f"wrote {src} ({src.stat().st_size / 1e6:,.0f} MB, {n:,} rows, {spoiled:,} spoiled) in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    exe = shutil.which("truceline", path=str(Path(sys.executable).parent)) or "truceline"
    config = workdir / "truceline.toml"  # a file this size is over the default import limit
    config.write_text(f"[uploads]\nmax_import_rows = {max(n, 1_000_000)}\n")
    os.environ["TRUCELINE_CONFIG"] = str(config)
    out = workdir / "truceline.csv"
    # the line's search tables: filled by the first (cold) run and kept for the next (issue 18)
    cache = workdir / "line-index-cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["TRUCELINE_INDEX_CACHE_DIR"] = str(cache)
    cold_out = workdir / "truceline-cold.csv"
    t_cold, rss_cold, st_cold = _run(
        [exe, "classify", str(ag_dir), str(src), "-o", str(cold_out)], label="cold"
    )
    t_tl, rss_tl, st_tl = _run([exe, "classify", str(ag_dir), str(src), "-o", str(out)], label="warm")
    same = cold_out.read_bytes() == out.read_bytes()
    # one process (--workers 0): the reading, the engine and the writing take turns on one core
    out2 = workdir / "truceline-2.csv"
    t_2, rss_2, st_2 = _run(
        [exe, "classify", str(ag_dir), str(src), "-o", str(out2), "--workers", "0"], label="1 process"
    )
    same2 = out2.read_bytes() == out.read_bytes()
    if before_src is not None:  # an earlier tree's code, on the same file, with the same cache
        before_out = workdir / "truceline-before.csv"
        env = {**os.environ, "PYTHONPATH": str(before_src)}
        t_b, rss_b, st_b = _run(
            [exe, "classify", str(ag_dir), str(src), "-o", str(before_out)], env, "before"
        )
        same_b = before_out.read_bytes() == out.read_bytes() and (
            before_out.with_suffix(".rejects.csv").read_bytes()
            == out.with_suffix(".rejects.csv").read_bytes()
        )
    base_out = workdir / "geopandas.csv"
    t_gp, rss_gp, st_gp = _run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "classify_e2e_baseline.py"),
            str(ag_dir),
            str(src),
            str(base_out),
        ],
        label="GeoPandas",
    )
    with out.open(newline="") as fh:
        n_out = sum(1 for _ in fh) - 1
    with out.with_suffix(".rejects.csv").open(newline="", encoding="utf-8") as fh:
        rejects = list(csvmod.DictReader(fh))
    named = all(r["row"] and r["field"] and r["reason"] for r in rejects)
    print(f"incidents: {n:,} ({spoiled:,} spoiled) on {ag.id}; each command in its own process")
    print(
        f"truceline classify, cold (empty line-index cache): {t_cold:7.2f} s "
        f"{n / t_cold:10,.0f} rows/s  peak RSS {rss_cold:5.2f} GB  (exit {st_cold}); "
        f"ratio {t_gp / t_cold:.2f}x; output byte-identical to the warm run: {same}"
    )
    print(
        f"truceline classify: {t_tl:7.2f} s {n / t_tl:10,.0f} rows/s  peak RSS {rss_tl:5.2f} GB  "
        f"(exit {st_tl}); {n_out:,} classified, {len(rejects):,} rejected, each named: {named}; "
        f"every good row kept: {n_out + len(rejects) == n}"
    )
    print(
        f"truceline classify --workers 0 (one process): {t_2:7.2f} s {n / t_2:10,.0f} rows/s  "
        f"peak RSS {rss_2:5.2f} GB  (exit {st_2}); ratio {t_gp / t_2:.2f}x; "
        f"output byte-identical to the default's (worker processes): {same2}"
    )
    if before_src is not None:
        print(
            f"before ({before_src}): {t_b:7.2f} s {n / t_b:10,.0f} rows/s  peak RSS {rss_b:5.2f} GB "
            f"(exit {st_b}); ratio {t_gp / t_b:.2f}x; output and rejects byte-identical: {same_b}"
        )
    print(
        f"GeoPandas script:   {t_gp:7.2f} s {n / t_gp:10,.0f} rows/s  peak RSS {rss_gp:5.2f} GB  "
        f"(exit {st_gp}; distance only)"
    )
    print(
        "peak PSS of each run's processes together (GB): "
        + ", ".join(f"{k} {v:.2f}" for k, v in TREE_PSS.items())
    )
    print(
        "CPU seconds (user + system, worker processes included): "
        + ", ".join(f"{k} {v:.1f}" for k, v in CPU.items())
        + f"; ratio by CPU (GeoPandas / Truceline warm): {CPU['GeoPandas'] / CPU['warm']:.2f}x"
    )
    print(
        f"ratio (GeoPandas time / Truceline time): {t_gp / t_tl:.2f}x (target >= 2x); "
        f"Truceline peak RSS {rss_tl:.2f} GB (target <= 1.5 GB, flat with N)"
    )
    if not reuse:
        src.unlink(missing_ok=True)
    for p in (out, out.with_suffix(".rejects.csv"), base_out, cold_out, out2):
        p.unlink(missing_ok=True)
    out2.with_suffix(".rejects.csv").unlink(missing_ok=True)
    if before_src is not None:
        before_out.unlink(missing_ok=True)
        before_out.with_suffix(".rejects.csv").unlink(missing_ok=True)
    cold_out.with_suffix(".rejects.csv").unlink(missing_ok=True)
    shutil.rmtree(cache, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--check", type=int, default=300, help="points checked against the reference")
    ap.add_argument("--end-to-end", action="store_true", help="the CLI on a CSV vs a GeoPandas script")
    ap.add_argument("--bad", type=int, default=1000, help="--end-to-end: rows spoiled")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/truceline-bench"))
    ap.add_argument(
        "--before-src",
        type=Path,
        help="--end-to-end: also run `truceline classify` from this source tree (e.g. main's "
        "src/, exported with `git archive`), on the same file in the same run",
    )
    ap.add_argument("--reuse", action="store_true", help="--end-to-end: keep the CSV, reuse it")
    args = ap.parse_args()
    if args.end_to_end:
        end_to_end(args.n, args.bad, args.workdir, args.before_src, args.reuse)
        return
    ag = load_agreement(ROOT / "examples" / "ukraine-2024")
    b = make_incidents(ag, args.n)
    n = len(b)

    t0 = time.perf_counter()
    locate_stage(ag, b)
    t_geo_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    locate_stage(ag, b)
    t_geo = time.perf_counter() - t0
    t0 = time.perf_counter()
    cls = classify(ag, b)
    t_tl = time.perf_counter() - t0
    t0 = time.perf_counter()
    d_base, _ = baseline(ag, b.lon, b.lat)
    t_base = time.perf_counter() - t0

    rng = np.random.default_rng(1)
    sample = rng.choice(n, size=min(args.check * 3, n), replace=False)
    line = np.vstack([shapely.get_coordinates(g) for g in shapely.get_parts(ag.versions[-1].line)])
    ref = np.array([reference_distance_m(b.lon[i], b.lat[i], line, window_m=400_000.0) for i in sample])
    within = ref <= 200_000
    sample, ref = sample[within][: args.check], ref[within][: args.check]
    err_tl = np.abs(np.abs(cls.distance_km[sample]) * 1000.0 - ref)
    err_base = np.abs(d_base[sample] - ref)

    print(f"incidents: {n:,} on {ag.id} (line {ag.compiled(0).line_length_km:.0f} km); one core")
    print(
        f"GeoPandas baseline (UTM 37N distance + sector sjoin):          {t_base:6.2f} s  "
        f"{n / t_base:12,.0f} incidents/s"
    )
    print(
        f"Truceline, same work exactly (geodesic distance, side, sector): {t_geo:6.2f} s  "
        f"{n / t_geo:12,.0f} incidents/s  ratio {t_base / t_geo:.2f}x (target >= 5x); "
        f"first call, building the cell index: {t_geo_cold:.2f} s"
    )
    print(
        f"Truceline full classify (+ zones with probabilities, all rules, "
        f"explanations): {t_tl:6.2f} s  {n / t_tl:12,.0f} incidents/s  ratio {t_base / t_tl:.2f}x  "
        f"findings: {len(cls.findings):,}"
    )
    print(
        f"max distance error vs GeographicLib on {sample.size} points within 200 km: "
        f"Truceline {err_tl.max():.3f} m (target <= 1 m), baseline {err_base.max():.1f} m "
        f"(p99 {np.percentile(err_base, 99):.1f} m)"
    )


if __name__ == "__main__":
    main()
