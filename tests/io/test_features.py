"""The server's features: the agreement's layers as GeoJSON (zone outlines where the zones are,
withdrawal lines with their weapons) and a selection's exports (CSV and GeoJSON, in chunks)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import shapely

from truceline.core.agreement import Agreement
from truceline.core.withdrawal import withdrawal_lines
from truceline.io.features import (
    SELECTION_COLUMNS,
    export_csv,
    export_geojson,
    withdrawal_features,
    zones_feature_collection,
)


@pytest.mark.parametrize("name", ["ukraine", "korea"])
def test_exported_zone_outlines_match_the_computed_zones(
    name: str, request: pytest.FixtureRequest
) -> None:
    """Every exported band-zone vertex off the line lies at the band's distance to within 1 m."""
    ag = request.getfixturevalue(name)
    cv = ag.compiled(0)
    fc = zones_feature_collection(ag, ag.effective_from)
    checked = 0
    for f in fc["features"]:
        pr = f["properties"]
        if pr["layer"] != "zone" or pr["type"] != "band":
            continue
        side = 1 if pr["side"] == ag.left else -1
        geom = shapely.geometry.shape(f["geometry"])
        rings = [
            shapely.get_coordinates(r)
            for g in shapely.get_parts(geom)
            for r in [g.exterior, *g.interiors]
        ]
        pts = np.vstack([np.vstack([r, (r[:-1] + r[1:]) / 2]) for r in rings])
        divider = shapely.boundary(cv.side_polygon(side))
        off = ~shapely.dwithin(divider, shapely.points(pts), 1e-5)
        d = cv.ref_line(side).distance_m(pts[off, 0], pts[off, 1])
        edges = [pr["to_km"] * 1000.0] + ([pr["from_km"] * 1000.0] if pr["from_km"] else [])
        err = np.min(np.abs(d[:, None] - np.array(edges)[None, :]), axis=1)
        assert err.max() <= 1.0, (pr["id"], float(err.max()))
        checked += int(off.sum())
    assert checked > 100


def test_withdrawal_features_name_their_weapons(small: Agreement) -> None:
    day = dt.date(2025, 3, 1)
    feats = withdrawal_features(small, withdrawal_lines(small, day))
    props = {f["properties"]["id"]: f["properties"] for f in feats}
    assert set(props) == {"withdrawal:A:15", "withdrawal:A:25", "withdrawal:B:10", "withdrawal:B:25"}
    assert props["withdrawal:A:15"]["weapon_classes"] == ["Tanks"]
    assert props["withdrawal:B:25"]["rules"] == ["wd-art"]
    assert props["withdrawal:B:25"]["name"] == "Withdrawal line 25 km (B)"
    assert all(f["geometry"]["type"] == "MultiLineString" for f in feats)


def _records(n: int) -> Iterator[dict[str, Any]]:
    for k in range(n):
        rec: dict[str, Any] = dict.fromkeys(SELECTION_COLUMNS)
        rec.update(record="finding", finding_pk=k + 1, lon=36.0 + k * 1e-4, lat=48.0, kind="shelling")
        yield rec


@pytest.mark.parametrize("n", [0, 1, 4001])
def test_exports_read_back_whole_across_chunks(n: int) -> None:
    rows = list(csv.DictReader(io.StringIO("".join(export_csv(_records(n))))))
    assert len(rows) == n and all(r["narrative"] == "" for r in rows)
    assert [int(r["finding_pk"]) for r in rows] == list(range(1, n + 1))
    fc = json.loads("".join(export_geojson(_records(n), name="x")))
    assert fc["name"] == "x" and len(fc["features"]) == n
    if n:
        f = fc["features"][-1]
        assert f["id"] == f"finding-{n}" and f["geometry"]["coordinates"][1] == 48.0
        assert "lon" not in f["properties"] and f["properties"]["kind"] == "shelling"
