"""Benchmark: classify 1,000,000 incidents on the Ukraine example.

Truceline's vectorised engine (exact geodesic distance, side, zones with probabilities, sector, every
rule) against a GeoPandas baseline doing less (project to one UTM zone, planar distance to the line,
spatial join to the sectors), in the same run, on one core. Prints throughput, the ratio and both
methods' maximum distance error against an independent geodesic reference (GeographicLib) on a
random subsample of points within 200 km of the line.

Run: ``make bench`` or ``.venv/bin/python benchmarks/classify.py [--n 1000000]``.
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--check", type=int, default=300, help="points checked against the reference")
    args = ap.parse_args()
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
