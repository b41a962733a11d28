"""Fusion of reports of one event from several sources (acoustic, patrols, cameras, complaints).

Candidate pairs come from a space-time KD-tree (never all pairs); two reports may belong to one
event when their positions agree statistically (Mahalanobis distance under the summed covariances,
within a wide 99.99 % gate), their times agree within their uncertainties (a report heard from afar
is late, never early), their kinds and sides are compatible, and they come from different sources.
Clusters then grow by merging mutual best partners (vectorised rounds, lowest chi-square first),
always with at most one report per source per event.
Each report ends in exactly one event; the candidate pairs and their distances are kept so that an
analyst can split or merge events later (:func:`split`, :func:`merge`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from truceline.core.arrays import FloatArray, IntArray
from truceline.core.geodesy import LocalFrame, mean_lon, pad_lat_deg, pad_lon_deg

__all__ = [
    "ADMIRALTY_CREDIBILITY",
    "ADMIRALTY_RELIABILITY",
    "GATE_D2_99",
    "GATE_D2_9999",
    "Candidates",
    "FusionResult",
    "Reports",
    "candidates",
    "fuse",
    "kind_group",
    "linkable",
    "may_link",
    "merge",
    "report_log_odds",
    "split",
    "summarise",
]


GATE_D2_99: Final = 9.21
GATE_D2_9999: Final = 18.42
ADMIRALTY_RELIABILITY: Final = {"A": 1.0, "B": 0.8, "C": 0.6, "D": 0.4, "E": 0.2, "F": 0.5}
"""Weight of a source's word by reliability (F, 'cannot be judged', counts half)."""
ADMIRALTY_CREDIBILITY: Final = {1: 0.95, 2: 0.85, 3: 0.65, 4: 0.45, 5: 0.2, 6: 0.5}
"""Probability that the information is true, by credibility grade (6: cannot be judged)."""
_KIND_GROUPS: Final = {
    "unknown": 0,
    "explosion": 1,
    "impact": 1,
    "airburst": 1,
    "muzzle_blast": 2,
    "muzzle_flash": 2,
    "firing": 2,
    "small_arms_fire": 3,
    "projectile": 4,
    "flare": 5,
}


def kind_group(kind: ArrayLike) -> IntArray:
    """Compatibility group of each kind: equal groups are compatible, 0 (unknown) with all."""
    k = np.asarray(kind).astype(str)
    uniq, inv = np.unique(k, return_inverse=True)
    codes = np.array([_KIND_GROUPS.get(u, 100 + i) for i, u in enumerate(uniq)], np.intp)
    return codes[inv.ravel()]


def report_log_odds(reliability: ArrayLike, credibility: ArrayLike) -> FloatArray:
    """Log-odds that an event happened as reported, from a report's Admiralty grades."""
    rel = np.asarray(reliability).astype(str)
    cred = np.asarray(credibility, np.intp)
    w = np.array([ADMIRALTY_RELIABILITY.get(r.upper(), 0.5) for r in rel.ravel()]).reshape(rel.shape)
    p = np.array([ADMIRALTY_CREDIBILITY.get(int(c), 0.5) for c in cred.ravel()]).reshape(cred.shape)
    return np.asarray(w * np.log(p / (1.0 - p)), np.float64)


@dataclass(frozen=True)
class Reports:
    """Reports to fuse (N of them).

    ``cov_m2`` is each position's 2x2 covariance (x east, y north; m²); ``time_sigma_s`` the time
    uncertainty; ``delay_max_s`` how late the report's time may be because the source heard the event
    from afar (0 for a seen or located event). ``side`` is the side of the line the report puts the
    event on when it says so (+1 left, -1 right, 0 unknown): a party complains of fire landing on
    its own side; a located event is on the side of its position when that is certain.
    """

    report_id: NDArray[np.str_]
    source_id: NDArray[np.str_]
    source_type: NDArray[np.str_]
    time_s: FloatArray
    time_sigma_s: FloatArray
    delay_max_s: FloatArray
    lon: FloatArray
    lat: FloatArray
    cov_m2: FloatArray
    kind: NDArray[np.str_]
    reliability: NDArray[np.str_]
    credibility: IntArray
    side: NDArray[np.int8] | None = None

    def __len__(self) -> int:
        return len(self.report_id)

    def sides(self) -> NDArray[np.int8]:
        """``side``, or zeros (unknown) when not given."""
        if self.side is None:
            return np.zeros(len(self.report_id), np.int8)
        return np.asarray(self.side, np.int8)


@dataclass(frozen=True)
class FusionResult:
    """Events from :func:`fuse`; ``event_of_report`` links every report to exactly one event."""

    event_of_report: IntArray
    lon: FloatArray
    lat: FloatArray
    cov_m2: FloatArray
    time_s: FloatArray
    confidence: FloatArray
    n_sources: IntArray
    pair_a: IntArray
    pair_b: IntArray
    pair_d2: FloatArray
    frame: LocalFrame

    def __len__(self) -> int:
        return len(self.lon)

    def members(self, event: int) -> IntArray:
        """Reports of one event."""
        return np.flatnonzero(self.event_of_report == event)


def _inv2(c: FloatArray) -> FloatArray:
    a, b, d = c[..., 0, 0], c[..., 0, 1], c[..., 1, 1]
    det = a * d - b * b
    det = np.where(det > 0, det, np.nan)  # an unused cluster slot (no information) gives NaN
    out = np.empty_like(c)
    out[..., 0, 0] = d / det
    out[..., 1, 1] = a / det
    out[..., 0, 1] = out[..., 1, 0] = -b / det
    return out


@dataclass(frozen=True)
class _Clusters:
    xy: FloatArray
    cov: FloatArray
    t: FloatArray
    t_sig: FloatArray
    delay: FloatArray
    kind: IntArray
    side: NDArray[np.int8]


def _effective_time(reports: Reports) -> tuple[FloatArray, FloatArray]:
    """Each report's estimate of the event's time and its precision (1 / s²).

    A report that may be late by up to ``delay_max_s`` (a patrol that heard the event from afar)
    is late by half of it on average, with the variance of a uniform delay added: its times are
    never early, so a symmetric window around its raw time would be twice too wide.
    """
    t = reports.time_s - 0.5 * reports.delay_max_s
    var = reports.time_sigma_s**2 + reports.delay_max_s**2 / 12.0
    return t, 1.0 / var


def _summaries(
    label: IntArray, n: int, xy: FloatArray, info: FloatArray, t: FloatArray, tw: FloatArray,
    delay: FloatArray, kind: IntArray, side: NDArray[np.int8],
) -> _Clusters:  # fmt: skip
    """Inverse-covariance fused position, precision-weighted time, per cluster label 0..n-1.

    ``t`` and ``tw`` are the reports' effective times and precisions (:func:`_effective_time`).
    """
    lam = np.zeros((n, 2, 2))
    eta = np.zeros((n, 2))
    np.add.at(lam, label, info)
    np.add.at(eta, label, np.einsum("nij,nj->ni", info, xy))
    cov = _inv2(lam)
    cxy = np.einsum("nij,nj->ni", cov, eta)
    w = np.bincount(label, tw, n)
    w = np.where(w > 0, w, np.nan)
    ct = np.bincount(label, tw * t, n) / w
    dmax = np.zeros(n)
    np.maximum.at(dmax, label, delay)
    k = np.zeros(n, np.intp)
    np.maximum.at(k, label, kind)
    sd = np.zeros(n, np.intp)
    np.add.at(sd, label, side.astype(np.intp))
    return _Clusters(cxy, cov, ct, 1.0 / np.sqrt(w), dmax, k, np.sign(sd).astype(np.int8))


def _centred_on(reports: Reports) -> LocalFrame:
    """A local plane centred on the reports' mean position (across the antimeridian too)."""
    n = len(reports)
    lon0 = mean_lon(reports.lon) if n else 0.0
    lat0 = float(np.mean(reports.lat)) if n else 0.0
    return LocalFrame.centred(lon0, lat0)


@dataclass(frozen=True)
class Candidates:
    """The reports in a plane and the pairs of them that pass every gate (:func:`candidates`):
    what :func:`fuse` starts from, computed once when a caller also asks :meth:`touch`."""

    gate_d2: float
    time_k: float
    frame: LocalFrame
    xy: FloatArray
    info: FloatArray
    t_eff: FloatArray
    tw: FloatArray
    kind: IntArray
    side: NDArray[np.int8]
    src: IntArray
    a: IntArray
    b: IntArray
    d2: FloatArray

    def touch(self, which: ArrayLike) -> bool:
        """Whether :func:`fuse` could put any of the reports ``which`` (a mask) in an event with
        another report: some pair that passes every gate includes one of them. When none does,
        those reports end alone whatever the others do, and fusing them can be skipped."""
        mask = np.asarray(which, bool)
        return bool((mask[self.a] | mask[self.b]).any())


def candidates(
    reports: Reports,
    *,
    gate_d2: float = GATE_D2_9999,
    time_k: float = 4.0,
    frame: LocalFrame | None = None,
) -> Candidates:
    """Candidate pairs from a space-time KD-tree, kept when they pass the position, time, kind,
    side and source gates (time scaled so that the largest time gate maps to the largest position
    gate); the gates and ``frame`` as in :func:`fuse`."""
    n = len(reports)
    frame = frame if frame is not None else _centred_on(reports)
    x, y = frame.to_xy(reports.lon, reports.lat)
    xy = np.stack([x, y], 1)
    cov = np.asarray(reports.cov_m2, np.float64)
    info = _inv2(cov)
    t_eff, tw = _effective_time(reports)
    kind = kind_group(reports.kind)
    side = reports.sides()
    _, src = np.unique(reports.source_id.astype(str), return_inverse=True)
    src = src.ravel().astype(np.intp)
    lam_max = 0.5 * (cov[:, 0, 0] + cov[:, 1, 1]) + np.sqrt(
        0.25 * (cov[:, 0, 0] - cov[:, 1, 1]) ** 2 + cov[:, 0, 1] ** 2
    )
    r_max = math.sqrt(gate_d2 * 2.0 * float(lam_max.max())) if n else 1.0
    t_max = time_k * math.sqrt(2.0 / float(tw.min())) if n else 1.0
    scale = r_max / max(t_max, 1e-9)
    pts = np.column_stack([xy, (t_eff - t_eff.min()) * scale]) if n else np.zeros((0, 3))
    pairs = (
        cKDTree(pts).query_pairs(r=r_max * math.sqrt(2.0), output_type="ndarray")
        if n > 1
        else np.zeros((0, 2), np.intp)
    )
    a, b = pairs[:, 0].astype(np.intp), pairs[:, 1].astype(np.intp)
    d = xy[b] - xy[a]
    d2 = np.einsum("ni,nij,nj->n", d, _inv2(cov[a] + cov[b]), d)
    dt = np.abs(t_eff[b] - t_eff[a])
    t_gate = time_k * np.sqrt(1.0 / tw[a] + 1.0 / tw[b])
    ok = (
        (d2 <= gate_d2)
        & (dt <= t_gate)
        & ((kind[a] == kind[b]) | (kind[a] == 0) | (kind[b] == 0))
        & ((side[a] == side[b]) | (side[a] == 0) | (side[b] == 0))
        & (src[a] != src[b])
    )
    return Candidates(gate_d2, time_k, frame, xy, info, t_eff, tw, kind, side, src, a[ok], b[ok], d2[ok])


def linkable(
    reports: Reports,
    which: ArrayLike,
    *,
    gate_d2: float = GATE_D2_9999,
    time_k: float = 4.0,
    frame: LocalFrame | None = None,
) -> bool:
    """Whether :func:`fuse` (same gates) could put any of the reports ``which`` (a mask) in an
    event with another report (:meth:`Candidates.touch`)."""
    return candidates(reports, gate_d2=gate_d2, time_k=time_k, frame=frame).touch(which)


def may_link(
    lon: ArrayLike,
    lat: ArrayLike,
    var_m2: ArrayLike,
    which: ArrayLike,
    *,
    gate_d2: float = GATE_D2_9999,
) -> bool:
    """A quick screen before :func:`linkable`, on position alone: whether some report ``which`` (a
    mask) lies within the position gate of another, for reports at ``lon``, ``lat`` (WGS84 deg)
    whose covariance is ``var_m2`` times the identity.

    Conservative, so that False lets a caller skip fusing: two reports within ``r`` metres of each
    other lie within the ellipse of the degrees that span at least ``r`` (:func:`pad_lon_deg` at
    the farther of their latitudes, :func:`pad_lat_deg`), and ``r`` is the gate's reach with 2 %
    and 10 m to spare. Costs ``len(which) x N`` distances: for a few reports among many.
    """
    new = np.flatnonzero(np.asarray(which, bool))
    if new.size == 0:
        return False
    lon_a, lat_a = np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    var = np.asarray(var_m2, np.float64)
    dlon = lon_a[None, :] - lon_a[new][:, None]
    dlon = np.where(np.abs(dlon) > 180.0, (dlon + 180.0) % 360.0 - 180.0, dlon)  # across 180 deg
    dlat = lat_a[None, :] - lat_a[new][:, None]
    far_lat = np.maximum(np.abs(lat_a[None, :]), np.abs(lat_a[new][:, None]))
    reach_m = np.sqrt(gate_d2 * (var[new][:, None] + var[None, :])) * 1.02 + 10.0
    close = np.hypot(dlon / pad_lon_deg(reach_m, far_lat), dlat / pad_lat_deg(reach_m)) <= 1.0
    close[np.arange(new.size), new] = False  # not with itself
    return bool(close.any())


def fuse(
    reports: Reports,
    *,
    gate_d2: float = GATE_D2_9999,
    time_k: float = 4.0,
    max_rounds: int = 64,
    frame: LocalFrame | None = None,
    pairs: Candidates | None = None,
) -> FusionResult:
    """Link the reports of each event and fuse them.

    Parameters
    ----------
    reports
        The reports.
    gate_d2
        Mahalanobis gate on position (squared; 18.42 = 99.99 % for 2 d.o.f.). The gates only bound
        the candidates; among them each cluster joins its mutual best (lowest chi-square of the
        position and time misfit), so wide gates cost little precision and lose few true links
        (a 99 % gate loses 1 % of true pairs by itself).
    time_k
        Time gate in combined standard deviations of the effective times (:func:`_effective_time`).
    max_rounds
        Rounds of mutual-best merging.
    frame
        The local plane to work in (default: centred on the reports). A caller fusing many small
        batches in one region may pass one it built once: building a frame costs milliseconds,
        and a plane centred within a few tens of km of the reports changes no distance that
        matters here.
    pairs
        :func:`candidates` of these reports with the same gates, when the caller has them already
        (its frame is then the one used).
    """
    n = len(reports)
    if pairs is not None and (pairs.gate_d2 != gate_d2 or pairs.time_k != time_k):
        raise ValueError("fuse: the candidate pairs were made with other gates")
    p = pairs if pairs is not None else candidates(reports, gate_d2=gate_d2, time_k=time_k, frame=frame)
    xy, info, t_eff, tw, kind, side, src = p.xy, p.info, p.t_eff, p.tw, p.kind, p.side, p.src
    a, b, d2, frame = p.a, p.b, p.d2, p.frame
    n_src = int(src.max()) + 1 if n else 1

    label = np.arange(n, dtype=np.intp)
    for _ in range(max_rounds):  # each round merges many clusters at once
        cl = _summaries(label, n, xy, info, t_eff, tw, reports.delay_max_s, kind, side)
        ca, cb = label[a], label[b]
        m = ca != cb
        ca, cb = np.minimum(ca[m], cb[m]), np.maximum(ca[m], cb[m])
        if len(ca) == 0:
            break
        e = np.unique(np.stack([ca, cb], 1), axis=0)
        ca, cb = e[:, 0], e[:, 1]
        dd = cl.xy[cb] - cl.xy[ca]
        cd2 = np.einsum("ni,nij,nj->n", dd, _inv2(cl.cov[ca] + cl.cov[cb]), dd)
        cdt = np.abs(cl.t[cb] - cl.t[ca])
        cgate = time_k * np.hypot(cl.t_sig[ca], cl.t_sig[cb])
        good = (
            (cd2 <= gate_d2)
            & (cdt <= cgate)
            & ((cl.kind[ca] == cl.kind[cb]) | (cl.kind[ca] == 0) | (cl.kind[cb] == 0))
            & ((cl.side[ca] == cl.side[cb]) | (cl.side[ca] == 0) | (cl.side[cb] == 0))
        )
        # at most one report per source per event: the two clusters must share no source
        members = np.argsort(label, kind="stable")
        size = np.bincount(label, minlength=n)
        start = np.concatenate([[0], np.cumsum(size)[:-1]])
        cs_keys = np.unique(label * n_src + src)
        e_idx = np.repeat(np.arange(len(ca)), size[ca])
        offs = np.arange(len(e_idx)) - np.repeat(np.cumsum(size[ca]) - size[ca], size[ca])
        rep = members[start[ca][e_idx] + offs]
        q = cb[e_idx] * n_src + src[rep]
        pos = np.clip(np.searchsorted(cs_keys, q), 0, len(cs_keys) - 1)
        clash = np.bincount(e_idx, cs_keys[pos] == q, len(ca)) > 0
        good &= ~clash
        ca, cb, cd2 = ca[good], cb[good], cd2[good]
        if len(ca) == 0:
            break
        # mutual best partners merge; the score is the chi-square of the position and time misfit
        score = cd2 + (time_k * cdt[good] / np.maximum(cgate[good], 1e-9)) ** 2
        best = np.full(n, np.inf)
        np.minimum.at(best, ca, score)
        np.minimum.at(best, cb, score)
        mutual = (score <= best[ca]) & (score <= best[cb])
        ca, cb = ca[mutual], cb[mutual]
        # a cluster may be mutual best with two partners on ties: keep the first
        _, first = np.unique(ca, return_index=True)
        ca, cb = ca[first], cb[first]
        keep_b = ~np.isin(cb, ca)
        ca, cb = ca[keep_b], cb[keep_b]
        _, first = np.unique(cb, return_index=True)
        ca, cb = ca[first], cb[first]
        if len(ca) == 0:
            break
        remap = np.arange(n)
        remap[cb] = ca
        label = remap[label]
    return _result(label, reports, xy, info, tw, kind, src, a, b, d2, frame)


def _result(
    label: IntArray, reports: Reports, xy: FloatArray, info: FloatArray, tw: FloatArray,
    kind: IntArray, src: IntArray, a: IntArray, b: IntArray, d2: FloatArray, frame: LocalFrame,
) -> FusionResult:  # fmt: skip
    _, ev = np.unique(label, return_inverse=True)
    ev = ev.ravel().astype(np.intp)
    n_ev = int(ev.max()) + 1 if len(ev) else 0
    t_eff, tw = _effective_time(reports)
    cl = _summaries(ev, n_ev, xy, info, t_eff, tw, reports.delay_max_s, kind, reports.sides())
    lon, lat = frame.to_lonlat(cl.xy[:, 0], cl.xy[:, 1])
    # independent sources add their log-odds; a source counts once per event (its best report)
    llr = report_log_odds(reports.reliability, reports.credibility)
    key = ev * (int(src.max()) + 1 if len(src) else 1) + src
    uk, inv = np.unique(key, return_inverse=True)
    best = np.full(len(uk), -np.inf)
    np.maximum.at(best, inv.ravel(), llr)
    ev_of_key = uk // (int(src.max()) + 1 if len(src) else 1)
    total = np.bincount(ev_of_key, best, n_ev)
    conf = 1.0 / (1.0 + np.exp(-total))
    n_sources = np.bincount(ev_of_key, minlength=n_ev).astype(np.intp)
    return FusionResult(ev, lon, lat, cl.cov, cl.t, conf, n_sources, a, b, d2, frame)


def _relabel(result: FusionResult, reports: Reports, label: IntArray) -> FusionResult:
    x, y = result.frame.to_xy(reports.lon, reports.lat)
    xy = np.stack([x, y], 1)
    info = _inv2(np.asarray(reports.cov_m2, np.float64))
    _, src = np.unique(reports.source_id.astype(str), return_inverse=True)
    return _result(
        label, reports, xy, info, _effective_time(reports)[1], kind_group(reports.kind),
        src.ravel().astype(np.intp), result.pair_a, result.pair_b, result.pair_d2, result.frame,
    )  # fmt: skip


def split(result: FusionResult, reports: Reports, report_idx: ArrayLike) -> FusionResult:
    """Move the given reports out of their events into one new event (an analyst's decision)."""
    label = result.event_of_report.copy()
    label[np.asarray(report_idx, np.intp)] = label.max() + 1 if len(label) else 0
    return _relabel(result, reports, label)


def merge(result: FusionResult, reports: Reports, events: ArrayLike) -> FusionResult:
    """Merge the given events into one (an analyst's decision; sources may then repeat)."""
    ev = np.asarray(events, np.intp)
    label = result.event_of_report.copy()
    label[np.isin(label, ev)] = ev.min()
    return _relabel(result, reports, label)


def summarise(reports: Reports, label: ArrayLike, *, frame: LocalFrame | None = None) -> FusionResult:
    """Events of a given grouping (e.g. as stored, after analysts' splits and merges).

    ``label`` assigns each report to a group (any integers); events come out in the order of the
    sorted distinct labels, with the same fused position, covariance, time and confidence
    :func:`fuse` gives. No candidate pairs are searched (``pair_*`` are empty). ``frame`` as in
    :func:`fuse`.
    """
    lab = np.asarray(label, np.intp)
    frame = frame if frame is not None else _centred_on(reports)
    x, y = frame.to_xy(reports.lon, reports.lat)
    _, src = np.unique(reports.source_id.astype(str), return_inverse=True)
    none = np.zeros(0, np.intp)
    return _result(
        lab, reports, np.stack([x, y], 1), _inv2(np.asarray(reports.cov_m2, np.float64)),
        _effective_time(reports)[1], kind_group(reports.kind), src.ravel().astype(np.intp),
        none, none, np.zeros(0), frame,
    )  # fmt: skip
