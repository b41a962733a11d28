"""An independent acoustic stress suite, scored through ``truceline locate`` (the public path).

Nothing here uses ``truceline.core.simulate`` or the acoustic core: the scenes are built with
pyproj and NumPy from the physics (``t = t0 + d / (c + w . u) + n``), written as the files a user
would give (sensors.csv, detections.csv, weather.csv), located by the command a user would run,
and scored against the truth written beside them.

Layouts: a regular grid, an irregular 14-sensor network, 10 sensors along a 30 km road (+-150 m
jitter) with a ceasefire line 1.5 km off the road, a sparse network (6 sensors 13-16 km apart) and a
50 km sector (the throughput case). Weather: temperature 0-30 deg C, wind 0-8 m/s, told right
(with sigma columns), told wrong (10 deg C off, no wind) or not told; in the
``weather-spread`` cases each event's true weather is drawn around the told one with the told
sigmas (1 deg C, 1 m/s), so that the stated uncertainty is the real one (elsewhere the told
weather is exact and its stated sigmas are never realised). Events: isolated, salvos
(rounds from one point seconds apart), overlapping pairs (emission times under 0.3 s apart), with
echoes, multipath (the direct arrival replaced by a late one) and false detections.

Run: ``.venv/bin/python benchmarks/acoustic_cases.py [--cases NAME,...] [--seeds N] [--out DIR]
[--write FILE]``
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyproj import Transformer

CENTRE = (37.8, 48.3)  # lon, lat of every scene's local plane
START = dt.datetime(2025, 6, 1, 6, 0, tzinfo=dt.UTC).timestamp()
SECTION = "## Acoustic stress suite through `truceline locate` (benchmarks/acoustic_cases.py)"
CHI2_95_2D = 5.991464547107979
COVERAGE_LEVELS = (0.5, 0.9, 0.95, 0.99)
TOLD_SIGMA_C = 1.0  # the stated uncertainty of the told temperature (deg C) and wind (m/s)
TOLD_SIGMA_WIND_MPS = 1.0

AGREEMENT_YAML = """\
id: stress
name: Stress-suite line (straight, east-west)
effective_from: 2025-01-01
parties: [{id: A, name: Alpha}, {id: B, name: Bravo}]
line: {file: line.geojson, left: B, right: A, extend: azimuth}
zones:
  - {id: buffer, type: band, bands: {A: [0, 5], B: [0, 5]}}
rules:
  - {id: fire, type: fire_across, zone: buffer}
"""


def _plane() -> tuple[Transformer, Transformer]:
    proj = f"+proj=aeqd +lon_0={CENTRE[0]} +lat_0={CENTRE[1]} +datum=WGS84 +units=m"
    fwd = Transformer.from_crs("EPSG:4326", proj, always_xy=True)
    inv = Transformer.from_crs(proj, "EPSG:4326", always_xy=True)
    return fwd, inv


def _iso(t_s: float) -> str:
    whole = math.floor(t_s)
    us = round((t_s - whole) * 1e6)
    if us == 1_000_000:
        whole, us = whole + 1, 0
    t = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=whole, microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ------------------------------------------------------------------------------------------------
# Scenes
# ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One scene: its layout, weather, events and detection impairments."""

    name: str
    layout: str  # regular | irregular | road | sparse | sector
    mix: str  # isolated | mixed | dense
    wind_mps: float
    told: str  # right | wrong | none
    n_events: int = 300
    seed: int = 0
    p_false: float = 0.05
    p_echo: float = 0.0
    p_multipath: float = 0.0
    rate_per_min: float = 2.0
    attribution: bool = False
    road_jitter_m: float = 150.0
    weather_spread: bool = False  # each event's true weather drawn around the told (its stated sigmas)
    notes: dict[str, float] = field(default_factory=dict)


def layout_xy(
    name: str, rng: np.random.Generator, road_jitter_m: float = 150.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Sensor positions (m), timing sigmas (ms) and the hearing range (m) of a layout."""
    if name == "regular":
        gx, gy = np.meshgrid(np.arange(4) * 5000.0 - 7500.0, np.arange(4) * 5000.0 - 7500.0)
        xy = np.column_stack([gx.ravel(), gy.ravel()])
        return xy, np.full(len(xy), 5.0), 20_000.0
    if name == "irregular":
        pts: list[np.ndarray] = []
        while len(pts) < 14:  # rejection sampling: at least 2.5 km apart
            p = rng.uniform([-12_000, -8_000], [12_000, 8_000])
            if all(np.hypot(*(p - q)) > 2500 for q in pts):
                pts.append(p)
        return np.array(pts), rng.choice([3.0, 5.0, 8.0], 14), 20_000.0
    if name == "road":
        x = np.linspace(-15_000, 15_000, 10) + rng.uniform(-300, 300, 10)
        y = rng.uniform(-road_jitter_m, road_jitter_m, 10)
        return np.column_stack([x, y]), np.full(10, 5.0), 20_000.0
    if name == "sparse":
        base = np.array([[0, 0], [14.5, 0], [29, 0], [7.25, 12.6], [21.75, 12.6], [36.25, 12.6]])
        xy = (base - base.mean(axis=0)) * 1000.0 + rng.uniform(-500, 500, (6, 2))
        return xy, np.full(6, 5.0), 32_000.0
    if name == "sector":
        gx, gy = np.meshgrid(np.arange(11) * 5000.0 - 25_000.0, np.array([-5000.0, 0.0, 5000.0]))
        xy = np.column_stack([gx.ravel(), gy.ravel()]) + rng.uniform(-300, 300, (33, 2))
        return xy, np.full(33, 5.0), 15_000.0
    raise ValueError(name)


def source_box(layout: str) -> tuple[float, float, float, float]:
    """Where the events are (x0, x1, y0, y1, m)."""
    return {
        "regular": (-9000, 9000, -9000, 9000),
        "irregular": (-11000, 11000, -8000, 8000),
        "road": (-12000, 12000, -6000, 6000),
        "sparse": (-16000, 16000, -5000, 5000),
        "sector": (-24000, 24000, -7000, 7000),
    }[layout]


def _sources(case: Case, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Events: position (m), emission time (s after START), kind and group."""
    x0, x1, y0, y1 = source_box(case.layout)
    xs: list[float] = []
    ys: list[float] = []
    ts: list[float] = []
    kind: list[str] = []
    group: list[int] = []
    t = 5.0
    g = 0
    gap = 60.0 / case.rate_per_min
    while len(ts) < case.n_events:
        r = rng.random() if case.mix == "mixed" else 0.0
        x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        if r < 0.3:  # isolated
            xs.append(x), ys.append(y), ts.append(t), kind.append("isolated"), group.append(g)
        elif r < 0.6:  # an overlapping pair: another place, emitted under 0.3 s apart
            while True:
                x2, y2 = rng.uniform(x0, x1), rng.uniform(y0, y1)
                if 1500 < math.hypot(x2 - x, y2 - y) < 12_000:
                    break
            t2 = t + rng.uniform(-0.3, 0.3)
            for a, b, c in ((x, y, t), (x2, y2, t2)):
                xs.append(a), ys.append(b), ts.append(c), kind.append("pair"), group.append(g)
        else:  # a salvo: 3-6 rounds from one point, 2-6 s apart
            n = int(rng.integers(3, 7))
            tt = t + np.concatenate([[0.0], np.cumsum(rng.uniform(2.0, 6.0, n - 1))])
            for c in tt:
                xs.append(x), ys.append(y), ts.append(float(c)), kind.append("salvo"), group.append(g)
        g += 1
        jitter = (0.6, 0.8) if case.mix != "isolated" else (0.8, 0.4)
        t += gap * (jitter[0] + jitter[1] * rng.random())
    n = case.n_events
    return {
        "x": np.array(xs[:n]),
        "y": np.array(ys[:n]),
        "t": np.array(ts[:n]),
        "kind": np.array(kind[:n]),
        "group": np.array(group[:n]),
    }


def build(case: Case, folder: Path) -> dict[str, object]:
    """Write sensors.csv, detections.csv, weather.csv (unless not told), truth files and agreement."""
    rng = np.random.default_rng(case.seed)
    _fwd, inv = _plane()
    sxy, sig_ms, hear_m = layout_xy(case.layout, rng, case.road_jitter_m)
    n_s = len(sxy)
    s_lon, s_lat = inv.transform(sxy[:, 0], sxy[:, 1])
    temp = float(rng.uniform(0, 30))
    w_from = float(rng.uniform(0, 360))
    c = 331.3 + 0.606 * temp
    az = math.radians(w_from)
    wind = np.array([-case.wind_mps * math.sin(az), -case.wind_mps * math.cos(az)])
    ev = _sources(case, rng)
    n_e = len(ev["t"])
    c_e = np.full(n_e, c)
    w_e = np.tile(wind, (n_e, 1))
    if case.weather_spread:  # the told weather is right on average, off by its stated sigmas
        c_e = c_e + 0.606 * TOLD_SIGMA_C * rng.normal(0, 1, n_e)
        w_e = w_e + TOLD_SIGMA_WIND_MPS * rng.normal(0, 1, (n_e, 2))
    e_lon, e_lat = inv.transform(ev["x"], ev["y"])
    # arrivals: every (event, sensor) pair heard within range, with probability falling off past it
    dx = sxy[None, :, 0] - ev["x"][:, None]
    dy = sxy[None, :, 1] - ev["y"][:, None]
    d = np.hypot(dx, dy)
    u_w = (dx * w_e[:, 0, None] + dy * w_e[:, 1, None]) / np.maximum(d, 1.0)
    noise = rng.normal(0, 1, d.shape) * sig_ms[None, :] * 1e-3
    t_arr = ev["t"][:, None] + d / (c_e[:, None] + u_w) + noise
    p_hear = 0.93 / (1.0 + np.exp((d - hear_m) / 1500.0))
    heard = rng.random(d.shape) < p_hear
    level = rng.normal(140.0, 5.0, n_e)
    amp = level[:, None] - 20 * np.log10(np.maximum(d, 1.0)) - 0.0005 * d + rng.normal(0, 2, d.shape)
    ei, si = np.nonzero(heard)
    kind = np.full(len(ei), "direct", dtype=object)
    times = t_arr[ei, si].copy()
    amps = amp[ei, si].copy()
    mp = rng.random(len(ei)) < case.p_multipath  # the direct path blocked: a late arrival only
    times[mp] += rng.uniform(0.03, 0.4, mp.sum())
    amps[mp] -= rng.uniform(3, 10, mp.sum())
    kind[mp] = "multipath"
    echo = rng.random(len(ei)) < case.p_echo
    e_ev, e_s = ei[echo], si[echo]
    e_t = times[echo] + rng.uniform(0.05, 1.5, echo.sum())
    e_a = amps[echo] - rng.uniform(6, 15, echo.sum())
    n_false = rng.binomial(len(ei) + len(e_ev), case.p_false)
    span = (float(ev["t"].min()) - 5.0, float(ev["t"].max()) + 80.0)
    f_s = rng.integers(0, n_s, n_false)
    f_t = rng.uniform(*span, n_false)
    f_a = rng.normal(60.0, 6.0, n_false)
    all_ev = np.concatenate([ei, e_ev, np.full(n_false, -1)])
    all_s = np.concatenate([si, e_s, f_s])
    all_t = np.concatenate([times, e_t, f_t])
    all_a = np.concatenate([amps, e_a, f_a])
    all_k = np.concatenate([kind, np.full(len(e_ev), "echo", object), np.full(n_false, "false", object)])
    o = np.argsort(all_t, kind="stable")
    all_ev, all_s, all_t, all_a, all_k = all_ev[o], all_s[o], all_t[o], all_a[o], all_k[o]
    # an arrival within 3 sqrt(2) sigma of another at the same sensor cannot be told apart by time
    resolvable = np.ones(len(all_t), bool)
    key = np.lexsort((all_t, all_s))
    ks, kt = all_s[key], all_t[key]
    close = (ks[1:] == ks[:-1]) & (np.diff(kt) < 3 * math.sqrt(2) * sig_ms[ks[1:]] * 1e-3)
    resolvable[key[1:][close]] = False
    resolvable[key[:-1][close]] = False
    folder.mkdir(parents=True, exist_ok=True)
    sid = [f"S{i:02d}" for i in range(n_s)]
    with (folder / "sensors.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sensor_id", "lon", "lat", "elevation_m", "timing_sigma_ms"])
        for i in range(n_s):
            w.writerow([sid[i], f"{s_lon[i]:.8f}", f"{s_lat[i]:.8f}", "0", f"{sig_ms[i]:g}"])
    det_id = [f"D{i:06d}" for i in range(len(all_t))]
    with (folder / "detections.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["detection_id", "sensor_id", "arrival_time", "amplitude_db", "signal"])
        for i in range(len(all_t)):
            w.writerow(
                [det_id[i], sid[all_s[i]], _iso(START + all_t[i]), f"{all_a[i]:.1f}", "muzzle_blast"]
            )
    with (folder / "truth_detections.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["detection_id", "event", "kind", "resolvable"])
        for i in range(len(all_t)):
            w.writerow([det_id[i], int(all_ev[i]), all_k[i], int(resolvable[i])])
    side = np.where(ev["y"] > 1500.0, "B", "A")  # the line 1.5 km north of the road: B holds the north
    with (folder / "truth_events.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["event", "emitted_at", "lon", "lat", "x_m", "y_m", "kind", "group", "party"])
        for i in range(n_e):
            w.writerow([i, _iso(START + ev["t"][i]), f"{e_lon[i]:.8f}", f"{e_lat[i]:.8f}",
                        f"{ev['x'][i]:.3f}", f"{ev['y'][i]:.3f}", ev["kind"][i], int(ev["group"][i]),
                        side[i]])  # fmt: skip
    if case.told != "none":
        t_told, w_told = (temp, case.wind_mps) if case.told == "right" else (temp - 10.0, 0.0)
        with (folder / "weather.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["time", "temperature_c", "wind_speed_mps", "wind_from_deg",
                        "temperature_sigma_c", "wind_sigma_mps"])  # fmt: skip
            w.writerow([_iso(START), f"{t_told:.1f}", f"{w_told:.1f}", f"{w_from:.0f}",
                        f"{TOLD_SIGMA_C:g}", f"{TOLD_SIGMA_WIND_MPS:g}"])  # fmt: skip
    if case.attribution:
        ag = folder / "agreement"
        ag.mkdir(exist_ok=True)
        (ag / "agreement.yaml").write_text(AGREEMENT_YAML)
        lx = np.linspace(-80_000, 80_000, 33)
        llon, llat = inv.transform(lx, np.full_like(lx, 1500.0))
        line = {"type": "LineString", "coordinates": np.column_stack([llon, llat]).tolist()}
        (ag / "line.geojson").write_text(json.dumps(line))
    meta = {
        "case": case.name, "layout": case.layout, "mix": case.mix, "told": case.told,
        "temperature_c": temp, "c_mps": c, "wind_mps": case.wind_mps, "wind_from_deg": w_from,
        "wind_en": wind.tolist(), "sensor_xy_m": sxy.tolist(), "timing_sigma_ms": sig_ms.tolist(),
        "events": n_e, "detections": len(all_t),
    }  # fmt: skip
    (folder / "case.json").write_text(json.dumps(meta))
    return meta


# ------------------------------------------------------------------------------------------------
# Scoring
# ------------------------------------------------------------------------------------------------


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def crb_trace_m2(
    src: np.ndarray, sxy: np.ndarray, sig_s: np.ndarray, c: float, wind: np.ndarray,
    prior_c: float | None, prior_w: float | None,
) -> float:  # fmt: skip
    """Trace of the Cramér-Rao bound on the position (m^2) with x, y, t0 and, when their prior
    sigma is given, c and the wind unknown too (None: known exactly)."""
    dx, dy = sxy[:, 0] - src[0], sxy[:, 1] - src[1]
    d = np.hypot(dx, dy)
    ux, uy = dx / d, dy / d
    wu = wind[0] * ux + wind[1] * uy
    v = c + wu
    cols = [-ux / v + (wind[0] - wu * ux) / v**2, -uy / v + (wind[1] - wu * uy) / v**2, np.ones_like(d)]
    prior = [0.0, 0.0, 0.0]
    if prior_c is not None:
        cols.append(-d / v**2)
        prior.append(1 / prior_c**2)
    if prior_w is not None:
        cols += [-dx / v**2, -dy / v**2]
        prior += [1 / prior_w**2, 1 / prior_w**2]
    H = np.stack(cols, 1) / sig_s[:, None]
    info = H.T @ H + np.diag(prior)
    cov = np.linalg.inv(info)
    return float(cov[0, 0] + cov[1, 1])


def score(folder: Path, events_csv: Path) -> dict[str, object]:
    """Score a located events.csv against the truth of its scene."""
    meta = json.loads((folder / "case.json").read_text())
    fwd, _ = _plane()
    tdet = _read(folder / "truth_detections.csv")
    tev = _read(folder / "truth_events.csv")
    rows = _read(events_csv)
    det_index = {r["detection_id"]: i for i, r in enumerate(tdet)}
    d_event = np.array([int(r["event"]) for r in tdet])
    d_kind = np.array([r["kind"] for r in tdet])
    d_res = np.array([r["resolvable"] == "1" for r in tdet])
    sens_of = {}
    for r in _read(folder / "detections.csv"):
        sens_of[r["detection_id"]] = int(r["sensor_id"][1:])
    d_sensor = np.array([sens_of[r["detection_id"]] for r in tdet])
    n_e = len(tev)
    direct = [set() for _ in range(n_e)]
    for i in np.flatnonzero(d_kind == "direct"):
        direct[d_event[i]].add(int(i))
    located = [{det_index[x] for x in r["detection_ids"].split()} for r in rows]
    # one-to-one match: located event <-> true event by most shared direct arrivals (greedy)
    pairs = []
    for j, s in enumerate(located):
        cnt: dict[int, int] = {}
        for i in s:
            if d_kind[i] == "direct":
                cnt[d_event[i]] = cnt.get(d_event[i], 0) + 1
        pairs += [(-n, j, e) for e, n in cnt.items()]
    pairs.sort()
    match_of_true = np.full(n_e, -1)
    match_of_loc = np.full(len(rows), -1)
    for negn, j, e in pairs:
        if match_of_true[e] < 0 and match_of_loc[j] < 0 and -negn >= 3:
            match_of_true[e], match_of_loc[j] = j, e
    heard = np.array([len(s) >= 5 for s in direct])
    right = np.zeros(n_e, bool)
    for e in np.flatnonzero(heard & (match_of_true >= 0)):
        s = located[match_of_true[e]]
        extra = {i for i in s - direct[e] if d_res[i]}
        missing = {i for i in direct[e] - s if d_res[i]}
        right[e] = not extra and not missing
    ghosts = int(np.sum(match_of_loc < 0))
    # position, ellipse and bound for matched events
    tx = np.array([float(r["x_m"]) for r in tev])
    ty = np.array([float(r["y_m"]) for r in tev])
    kind = np.array([r["kind"] for r in tev])
    m = np.flatnonzero((match_of_true >= 0) & heard)
    lon = np.array([float(rows[j]["lon"]) for j in match_of_true[m]])
    lat = np.array([float(rows[j]["lat"]) for j in match_of_true[m]])
    ex, ey = fwd.transform(lon, lat) if len(m) else (np.zeros(0), np.zeros(0))
    err = np.column_stack([ex - tx[m], ey - ty[m]])
    cov = np.array([[[float(rows[j]["cov_xx_m2"]), float(rows[j]["cov_xy_m2"])],
                     [float(rows[j]["cov_xy_m2"]), float(rows[j]["cov_yy_m2"])]]
                    for j in match_of_true[m]]).reshape(-1, 2, 2)  # fmt: skip
    maha = np.einsum("ni,nij,nj->n", err, np.linalg.inv(cov), err) if len(m) else np.zeros(0)
    sxy = np.array(meta["sensor_xy_m"])
    sig = np.array(meta["timing_sigma_ms"]) * 1e-3
    told = meta["told"]
    prior = (0.6, 1.0) if told == "right" else (6.0, 5.0)
    crb = np.array([
        crb_trace_m2(np.array([tx[e], ty[e]]), sxy[sorted(d_sensor[list(direct[e])])],
                     sig[sorted(d_sensor[list(direct[e])])], meta["c_mps"], np.array(meta["wind_en"]),
                     *prior)
        for e in m
    ])  # fmt: skip
    errm = np.hypot(err[:, 0], err[:, 1])
    out: dict[str, object] = {
        "case": meta["case"], "events": n_e, "heard5": int(heard.sum()), "located": len(rows),
        "matched": int(np.sum(match_of_true[heard] >= 0)), "right": int(right.sum()),
        "ghosts": ghosts,
    }  # fmt: skip
    for k in ("isolated", "pair", "salvo"):
        sel = heard & (kind == k)
        if sel.any():
            out[f"right_{k}"] = (int(right[sel].sum()), int(sel.sum()))
    if len(m):
        out["rmse_m"] = float(np.sqrt(np.mean(errm**2)))
        out["median_m"] = float(np.median(errm))
        out["crb_m"] = float(np.sqrt(np.mean(crb)))
        out["over100"] = int(np.sum(errm > 100))
        # the robust ratio: events within 10 bound-sigmas (gross errors counted apart, in over100)
        ok = errm <= 10 * np.sqrt(crb) + 5
        out["rmse_ratio"] = float(np.sqrt(np.mean(errm[ok] ** 2)) / np.sqrt(np.mean(crb[ok])))
        out["coverage95"] = float(np.mean(maha <= CHI2_95_2D))
        # the ellipses' calibration at other levels, and over the events given their right set
        # (a wrong set is an association error, not a misstated ellipse)
        q = -2.0 * np.log(1.0 - np.array(COVERAGE_LEVELS))  # chi-square (2 dof) quantiles
        out["coverage_levels"] = [float(np.mean(maha <= x)) for x in q]
        rs = right[m]
        if rs.any():
            out["coverage95_right"] = (int(np.sum(maha[rs] <= CHI2_95_2D)), int(rs.sum()))
        if rows and "ambiguous" in rows[0]:
            # an ambiguous event states two fixes: its 95 % region is the union of both ellipses
            alt = np.full(len(m), np.inf)
            for k, j in enumerate(match_of_true[m].tolist()):  # scoring
                r = rows[j]
                if r["ambiguous"] == "true":
                    ax, ay = fwd.transform(float(r["alt_lon"]), float(r["alt_lat"]))
                    dv = np.array([ax - tx[m[k]], ay - ty[m[k]]])
                    c2 = np.array([[float(r["alt_cov_xx_m2"]), float(r["alt_cov_xy_m2"])],
                                   [float(r["alt_cov_xy_m2"]), float(r["alt_cov_yy_m2"])]])  # fmt: skip
                    alt[k] = float(dv @ np.linalg.solve(c2, dv))
            if np.isfinite(alt).any():
                out["coverage95_modes"] = float(np.mean((maha <= CHI2_95_2D) | (alt <= CHI2_95_2D)))
    if rows and "salvo_id" in rows[0]:
        # salvo grouping: a true salvo is told right when the located events matched to its rounds
        # share one salvo_id that no other located event has; others must not be in a salvo
        sid = np.array([r["salvo_id"] for r in rows])
        group = np.array([int(r["group"]) for r in tev])
        ok_r, n_r, wrong_single, n_single = 0, 0, 0, 0
        for g in np.unique(group[kind == "salvo"]):
            mine = np.flatnonzero((group == g) & (match_of_true >= 0))
            if len(mine) == 0:
                continue
            locs = match_of_true[mine]
            ids = set(sid[locs].tolist())
            n_r += len(mine)
            if len(mine) == 1:
                ok_r += int(ids == {""})
            elif len(ids) == 1 and "" not in ids and int(np.sum(sid == sid[locs[0]])) == len(mine):
                ok_r += len(mine)
        for one in np.flatnonzero((kind != "salvo") & (match_of_true >= 0)).tolist():
            n_single += 1
            wrong_single += int(sid[match_of_true[one]] != "")
        out["salvo_grouped"] = (ok_r, n_r)
        out["single_in_salvo"] = (wrong_single, n_single)
    if "p_A" in (rows[0] if rows else {}):
        party = np.array([r["party"] for r in tev])
        pa = np.array([float(rows[j]["p_A"] or "nan") for j in match_of_true[m]])
        pt = np.where(party[m] == "A", pa, 1 - pa)
        good = np.isfinite(pt)
        pt = pt[good]
        stated = np.maximum(pt, 1 - pt)
        ok_side = pt >= 0.5
        out["brier"] = float(np.mean((1 - pt) ** 2))
        hi = stated >= 0.95
        out["p95_wrong"] = (int(np.sum(hi & ~ok_side)), int(hi.sum()))
        bins = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001]
        cal = []
        for lo, up in itertools.pairwise(bins):
            b = (stated >= lo) & (stated < up)
            if b.any():
                cal.append((lo, int(b.sum()), float(stated[b].mean()), float(ok_side[b].mean())))
        out["calibration"] = cal
        if "ambiguous" in rows[0]:
            amb = np.array([rows[j]["ambiguous"] in ("1", "true", "True") for j in match_of_true[m]])
            # mirror fixes: more than 100 m off and nearer the truth's mirror image across the
            # sensors' principal axis than the truth
            cen = sxy.mean(axis=0)
            e1 = np.linalg.svd(sxy - cen)[2][0]
            d = np.column_stack([tx[m], ty[m]]) - cen
            mir = cen + 2 * (d @ e1)[:, None] * e1 - d
            mdist = np.hypot(ex - mir[:, 0], ey - mir[:, 1])
            mirror_fix = (errm > 100) & (mdist < errm)
            out["ambiguous_flagged"] = (int(np.sum(amb & mirror_fix)), int(np.sum(mirror_fix)))
            out["ambiguous"] = int(amb.sum())
    return out


# ------------------------------------------------------------------------------------------------
# Runs
# ------------------------------------------------------------------------------------------------

CASES = [
    *(Case(f"isolated-irregular-wind{w}", "irregular", "isolated", float(w), "right", seed=10 + w)
      for w in (0, 3, 5, 8)),
    Case("isolated-irregular-wind6-told-wrong", "irregular", "isolated", 6.0, "wrong", seed=20),
    Case("isolated-regular-wind4-not-told", "regular", "isolated", 4.0, "none", seed=21),
    Case("mixed-irregular-wind4", "irregular", "mixed", 4.0, "right", seed=30, p_echo=0.05,
         p_multipath=0.03, rate_per_min=3.0),
    Case("road-wind3", "road", "isolated", 3.0, "right", n_events=400, seed=40, attribution=True),
    Case("straight-road-wind3", "road", "isolated", 3.0, "right", n_events=400, seed=41,
         attribution=True, road_jitter_m=10.0),
    Case("sparse-wind3", "sparse", "isolated", 3.0, "right", n_events=200, seed=50),
    Case("sparse-wind3-weather-spread", "sparse", "isolated", 3.0, "right", n_events=200, seed=50,
         weather_spread=True),
    Case("irregular-wind3-weather-spread", "irregular", "isolated", 3.0, "right", seed=13,
         weather_spread=True),
    Case("sector-50-per-min", "sector", "isolated", 4.0, "right", n_events=1000, seed=60,
         rate_per_min=50.0),
]  # fmt: skip


LAST_CPU_S = 0.0  # CPU seconds (user + system) of the last command run


def run_locate(folder: Path, extra: list[str] | None = None) -> tuple[Path, float, str]:
    """``truceline locate`` on a scene, as a user runs it; returns events.csv, wall seconds, stderr."""
    out = folder / "events.csv"
    cmd = [sys.executable, "-c", "from truceline.cli import main; main()", "locate",
           "--sensors", str(folder / "sensors.csv"), "--detections", str(folder / "detections.csv"),
           "-o", str(out)]  # fmt: skip
    if (folder / "weather.csv").exists():
        cmd += ["--weather", str(folder / "weather.csv")]
    if (folder / "agreement").exists():
        cmd += ["-a", str(folder / "agreement")]
    cmd += extra or []
    t = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter() - t
    global LAST_CPU_S
    LAST_CPU_S = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if p.returncode != 0:
        raise RuntimeError(f"truceline locate failed on {folder}: {p.stderr[-2000:]}")
    return out, wall, p.stderr


def _pct(a: tuple[int, int] | None) -> str:
    if not a or a[1] == 0:
        return "-"
    return f"{100 * a[0] / a[1]:.1f} % ({a[0]}/{a[1]})"


def table(results: list[dict[str, object]]) -> list[str]:
    """The results as markdown."""
    out = [
        "| case | events (heard by >= 5) | right sets: isolated / pairs / salvo rounds | located "
        "(of heard) | ghosts (of output) | RMSE / CRB within 10 bound-sigmas (RMSE of all vs "
        "bound) | median error | > 100 m off | 95 % ellipse holds | events/s over the command's "
        "CPU time (wall) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rs = " / ".join(_pct(r.get(f"right_{k}")) for k in ("isolated", "pair", "salvo"))  # type: ignore[arg-type]
        located = int(r["matched"]) / max(int(r["heard5"]), 1)  # type: ignore[call-overload]
        ghosts = int(r["ghosts"]) / max(int(r["located"]), 1)  # type: ignore[call-overload]
        out.append(
            f"| {r['case']} | {r['events']} ({r['heard5']}) | {rs} | {100 * located:.1f} % | "
            f"{r['ghosts']} ({100 * ghosts:.1f} %) | "
            + (f"{r['rmse_ratio']:.2f} ({r['rmse_m']:.1f} m vs {r['crb_m']:.1f} m) | "
               f"{r['median_m']:.1f} m | "
               f"{r['over100']} | {100 * float(r['coverage95']):.1f} %"  # type: ignore[arg-type]
               + (f" ({100 * float(r['coverage95_modes']):.1f} % in either fix's)"  # type: ignore[arg-type]
                  if "coverage95_modes" in r else "") + " | "
               if "rmse_m" in r else "- | - | - | - | ")
            + f"{int(r['events']) / float(r['cpu_s']):.0f} ({float(r['cpu_s']):.1f} s CPU, "  # type: ignore[call-overload,arg-type]
            f"{float(r['wall_s']):.1f} s wall) |"  # type: ignore[arg-type]
        )  # fmt: skip
    out += [
        "",
        "Ellipse calibration: share of true positions inside the stated ellipse at each level "
        "(all located events), and inside the 95 % ellipse for the events given their right set:",
        "",
        "| case | "
        + " | ".join(f"{100 * lv:.0f} %" for lv in COVERAGE_LEVELS)
        + " | 95 %, right sets |",
        "|---|" + "---|" * (len(COVERAGE_LEVELS) + 1),
    ]
    for r in results:
        if "coverage_levels" in r:
            cl = " | ".join(f"{100 * x:.1f} %" for x in r["coverage_levels"])  # type: ignore[attr-defined]
            out.append(f"| {r['case']} | {cl} | {_pct(r.get('coverage95_right'))} |")  # type: ignore[arg-type]
    for r in results:
        if "salvo_grouped" in r and r["salvo_grouped"][1]:  # type: ignore[index]
            out.append("")
            out.append(
                f"{r['case']}: salvo rounds whose located rounds share one `salvo_id` of their own "
                f"{_pct(r['salvo_grouped'])}; events not of a salvo given a `salvo_id` "  # type: ignore[arg-type]
                f"{_pct(r['single_in_salvo'])}"  # type: ignore[arg-type]
            )
    for r in results:
        if "brier" in r:
            out.append("")
            out.append(
                f"{r['case']}: attribution Brier {float(r['brier']):.3f}; stated p >= 0.95 wrong "  # type: ignore[arg-type]
                f"{_pct(r['p95_wrong'])}"  # type: ignore[arg-type]
                + (f"; mirror fixes (> 100 m off, nearer the truth's mirror image) flagged "
                   f"ambiguous {_pct(r['ambiguous_flagged'])}; {r['ambiguous']} events ambiguous"  # type: ignore[arg-type]
                   if "ambiguous_flagged" in r else "; no `ambiguous` column")
            )  # fmt: skip
            out.append("")
            out.append("| stated p | n | mean stated | right |")
            out.append("|---|---|---|---|")
            for lo, n, mean, frac in r["calibration"]:  # type: ignore[attr-defined]
                out.append(f"| >= {lo:.2f} | {n} | {mean:.3f} | {frac:.3f} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--out", type=Path, default=Path("out/acoustic_cases"))
    ap.add_argument("--write", type=Path, default=None, help="replace this suite's section in FILE")
    ap.add_argument(
        "--seeds", type=int, default=1,
        help="scenes per case: its own seed and the next ones (the spread between them is what a "
        "change to the association must be judged against)",
    )  # fmt: skip
    args = ap.parse_args()
    want = {c for c in args.cases.split(",") if c}
    results = []
    runs = [
        dataclasses.replace(c, seed=c.seed + k, name=c.name if k == 0 else f"{c.name}@seed{c.seed + k}")
        for c in CASES
        for k in range(max(args.seeds, 1))
        if not want or c.name in want
    ]
    for case in runs:
        folder = args.out / case.name
        build(case, folder)
        ev, wall, _err = run_locate(folder)
        r = score(folder, ev)
        r["wall_s"] = wall
        r["cpu_s"] = LAST_CPU_S
        results.append(r)
        print(json.dumps(r), flush=True)
    lines = table(results)
    load = os.getloadavg()
    head = [
        SECTION,
        "",
        f"Command: `.venv/bin/python benchmarks/acoustic_cases.py --write BENCHMARKS.md` "
        f"({platform.machine()}, Python {platform.python_version()}; load average "
        f"{load[0]:.1f} at the end). Scenes made without truceline (pyproj + NumPy), located by "
        "`truceline locate` in a subprocess (wall time includes start-up and CSV I/O), scored "
        "against their truth. Right set: the located event's detections are exactly the event's "
        "direct arrivals, except arrivals within 3 sqrt(2) sigma of another at the same sensor.",
        "",
    ]
    print("\n".join(head + lines))
    if args.write:
        text = args.write.read_text()
        block = "\n".join(head + lines) + "\n"
        if SECTION in text:
            a = text.index(SECTION)
            b = text.find("\n## ", a + len(SECTION))
            text = text[:a] + block + ("\n" + text[b + 1 :] if b >= 0 else "")
        else:
            text = text.rstrip("\n") + "\n\n" + block
        args.write.write_text(text)


if __name__ == "__main__":
    main()
