"""The planner's report: candidate lines side by side, as one self-contained HTML page.

:func:`render_comparison_html` formats a :class:`~truceline.core.planner.Comparison` with the
``planner.html`` template: a table of every figure per scenario, an overview map of all the lines, and
per scenario a map (sides, buffer zone, land changing hands against the first scenario, settlements,
the planned acoustic sensors and the stretches they leave uncovered), the force per sector and the
places concerned. Maps are matplotlib PNGs embedded as data URIs (object-oriented API, Agg canvas):
the page fetches nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import cache
from typing import Any

import numpy as np
import shapely
from jinja2 import Environment, PackageLoader, StrictUndefined
from matplotlib.artist import Artist
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch
from matplotlib.patheffects import withStroke

from truceline.core.geodesy import LineIndex
from truceline.core.planner import Comparison, PlaceCount
from truceline.report.basemap import draw_basemap
from truceline.report.figures import data_uri, png_bytes, polygon_path

__all__ = [
    "comparison_rows",
    "render_comparison_html",
    "render_overview_png",
    "render_scenario_png",
]

_LEFT = "#0072B2"
_RIGHT = "#D55E00"
_LINES = ("#000000", "#CC79A7", "#009E73", "#E69F00", "#56B4E9", "#F0E442")
_BUFFER = "#F2D16B"
_GAP = "#E0002A"
_DPI = 110


def render_comparison_html(
    comparison: Comparison, *, data_limits: str, generated_at: dt.datetime | None = None
) -> str:
    """The whole report as an HTML string."""
    generated_at = generated_at or dt.datetime.now(dt.UTC)
    ref = comparison.reference
    ag = ref.scenario.agreement
    parties = [ag.left, ag.right]
    names = {p.id: p.name for p in ag.parties}
    colours = {ag.left: _LEFT, ag.right: _RIGHT}
    scen = []
    for k, m in enumerate(comparison.scenarios):
        scen.append(
            {
                "m": m,
                "colour": _LINES[k % len(_LINES)],
                "map": data_uri(render_scenario_png(comparison, k)),
                "changes": [c for c in m.changes if c.area_km2 > 0 or c.places.count],
                "gaps": sorted(m.sensors.gaps, key=lambda g: -g.length_km)[:12] if m.sensors else [],
            }
        )
    first = comparison.scenarios[0]
    return (
        _environment()
        .get_template("planner.html")
        .render(
            agreement=ag,
            parties=parties,
            names=names,
            colours=colours,
            comparison=comparison,
            scenarios=scen,
            overview=data_uri(render_overview_png(comparison)),
            rows=comparison_rows(comparison),
            inf=math.inf,
            force=first.force.parameters,
            sensors=first.sensors.parameters if first.sensors else None,
            data_limits=data_limits,
            generated_at=generated_at.strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def comparison_rows(c: Comparison) -> list[dict[str, Any]]:
    """The comparison table: one row per figure (``label``, ``group``), one value per scenario."""
    ag = c.reference.scenario.agreement
    parties = [ag.left, ag.right]
    ms = c.scenarios

    def row(label: str, values: list[str], group: str = "", note: str = "") -> dict[str, Any]:
        return {"label": label, "cells": values, "group": group, "note": note}

    def km2(v: float) -> str:
        return f"{v:,.0f}"

    def places(pc: Any) -> str:
        return f"{pc.count:,} / {pc.population:,}" if pc is not None else "—"

    rows = [row("Line length (km, geodesic)", [f"{m.line_length_km:,.1f}" for m in ms], "Line")]
    for p in parties:
        rows.append(row(f"Area held by {p} (km²)", [km2(m.area_km2[p]) for m in ms], "Territory"))
    for p in parties:
        vals = []
        for k, m in enumerate(ms):
            got = [ch for ch in m.changes if ch.to_party == p]
            vals.append("—" if k == 0 else km2(sum(ch.area_km2 for ch in got)))
        rows.append(row(f"Land passing to {p} (km²)", vals, "Territory", "against the first"))
    for p in parties:
        vals = []
        for k, m in enumerate(ms):
            got = [ch for ch in m.changes if ch.to_party == p]
            vals.append("—" if k == 0 else places(_sum_places(got)))
        rows.append(row(f"Settlements / people passing to {p}", vals, "Territory"))
    for p in parties:
        rows.append(
            row(
                f"Buffer zone, {p} side (km²)",
                [km2(m.buffer_km2[p]) if p in m.buffer_km2 else "—" for m in ms],
                "Buffer zone",
            )
        )
    for p in parties:
        rows.append(
            row(
                f"Settlements / people in the buffer zone, {p} side",
                [places(m.in_buffer.get(p)) for m in ms],
                "Buffer zone",
            )
        )
    bands = sorted({(w.party, w.distance_km) for m in ms for w in m.withdrawal})
    for party, km in bands:
        vals = []
        for m in ms:
            w = next((w for w in m.withdrawal if (w.party, w.distance_km) == (party, km)), None)
            vals.append(places(w.places) if w else "—")
        rows.append(row(f"Settlements / people within {km:g} km, {party} side", vals, "Withdrawal"))
    rows.append(row("Personnel needed", [f"{m.force.personnel:,}" for m in ms], "Force"))
    rows.append(row("Observation posts", [f"{m.force.observation_posts:,}" for m in ms], "Force"))
    rows.append(
        row("Patrols on the road at once", [f"{m.force.patrols_on_duty:,}" for m in ms], "Force")
    )
    if all(m.sensors is not None for m in ms):
        sp = [m.sensors for m in ms if m.sensors is not None]
        rows.append(row("Acoustic sensors needed", [f"{s.n_sensors:,}" for s in sp], "Sensors"))
        rows.append(row("Spacing along each row (km)", [f"{s.spacing_km:g}" for s in sp], "Sensors"))
        label = "given layout" if sp[0].given_layout else "planned layout"
        rows.append(
            row(
                f"Line meeting the accuracy target ({label})",
                [f"{100 * s.covered_fraction:.1f} %" for s in sp],
                "Sensors",
            )
        )
        rows.append(row(f"Coverage gaps ({label}, km)", [f"{s.gap_km:,.1f}" for s in sp], "Sensors"))
    return rows


def _sum_places(changes: list[Any]) -> PlaceCount:
    return PlaceCount(sum(c.places.count for c in changes), sum(c.places.population for c in changes))


# -- figures ---------------------------------------------------------------------------------------


def _add(ax: Any, geom: Any, **kw: Any) -> None:
    p = polygon_path(geom)
    if p is not None:
        ax.add_patch(PathPatch(p, **kw))


def _line_xy(line: Any) -> list[Any]:
    return [shapely.get_coordinates(g) for g in getattr(line, "geoms", [line])]


def _view(c: Comparison) -> tuple[float, float, float, float]:
    lines = [m.scenario.agreement.compiled(0).version.line for m in c.scenarios]
    minx, miny, maxx, maxy = shapely.total_bounds(lines)
    coslat = math.cos(math.radians((miny + maxy) / 2))
    pad_y = 0.45  # about 50 km: the buffer zone and the nearest towns stay in view
    return minx - pad_y / coslat, miny - pad_y, maxx + pad_y / coslat, maxy + pad_y


def _axes(view: tuple[float, float, float, float], width_px: int) -> tuple[Figure, Any, float]:
    x0, y0, x1, y1 = view
    coslat = math.cos(math.radians((y0 + y1) / 2))
    w_in = width_px / _DPI
    h_in = w_in * (y1 - y0) / ((x1 - x0) * coslat)
    fig = Figure(figsize=(w_in, h_in), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect(1.0 / coslat)
    ax.tick_params(labelsize=7, colors="#555")
    ax.grid(color="#ddd", lw=0.4)
    ax.set_axisbelow(True)
    # Natural Earth land, coast and borders under every layer, clipped to the view.
    draw_basemap(ax, view, zorder=0.5)
    return fig, ax, coslat


def render_overview_png(c: Comparison, *, width_px: int = 1300) -> bytes:
    """Every scenario's line on one map, over the first scenario's sides and sectors."""
    view = _view(c)
    fig, ax, _ = _axes(view, width_px)
    ref = c.reference.scenario.agreement
    cv = ref.compiled(0)
    _add(ax, cv.side_polygon(1), facecolor=_LEFT, alpha=0.06, lw=0)
    _add(ax, cv.side_polygon(-1), facecolor=_RIGHT, alpha=0.06, lw=0)
    for s in ref.sectors:
        _add(ax, s.geometry, facecolor="none", edgecolor="#888", lw=0.5, ls=":")
    handles: list[Artist] = []
    for k, m in enumerate(c.scenarios):
        col = _LINES[k % len(_LINES)]
        lw = 2.2 if k == 0 else 1.5
        for xy in _line_xy(m.scenario.agreement.compiled(0).version.line):
            ax.plot(xy[:, 0], xy[:, 1], color=col, lw=lw, zorder=4 + k, solid_capstyle="round")
        handles.append(Line2D([], [], color=col, lw=lw, label=f"{m.scenario.id}: {m.scenario.name}"))
    handles += [
        Patch(facecolor=_LEFT, alpha=0.25, label=f"{ref.left} side (first scenario)"),
        Patch(facecolor=_RIGHT, alpha=0.25, label=f"{ref.right} side (first scenario)"),
    ]
    _place_names(ax, c, view)
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.9)
    ax.set_title("Candidate lines", fontsize=10)
    return png_bytes(fig, _DPI)


def _place_names(
    ax: Any,
    c: Comparison,
    view: tuple[float, float, float, float],
    extra: tuple[int, ...] = (),
    n: int = 40,
) -> None:
    """Name the places in ``extra`` (emphasised) first, then the largest others in view.

    Labels are placed greedily in display space: one that would overlap a placed label is skipped.
    """
    x0, y0, x1, y1 = view
    pl = c.places
    inside = (pl.lon > x0) & (pl.lon < x1) & (pl.lat > y0) & (pl.lat < y1)
    idx = np.flatnonzero(inside)
    idx = idx[np.argsort(-pl.population[idx], kind="stable")[:n]]
    special = list(dict.fromkeys(int(i) for i in extra))
    order = [(i, True) for i in special] + [(int(i), False) for i in idx if int(i) not in special]
    placed: list[tuple[float, float, float, float]] = []
    for i, emph in order:
        size = 7.0 if emph else 6.5
        px, py = ax.transData.transform((pl.lon[i], pl.lat[i]))
        w = 0.6 * size * len(str(pl.name[i])) * _DPI / 72.0
        h = 1.2 * size * _DPI / 72.0
        box = (px - 3, py - 3, px + 6 + w, py + 3 + h)
        clash = any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed)
        if clash:
            continue
        placed.append(box)
        colour = "#7a0019" if emph else "#333"
        ax.plot(pl.lon[i], pl.lat[i], "o", ms=2.4, color=colour, zorder=8)
        ax.annotate(
            str(pl.name[i]),
            (pl.lon[i], pl.lat[i]),
            xytext=(3, 2),
            textcoords="offset points",
            fontsize=size,
            color=colour,
            zorder=9,
            path_effects=[withStroke(linewidth=2, foreground="white")],
        )


def render_scenario_png(c: Comparison, k: int, *, width_px: int = 1300) -> bytes:
    """One scenario: sides, buffer zone, land changing hands, sensors and coverage gaps."""
    m = c.scenarios[k]
    ag = m.scenario.agreement
    cv = ag.compiled(len(ag.versions) - 1)
    view = _view(c)
    fig, ax, _ = _axes(view, width_px)
    _add(ax, cv.side_polygon(1), facecolor=_LEFT, alpha=0.07, lw=0)
    _add(ax, cv.side_polygon(-1), facecolor=_RIGHT, alpha=0.07, lw=0)
    handles: list[Any] = []
    bz = next((z for z in cv.version.zones if z.buffer), None)
    if bz is not None:
        for g in cv.zone_polygons(bz).values():
            _add(ax, g, facecolor=_BUFFER, alpha=0.55, lw=0)
        handles.append(Patch(facecolor=_BUFFER, alpha=0.55, label=f"buffer zone ({bz.id})"))
    for ch in m.changes:
        if ch.geometry is None or ch.area_km2 <= 0:
            continue
        col = _LEFT if ch.to_party == ag.left else _RIGHT
        _add(ax, ch.geometry, facecolor=col, alpha=0.35, edgecolor=col, lw=0.6, hatch="////")
        handles.append(
            Patch(
                facecolor=col,
                alpha=0.35,
                hatch="////",
                label=f"{ch.from_party} → {ch.to_party}: {ch.area_km2:,.0f} km²",
            )
        )
    for s in ag.sectors:
        _add(ax, s.geometry, facecolor="none", edgecolor="#777", lw=0.5, ls=":")
    if k > 0:
        for xy in _line_xy(c.reference.scenario.agreement.compiled(0).version.line):
            ax.plot(xy[:, 0], xy[:, 1], color="#333", lw=1.0, ls=(0, (4, 3)), zorder=4.5)
        handles.append(
            Line2D(
                [],
                [],
                color="#333",
                lw=1.0,
                ls=(0, (4, 3)),
                label=f"first scenario's line ({c.reference.scenario.id})",
            )
        )
    for xy in _line_xy(cv.version.line):
        ax.plot(xy[:, 0], xy[:, 1], color="#000", lw=1.6, zorder=5)
    handles.append(Line2D([], [], color="#000", lw=1.6, label="line"))
    sp = m.sensors
    if sp is not None:
        ax.plot(sp.layout_lon, sp.layout_lat, ".", ms=1.6, color="#444", zorder=5)
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker=".",
                color="#444",
                label=f"planned acoustic sensors ({sp.n_sensors:,})",
            )
        )
        idx = LineIndex([xy for xy in _line_xy(cv.version.line)], max_segment_m=1000.0)
        for g in sp.gaps:
            m_lo, m_hi = g.start_km * 1000.0, g.end_km * 1000.0
            sel = (idx.chainage_at_vertex >= m_lo) & (idx.chainage_at_vertex <= m_hi)
            xs, ys = idx.lon[sel], idx.lat[sel]
            if xs.size < 2:
                ax.plot(g.lon, g.lat, "o", ms=4, color=_GAP, zorder=7)
            else:
                ax.plot(xs, ys, color=_GAP, lw=4, alpha=0.85, zorder=6, solid_capstyle="round")
        if sp.gaps:
            which = "given" if sp.given_layout else "planned"
            handles.append(
                Line2D(
                    [],
                    [],
                    color=_GAP,
                    lw=4,
                    label=f"coverage gaps of the {which} layout ({sp.gap_km:,.0f} km)",
                )
            )
    moved = tuple(i for ch in m.changes for i in ch.places.index[:8])
    _place_names(ax, c, view, moved)
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.9)
    ax.set_title(f"{m.scenario.id}: {m.scenario.name}", fontsize=10)
    return png_bytes(fig, _DPI)


# -- template --------------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("truceline.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["n"] = lambda v, d=0: "—" if v is None else f"{v:,.{d}f}"
    return env
