"""Benchmark: fusion of duplicate reports on report mixes made independently of Truceline's simulator.

The generator (``generate``) places events along a 50 km stretch of the Ukraine example's line
(24 events per km per day by default), each reported by 1-4 sources of distinct types; every
report's position is drawn from its own stated uncertainty (a circular Gaussian, 1 sigma), 15 % of
the reports are acoustic fixes; human reports (patrols, observation posts, the parties'
complaints, open sources) give their time rounded to the minute and up to ``--late`` minutes late;
cameras and drones have a small clock error. A share of the events are barrages: rounds about
1 km and 1 minute apart. It writes ``reports.csv`` (for ``truceline import``) and ``truth.csv``
(report id, true event, arrival time).

The scorer (``score``) reads a Truceline database (plain SQL, no Truceline code) and, when given,
the possible duplicates (``truceline duplicates -o pairs.csv``), and reports pairwise precision and
recall of the automatic links, the share of true pairs linked or offered, the possible duplicates
per report, the day's count of distinct events (expected value) against the truth, and reports lost.

``run`` does it all for the judged mixes: generates each, imports it through the CLI in one batch,
streams the same reports through the ingest service in arrival order (one batch per 5 minutes of
arrivals), scores both and compares their links.

Run: ``.venv/bin/python benchmarks/fusion_mixes.py run`` (also run by ``make bench``).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import itertools
import json
import math
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Geod

ROOT = Path(__file__).resolve().parents[1]
AGREEMENT = ROOT / "examples" / "ukraine-2024"
GEOD = Geod(ellps="WGS84")
TRUCELINE = Path(sys.executable).with_name("truceline")  # the installed command
DAY0 = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)  # all of the example's amendments in force

#: (source type, share of events it reports, stated 1-sigma position error range in m, time kind)
#: time kind: "machine" (own clock, small error) or "human" (rounded to the minute, maybe late)
SOURCES: dict[str, tuple[tuple[float, float], str]] = {
    "camera": ((50.0, 200.0), "machine"),
    "uav": ((30.0, 120.0), "machine"),
    "patrol": ((300.0, 1500.0), "human"),
    "observation_post": ((300.0, 1500.0), "human"),
    "party_complaint": ((500.0, 2500.0), "human"),
    "open_source": ((1000.0, 3000.0), "human"),
}
ACOUSTIC_SIGMA_M = (5.0, 30.0)
KINDS = ("explosion", "muzzle_flash", "small_arms_fire")
KIND_P = (0.75, 0.15, 0.10)
WEAPONS = ("mortar", "artillery_100mm_plus", "mlrs", "artillery_lt_100mm")


@dataclass
class Mix:
    name: str
    density: float = 24.0  # events per km of line per day
    length_km: float = 50.0
    depth_km: float = 6.0  # events within this distance either side of the line
    acoustic: float = 0.15  # share of reports that are acoustic
    late_min: float = 0.0  # human reports up to this late (minutes)
    barrage: float = 0.0  # share of events that are rounds of barrages
    rounds: tuple[int, int] = (3, 8)
    hours: float = 24.0
    seed: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


MIXES = [
    Mix("isolated"),
    Mix("isolated, acoustic 0 %", acoustic=0.0, seed=2),
    Mix("isolated, acoustic 30 %", acoustic=0.30, seed=3),
    Mix("humans 0-10 min late", late_min=10.0, seed=4),
    Mix("humans 0-20 min late", late_min=20.0, seed=5),
    Mix("humans 0-30 min late", late_min=30.0, seed=6),
    Mix("barrages", barrage=0.5, seed=7),
    Mix("barrages, humans 0-30 min late", barrage=0.5, late_min=30.0, seed=8),
]


def _stretch(length_km: float) -> tuple[np.ndarray, np.ndarray]:
    """A stretch of the example's line (lon, lat vertices) about ``length_km`` long, north of 47.9 N."""
    g = json.loads((AGREEMENT / "line.geojson").read_text())["features"][0]["geometry"]["coordinates"]
    xy = np.array(g)
    start = int(np.argmin(np.abs(xy[:, 1] - 48.6) + np.abs(xy[:, 0] - 37.87)))
    seg = GEOD.inv(xy[:-1, 0], xy[:-1, 1], xy[1:, 0], xy[1:, 1])[2]
    cum = np.concatenate([[0.0], np.cumsum(seg[start:])])
    end = start + int(np.searchsorted(cum, length_km * 1000.0)) + 1
    return xy[start : end + 1, 0], xy[start : end + 1, 1]


def _along(lon: np.ndarray, lat: np.ndarray, s_m: np.ndarray) -> tuple[np.ndarray, ...]:
    """Points at chainage ``s_m`` along the polyline and the azimuth of the line there."""
    az, _, seg = GEOD.inv(lon[:-1], lat[:-1], lon[1:], lat[1:])
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s_m = np.clip(s_m, 0.0, cum[-1] - 1e-6)
    k = np.clip(np.searchsorted(cum, s_m, side="right") - 1, 0, len(seg) - 1)
    plon, plat, _ = GEOD.fwd(lon[k], lat[k], az[k], s_m - cum[k])
    return plon, plat, az[k]


def generate(mix: Mix) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Reports (as ``truceline import`` reads them) and the truth, for one mix."""
    rng = np.random.default_rng(mix.seed)
    lon_l, lat_l = _stretch(mix.length_km)
    n_ev = round(mix.density * mix.length_km * mix.hours / 24.0)
    # events: isolated ones, and barrages whose rounds are ~1 km and ~1 min apart
    n_bar_ev = round(mix.barrage * n_ev)
    ev_s, ev_off, ev_t = [], [], []
    made = 0
    while made < n_bar_ev:
        k = int(rng.integers(mix.rounds[0], mix.rounds[1] + 1))
        k = min(k, n_bar_ev - made)
        s0 = rng.uniform(0, mix.length_km * 1000.0)
        off0 = rng.uniform(-mix.depth_km, mix.depth_km) * 1000.0
        t0 = rng.uniform(0, mix.hours * 3600.0)
        walk = rng.uniform(0, 2 * np.pi)
        for r in range(k):  # a walk of ~1 km steps, ~1 min apart
            step = rng.normal(1000.0, 200.0) * r
            ang = walk + rng.normal(0, 0.4)
            ev_s.append(s0 + step * math.cos(ang))
            ev_off.append(off0 + step * math.sin(ang))
            ev_t.append(t0 + r * rng.normal(60.0, 10.0))
        made += k
    n_iso = n_ev - made
    ev_s += list(rng.uniform(0, mix.length_km * 1000.0, n_iso))
    ev_off += list(rng.uniform(-mix.depth_km, mix.depth_km, n_iso) * 1000.0)
    ev_t += list(rng.uniform(0, mix.hours * 3600.0, n_iso))
    s, off, t = np.array(ev_s), np.array(ev_off), np.array(ev_t)
    plon, plat, az = _along(lon_l, lat_l, s)
    elon, elat, _ = GEOD.fwd(plon, plat, az + 90.0, off)
    kind = rng.choice(KINDS, n_ev, p=KIND_P)
    weapon = np.where(kind == "small_arms_fire", "small_arms", rng.choice(WEAPONS, n_ev))
    # sources: 1-4 distinct types per event; acoustic among them with the probability that makes
    # its share of reports the mix's (mean 2.5 reports per event)
    n_src = rng.integers(1, 5, n_ev)
    p_ac = min(1.0, mix.acoustic * 2.5)
    has_ac = rng.random(n_ev) < p_ac
    others = list(SOURCES)
    reports: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    for e in range(n_ev):  # a generator, not a hot path
        types = (["acoustic"] if has_ac[e] else []) + list(
            rng.choice(others, n_src[e] - int(has_ac[e]), replace=False)
        )
        for st in types:
            if st == "acoustic":
                sig = rng.uniform(*ACOUSTIC_SIGMA_M)
                t_rep, prec, arrive = t[e] + rng.normal(0, 0.01), "second", t[e] + rng.uniform(5, 60)
            else:
                (lo, hi), how = SOURCES[st]
                sig = rng.uniform(lo, hi)
                if how == "machine":
                    t_rep = t[e] + rng.normal(0, 2.0)
                    prec, arrive = "second", t[e] + rng.uniform(10, 300)
                else:
                    late = rng.uniform(0, mix.late_min * 60.0)
                    t_rep = 60.0 * np.round((t[e] + late) / 60.0)
                    prec, arrive = "minute", t[e] + late + rng.uniform(60, 1800)
            d = sig * math.sqrt(-2.0 * math.log(1.0 - rng.random()))  # Rayleigh: 2-D Gaussian
            rlon, rlat, _ = GEOD.fwd(elon[e], elat[e], rng.uniform(0, 360), d)
            rid = f"{mix.seed}-{len(reports):06d}"
            k = kind[e]
            if st not in ("acoustic", "camera", "uav") and k == "muzzle_flash" and rng.random() < 0.3:
                k = "explosion"  # heard from afar, a launch is an undetermined explosion
            reports.append(
                {
                    "id": rid,
                    "observed_at": (DAY0 + dt.timedelta(seconds=float(t_rep))).isoformat(),
                    "time_precision": prec,
                    "lon": round(float(rlon), 7),
                    "lat": round(float(rlat), 7),
                    "uncertainty_m": round(float(sig), 1),
                    "kind": k,
                    "weapon_class": weapon[e] if st != "acoustic" and rng.random() < 0.5 else "",
                    "count": 1,
                    "source_type": st,
                    "reliability": "B" if st in ("acoustic", "camera", "uav") else "C",
                    "credibility": 2 if st in ("acoustic", "camera", "uav") else 3,
                }
            )
            truth.append({"id": rid, "event": e, "arrival_s": round(float(arrive), 3)})
    return reports, truth


def write(reports: list[dict[str, Any]], truth: list[dict[str, Any]], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("reports.csv", reports), ("truth.csv", truth)):
        with (out / name).open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)


# -- scoring ----------------------------------------------------------------------------------------


def _pairs_of(groups: np.ndarray) -> set[tuple[int, int]]:
    """All pairs (i < j) of indices with equal non-negative group."""
    out: set[tuple[int, int]] = set()
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    cuts = np.flatnonzero(np.diff(g)) + 1
    for block in np.split(order, cuts):
        if len(block) < 2 or groups[block[0]] < 0:
            continue
        b = np.sort(block)
        for i in range(len(b)):
            for j in range(i + 1, len(b)):
                out.add((int(b[i]), int(b[j])))
    return out


def read_links(
    db: Path, ids: list[str]
) -> tuple[np.ndarray, list[tuple[str, str, float]], list[tuple[str, str, float]]]:
    """Each report's event (-1: alone; -2: missing from the store), the possible duplicates
    (every ``possible`` row, including those whose reports a later batch put in one event: the
    rows an analyst's queue is made from) and the pairs weighed for the count (``weighed`` rows,
    below the queue; in both, ``a`` is the vaguer report)."""
    con = sqlite3.connect(db)
    rows = dict(con.execute("SELECT report_id, event_id FROM incidents").fetchall())
    dups: list[tuple[str, str, float]] = []
    weighed: list[tuple[str, str, float]] = []
    have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "fusion_pairs" in have:
        q = (
            "SELECT a.report_id, b.report_id, p.probability FROM fusion_pairs p "
            "JOIN incidents a ON a.pk = p.a_pk JOIN incidents b ON b.pk = p.b_pk "
            "WHERE p.status = ?"
        )
        dups = [(a, b, float(pr)) for a, b, pr in con.execute(q, ("possible",))]
        weighed = [(a, b, float(pr)) for a, b, pr in con.execute(q, ("weighed",))]
    con.close()
    ev = np.array([-2 if r not in rows else (-1 if rows[r] is None else rows[r]) for r in ids])
    return ev, dups, weighed


@dataclass
class Score:
    reports: int
    lost: int
    true_events: int
    precision: float
    recall: float
    offered_recall: float
    dup_pairs: int
    count: float
    linked_pairs: set[tuple[int, int]]

    @property
    def count_err(self) -> float:
        return self.count / self.true_events - 1.0


def score(db: Path, truth: list[dict[str, Any]]) -> Score:
    ids = [r["id"] for r in truth]
    tev = np.array([int(r["event"]) for r in truth])
    ev, dups, weighed = read_links(db, ids)
    lost = int((ev == -2).sum())
    # reports alone get a group of their own
    group = np.where(ev >= 0, ev, -(np.arange(len(ev)) + 10))
    group = np.unique(group, return_inverse=True)[1].ravel()
    linked = _pairs_of(np.where(np.bincount(group)[group] > 1, group, -1))
    true = _pairs_of(tev)
    tp = len(linked & true)
    prec = tp / len(linked) if linked else 1.0
    rec = tp / len(true) if true else 1.0
    # offered: a possible duplicate joins the two reports' events (an analyst's merge links them)
    idx = {r: k for k, r in enumerate(ids)}
    offered_groups = {
        (min(group[idx[a]], group[idx[b]]), max(group[idx[a]], group[idx[b]]))
        for a, b, _ in dups
        if a in idx and b in idx
    }
    covered = sum(
        1
        for i, j in true
        if group[i] == group[j] or (min(group[i], group[j]), max(group[i], group[j])) in offered_groups
    )
    # expected number of distinct events: each group counts 1 less the chance that it is
    # another's duplicate: the sum, over the pairs of groups offered or weighed, of the largest
    # probability stored for that pair of groups, where it holds that pair's vaguer report
    # (``a``), at most 1
    best: dict[tuple[int, int], tuple[float, int]] = {}
    for a, b, p in dups + weighed:
        if a in idx and b in idx:
            ga, gb = group[idx[a]], group[idx[b]]
            if ga != gb:
                key = (min(ga, gb), max(ga, gb))
                if p > best.get(key, (-1.0, 0))[0]:
                    best[key] = (p, int(ga))
    mass: dict[int, float] = {}
    for p, g in best.values():
        mass[g] = mass.get(g, 0.0) + p
    count = len(np.unique(group)) - sum(min(m, 1.0) for m in mass.values())
    return Score(
        len(ids), lost, len(np.unique(tev)), prec, rec, covered / len(true) if true else 1.0,
        len(dups), count, linked,
    )  # fmt: skip


# -- a baseline: the conflict datasets' rule ------------------------------------------------------


def _xy_t(reports: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    lon = np.array([float(r["lon"]) for r in reports])
    lat = np.array([float(r["lat"]) for r in reports])
    lon0, lat0 = float(lon.mean()), float(lat.mean())
    _, _, dx = GEOD.inv(np.full(len(lon), lon0), lat, lon, lat)
    _, _, dy = GEOD.inv(lon, np.full(len(lon), lat0), lon, lat)
    xy = np.stack([np.sign(lon - lon0) * dx, np.sign(lat - lat0) * dy], 1)
    t = np.array([dt.datetime.fromisoformat(r["observed_at"]).timestamp() for r in reports])
    return xy, t


def baseline_groups(reports: list[dict[str, Any]], km: float = 2.0, minutes: float = 10.0) -> np.ndarray:
    """Reports joined when they are within ``km`` and ``minutes`` of each other and of one kind
    (the rule of conflict datasets such as xSub: same type, within a few km and a window), as
    connected components."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    xy, t = _xy_t(reports)
    kind = np.array([r["kind"] for r in reports])
    pts = np.column_stack([xy / (km * 1000.0), (t - t.min()) / (minutes * 60.0)])
    pairs = cKDTree(pts).query_pairs(1.0, p=np.inf, output_type="ndarray")
    pairs = pairs[kind[pairs[:, 0]] == kind[pairs[:, 1]]]
    n = len(reports)
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(g, directed=False)[1]


def baseline_score(
    reports: list[dict[str, Any]], truth: list[dict[str, Any]]
) -> tuple[float, float, int]:
    tev = np.array([int(r["event"]) for r in truth])
    lab = baseline_groups(reports)
    linked, true = _pairs_of(np.where(np.bincount(lab)[lab] > 1, lab, -1)), _pairs_of(tev)
    tp = len(linked & true)
    return tp / max(len(linked), 1), tp / max(len(true), 1), len(np.unique(lab))


def _columns(reports: list[dict[str, Any]]) -> Any:
    """The reports as the ingest path hands them to fusion (``ReportColumns``)."""
    from truceline.services.events import ReportColumns

    n = len(reports)
    t = np.array([dt.datetime.fromisoformat(r["observed_at"]).timestamp() for r in reports])
    return ReportColumns(
        pk=np.arange(n), event=np.full(n, -1), time_s=t,
        precision=np.array([r["time_precision"] for r in reports]),
        lon=np.array([r["lon"] for r in reports], float),
        lat=np.array([r["lat"] for r in reports], float),
        unc_m=np.array([r["uncertainty_m"] for r in reports], float),
        kind=np.array([r["kind"] for r in reports]),
        source_type=np.array([r["source_type"] for r in reports]),
        submitted_by=np.full(n, "bench"), reliability=np.array([r["reliability"] for r in reports]),
        credibility=np.array([r["credibility"] for r in reports], np.intp), distance_km=np.zeros(n),
        p_side=np.full(n, 0.5), weapon=np.array([r["weapon_class"] for r in reports]),
        count=np.array([r["count"] for r in reports], np.intp),
    )  # fmt: skip


#: Reliability bins of the stated link probability.
CAL_BINS = (0.0, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95, 0.99, 1.0 + 1e-9)


def calibrate(args: argparse.Namespace) -> None:
    """Calibration of the link probability on each mix: every candidate pair's stated
    probability against whether its two reports are of one true event (Brier score and
    reliability bins: pairs, mean stated p, observed share), and the precision and recall of
    the pairs at or above the link threshold, with ``learn_coverage`` off (the default) and on."""
    from truceline.core import fusion

    mixes = [m for m in MIXES if not args.only or any(o in m.name for o in args.only)]
    heads = " | ".join(f"{lo:.2f}-{min(hi, 1.0):.2f}" for lo, hi in itertools.pairwise(CAL_BINS))
    what = "local_density" if args.local_density else "learn_coverage"
    print(f"| mix | {what} | Brier | p >= 0.9: precision / recall | {heads} |")
    print("|---|---|---|---|" + "---|" * (len(CAL_BINS) - 1))
    for mix in mixes:
        mix.hours = args.hours or mix.hours
        reports, truth = generate(mix)
        tev = np.array([int(t["event"]) for t in truth])
        n_true = len(_pairs_of(tev))
        rep = _columns(reports).reports()
        variants = [("learn_coverage", False), ("learn_coverage", True)]
        if args.local_density:
            variants = [("local_density", False), ("local_density", True)]
        for what, learn in variants:
            res = fusion.fuse(rep, settings=fusion.FusionSettings(**{what: learn}))
            p, y = res.pair_p, tev[res.pair_a] == tev[res.pair_b]
            k = np.digitize(p, CAL_BINS) - 1
            cells = " | ".join(
                f"{m.sum()}: {p[m].mean():.2f} / {y[m].mean():.2f}" if m.any() else "-"
                for m in (k == i for i in range(len(CAL_BINS) - 1))
            )
            hi = p >= 0.9
            print(
                f"| {mix.name} | {learn} | {np.mean((p - y) ** 2):.4f} "
                f"| {y[hi].mean():.4f} / {np.sum(y & hi) / n_true:.4f} | {cells} |",
                flush=True,
            )


def _logistic(x: np.ndarray, y: np.ndarray, iters: int = 100) -> np.ndarray:
    """Coefficients of a logistic regression of ``y`` (0/1) on the columns of ``x`` (Newton's
    method; the first column is the model's logit, started at 1)."""
    w = np.zeros(x.shape[1])
    w[1] = 1.0
    for _ in range(iters):
        q = 1.0 / (1.0 + np.exp(-(x @ w)))
        hess = (x * (q * (1.0 - q))[:, None]).T @ x + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, x.T @ (y - q))
        w += step
        if np.abs(step).max() < 1e-10:
            break
    return w


def fit(args: argparse.Namespace) -> None:
    """Fit ``FusionSettings.calibration`` on mixes the judged ones are not: each judged
    mix's kind with seeds ``1000 s + its seed`` for s in ``--seeds``; every pair of events
    fusion leaves apart (from probability 0.005) against whether its reports are of one true
    event: a logistic regression on the model's logit, the pair's chance of a late report and
    their product. Prints the coefficients and the reliability before and after by band."""
    from truceline.core import fusion

    ps, lates, ys = [], [], []
    for s, hours, m in itertools.product(range(args.seeds[0], args.seeds[1] + 1), args.hours, MIXES):
        mix = Mix(m.name, acoustic=m.acoustic, late_min=m.late_min, barrage=m.barrage,
                  hours=hours, seed=1000 * s + m.seed)  # fmt: skip
        reports, truth = generate(mix)
        tev = np.array([int(t["event"]) for t in truth])
        settings = fusion.FusionSettings(calibration=None, count_floor=0.005)
        res = fusion.fuse(_columns(reports).reports(), settings=settings)
        k = np.concatenate([res.dup_pair, res.mass_pair])
        ps.append(res.pair_p[k])
        lates.append(res.pair_late[k])
        ys.append((tev[res.pair_a[k]] == tev[res.pair_b[k]]).astype(float))
    p, late, y = np.concatenate(ps), np.concatenate(lates), np.concatenate(ys)
    z = np.log(np.clip(p, 1e-9, 1 - 1e-9) / (1 - np.clip(p, 1e-9, 1 - 1e-9)))
    w = _logistic(np.column_stack([np.ones_like(z), z, late, late * z]), y)
    coef = tuple(round(float(c), 4) for c in w)
    hours = " and ".join(f"{h:g}" for h in args.hours)
    print(f"{len(p):,} pairs of events, seeds {args.seeds[0]}-{args.seeds[1]}, mixes of {hours} h")
    print(f"calibration = {coef}")
    q = fusion.calibrated(p, late, coef)
    bins = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.0 + 1e-9)
    print(
        "| late | pairs | "
        + " | ".join(f"{lo:g}-{min(hi, 1):g}" for lo, hi in itertools.pairwise(bins))
        + " |"
    )
    print("|---|---|" + "---|" * (len(bins) - 1))
    for name, m in (
        ("< 0.2", late < 0.2),
        ("0.2-0.5", (late >= 0.2) & (late < 0.5)),
        (">= 0.5", late >= 0.5),
    ):
        k = np.digitize(p[m], bins) - 1
        cells = " | ".join(
            f"{p[m][k == i].mean():.2f} -> {q[m][k == i].mean():.2f} / {y[m][k == i].mean():.2f}"
            if (k == i).any() else "-"
            for i in range(len(bins) - 1)
        )  # fmt: skip
        print(f"| {name} | {m.sum():,} | {cells} |")


def core(args: argparse.Namespace) -> None:
    """The core's one-batch fusion of each mix (no database): precision and recall of the
    automatic links, true pairs linked or offered, possible duplicates per report and the
    expected count of distinct events (:meth:`FusionResult.expected_events`) against the truth."""
    from truceline.core import fusion

    print("| mix | reports | precision | recall | linked or offered | dups / reports | count vs true |")
    print("|---|---|---|---|---|---|---|")
    for mix in (m for m in MIXES if not args.only or any(o in m.name for o in args.only)):
        mix.hours = args.hours or mix.hours
        reports, truth = generate(mix)
        tev = np.array([int(t["event"]) for t in truth])
        n_true = len(np.unique(tev))
        true = _pairs_of(tev)
        res = fusion.fuse(
            _columns(reports).reports(), settings=fusion.FusionSettings(matching=args.matching)
        )
        ev = res.event_of_report
        linked = _pairs_of(np.where(np.bincount(ev)[ev] > 1, ev, -1))
        tp = len(linked & true)
        off = {(min(ev[a], ev[b]), max(ev[a], ev[b])) for a, b in zip(res.dup_a, res.dup_b, strict=True)}
        covered = sum(
            1 for i, j in true if ev[i] == ev[j] or (min(ev[i], ev[j]), max(ev[i], ev[j])) in off
        )
        c = res.expected_events()
        print(
            f"| {mix.name} | {len(ev):,} | {tp / max(len(linked), 1):.4f} | {tp / len(true):.4f} "
            f"| {covered / len(true):.4f} | {len(res.dup_p) / len(ev):.3f} "
            f"| {c:,.1f} vs {n_true:,} ({100 * (c / n_true - 1):+.1f} %) |",
            flush=True,
        )


def throughput(days: int = 7) -> None:
    """Reports fused per second by the core in one batch (candidates, probabilities, links) on a
    week of the isolated mix, against the baseline rule on the same reports."""
    from truceline.core import fusion
    from truceline.services.events import ReportColumns

    mix = Mix("throughput", hours=24.0 * days, seed=11)
    reports, _ = generate(mix)
    n = len(reports)
    t = np.array([dt.datetime.fromisoformat(r["observed_at"]).timestamp() for r in reports])
    cols = ReportColumns(
        pk=np.arange(n), event=np.full(n, -1), time_s=t,
        precision=np.array([r["time_precision"] for r in reports]),
        lon=np.array([r["lon"] for r in reports], float),
        lat=np.array([r["lat"] for r in reports], float),
        unc_m=np.array([r["uncertainty_m"] for r in reports], float),
        kind=np.array([r["kind"] for r in reports]),
        source_type=np.array([r["source_type"] for r in reports]),
        submitted_by=np.full(n, "bench"), reliability=np.array([r["reliability"] for r in reports]),
        credibility=np.array([r["credibility"] for r in reports], np.intp), distance_km=np.zeros(n),
        p_side=np.full(n, 0.5), weapon=np.array([r["weapon_class"] for r in reports]),
        count=np.array([r["count"] for r in reports], np.intp),
    )  # fmt: skip
    rep = cols.reports()
    best = cpu = np.inf
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        res = fusion.fuse(rep)
        best = min(best, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    t0 = time.perf_counter()
    baseline_groups(reports)
    base = time.perf_counter() - t0
    print(
        f"\nthroughput: {n:,} reports ({days} days of the isolated mix), "
        f"{len(res.pair_a):,} candidate pairs: "
        f"fusion {best:.2f} s = **{n / best:,.0f} reports/s** (target >= 20,000; "
        f"{n / cpu:,.0f} per CPU-second); "
        f"baseline rule {base:.2f} s ({n / base:,.0f}/s); ratio {base / best:.2f}x"
    )


# -- running through the ingest path -------------------------------------------------------------------


def _cli(*args: str, env: dict[str, str]) -> None:
    subprocess.run([str(TRUCELINE), *args], check=True, env=env, capture_output=True)


def stream(
    db: Path, reports: list[dict[str, Any]], truth: list[dict[str, Any]], every_s: float
) -> float:
    """Feed the reports to the ingest service in arrival order, one batch per ``every_s`` of
    arrivals (as a server receives them); returns the seconds spent."""
    from truceline.cli.options import read_agreement_folder
    from truceline.core.incidents import Incident
    from truceline.services.ingest import ingest_incidents
    from truceline.store.db import Database

    folder = read_agreement_folder(AGREEMENT)
    ag = folder.agreement
    database = Database(str(db))
    database.upgrade()
    database.write(lambda s: folder.register(s, DAY0))
    arrive = np.array([float(r["arrival_s"]) for r in truth])
    order = np.argsort(arrive, kind="stable")
    slot = np.floor(arrive[order] / every_s)
    cuts = np.flatnonzero(np.diff(slot)) + 1
    incs = [Incident.model_validate({k: v for k, v in r.items() if v != ""}) for r in reports]
    t0 = time.perf_counter()
    for block in np.split(order, cuts):
        batch = [incs[k] for k in block]
        now = DAY0 + dt.timedelta(seconds=float(arrive[block].max()))
        database.write(
            lambda s, batch=batch, block=block, now=now: ingest_incidents(
                s, ag, batch, [int(k) + 1 for k in block], source="stream", submitted_by="bench", now=now
            )
        )
    spent = time.perf_counter() - t0
    database.dispose()
    return spent


def run(args: argparse.Namespace) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    mixes = [m for m in MIXES if not args.only or any(o in m.name for o in args.only)]
    rows = []
    base: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for mix in mixes:
            if args.hours:
                mix.hours = args.hours
            reports, truth = generate(mix)
            d = Path(tmp) / f"mix{mix.seed}"
            write(reports, truth, d)
            db1 = d / "one.db"
            t0 = time.perf_counter()
            _cli("import", str(d / "reports.csv"), "-a", str(AGREEMENT), "--db", str(db1), env=env)
            one_s = time.perf_counter() - t0
            if _has_duplicates_cmd(env):
                _cli("duplicates", "--db", str(db1), "-o", str(d / "pairs.csv"), env=env)
            s1 = score(db1, truth)
            s2 = s3 = None
            if not args.no_stream:
                db2 = d / "stream.db"
                stream(db2, reports, truth, args.every)
                s2 = score(db2, truth)
                if not args.no_final:  # the day's final pass, once its reports are in
                    days = sorted({r["observed_at"][:10] for r in reports})
                    n_days = (dt.date.fromisoformat(days[-1]) - dt.date.fromisoformat(days[0])).days
                    _cli(
                        "relink", "-a", str(AGREEMENT), "--db", str(db2), "--date", days[0],
                        "--days", str(n_days + 1), env=env,
                    )  # fmt: skip
                    s3 = score(db2, truth)
            rows.append((mix, s1, s2, one_s))
            _print_row(mix, s1, s2, one_s, s3)
            bp, br, bn = baseline_score(reports, truth)
            err = 100 * (bn / s1.true_events - 1)
            base.append(
                f"| {mix.name} | {bp:.4f} | {br:.4f} | {bn:,} vs {s1.true_events:,} ({err:+.1f} %) |"
            )
    print("\nbaseline (same kind within 2 km and 10 min, connected components), same reports:")
    print("| mix | precision | recall | count vs true |\n|---|---|---|---|")
    print("\n".join(base))
    if not args.no_throughput:
        throughput()


def _has_duplicates_cmd(env: dict[str, str]) -> bool:
    r = subprocess.run([str(TRUCELINE), "duplicates", "--help"], env=env, capture_output=True)
    return r.returncode == 0


_HEADER = (
    "| mix | reports | events | lost | precision | recall | linked or offered | possible dups / reports "
    "| count (expected) vs true | stream: precision / recall | stream = batch (pairs) "
    "| stream: dups / reports | after the day's relink: stream = batch / dups / reports "
    "/ count | import |"
)


def _same(s1: Score, s2: Score) -> float:
    """The share of the pairs linked in either run that both link."""
    union = s1.linked_pairs | s2.linked_pairs
    return 1.0 - len(s1.linked_pairs ^ s2.linked_pairs) / max(len(union), 1)


def _print_row(mix: Mix, s1: Score, s2: Score | None, one_s: float, s3: Score | None = None) -> None:
    if not getattr(_print_row, "done", False):
        print(_HEADER)
        print("|" + "---|" * (_HEADER.count("|") - 1))
        _print_row.done = True  # type: ignore[attr-defined]
    if s2 is not None:
        same = _same(s1, s2)
        st = f"{s2.precision:.4f} / {s2.recall:.4f} | {same:.4f} | {s2.dup_pairs / s2.reports:.3f}"
    else:
        st = "- | - | -"
    if s3 is not None:
        st += f" | {_same(s1, s3):.4f} / {s3.dup_pairs / s3.reports:.3f} / {100 * s3.count_err:+.1f} %"
    else:
        st += " | -"
    print(
        f"| {mix.name} | {s1.reports:,} | {s1.true_events:,} | {s1.lost + (s2.lost if s2 else 0)} "
        f"| {s1.precision:.4f} | {s1.recall:.4f} | {s1.offered_recall:.4f} "
        f"| {s1.dup_pairs / s1.reports:.3f} "
        f"| {s1.count:,.1f} vs {s1.true_events:,} ({100 * s1.count_err:+.1f} %) "
        f"| {st} | {one_s:.1f} s |",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="write one mix's reports.csv and truth.csv")
    g.add_argument("-o", "--output", type=Path, required=True)
    g.add_argument("--density", type=float, default=24.0)
    g.add_argument("--acoustic", type=float, default=0.15)
    g.add_argument("--late", type=float, default=0.0, help="human reports up to this late (min)")
    g.add_argument("--barrage", type=float, default=0.0, help="share of events in barrages")
    g.add_argument("--hours", type=float, default=24.0)
    g.add_argument("--seed", type=int, default=1)
    sc = sub.add_parser("score", help="score a database against a truth file")
    sc.add_argument("--db", type=Path, required=True)
    sc.add_argument("--truth", type=Path, required=True)
    c = sub.add_parser("calibrate", help="reliability of the link probability on the judged mixes")
    c.add_argument("--only", nargs="*", help="mixes whose name contains one of these")
    c.add_argument("--hours", type=float, default=None, help="hours per mix (default 24)")
    c.add_argument("--local-density", action="store_true", help="compare local_density off/on instead")
    k = sub.add_parser("core", help="the core's one-batch fusion of the judged mixes (no database)")
    k.add_argument("--only", nargs="*", help="mixes whose name contains one of these")
    k.add_argument("--hours", type=float, default=None, help="hours per mix (default 24)")
    k.add_argument("--matching", default="bp", help="bp (default) or product (the rule before)")
    f = sub.add_parser("fit", help="fit the count's calibration on mixes other than the judged ones")
    f.add_argument("--seeds", type=int, nargs=2, default=(1, 4), metavar=("FIRST", "LAST"))
    f.add_argument("--hours", type=float, nargs="+", default=[4.0, 24.0], help="hours per mix")
    r = sub.add_parser("run", help="generate, import (one batch and streamed), score the judged mixes")
    r.add_argument("--only", nargs="*", help="mixes whose name contains one of these")
    r.add_argument("--hours", type=float, default=None, help="hours per mix (default 24)")
    r.add_argument("--every", type=float, default=300.0, help="streamed batch: seconds of arrivals")
    r.add_argument("--no-stream", action="store_true")
    r.add_argument("--no-final", action="store_true", help="streamed: no relink after the day")
    r.add_argument("--no-throughput", action="store_true")
    a = ap.parse_args()
    if a.cmd == "generate":
        mix = Mix("cli", density=a.density, acoustic=a.acoustic, late_min=a.late, barrage=a.barrage,
                  hours=a.hours, seed=a.seed)  # fmt: skip
        reports, truth = generate(mix)
        write(reports, truth, a.output)
        print(f"{len(reports)} reports of {len(set(t['event'] for t in truth))} events -> {a.output}")
    elif a.cmd == "score":
        with a.truth.open() as fh:
            truth = list(csv.DictReader(fh))
        s = score(a.db, truth)
        print(json.dumps({k: v for k, v in vars(s).items() if k != "linked_pairs"}, indent=1))
    elif a.cmd == "calibrate":
        calibrate(a)
    elif a.cmd == "fit":
        fit(a)
    elif a.cmd == "core":
        core(a)
    else:
        run(a)


if __name__ == "__main__":
    main()
