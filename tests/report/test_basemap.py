"""Natural Earth under the static maps (the daily report's and the planner's): land, coast and
borders from the dashboard's shipped world-atlas file, the sides' names on land, a geodesic scale bar."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from matplotlib.collections import LineCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import PathPatch

from truceline.core.geodesy import GEOD
from truceline.io.agreement_files import load_agreement
from truceline.report import planner
from truceline.report.basemap import ATLAS_PATH, LAND_COLOUR, basemap
from truceline.report.daily import DayReport, map_figure

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Places known independently of the atlas (lon, lat).
KYIV, KHARKIV, SIMFEROPOL = (30.52, 50.45), (36.23, 49.99), (34.10, 44.95)
AZOV_SEA, BLACK_SEA = (36.5, 46.0), (32.0, 43.5)


def test_atlas_is_the_shipped_file_and_decodes_to_land_and_borders() -> None:
    assert ATLAS_PATH.is_file() and ATLAS_PATH.parent.name == "static"
    bm = basemap()
    box = shapely.box(28.0, 43.0, 41.0, 53.0)
    land = bm.land_in(box)
    assert land.is_valid
    inside = shapely.contains_xy(land, *np.array([KYIV, KHARKIV, SIMFEROPOL]).T)
    at_sea = shapely.contains_xy(land, *np.array([AZOV_SEA, BLACK_SEA]).T)
    assert inside.all() and not at_sea.any()
    # The Ukraine-Russia border runs between Kharkiv and Belgorod (36.6 E, 50.6 N), ~30-40 km north.
    borders = bm.borders_in(box)
    assert borders is not None
    kharkiv = shapely.Point(KHARKIV)
    assert 0.15 < shapely.distance(borders, kharkiv) < 0.6
    # Open sea has no land and no border.
    sea = shapely.box(31.0, 43.0, 32.0, 43.8)
    assert bm.land_in(sea).is_empty and bm.borders_in(sea) is None


def _ukraine_figure() -> tuple[Any, Figure]:
    folder = EXAMPLES / "ukraine-2024"
    ag = load_agreement(folder)
    day = ag.effective_from + dt.timedelta(days=30)
    fig = map_figure(DayReport(ag, day, 0, {}, [], []))
    return ag, fig


@pytest.fixture(scope="module")
def ukraine() -> tuple[Any, Figure]:
    if not (EXAMPLES / "ukraine-2024" / "agreement.yaml").exists():
        pytest.skip("examples/ukraine-2024 not present")
    return _ukraine_figure()


def test_daily_map_draws_land_coast_and_borders_under_the_agreement(ukraine: tuple[Any, Figure]) -> None:
    _, fig = ukraine
    ax = fig.axes[0]
    land = [
        p
        for p in ax.patches
        if isinstance(p, PathPatch) and to_hex(p.get_facecolor()) == LAND_COLOUR.lower()
    ]
    assert len(land) == 1
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    verts = np.asarray(land[0].get_path().vertices)
    # Clipped to the map's extent.
    assert (verts[:, 0] >= x0 - 1e-9).all() and (verts[:, 0] <= x1 + 1e-9).all()
    assert (verts[:, 1] >= y0 - 1e-9).all() and (verts[:, 1] <= y1 + 1e-9).all()
    borders = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert borders and sum(len(c.get_segments()) for c in borders) >= 1
    # Under every layer of the agreement (zones, sectors, line).
    others = [a.get_zorder() for a in (*ax.patches, *ax.lines) if a is not land[0]]
    assert land[0].get_zorder() < min(others)
    assert all(c.get_zorder() < min(others) for c in borders)


def test_side_labels_sit_on_land(ukraine: tuple[Any, Figure]) -> None:
    _, fig = ukraine
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_text().endswith(" side")]
    assert len(labels) == 2, [t.get_text() for t in ax.texts]
    land = basemap().land_in(shapely.box(20, 40, 45, 56))
    for t in labels:
        x, y = t.xy  # type: ignore[attr-defined]  # an Annotation: its anchor
        assert shapely.contains_xy(land, x, y), (t.get_text(), x, y)


def test_scale_bar_is_geodesic(ukraine: tuple[Any, Figure]) -> None:
    _, fig = ukraine
    ax = fig.axes[0]
    (label,) = [t for t in ax.texts if re.fullmatch(r"[\d.]+ km", t.get_text())]
    km = float(label.get_text().split()[0])
    bars = [ln for ln in ax.lines if ln.get_linewidth() == 2.5 and np.size(ln.get_xdata()) == 2]
    assert len(bars) == 1
    (lon0, lon1), (lat0, lat1) = np.asarray(bars[0].get_xdata()), np.asarray(bars[0].get_ydata())
    assert lat0 == lat1
    length_km = GEOD.line_length([lon0, lon1], [lat0, lat1]) / 1000
    # True where it is drawn. 111.32 km/deg x cos(mean lat) (a sphere, the map's centre) was 0.2 %
    # off for the ellipsoid and 4.5 % off for the latitude of a bar at the map's foot here.
    assert length_km == pytest.approx(km, rel=2e-4)


def test_planner_axes_carry_the_basemap() -> None:
    view = (33.0, 46.0, 38.0, 49.5)
    _, ax, _ = planner._axes(view, 800)
    land = [p for p in ax.patches if to_hex(p.get_facecolor()) == LAND_COLOUR.lower()]
    assert len(land) == 1 and land[0].get_zorder() < 1
    assert any(isinstance(c, LineCollection) for c in ax.collections)
