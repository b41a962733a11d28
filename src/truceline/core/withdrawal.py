"""Withdrawal lines: how far back from the line each party keeps the weapons a rule withdraws.

A withdrawal rule in force asks a party to keep some weapon classes at least ``distance_km`` from
the line (or from its own reference line) on its own side. Drawn on a map, that is a line on the
party's side at that distance: :func:`withdrawal_lines` gives one per party and distance in force
on a day. Every vertex of it lies at the distance from the line, measured geodesically.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from truceline.core.agreement import Agreement, Rule, RuleType
from truceline.core.geodesy import LineIndex, offset_region

__all__ = ["WithdrawalLine", "withdrawal_lines"]


@dataclass(frozen=True, slots=True)
class WithdrawalLine:
    """The line one party's withdrawn weapons stay behind."""

    party: str
    distance_km: float
    #: The withdrawal rules in force that ask for this distance of this party.
    rules: tuple[Rule, ...]
    #: A shapely MultiLineString in WGS84 lon/lat (coordinates rounded to 1e-7 deg, ~1 cm).
    geometry: Any


def withdrawal_lines(ag: Agreement, day: dt.date) -> list[WithdrawalLine]:
    """One line per party and withdrawal distance in force on ``day``, by party then distance.

    A distance whose line falls entirely outside the area of application has none. Arcs at bends
    are drawn within 5 m (a map line, not a measurement).
    """
    cv = ag.version_at(day)
    groups: dict[tuple[str, float], list[Rule]] = {}
    for r in cv.rules:
        if r.type != RuleType.withdrawal or not r.in_force(day):
            continue
        for party, km in r.distance_km.items():
            groups.setdefault((party, float(km)), []).append(r)
    out = []
    for (party, km), rules in sorted(groups.items()):
        side = ag.side_of_party(party)
        region = shapely.intersection(
            offset_region(cv.ref_line(side), km * 1000.0, side, tol_m=5.0), cv.side_polygon(side)
        )
        edge = _at_distance(shapely.boundary(region), cv.ref_line(side), km * 1000.0)
        if not edge.is_empty:
            out.append(WithdrawalLine(party, km, tuple(rules), edge))
    return out


def _at_distance(outline: Any, ref: LineIndex, dist_m: float, tol_m: float = 25.0) -> Any:
    """The stretches of a zone's outline that lie ``dist_m`` from the line (measured exactly).

    The outline of "within ``dist_m`` on one side" also runs along the line itself, along the area
    of application's edge and along the line's extension past its ends; only its vertices at the
    distance (every vertex of the offset is, to the centimetre) make the withdrawal line.
    """
    runs = []
    for part in shapely.get_parts(shapely.line_merge(outline)):
        xy = shapely.get_coordinates(part)
        if len(xy) < 2:
            continue
        ok = np.abs(ref.nearest(xy[:, 0], xy[:, 1]).distance_m - dist_m) < tol_m
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            if b - a >= 2:
                runs.append(np.round(xy[a:b], 7))
    return shapely.MultiLineString(runs) if runs else shapely.MultiLineString()
