"""Simulator of an acoustic network along a line, of fire from both sides, and of its reports.

Seeded and vectorised. Sides are numbered as walking the line in its digitised order: ``+1`` left,
``-1`` right. Ground truth comes with every output so that accuracy can be measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from truceline.core.acoustic import speed_of_sound_mps, wind_vector_mps
from truceline.core.arrays import FloatArray, IntArray
from truceline.core.fusion import Reports
from truceline.core.geodesy import GEOD, LocalFrame

__all__ = [
    "SimDetections",
    "SimNetwork",
    "SimReports",
    "SimShots",
    "adversarial_partners",
    "line_network",
    "line_points",
    "simulate_detections",
    "simulate_fire",
    "simulate_reports",
]


EPOCH_2025_03_01_S = 1_740_787_200.0


def line_points(
    line_lon: ArrayLike, line_lat: ArrayLike, chainage_m: ArrayLike, offset_m: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Points at a geodesic chainage along a polyline, offset perpendicular to it.

    Parameters
    ----------
    line_lon, line_lat
        Vertices of the line (WGS84); edges are geodesics.
    chainage_m
        Distance along the line from its first vertex (clipped to the line).
    offset_m
        Perpendicular geodesic offset; positive to the left of the direction of travel.
    """
    lo = np.asarray(line_lon, np.float64)
    la = np.asarray(line_lat, np.float64)
    az, _, seg = GEOD.inv(lo[:-1], la[:-1], lo[1:], la[1:])
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    s = np.clip(np.asarray(chainage_m, np.float64), 0.0, cum[-1])
    off = np.broadcast_to(np.asarray(offset_m, np.float64), s.shape)
    i = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
    plon, plat, baz = GEOD.fwd(lo[i], la[i], np.asarray(az)[i], s - cum[i])
    heading = np.asarray(baz) + 180.0
    side_az = np.where(off >= 0, heading - 90.0, heading + 90.0)
    qlon, qlat, _ = GEOD.fwd(plon, plat, side_az, np.abs(off))
    return np.asarray(qlon, np.float64), np.asarray(qlat, np.float64)


def line_length_m(line_lon: ArrayLike, line_lat: ArrayLike) -> float:
    """Geodesic length of a polyline (m)."""
    lo = np.asarray(line_lon, np.float64)
    la = np.asarray(line_lat, np.float64)
    return float(np.sum(GEOD.inv(lo[:-1], la[:-1], lo[1:], la[1:])[2]))


@dataclass(frozen=True)
class SimNetwork:
    """Simulated sensors: ids, WGS84 positions, and which side / depth they sit at."""

    sensor_id: NDArray[np.str_]
    lon: FloatArray
    lat: FloatArray
    elevation_m: FloatArray
    timing_sigma_ms: FloatArray
    side: IntArray
    depth_km: FloatArray


def line_network(
    line_lon: ArrayLike,
    line_lat: ArrayLike,
    *,
    spacing_km: float = 5.0,
    depths_left_km: tuple[float, ...] = (2.0, 8.0),
    depths_right_km: tuple[float, ...] = (2.0, 8.0),
    chainage_km: tuple[float, float] | None = None,
    timing_sigma_ms: float = 5.0,
    elevation_m: float = 150.0,
) -> SimNetwork:
    """Rows of sensors parallel to the line at given depths behind it on each side.

    Alternate rows are staggered by half a spacing so that the network is not degenerate.
    """
    total = line_length_m(line_lon, line_lat)
    c0, c1 = (0.0, total) if chainage_km is None else (chainage_km[0] * 1e3, chainage_km[1] * 1e3)
    rows = [(1, d) for d in depths_left_km] + [(-1, d) for d in depths_right_km]
    lon_l, lat_l, side_l, depth_l = [], [], [], []
    for r, (side, depth) in enumerate(rows):  # a few rows
        stagger = 0.5 * spacing_km * 1e3 * (r % 2)
        ch = np.arange(c0 + stagger, c1 + 1e-6, spacing_km * 1e3)
        lo, la = line_points(line_lon, line_lat, ch, side * depth * 1e3)
        lon_l.append(lo)
        lat_l.append(la)
        side_l.append(np.full(len(ch), side))
        depth_l.append(np.full(len(ch), depth))
    lon = np.concatenate(lon_l)
    n = len(lon)
    return SimNetwork(
        sensor_id=np.array([f"S{i:04d}" for i in range(n)]),
        lon=lon,
        lat=np.concatenate(lat_l),
        elevation_m=np.full(n, elevation_m),
        timing_sigma_ms=np.full(n, timing_sigma_ms),
        side=np.concatenate(side_l).astype(np.intp),
        depth_km=np.concatenate(depth_l),
    )


@dataclass(frozen=True)
class SimShots:
    """Ground truth of acoustic events: muzzle blasts and their impacts.

    ``shot`` pairs an impact with its muzzle blast; ``side`` is the side that fired (+1 left, -1 right);
    ``signal`` is 1 (muzzle blast) or 2 (impact); ``depth_km`` is the firing point's depth behind the
    line (the same for both events of a shot).
    """

    lon: FloatArray
    lat: FloatArray
    emitted_at_s: FloatArray
    signal: IntArray
    side: IntArray
    shot: IntArray
    depth_km: FloatArray
    range_km: FloatArray

    def __len__(self) -> int:
        return len(self.lon)


def simulate_fire(
    line_lon: ArrayLike,
    line_lat: ArrayLike,
    *,
    n_shots: int,
    duration_s: float,
    seed: int,
    chainage_km: tuple[float, float] | None = None,
    depth_km: tuple[float, float] = (1.0, 20.0),
    target_depth_km: tuple[float, float] = (0.5, 12.0),
    shell_speed_mps: tuple[float, float] = (250.0, 450.0),
    with_impacts: bool = True,
    start_s: float = EPOCH_2025_03_01_S,
) -> SimShots:
    """Shots from both sides: a muzzle blast behind the line and (optionally) an impact across it.

    Emission times are uniform over ``duration_s``; the impact follows after the flight time.
    """
    rng = np.random.default_rng(seed)
    total = line_length_m(line_lon, line_lat)
    c0, c1 = (0.0, total) if chainage_km is None else (chainage_km[0] * 1e3, chainage_km[1] * 1e3)
    side = rng.choice(np.array([1, -1]), n_shots)
    ch = rng.uniform(c0, c1, n_shots)
    depth = rng.uniform(depth_km[0], depth_km[1], n_shots)
    t = start_s + np.sort(rng.uniform(0.0, duration_s, n_shots))
    mlon, mlat = line_points(line_lon, line_lat, ch, side * depth * 1e3)
    # targets within about 3 km along the line, reflected (not clipped) at the sector's ends so
    # that impacts do not pile up there
    tch = ch + rng.normal(0.0, 3e3, n_shots)
    tch = np.where(tch < c0, 2 * c0 - tch, tch)
    tch = np.clip(np.where(tch > c1, 2 * c1 - tch, tch), c0, c1)
    tdepth = rng.uniform(target_depth_km[0], target_depth_km[1], n_shots)
    ilon, ilat = line_points(line_lon, line_lat, tch, -side * tdepth * 1e3)
    rng_m = np.asarray(GEOD.inv(mlon, mlat, ilon, ilat)[2])
    flight = rng_m / rng.uniform(shell_speed_mps[0], shell_speed_mps[1], n_shots)
    shot = np.arange(n_shots)
    if not with_impacts:
        return SimShots(
            mlon, mlat, t, np.ones(n_shots, np.intp), side.astype(np.intp), shot, depth,
            rng_m / 1e3,
        )  # fmt: skip
    lon = np.concatenate([mlon, ilon])
    lat = np.concatenate([mlat, ilat])
    te = np.concatenate([t, t + flight])
    o = np.argsort(te, kind="stable")
    return SimShots(
        lon=lon[o],
        lat=lat[o],
        emitted_at_s=te[o],
        signal=np.concatenate([np.ones(n_shots), np.full(n_shots, 2)]).astype(np.intp)[o],
        side=np.concatenate([side, side]).astype(np.intp)[o],
        shot=np.concatenate([shot, shot])[o],
        depth_km=np.concatenate([depth, depth])[o],
        range_km=np.concatenate([rng_m, rng_m])[o] / 1e3,
    )


@dataclass(frozen=True)
class SimDetections:
    """Simulated detections; ``event`` is the true event (-1 false), ``echo`` marks echoes.

    ``expected_*`` list every arrival the events should have made (within range, missed or not,
    without timing noise): what tells an unlucky coincidence from a wrong association.
    """

    detection_id: NDArray[np.str_]
    sensor: IntArray
    arrival_s: FloatArray
    signal: IntArray
    amplitude_db: FloatArray
    event: IntArray
    echo: NDArray[np.bool_]
    expected_sensor: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    expected_event: IntArray = field(default_factory=lambda: np.zeros(0, np.intp))
    expected_s: FloatArray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.sensor)


def simulate_detections(
    net: SimNetwork,
    shots: SimShots,
    *,
    seed: int,
    temperature_c: float = 15.0,
    wind_speed_mps: float = 0.0,
    wind_from_deg: float = 0.0,
    max_range_m: float = 20_000.0,
    p_miss: float = 0.10,
    p_false: float = 0.05,
    p_echo: float = 0.0,
    echo_delay_s: tuple[float, float] = (0.15, 2.5),
    p_unknown_signal: float = 0.2,
) -> SimDetections:
    """Arrival times at every sensor within range of every event, with the *true* weather.

    Travel time is ``d / (c + w . u)`` along the geodesic (3-D with the height difference), plus
    Gaussian timing noise; some arrivals are missed, some duplicated as delayed echoes, and false
    detections are spread uniformly over sensors and time so that they make ``p_false`` of the total.
    """
    rng = np.random.default_rng(seed)
    frame = LocalFrame.centred(float(np.mean(net.lon)), float(np.mean(net.lat)))
    sx, sy = frame.to_xy(net.lon, net.lat)
    ex, ey = frame.to_xy(shots.lon, shots.lat)
    tree = cKDTree(np.stack([sx, sy], 1))
    near = tree.query_ball_point(np.stack([ex, ey], 1), r=max_range_m * 1.05)
    counts = np.array([len(x) for x in near], np.intp)
    ev = np.repeat(np.arange(len(shots)), counts)
    se = np.concatenate([np.asarray(x, np.intp) for x in near] + [np.zeros(0, np.intp)])
    az, _, dist = GEOD.inv(shots.lon[ev], shots.lat[ev], net.lon[se], net.lat[se])
    dist = np.asarray(dist)
    keep = dist <= max_range_m
    ev, se, az, dist = ev[keep], se[keep], np.asarray(az)[keep], dist[keep]
    src_elev = np.median(net.elevation_m)
    dz = net.elevation_m[se] - src_elev
    d3 = np.sqrt(dist**2 + dz**2)
    c = float(speed_of_sound_mps(temperature_c))
    w = wind_vector_mps(wind_speed_mps, wind_from_deg)
    azr = np.radians(az)
    wu = (w[0] * np.sin(azr) + w[1] * np.cos(azr)) * dist / d3
    sig = net.timing_sigma_ms[se] * 1e-3
    t_clean = shots.emitted_at_s[ev] + d3 / (c + wu)
    exp_se, exp_ev = se.astype(np.intp), ev.astype(np.intp)
    t = t_clean + rng.normal(0.0, 1.0, len(ev)) * sig
    hit = rng.random(len(ev)) >= p_miss
    ev, se, t, dist = ev[hit], se[hit], t[hit], dist[hit]
    amp = 150.0 - 20.0 * np.log10(np.maximum(dist, 1.0)) + rng.normal(0.0, 3.0, len(ev))
    n_echo = rng.random(len(ev)) < p_echo
    e_ev, e_se = ev[n_echo], se[n_echo]
    e_t = t[n_echo] + rng.uniform(echo_delay_s[0], echo_delay_s[1], int(n_echo.sum()))
    e_amp = amp[n_echo] - rng.uniform(3.0, 12.0, int(n_echo.sum()))
    n_true = len(ev) + len(e_ev)
    n_false = round(p_false / (1.0 - p_false) * n_true) if p_false > 0 else 0
    f_se = rng.integers(0, len(net.lon), n_false)
    t_lo = float(shots.emitted_at_s.min()) if len(shots) else 0.0
    t_hi = float(t.max()) if len(t) else t_lo + 1.0
    f_t = rng.uniform(t_lo, t_hi, n_false)
    f_amp = rng.uniform(50.0, 80.0, n_false)
    sensor = np.concatenate([se, e_se, f_se]).astype(np.intp)
    arrival = np.concatenate([t, e_t, f_t])
    event = np.concatenate([ev, e_ev, np.full(n_false, -1)]).astype(np.intp)
    echo = np.concatenate([np.zeros(len(ev), bool), np.ones(len(e_ev), bool), np.zeros(n_false, bool)])
    amp_all = np.concatenate([amp, e_amp, f_amp])
    true_sig = np.where(event >= 0, shots.signal[np.maximum(event, 0)], 0)
    signal = np.where(rng.random(len(event)) < p_unknown_signal, 0, true_sig).astype(np.intp)
    o = np.argsort(arrival, kind="stable")
    n = len(o)
    return SimDetections(
        detection_id=np.array([f"D{i:07d}" for i in range(n)]),
        sensor=sensor[o],
        arrival_s=arrival[o],
        signal=signal[o],
        amplitude_db=amp_all[o],
        event=event[o],
        echo=echo[o],
        expected_sensor=exp_se,
        expected_event=exp_ev,
        expected_s=t_clean,
    )


def score_association(
    detections: list[IntArray],
    det: SimDetections,
    *,
    min_sensors: int = 5,
    coincide_s: float = 0.021,
) -> tuple[int, int, int]:
    """How many true events were recovered with the right detections.

    Returns ``(exact, right, n)``: events whose located detection set equals the truth exactly;
    events whose set differs only by arrivals that no method can assign by time; and the number of
    true events heard by at least ``min_sensors`` sensors. An arrival is ambiguous by time when
    another event's arrival at the same sensor is within ``coincide_s`` of it (3 x sqrt(2) x 5 ms) -
    detected, or expected there and missed (a detection in the place of a missed arrival fits that
    event as well as its own). Each true event is matched to the located event holding most of its
    arrivals; a located event matches one true event at most.
    """
    direct = (det.event >= 0) & ~det.echo
    n_ev = int(max(det.event.max(), det.expected_event.max(initial=-1))) + 1 if len(det) else 0
    heard = np.bincount(det.event[direct], minlength=n_ev)
    eligible = heard >= min_sensors
    # arrivals (detected and expected) by sensor and time, to find each detection's neighbours
    a_sensor = np.concatenate([det.sensor, det.expected_sensor])
    a_time = np.concatenate([det.arrival_s, det.expected_s])
    a_event = np.concatenate([np.where(det.echo, -2, det.event), det.expected_event])
    o = np.lexsort((a_time, a_sensor))
    ke = a_event[o]
    t_min = float(a_time.min()) if len(a_time) else 0.0
    stride = (float(a_time.max()) - t_min if len(a_time) else 0.0) + 1.0
    keys = a_sensor[o] * stride + (a_time[o] - t_min)
    q = det.sensor * stride + (det.arrival_s - t_min)
    lo = np.searchsorted(keys, q - coincide_s)
    hi = np.searchsorted(keys, q + coincide_s, side="right")
    close = np.zeros(len(det), bool)
    width = int((hi - lo).max()) if len(det) else 0
    for j in range(width):  # a handful of neighbours each
        k = np.minimum(lo + j, len(ke) - 1)
        inside = lo + j < hi
        other = (ke[k] != det.event) & (ke[k] != -2) & (ke[k] >= 0)
        close |= inside & other
    exact = right = 0
    taken = np.zeros(n_ev, bool)
    for d in detections:  # scoring, once per located event
        ev = det.event[d]
        vals, cnt = np.unique(ev[ev >= 0], return_counts=True)
        if len(vals) == 0:
            continue
        e = int(vals[np.argmax(cnt)])
        if not eligible[e] or taken[e]:
            continue
        taken[e] = True
        truth = np.flatnonzero(direct & (det.event == e))
        diff = np.setxor1d(truth, d)
        exact += len(diff) == 0
        right += bool(np.all(close[diff]))
    return exact, right, int(eligible.sum())


def adversarial_partners(
    line_lon: ArrayLike, line_lat: ArrayLike, shots: SimShots, *, fraction: float, seed: int,
    max_dt_s: float = 0.3,
) -> SimShots:  # fmt: skip
    """Add, for a fraction of the events, a partner mirrored across the line (same chainage and
    depth, other side) emitted within ``max_dt_s``: the overlaps hardest to untangle, as their
    arrivals interleave symmetrically at both sensor rows."""
    rng = np.random.default_rng(seed)
    lo = np.asarray(line_lon, np.float64)
    la = np.asarray(line_lat, np.float64)
    from truceline.core.geodesy import LineIndex

    idx = LineIndex([np.column_stack([lo, la])], max_segment_m=1000.0)
    pick = np.flatnonzero(rng.random(len(shots)) < fraction)
    near = idx.nearest(shots.lon[pick], shots.lat[pick])
    plon, plat = line_points(lo, la, near.chainage_m, -near.signed_m)
    n0 = int(shots.shot.max()) + 1 if len(shots) else 0
    lon = np.concatenate([shots.lon, plon])
    lat = np.concatenate([shots.lat, plat])
    dt = rng.uniform(0, max_dt_s, len(pick))
    t = np.concatenate([shots.emitted_at_s, shots.emitted_at_s[pick] + dt])
    o = np.argsort(t, kind="stable")
    return SimShots(
        lon=lon[o], lat=lat[o], emitted_at_s=t[o],
        signal=np.concatenate([shots.signal, shots.signal[pick]])[o],
        side=np.concatenate([shots.side, -shots.side[pick]])[o],
        shot=np.concatenate([shots.shot, n0 + np.arange(len(pick))])[o],
        depth_km=np.concatenate([shots.depth_km, shots.depth_km[pick]])[o],
        range_km=np.concatenate([shots.range_km, shots.range_km[pick]])[o],
    )  # fmt: skip


@dataclass(frozen=True)
class SimReports:
    """Simulated reports of the events (for fusion) and the true event of each."""

    reports: Reports
    event: IntArray


def simulate_reports(
    shots: SimShots,
    *,
    seed: int,
    n_patrols: int = 12,
    n_cameras: int = 6,
    p_patrol: float = 0.35,
    p_camera: float = 0.25,
    p_complaint: float = 0.4,
    acoustic: tuple[FloatArray, FloatArray, FloatArray, FloatArray, IntArray] | None = None,
    line: tuple[ArrayLike, ArrayLike] | None = None,
) -> SimReports:
    """Duplicate reports of the same events by patrols (heard: late, kilometre errors), cameras (seen:
    precise) and the party that was hit (impacts only: coarse, late), each source reporting an event at
    most once; ``acoustic`` adds located events ``(lon, lat, time_s, cov_m2, true_event)``.

    Reports carry a side when they state one: a party complains of fire on its own side; with the
    ``line`` (lon, lat vertices), a located event more than 4 sigma from it is on its position's side.
    """
    rng = np.random.default_rng(seed)
    n = len(shots)
    parts: list[dict[str, np.ndarray]] = []

    def add(sel: IntArray, stype: str, src: NDArray[np.str_], sd_m: FloatArray, t_sd: float,
            delay: float, rel: str, cred: int) -> None:  # fmt: skip
        k = len(sel)
        az = rng.uniform(0, 360, k)
        dist = sd_m * np.sqrt(-2.0 * np.log(1.0 - rng.random(k)))  # isotropic 2-D Gaussian
        lon, lat, _ = GEOD.fwd(shots.lon[sel], shots.lat[sel], az, dist)
        late = rng.uniform(0, delay, k) if delay > 0 else np.zeros(k)
        kind = np.where(shots.signal[sel] == 2, "explosion", "muzzle_flash")
        side = -shots.side[sel] if stype == "party_complaint" else np.zeros(k, np.intp)
        parts.append({
            "event": sel, "source_type": np.full(k, stype), "source_id": src, "side": side,
            "time_s": shots.emitted_at_s[sel] + late + rng.normal(0, t_sd, k),
            "time_sigma_s": np.full(k, t_sd), "delay_max_s": np.full(k, delay),
            "lon": np.asarray(lon), "lat": np.asarray(lat),
            "cov_m2": np.einsum("n,ij->nij", sd_m**2, np.eye(2)), "kind": kind,
            "reliability": np.full(k, rel), "credibility": np.full(k, cred),
        })  # fmt: skip

    pat = np.flatnonzero(rng.random(n) < p_patrol)
    add(pat, "patrol", np.array([f"patrol-{i}" for i in rng.integers(0, n_patrols, len(pat))]),
        rng.uniform(400, 1200, len(pat)), 10.0, 60.0, "B", 2)  # fmt: skip
    cam = np.flatnonzero(rng.random(n) < p_camera)
    add(cam, "camera", np.array([f"camera-{i}" for i in rng.integers(0, n_cameras, len(cam))]),
        rng.uniform(80, 250, len(cam)), 1.0, 0.0, "A", 2)  # fmt: skip
    comp = np.flatnonzero((rng.random(n) < p_complaint) & (shots.signal == 2))
    add(comp, "party_complaint", np.where(shots.side[comp] > 0, "party-right", "party-left"),
        rng.uniform(1000, 2500, len(comp)), 60.0, 0.0, "D", 3)  # fmt: skip
    # a source reports an event at most once, but patrols and cameras cover many events; drop a
    # second report of one event by the same source
    ev_all = np.concatenate([p["event"] for p in parts])
    src_all = np.concatenate([p["source_id"] for p in parts])
    if acoustic is not None:
        alon, alat, at, acov, aev = acoustic
        k = len(alon)
        a_side = np.zeros(k, np.intp)
        if line is not None:
            from truceline.core.geodesy import LineIndex

            near = LineIndex([np.column_stack([np.asarray(line[0]), np.asarray(line[1])])]).nearest(
                alon, alat
            )
            sd = np.sqrt(np.maximum(acov[:, 0, 0], acov[:, 1, 1]))
            a_side = np.where(near.distance_m > 4.0 * sd, near.side, 0).astype(np.intp)
        parts.append({
            "event": aev, "source_type": np.full(k, "acoustic"), "source_id": np.full(k, "acoustic"),
            "side": a_side,
            "time_s": at, "time_sigma_s": np.full(k, 0.05), "delay_max_s": np.zeros(k),
            "lon": alon, "lat": alat, "cov_m2": acov,
            # the located event's signal tells a muzzle blast from an impact
            "kind": np.where(shots.signal[aev] == 2, "explosion", "muzzle_blast"),
            "reliability": np.full(k, "B"),
            "credibility": np.full(k, 2),
        })  # fmt: skip
        ev_all = np.concatenate([ev_all, aev])
        src_all = np.concatenate([src_all, np.full(k, "acoustic")])
    col = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    _, first = np.unique(np.char.add(src_all.astype(str), np.char.mod("|%d", ev_all)), return_index=True)
    keep = np.sort(first)
    m = len(keep)
    rep = Reports(
        report_id=np.array([f"R{i:06d}" for i in range(m)]),
        source_id=col["source_id"][keep].astype(str),
        source_type=col["source_type"][keep].astype(str),
        time_s=col["time_s"][keep].astype(np.float64),
        time_sigma_s=col["time_sigma_s"][keep].astype(np.float64),
        delay_max_s=col["delay_max_s"][keep].astype(np.float64),
        lon=col["lon"][keep].astype(np.float64),
        lat=col["lat"][keep].astype(np.float64),
        cov_m2=col["cov_m2"][keep].astype(np.float64),
        kind=col["kind"][keep].astype(str),
        reliability=col["reliability"][keep].astype(str),
        credibility=col["credibility"][keep].astype(np.intp),
        side=col["side"][keep].astype(np.int8),
    )
    return SimReports(rep, col["event"][keep].astype(np.intp))


def pairwise_precision_recall(truth: IntArray, found: IntArray) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against the truth (counts, not all pairs)."""

    def pairs(lab: IntArray) -> int:
        c = np.bincount(lab)
        return int(np.sum(c * (c - 1) // 2))

    _, joint = np.unique(np.stack([truth, found], 1), axis=0, return_inverse=True)
    tp = pairs(joint.ravel())
    pf = pairs(found)
    pt = pairs(truth)
    return (tp / pf if pf else 1.0), (tp / pt if pt else 1.0)
