"""The GeoPandas script ``benchmarks/classify.py --end-to-end`` compares ``truceline classify`` with.

What an analyst would write for the same file: read the CSV, project the points to one UTM zone
(37N, the zone holding most of the line), measure the planar distance to the line, write a CSV.

Run: ``python benchmarks/classify_e2e_baseline.py AGREEMENT_DIR IN.csv OUT.csv``.
"""

from __future__ import annotations

import sys

import geopandas as gpd
import pandas as pd
import shapely


def main(agreement_dir: str, src: str, out: str) -> None:
    line = gpd.read_file(f"{agreement_dir}/line.geojson").geometry.union_all()
    df = pd.read_csv(src)
    pts = gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs=4326)
    pts = pts.to_crs(32637)
    utm_line = gpd.GeoSeries([line], crs=4326).to_crs(32637).iloc[0]
    shapely.prepare(utm_line)
    df["distance_km"] = (pts.distance(utm_line) / 1000.0).round(4)
    df[["id", "distance_km"]].to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
