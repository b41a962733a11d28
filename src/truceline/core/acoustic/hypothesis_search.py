"""The association's 3-sensor hypothesis search, compiled with numba.

For every seed detection: the closed-form source of each pair of detections at two of the seed's
nearest sensors (inside the windows the distance and the speed of sound allow), scored by the
detections it predicts at the sensors near the seed, and the best hypothesis kept. The
arithmetic is that of the NumPy reference (``associate._hypotheses``) operation for operation,
in the same order (sums of a row too: NumPy's pairwise summation is reproduced), so both give
the same hypotheses bit for bit; the compiled one visits each seed's few hundred hypotheses in
a loop instead of building arrays of them.

Compiled on first use and cached beside this file (numba's ``cache=True``), so a run of
``truceline locate`` after the first does not compile again.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

from truceline.core.arrays import BoolArray, FloatArray, IntArray

__all__ = ["best_hypotheses"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _search_left(keys: Any, x: float, lo: int, hi: int) -> int:
    """``np.searchsorted(keys[lo:hi], x) + lo`` (side left)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _row_sum(a: Any, n: int) -> float:
    """``np.sum`` of ``a[:n]`` in NumPy's order (pairwise: 8 partial sums from 8 terms on)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    if n > 128:  # NumPy recurses beyond 128 terms: halves, each a multiple of 8
        h = n // 2
        h -= h % 8
        return _row_sum(a, h) + _row_sum(a[h:], n - h)
    r0, r1, r2, r3 = a[0], a[1], a[2], a[3]
    r4, r5, r6, r7 = a[4], a[5], a[6], a[7]
    i = 8
    while i < n - (n % 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return float(0.0 + res)


@_jit
def _score(
    hx: float,
    hy: float,
    r0: float,
    ht0: float,
    wx: float,
    wy: float,
    ch: float,
    c2: float,
    sc_s: float,
    n_cols: int,
    sc: Any,
    sc_f: Any,
    sc_ok: Any,
    kx: Any,
    ky: Any,
    var_timing: Any,
    var_wind: Any,
    keys: Any,
    kdet: Any,
    blk: Any,
    stride: float,
    t_base: float,
    tol_s: float,
    tol_sigma: float,
    range_m: float,
    md: Any,
    zz: Any,
    need: int,
    order: Any,
) -> tuple[int, float]:
    """Match the hypothesis against the first ``n_cols`` scored sensors: detections ``md``,
    their count and cost (as ``associate._hypotheses``' ``score``); (-1, inf) as soon as fewer
    than ``need`` detections can match. The columns are visited in ``order`` (the likeliest
    misses first, so that a hypothesis that cannot win is left sooner); the cost is summed in
    column order all the same."""
    n_keys = len(keys)
    count = 0
    for k in range(n_cols):
        md[k] = -1
        zz[k] = 0.0
    for i in range(n_cols):
        if count + n_cols - i < need:
            return -1, math.inf
        k = order[i]
        if not sc_ok[k]:
            continue
        ex = kx[k] - hx
        ey = ky[k] - hy
        dk = math.hypot(ex, ey)
        if not dk <= range_m:
            continue
        wu = (wx * ex + wy * ey) / max(dk, 1e-3)
        tp = ht0 + dk / (ch + wu)
        e = sc_s * (dk - r0) / c2
        var = var_timing[k] + e * e + var_wind[k]
        tol = tol_s + tol_sigma * math.sqrt(var)
        kq = sc_f[k] * stride + (tp - t_base)
        # the sensor's own block of the keys (the keys of the others are more than a stride away)
        pos = _search_left(keys, kq, blk[sc[k]], blk[sc[k] + 1])
        dlo = abs(keys[pos - 1] - kq) if pos > 0 else math.inf
        dhi = abs(keys[pos] - kq) if pos < n_keys else math.inf
        below = dlo <= dhi
        dist = dlo if below else dhi
        if dist <= tol:
            md[k] = kdet[pos - 1] if below else kdet[pos]
            z = dist / tol
            zz[k] = z * z
            count += 1
    return count, _row_sum(zz, n_cols)


@_jit
def _kernel(
    seeds: Any,
    det_sensor: Any,
    det_t: Any,
    det_c: Any,
    det_w: Any,
    det_sc: Any,
    det_sw: Any,
    keys: Any,
    kdet: Any,
    blk: Any,
    stride: float,
    t_base: float,
    xy: Any,
    sigma_ms: Any,
    nb: Any,
    score_tbl: Any,
    pairs: Any,
    m_c: int,
    tol_s: float,
    tol_sigma: float,
    tol_rel: float,
    c_slack: float,
    range_m: float,
    n_pre: int,
    n_keep: int,
) -> tuple[Any, Any, Any, Any]:
    n_seeds = len(seeds)
    n_nb = nb.shape[1]
    n_sc = score_tbl.shape[1]
    n_pairs = pairs.shape[0]
    n_keys = len(keys)
    prescore = n_pre > 0 and n_pre < n_sc and n_keep > 0
    has = np.zeros(n_seeds, np.bool_)
    out = np.full((n_seeds, n_sc + 1), -1, np.int64)
    out_cnt = np.zeros(n_seeds, np.int64)
    out_cost = np.zeros(n_seeds)
    eps = 0.02
    # per seed: candidates, hypotheses, the score table's terms
    n_cand = np.zeros(n_nb, np.int64)
    cdet = np.zeros((n_nb, m_c), np.int64)
    ct = np.zeros((n_nb, m_c))
    cap_h = max(n_pairs * m_c * m_c * 2, 1)
    h_x = np.zeros(cap_h)
    h_y = np.zeros(cap_h)
    h_r = np.zeros(cap_h)
    h_t = np.zeros(cap_h)
    h_p = np.zeros(cap_h, np.int64)
    pair_order = np.zeros((max(n_pairs, 1), max(n_pre, 1)), np.int64)
    natural = np.arange(n_sc)
    kx = np.zeros(n_sc)
    ky = np.zeros(n_sc)
    sc = np.zeros(n_sc, np.int64)
    sc_f = np.zeros(n_sc)
    sc_ok = np.zeros(n_sc, np.bool_)
    var_timing = np.zeros(n_sc)
    var_wind = np.zeros(n_sc)
    md = np.zeros(n_sc, np.int64)
    zz = np.zeros(n_sc)
    keep_i = np.zeros(max(n_keep, 1), np.int64)
    keep_c = np.zeros(max(n_keep, 1), np.int64)
    keep_k = np.zeros(max(n_keep, 1))
    for s in range(n_seeds):
        d0 = seeds[s]
        s0 = det_sensor[d0]
        ts = det_t[d0]
        cs = det_c[d0]
        wx = det_w[d0, 0]
        wy = det_w[d0, 1]
        cap = tol_rel * cs / tol_sigma
        sc_s = min(det_sc[d0], cap)
        sw_s = min(det_sw[d0], cap)
        xs0 = xy[s0, 0]
        ys0 = xy[s0, 1]
        cs2 = cs * cs
        c_lo = cs * (1.0 - c_slack) - math.hypot(wx, wy)
        for j in range(n_nb):
            n_cand[j] = 0
            nbj = nb[s0, j]
            if nbj < 0:
                continue
            dx = xy[nbj, 0] - xs0
            dy = xy[nbj, 1] - ys0
            dist = math.sqrt(dx * dx + dy * dy)
            b0, b1 = blk[nbj], blk[nbj + 1]
            lo = _search_left(keys, nbj * stride + ((ts - eps) - t_base), b0, b1)
            hi = _search_left(keys, nbj * stride + ((ts + dist / c_lo + eps) - t_base), b0, b1)
            nc = min(max(hi - lo, 0), m_c)
            n_cand[j] = nc
            shift = (wx * xy[nbj, 0] + wy * xy[nbj, 1]) / cs2
            for m in range(nc):
                dm = kdet[min(lo + m, n_keys - 1)]
                cdet[j, m] = dm
                ct[j, m] = det_t[dm] + shift
        ts_c = ts + (wx * xs0 + wy * ys0) / cs2
        # the closed-form sources, in the reference's order: (pair, candidate at a, at b, root)
        n_h = 0
        for p in range(n_pairs):
            a = pairs[p, 0]
            b = pairs[p, 1]
            if n_cand[a] == 0 or n_cand[b] == 0:
                continue
            na = nb[s0, a]
            nbb = nb[s0, b]
            sax = xy[na, 0] - xs0
            say = xy[na, 1] - ys0
            sbx = xy[nbb, 0] - xs0
            sby = xy[nbb, 1] - ys0
            det2 = sax * sby - say * sbx
            ssa = sax * sax + say * say
            ssb = sbx * sbx + sby * sby
            if not abs(det2) > 1e-3 * (ssa + ssb):
                continue
            i00 = sby / det2
            i01 = (-say) / det2
            i10 = (-sbx) / det2
            i11 = sax / det2
            for m in range(n_cand[a]):
                da = cs * (ct[a, m] - ts_c)
                ba = (ssa - da * da) / 2.0
                for n in range(n_cand[b]):
                    db = cs * (ct[b, n] - ts_c)
                    bb = (ssb - db * db) / 2.0
                    px = i00 * ba + i01 * bb
                    py = i10 * ba + i11 * bb
                    qx = -(i00 * da + i01 * db)
                    qy = -(i10 * da + i11 * db)
                    qa = qx * qx + qy * qy - 1.0
                    qb = px * qx + py * qy
                    qc = px * px + py * py
                    disc = qb * qb - qa * qc
                    if not disc >= 0:
                        continue
                    sq = math.sqrt(max(disc, 0.0))
                    if abs(qa) > 1e-9:
                        r1 = (-qb + sq) / qa
                        r2 = (-qb - sq) / qa
                    else:
                        r1 = math.nan
                        r2 = math.nan
                    if not math.isfinite(r1):  # a linear equation: one root (or none)
                        r1 = -qc / (2 * qb) if abs(qa) <= 1e-9 and qb != 0 else math.nan
                    for r0 in (r1, r2):
                        if not (math.isfinite(r0) and r0 >= 0 and r0 <= range_m):
                            continue
                        hx = px + r0 * qx + xs0
                        hy = py + r0 * qy + ys0
                        u0 = (wx * (xs0 - hx) + wy * (ys0 - hy)) / max(r0, 1e-3)
                        h_x[n_h] = hx
                        h_y[n_h] = hy
                        h_r[n_h] = r0
                        h_t[n_h] = ts - r0 / (cs + u0)
                        h_p[n_h] = p
                        n_h += 1
        if n_h == 0:
            continue
        has[s] = True
        sig_0 = sigma_ms[s0] * 1e-3
        for k in range(n_sc):
            sk = score_tbl[s0, k]
            sc_ok[k] = sk >= 0
            skc = sk if sk >= 0 else 0
            sc[k] = skc
            sc_f[k] = skc
            kx[k] = xy[skc, 0]
            ky[k] = xy[skc, 1]
            sig_k = sigma_ms[skc] * 1e-3
            var_timing[k] = sig_k * sig_k + sig_0 * sig_0
            bl = math.hypot(kx[k] - xs0, ky[k] - ys0)
            vw = sw_s * bl / cs2
            var_wind[k] = vw * vw
        n_kept = 0
        if prescore:
            # per pair, the prescored columns other than the seed's and the pair's sensors
            # (those the pair's sources pass through) first
            for p in range(n_pairs):
                na = nb[s0, pairs[p, 0]]
                nbb = nb[s0, pairs[p, 1]]
                i = 0
                for late in range(2):
                    for k in range(n_pre):
                        sk = score_tbl[s0, k]
                        own = sk >= 0 and (sk == s0 or sk == na or sk == nbb)  # noqa: SIM109 - numba
                        if own == (late == 1):
                            pair_order[p, i] = k
                            i += 1
            # the n_keep best (most detections, then least cost, then first) on the nearest few
            for h in range(n_h):
                # a hypothesis that cannot match as many detections as the last kept one is
                # left as soon as that shows (it would not be kept: the same choice, sooner)
                need = keep_c[n_keep - 1] if n_kept == n_keep else 0
                c1, k1 = _score(
                    h_x[h],
                    h_y[h],
                    h_r[h],
                    h_t[h],
                    wx,
                    wy,
                    cs,
                    cs2,
                    sc_s,
                    n_pre,
                    sc,
                    sc_f,
                    sc_ok,
                    kx,
                    ky,
                    var_timing,
                    var_wind,
                    keys,
                    kdet,
                    blk,
                    stride,
                    t_base,
                    tol_s,
                    tol_sigma,
                    range_m,
                    md,
                    zz,
                    need,
                    pair_order[h_p[h]],
                )
                if c1 < 0:
                    continue
                pos = n_kept
                while pos > 0 and (
                    c1 > keep_c[pos - 1] or (c1 == keep_c[pos - 1] and k1 < keep_k[pos - 1])
                ):
                    pos -= 1
                if pos >= n_keep:
                    continue
                last = min(n_kept, n_keep - 1)
                for q in range(last, pos, -1):
                    keep_i[q] = keep_i[q - 1]
                    keep_c[q] = keep_c[q - 1]
                    keep_k[q] = keep_k[q - 1]
                keep_i[pos] = h
                keep_c[pos] = c1
                keep_k[pos] = k1
                n_kept = min(n_kept + 1, n_keep)
            keep_i[:n_kept].sort()
        best_c = -1
        best_k = math.inf
        first = True
        n_full = n_kept if prescore else n_h
        for q in range(n_full):
            h = keep_i[q] if prescore else q
            c, kk = _score(
                h_x[h],
                h_y[h],
                h_r[h],
                h_t[h],
                wx,
                wy,
                cs,
                cs2,
                sc_s,
                n_sc,
                sc,
                sc_f,
                sc_ok,
                kx,
                ky,
                var_timing,
                var_wind,
                keys,
                kdet,
                blk,
                stride,
                t_base,
                tol_s,
                tol_sigma,
                range_m,
                md,
                zz,
                0,
                natural,
            )
            if first or c > best_c or (c == best_c and kk < best_k):
                first = False
                best_c = c
                best_k = kk
                for k in range(n_sc):
                    out[s, k] = md[k]
        out_cost[s] = best_k
        seen = False
        for k in range(n_sc):
            if out[s, k] == d0:
                seen = True
        if not seen:
            out[s, n_sc] = d0
        cnt = 0
        for k in range(n_sc + 1):
            if out[s, k] >= 0:
                cnt += 1
        out_cnt[s] = cnt
    return has, out, out_cnt, out_cost


def best_hypotheses(
    seeds: IntArray,
    det_sensor: IntArray,
    det_t: FloatArray,
    det_c: FloatArray,
    det_w: FloatArray,
    det_sc: FloatArray,
    det_sw: FloatArray,
    index_keys: FloatArray,
    index_det: IntArray,
    stride: float,
    t_base: float,
    xy: FloatArray,
    timing_sigma_ms: FloatArray,
    nb: IntArray,
    score_tbl: IntArray,
    pairs: IntArray,
    *,
    max_candidates: int,
    tol_s: float,
    tol_sigma: float,
    tol_rel: float,
    c_slack: float,
    range_m: float,
    n_prescore: int,
    n_keep: int,
) -> tuple[BoolArray, IntArray, IntArray, FloatArray]:
    """Best 3-sensor hypothesis of each seed (see ``associate._hypotheses``, which this computes).

    Returns whether each seed has a hypothesis, its detections ((S, K + 1): the matched detection
    at each of the K scored sensors, then the seed when not among them; -1 padded), their count
    and the hypothesis' cost.
    """

    def i64(a: IntArray) -> IntArray:
        return np.ascontiguousarray(a, np.int64)

    def f64(a: FloatArray) -> FloatArray:
        return np.ascontiguousarray(a, np.float64)

    # where each sensor's detections start in the keys (sensor k's keys lie in [k, k + 1) strides)
    n_sensors = len(timing_sigma_ms)
    blk = np.searchsorted(index_keys, np.arange(n_sensors + 1) * float(stride))
    has, dets, cnt, cost = _kernel(
        i64(seeds), i64(det_sensor), f64(det_t), f64(det_c), f64(det_w), f64(det_sc), f64(det_sw),
        f64(index_keys), i64(index_det), i64(blk), float(stride), float(t_base), f64(xy),
        f64(timing_sigma_ms), i64(nb), i64(score_tbl), i64(pairs), int(max_candidates),
        float(tol_s), float(tol_sigma), float(tol_rel), float(c_slack), float(range_m),
        int(n_prescore), int(n_keep),
    )  # fmt: skip
    return (
        np.asarray(has, bool),
        np.asarray(dets, np.intp),
        np.asarray(cnt, np.intp),
        np.asarray(cost, np.float64),
    )
