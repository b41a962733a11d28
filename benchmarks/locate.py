"""Acoustic localisation, association and fusion benchmark (one run prints every figure).

Run: ``.venv/bin/python benchmarks/locate.py [--write BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from truceline.core import acoustic as A  # noqa: N812 - short module aliases read like the maths
from truceline.core import attribution as T  # noqa: N812 - short module aliases read like the maths
from truceline.core import fusion as F  # noqa: N812 - short module aliases read like the maths
from truceline.core.acoustic.detections import gather, pad_groups
from truceline.core.acoustic.solver import _closed_form_start
from truceline.core.agreement import CompiledVersion
from truceline.core.geodesy import LocalFrame
from truceline.core.simulate import acoustic as S  # noqa: N812 - short module aliases read like the maths

LINE_LON = np.array([37.0, 37.5, 38.0])
LINE_LAT = np.array([47.8, 48.0, 48.1])
SECTION = "## Acoustic localisation (benchmarks/locate.py)"
TOLD = A.Weather.constant(15.0)  # what the solver is told; the truth is 5 deg C and 5 m/s wind
TRUE_WEATHER = {"temperature_c": 5.0, "wind_speed_mps": 5.0, "wind_from_deg": 70.0}


def _agreement() -> CompiledVersion:
    """The benchmark line as an agreement: party L holds the left side, R the right."""
    import datetime as dt

    import shapely

    from truceline.core.agreement import Agreement, AgreementVersion, Party

    line = shapely.LineString(np.column_stack([LINE_LON, LINE_LAT]))
    ag = Agreement(
        id="bench", name="benchmark line", parties=(Party(id="L", name="L"), Party(id="R", name="R")),
        left="L", right="R",
        versions=(AgreementVersion(effective_from=dt.date(2025, 1, 1), line=line, zones=(), rules=()),),
    )  # fmt: skip
    return ag.compiled(0)


def _match(events: A.LocatedEvents, shots: S.SimShots, max_m: float = 500.0) -> np.ndarray:
    """Index of the located event of each true event (same signal, near in space and time), -1."""
    from scipy.spatial import cKDTree

    frame = LocalFrame.centred(float(np.mean(LINE_LON)), float(np.mean(LINE_LAT)))
    ex, ey = frame.to_xy(events.lon, events.lat)
    sx, sy = frame.to_xy(shots.lon, shots.lat)
    t0 = float(shots.emitted_at_s.min())
    out = np.full(len(shots), -1)
    for sig in (1, 2):
        e = np.flatnonzero(events.signal == sig)
        s = np.flatnonzero(shots.signal == sig)
        if len(e) == 0 or len(s) == 0:
            continue
        tree = cKDTree(np.column_stack([ex[e], ey[e], (events.emitted_at_s[e] - t0) * 340.0]))
        d, k = tree.query(np.column_stack([sx[s], sy[s], (shots.emitted_at_s[s] - t0) * 340.0]))
        out[s] = np.where(d <= max_m, e[np.minimum(k, len(e) - 1)], -1)
    return out


MIN_BIN = 100  # bins with fewer findings are shown, not judged (their sampling error is > 5 points)


def _reliability(p: np.ndarray, right: np.ndarray, label: str, out: list[str]) -> float:
    """Reliability table of stated probabilities; returns the largest gap over judged bins."""
    edges = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0000001]
    out.append(f"| {label} | stated p | n | mean p | right | gap (points) | 95 % sampling |")
    out.append("|---|---|---|---|---|---|---|")
    worst = 0.0
    for lo, hi in itertools.pairwise(edges):
        m = (p >= lo) & (p < hi)
        if not m.any():
            continue
        gap = 100.0 * (right[m].mean() - p[m].mean())
        se = 100.0 * 1.96 * np.sqrt(max(p[m].mean() * (1 - p[m].mean()), 1e-4) / m.sum())
        judged = m.sum() >= MIN_BIN
        if judged:
            worst = max(worst, abs(gap))
        out.append(
            f"| | {lo:.2f}-{min(hi, 1.0):.2f} | {int(m.sum())} | {p[m].mean():.3f} | "
            f"{right[m].mean():.3f} | {gap:+.1f}{'' if judged else ' (not judged)'} | "
            f"+-{se:.1f} |"
        )
    return worst


def _setup(chainage: tuple[float, float] = (0, 100)) -> tuple[S.SimNetwork, A.SensorNetwork]:
    sim = S.line_network(LINE_LON, LINE_LAT, spacing_km=5, chainage_km=chainage)
    net = A.SensorNetwork.build(
        sim.sensor_id, sim.lon, sim.lat, elevation_m=sim.elevation_m,
        timing_sigma_ms=sim.timing_sigma_ms,
    )  # fmt: skip
    return sim, net


def _truth_arrays(net: A.SensorNetwork, shots: S.SimShots, det: S.SimDetections):  # type: ignore[no-untyped-def]
    groups = pad_groups(np.where(det.echo, -1, det.event), len(shots), det.arrival_s)
    frame, sxy, t_rel, sig, dz, mask, _ = gather(net, groups, det.sensor, det.arrival_s)
    xy = np.empty((len(shots), 2))
    for f in np.unique(frame):
        m = frame == f
        xy[m, 0], xy[m, 1] = net.frames[f].to_xy(shots.lon[m], shots.lat[m])
    return sxy, t_rel, sig, dz, mask, xy


def bench_accuracy_and_speed(out: list[str]) -> None:
    sim, net = _setup()
    n = 20_000
    shots = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=n, duration_s=n * 60.0, seed=3, chainage_km=(20, 80),
        depth_km=(1, 7), with_impacts=False,
    )  # fmt: skip
    det = S.simulate_detections(sim, shots, seed=4, p_miss=0.1, p_false=0.0, max_range_m=15e3)
    sxy, t_rel, sig, dz, mask, xy = _truth_arrays(net, shots, det)
    c = np.full(n, float(A.speed_of_sound_mps(15.0)))
    A.solve_events(sxy[:500], t_rel[:500], mask[:500], sig[:500], c[:500], None, dz[:500])  # warm-up
    t = time.perf_counter()
    res = A.solve_events(sxy, t_rel, mask, sig, c, None, dz)
    dt = time.perf_counter() - t
    err = np.linalg.norm(res.xy_m - xy, axis=1)
    rmse = float(np.sqrt(np.mean(err**2)))
    crb = A.cramer_rao_bound(xy, sxy, mask, sig, c, None, dz)
    bound = float(np.sqrt(np.mean(np.trace(crb, axis1=1, axis2=2))))
    rate = n / dt
    # baseline: scipy.optimize.least_squares per event, same start, same robust loss
    m = 1000
    t = time.perf_counter()
    base_xy = np.empty((m, 2))
    p0, _, _ = _closed_form_start(sxy[:m], t_rel[:m], mask[:m], c[:m])
    for i in range(m):  # the per-event baseline the batched solver is compared with
        mk = mask[i]
        s_i, t_i, g_i, z_i = sxy[i, mk], t_rel[i, mk], sig[i, mk], dz[i, mk]

        def fun(th: np.ndarray, s_i=s_i, t_i=t_i, g_i=g_i, z_i=z_i, ci=c[i]) -> np.ndarray:
            d = np.sqrt(np.sum((s_i - th[:2]) ** 2, axis=1) + z_i**2)
            return (t_i - th[2] - d / ci) / g_i

        t0 = float(np.median(t_i - np.linalg.norm(s_i - p0[i], axis=1) / c[i]))
        sol = least_squares(fun, np.r_[p0[i], t0], loss="soft_l1", f_scale=3.0, x_scale=[1, 1, 1e-3])
        base_xy[i] = sol.x[:2]
    base_rate = m / (time.perf_counter() - t)
    base_rmse = float(np.sqrt(np.mean(np.sum((base_xy - xy[:m]) ** 2, axis=1))))
    ours_rmse_m = float(np.sqrt(np.mean(err[:m] ** 2)))
    out += [
        "### Accuracy against the Cramér-Rao bound (events inside the network, weather known)",
        f"- {n:,} muzzle blasts 1-7 km behind the line, sensor rows 2 and 8 km behind each side, "
        f"5 km spacing, sigma 5 ms, 10 % missed detections, range 15 km",
        f"- position RMSE {rmse:.3f} m; CRB (same geometry and noise) {bound:.3f} m; "
        f"ratio **{rmse / bound:.3f}** (target <= 1.15)",
        "### Speed (one core)",
        f"- batched robust solver: **{rate:,.0f} events/s** (target >= 20,000)",
        f"- per-event scipy.optimize.least_squares (soft-L1, same starts) on the first {m:,} events: "
        f"{base_rate:,.0f} events/s; ratio **{rate / base_rate:.0f}x** (target >= 20x)",
        f"- same accuracy: RMSE on those {m:,} events {ours_rmse_m:.3f} m (batched) vs "
        f"{base_rmse:.3f} m (baseline)",
    ]


def bench_weather(out: list[str]) -> None:
    sim, net = _setup()
    out.append("### Wrong weather: told 15 deg C and no wind; truth 5 deg C and 5 m/s wind from 070 deg")
    for label, depth in (("inside the network (1-7 km)", (1, 7)), ("beyond it (9-15 km)", (9, 15))):
        n = 4000
        shots = S.simulate_fire(
            LINE_LON, LINE_LAT, n_shots=n, duration_s=n * 60.0, seed=7, chainage_km=(20, 80),
            depth_km=depth, with_impacts=False,
        )  # fmt: skip
        det = S.simulate_detections(
            sim, shots, seed=8, p_miss=0.1, p_false=0.0, max_range_m=20e3, temperature_c=5.0,
            wind_speed_mps=5.0, wind_from_deg=70.0,
        )  # fmt: skip
        sxy, t_rel, sig, dz, mask, xy = _truth_arrays(net, shots, det)
        c_told = np.full(n, float(A.speed_of_sound_mps(15.0)))
        c_true, w_true = A.speed_of_sound_mps(5.0), A.wind_vector_mps(5.0, 70.0)
        fixed = A.solve_events(sxy, t_rel, mask, sig, c_told, None, dz)
        free = A.solve_events(
            sxy, t_rel, mask, sig, c_told, None, dz,
            options=A.SolverOptions(estimate_c=True, estimate_wind=True),
        )  # fmt: skip
        e_fixed = float(np.median(np.linalg.norm(fixed.xy_m - xy, axis=1)))
        e_free = float(np.median(np.linalg.norm(free.xy_m - xy, axis=1)))
        b3 = float(np.median(np.sqrt(np.trace(
            A.cramer_rao_bound(xy, sxy, mask, sig, c_true, w_true, dz), axis1=1, axis2=2))))  # fmt: skip
        bm = float(np.median(np.sqrt(np.trace(A.cramer_rao_bound(
            xy, sxy, mask, sig, c_true, w_true, dz, estimate_c=True, estimate_wind=True),
            axis1=1, axis2=2))))  # fmt: skip
        out.append(
            f"- {label}: median error {e_fixed:.1f} m with c and wind fixed at the told values; "
            f"**{e_free:.2f} m** with c and wind estimated; bound (position only) {b3:.2f} m -> "
            f"**{e_free / b3:.2f}x**; bound with c and wind unknown {bm:.2f} m -> {e_free / bm:.2f}x "
            f"(target < 3x)"
        )


def bench_association(out: list[str]) -> None:
    sim, net = _setup((0, 80))
    minutes = 30.0
    # 50 events a minute in one 50 km sector, a fifth of them with an adversarial partner: the
    # mirror image across the line (same chainage and depth, other side) within 0.3 s
    base = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=round(50 * minutes / 2 / 1.2), duration_s=minutes * 60.0,
        seed=31, chainage_km=(15, 65),
    )  # fmt: skip
    shots = S.adversarial_partners(LINE_LON, LINE_LAT, base, fraction=0.2, seed=33)
    det = S.simulate_detections(sim, shots, seed=32, p_echo=0.02)
    t = time.perf_counter()
    res = A.locate_detections(
        net, det.sensor, det.arrival_s, weather=A.Weather.constant(15.0),
        det_signal=det.signal, det_amplitude_db=det.amplitude_db,
    )  # fmt: skip
    dt = time.perf_counter() - t
    exact, right, n = S.score_association(res.events.detections, det)
    span = (shots.emitted_at_s.max() - shots.emitted_at_s.min()) / 60.0
    n_false = int(np.sum(det.event < 0))
    false_in = int(np.sum(res.event_of_detection[det.event < 0] >= 0))
    out += [
        "### Association (full pipeline: associate, locate, regather, relocate)",
        f"- {len(shots):,} events (muzzle blasts and impacts) in {span:.1f} min over a 50 km "
        f"sector ({len(shots) / span:.0f} a minute), {len(shots) - len(base)} of them adversarial "
        f"partners (each the mirror image of another across the line, within 0.3 s); "
        f"{len(det):,} detections: 5 % false, 10 % missed, 2 % echoes; {dt:.1f} s",
        f"- events recovered with the right detections: **{right / n:.1%}** ({right}/{n}; target "
        f">= 98 %); with exactly the true set: {exact / n:.1%}. Measured over the true events "
        f"heard by >= 5 sensors, each matched to the located event holding most of its arrivals "
        f"(one located event per true event); right = the set differs from the truth only by "
        f"arrivals that no method can assign by time: within 21 ms (3 x sqrt(2) x 5 ms) of another "
        f"event's arrival at the same sensor, detected or expected there and missed",
        f"- located events {len(res.events):,}; detections left out with a reason: "
        f"{len(res.unassigned.detection):,}; false detections put into an event: "
        f"{false_in}/{n_false}",
    ]


def bench_fusion(out: list[str]) -> None:
    out += [
        "### Fusion (acoustic events duplicated by patrols, cameras and the parties)",
        "Every event (muzzle blast or impact) located acoustically (5 m, 2 ms); a patrol hears 35 % "
        "of them (400-1,200 m, 10 s, up to 60 s late), a camera sees 25 % (80-250 m, 1 s), the "
        "party hit complains of 40 % of the impacts (1-2.5 km, 60 s, on its own side); 12 patrols, "
        "6 cameras; 3 days on a 50 km sector away from the line's ends. Pairwise precision and "
        "recall: over all pairs of reports, a pair is linked when fused into one event and true "
        "when both report the same simulated event. Density in events (explosions) per km of line "
        "per day; the OSCE SMM's busiest days recorded about 1,200 explosions in 24 h in Donetsk "
        "region, most around Avdiivka-Yasynuvata-Donetsk airport (6 Feb 2017, ~25 km): 24/km/day "
        "is that day over 50 km, 48/km/day over 25 km.",
        "",
        "| events/km/day | reports | candidate pairs | precision | recall | lost | time |",
        "|---|---|---|---|---|---|---|",
    ]
    judged = 24
    for per_km_day in (6, 12, 24, 48, 96):
        km, days = 50.0, 3.0
        n = round(per_km_day * km * days / 2)
        shots = S.simulate_fire(
            LINE_LON, LINE_LAT, n_shots=n, duration_s=days * 86400.0, seed=5,
            chainage_km=(20, 20 + km),
        )  # fmt: skip
        rng = np.random.default_rng(5)
        ac = (
            shots.lon, shots.lat, shots.emitted_at_s + rng.normal(0, 0.002, len(shots)),
            np.tile(np.eye(2) * 25.0, (len(shots), 1, 1)), np.arange(len(shots)),
        )  # fmt: skip
        sr = S.simulate_reports(shots, seed=6, acoustic=ac, line=(LINE_LON, LINE_LAT))
        t = time.perf_counter()
        res = F.fuse(sr.reports)
        dt = time.perf_counter() - t
        p, r = S.pairwise_precision_recall(sr.event, res.event_of_report)
        lost = len(sr.reports) - int(np.sum(res.event_of_report >= 0))
        bold = "**" if per_km_day == judged else ""
        out.append(
            f"| {per_km_day}{' (judged)' if per_km_day == judged else ''} | {len(sr.reports):,} | "
            f"{len(res.pair_a):,} | {bold}{p:.4f}{bold} | {bold}{r:.4f}{bold} | {lost} | "
            f"{dt:.2f} s |"
        )
    out += [
        "",
        f"- target >= 0.98 precision and recall, zero reports lost; judged at {judged} "
        "events/km/day. Most remaining errors are party complaints given to the wrong one of two "
        "impacts within their minute and kilometres: no linking rule can tell those apart.",
    ]


def bench_attribution(out: list[str]) -> None:
    cv = _agreement()
    sim, net = _setup((0, 85))
    out += [
        "### Attribution (who fired; weather told 15 deg C and no wind, truth 5 deg C and 5 m/s wind)",
        "Full pipeline (associate, locate, attribute) on simulated detections, 5 % false, 10 % "
        "missed, 2 % echoes. Stated probability = that of the party named; right = the named party "
        f"fired. Bins with fewer than {MIN_BIN} findings are shown but not judged; the last column "
        "is the sampling error of the fraction right (95 %).",
    ]
    # realistic fire: both sides, 1-20 km behind the line, impacts 0.5-12 km across it, at the
    # OSCE SMM's peak rate (1,200 explosions in 24 h, most in a 25 km stretch: 6 Feb 2017)
    n_shots, hours = 4800, 96.0
    shots = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=n_shots, duration_s=hours * 3600, seed=61, chainage_km=(5, 80)
    )
    det = S.simulate_detections(sim, shots, seed=62, p_echo=0.02, **TRUE_WEATHER)
    t = time.perf_counter()
    res = A.locate_detections(
        net, det.sensor, det.arrival_s, weather=TOLD, det_signal=det.signal,
        det_amplitude_db=det.amplitude_db,
    )  # fmt: skip
    t_loc = time.perf_counter() - t
    ev = res.events
    t = time.perf_counter()
    attr, sp, _ = T.attribute(
        cv, ev.lon, ev.lat, ev.cov_m2, ev.emitted_at_s, ev.signal,
        scale_dof=np.maximum(ev.n_sensors - 3, 1),
    )  # fmt: skip
    t_att = time.perf_counter() - t
    k = _match(ev, shots)
    truth = np.where(shots.side > 0, "L", "R")
    found = k >= 0
    kk = np.where(found, k, 0)
    named = attr.responsible[kk]
    p_stated = attr.probability[kk]
    p_left_true = np.where(shots.side > 0, attr.p_left[kk], 1.0 - attr.p_left[kk])
    stated_right = np.where(attr.p_left[kk] >= 0.5, shots.side > 0, shots.side < 0)
    blast = (shots.signal == 1) & found
    impact = (shots.signal == 2) & found & np.isfinite(attr.p_left[kk])
    deep = (shots.signal == 1) & (shots.depth_km >= 1.0)
    ok_blast = deep & found & (named == truth) & (p_stated >= 0.95)
    # the same shot through its impact, when the impact's pairing names the right party at 0.95
    imp_of_shot = np.full(n_shots, -1)
    imp_of_shot[shots.shot[impact]] = np.flatnonzero(impact)
    i_ok = np.zeros(n_shots, bool)
    has = imp_of_shot >= 0
    ii = imp_of_shot[has]
    i_ok[has] = (named[ii] == truth[ii]) & (p_stated[ii] >= 0.95)
    shot_ok = ok_blast | (deep & i_ok[shots.shot])
    n_deep = int(deep.sum())
    direct = (det.event >= 0) & ~det.echo
    heard = np.bincount(det.event[direct], minlength=len(shots)) >= 5
    n_deep_heard = int((deep & heard).sum())
    ok_heard = int((ok_blast & heard).sum())
    named_party = (named != "") & (named != "undetermined")
    wrong = found & named_party & (named != truth) & (p_stated >= 0.95)
    out += [
        "",
        f"Realistic fire: {n_shots} shots ({2 * n_shots} events) in {hours:.0f} h over 75 km "
        f"({n_shots / hours * 24 / 75:.0f} shots per km per day: the OSCE SMM's peak, ~1,200 "
        f"explosions in 24 h mostly in a 25 km stretch, 6 Feb 2017); locate {t_loc:.1f} s, "
        f"attribute {t_att:.2f} s ({int(sp.monte_carlo.sum())} events by Monte Carlo)",
        f"- fire from >= 1 km behind the line attributed to the right party at p >= 0.95: "
        f"**{ok_blast.sum() / n_deep:.1%}** from the muzzle blast ({int(ok_blast.sum())}/{n_deep}; "
        f"unlocated blasts count as failures); {shot_ok.sum() / n_deep:.1%} from the blast or the "
        f"paired impact (target >= 95 %); over the {n_deep_heard} blasts heard by >= 5 sensors (the "
        f"others, up to 20 km behind the line and 12 km beyond the last sensor row, are out of the "
        f"network's reach): {ok_heard / n_deep_heard:.1%}",
        f"- wrong party named at p >= 0.95: {int(wrong.sum())}; impacts: {int(impact.sum())} "
        f"paired ({int((impact & (named == 'undetermined')).sum())} undetermined), mean P(true "
        f"party) {np.mean(p_left_true[impact]):.3f}",
        "",
    ]
    w_blast = _reliability(p_stated[blast], stated_right[blast], "muzzle blasts", out)
    out.append("")
    w_imp = _reliability(p_stated[impact], stated_right[impact], "paired impacts", out)
    # near-line stress set: firing points within 10 m of the line (bend and ends included), where
    # the location uncertainty decides
    shots2 = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=12_000, duration_s=12_000 * 20.0, seed=63, chainage_km=(0, 85),
        depth_km=(0.0, 0.010), with_impacts=False,
    )  # fmt: skip
    det2 = S.simulate_detections(sim, shots2, seed=64, p_echo=0.02, **TRUE_WEATHER)
    res2 = A.locate_detections(
        net, det2.sensor, det2.arrival_s, weather=TOLD, det_signal=det2.signal,
        det_amplitude_db=det2.amplitude_db,
    )  # fmt: skip
    ev2 = res2.events
    attr2, sp2, _ = T.attribute(
        cv, ev2.lon, ev2.lat, ev2.cov_m2, ev2.emitted_at_s, ev2.signal,
        scale_dof=np.maximum(ev2.n_sensors - 3, 1),
    )  # fmt: skip
    k2 = _match(ev2, shots2, max_m=100.0)
    f2 = k2 >= 0
    kk2 = k2[f2]
    true_left = cv.sides(shots2.lon[f2], shots2.lat[f2])[0] > 0
    p2 = attr2.probability[kk2]
    r2 = np.where(attr2.p_left[kk2] >= 0.5, true_left, ~true_left)
    out += [
        "",
        f"Near-line stress set: 12,000 muzzle blasts 0-10 m from the line along its whole length "
        f"(bend and both ends), same network and weather; {int(f2.sum())} located, "
        f"{int(sp2.monte_carlo[kk2].sum())} by Monte Carlo",
        "",
    ]
    w_near = _reliability(p2, r2, "near the line", out)
    # crater bearings: 16-point compass, ranges uniform in the weapon's [min, max] (the prior the
    # method assumes), impacts 0-10 km either side along the whole line
    rng = np.random.default_rng(65)
    n3 = 20_000
    ilon, ilat = S.line_points(
        LINE_LON, LINE_LAT, rng.uniform(0, 82e3, n3), rng.uniform(-10e3, 10e3, n3)
    )
    az_true = rng.uniform(0, 360, n3)
    rng_km = rng.uniform(2.0, 15.0, n3)
    olon, olat, _ = T.GEOD.fwd(ilon, ilat, az_true, rng_km * 1e3)
    bearing = (np.round(az_true / 22.5) * 22.5) % 360.0
    t = time.perf_counter()
    sp3 = T.bearing_sector_probability(cv, ilon, ilat, bearing, 2.0, 15.0)
    t_b = time.perf_counter() - t
    side3 = cv.sides(olon, olat)[0]
    p3 = np.where(sp3.p_left >= 0.5, sp3.p_left, 1.0 - sp3.p_left)
    r3 = np.where(sp3.p_left >= 0.5, side3 > 0, side3 < 0)
    out += [
        "",
        f"Crater bearings: {n3:,} impacts 0-10 km from the line, bearing read on a 16-point "
        f"compass, weapon range 2-15 km (true ranges drawn from that same uniform prior); "
        f"{t_b:.2f} s",
        "",
    ]
    w_b = _reliability(p3, r3, "bearing sectors", out)
    worst = max(w_blast, w_imp, w_near, w_b)
    out += [
        "",
        f"- calibration: largest gap between stated probability and fraction right over bins "
        f"with >= {MIN_BIN} findings: **{worst:.1f} points** (target <= 5)",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", type=Path, default=None, help="update this BENCHMARKS.md section")
    ap.add_argument("--only", default="", help="comma-separated subset, e.g. attribution,fusion")
    args = ap.parse_args()
    out: list[str] = [
        SECTION,
        "",
        f"Command: `.venv/bin/python benchmarks/locate.py --write BENCHMARKS.md` "
        f"({platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}; one process; load average {os.getloadavg()[0]:.1f} at the start "
        f"on {os.cpu_count()} cores: with other work on the machine, speeds are pessimistic).",
        "",
    ]
    only = set(args.only.split(",")) if args.only else None
    for fn in (bench_accuracy_and_speed, bench_weather, bench_association, bench_attribution,
               bench_fusion):  # fmt: skip
        if only is not None and fn.__name__.removeprefix("bench_") not in only:
            continue
        n0 = len(out)
        fn(out)
        print("\n".join(out[n0:]), flush=True)
    text = "\n".join(out) + "\n"
    print(text)
    if args.write:
        old = args.write.read_text() if args.write.exists() else "# Benchmarks\n"
        if SECTION in old:
            head, rest = old.split(SECTION, 1)
            nxt = rest.find("\n## ")
            tail = rest[nxt + 1 :] if nxt >= 0 else ""
            new = head + text + ("\n" + tail if tail else "")
        else:
            new = old.rstrip("\n") + "\n\n" + text
        args.write.write_text(new)


if __name__ == "__main__":
    main()
