"""Replay: a stored incident history run under another scenario, violations kept, new and cleared.

:func:`replay` classifies the history with the same rule engine
(:func:`truceline.core.rules.classify`); with stored findings, only the incidents the change can
reach are classified again (:func:`replay_findings`), whole days at a time
(:func:`classify_by_days`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from truceline.core.agreement import Agreement, RuleType
from truceline.core.arrays import BoolArray, FloatArray
from truceline.core.geodesy import LineIndex, ecef
from truceline.core.incidents import IncidentBatch
from truceline.core.planner._line import line_parts
from truceline.core.rules import Findings, classify

__all__ = [
    "ReplayFindings",
    "ReplayResult",
    "RuleReplay",
    "classify_by_days",
    "compare_findings",
    "merge_replays",
    "replay",
    "replay_findings",
]


@dataclass(frozen=True, slots=True)
class RuleReplay:
    """Violations of one rule before and after."""

    rule_id: str
    before: int
    after: int
    kept: int
    new: int
    cleared: int


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """How a history's violations change from one scenario to another.

    A violation is a finding with probability >= ``threshold``; it is the same violation when the
    same incident breaks the same rule.
    """

    n_incidents: int
    threshold: float
    before: int
    after: int
    kept: int
    new: int
    cleared: int
    incidents_before: int
    incidents_after: int
    by_rule: tuple[RuleReplay, ...]
    after_by_party: dict[str, int]
    before_by_party: dict[str, int]


def compare_findings(
    before: Findings, after: Findings, n_incidents: int, *, threshold: float = 0.5
) -> ReplayResult:
    """Violations kept, new and cleared between two sets of findings on the same incidents."""
    b = before.probability >= threshold
    a = after.probability >= threshold
    rules, code = np.unique(np.concatenate([before.rule_id[b], after.rule_id[a]]), return_inverse=True)
    nr = max(rules.size, 1)
    kb = before.incident[b].astype(np.int64) * nr + code[: int(b.sum())]
    ka = after.incident[a].astype(np.int64) * nr + code[int(b.sum()) :]
    kb, ka = np.unique(kb), np.unique(ka)
    kept_b = np.isin(kb, ka, assume_unique=True)
    kept_a = np.isin(ka, kb, assume_unique=True)

    def per_rule(keys: NDArray[np.int64], mask: BoolArray | None = None) -> NDArray[np.int64]:
        k = keys if mask is None else keys[mask]
        return np.bincount((k % nr).astype(np.intp), minlength=rules.size)

    nb, na = per_rule(kb), per_rule(ka)
    nk, nn, nc = per_rule(ka, kept_a), per_rule(ka, ~kept_a), per_rule(kb, ~kept_b)
    by_rule = tuple(
        RuleReplay(str(rules[i]), int(nb[i]), int(na[i]), int(nk[i]), int(nn[i]), int(nc[i]))
        for i in range(rules.size)
    )

    def by_party(f: Findings, m: BoolArray) -> dict[str, int]:
        p, n = np.unique(f.responsible[m], return_counts=True)
        return {str(k): int(v) for k, v in zip(p, n, strict=True)}

    return ReplayResult(
        n_incidents=n_incidents,
        threshold=threshold,
        before=int(kb.size),
        after=int(ka.size),
        kept=int(kept_a.sum()),
        new=int((~kept_a).sum()),
        cleared=int((~kept_b).sum()),
        incidents_before=int(np.unique(before.incident[b]).size),
        incidents_after=int(np.unique(after.incident[a]).size),
        by_rule=by_rule,
        after_by_party=by_party(after, a),
        before_by_party=by_party(before, b),
    )


def merge_replays(parts: Sequence[ReplayResult]) -> ReplayResult:
    """One result from the results of disjoint parts of a history (blocks of whole days).

    A violation is one incident breaking one rule, so violations, incidents and counts per rule and
    party of disjoint sets of incidents add up: the sum equals the result of the whole history.
    """
    if not parts:
        raise ValueError("merge_replays needs at least one part")
    thresholds = {p.threshold for p in parts}
    if len(thresholds) != 1:
        raise ValueError(f"parts replayed with different thresholds: {sorted(thresholds)}")
    rules: dict[str, list[int]] = {}
    for p in parts:  # parts (tens) x rules (tens): not a hot path
        for r in p.by_rule:
            acc = rules.setdefault(r.rule_id, [0, 0, 0, 0, 0])
            for k, v in enumerate((r.before, r.after, r.kept, r.new, r.cleared)):
                acc[k] += v

    def parties(key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in parts:
            for party, n in getattr(p, key).items():
                out[party] = out.get(party, 0) + n
        return dict(sorted(out.items()))

    def total(key: str) -> int:
        return sum(int(getattr(p, key)) for p in parts)

    return ReplayResult(
        n_incidents=total("n_incidents"),
        threshold=parts[0].threshold,
        before=total("before"),
        after=total("after"),
        kept=total("kept"),
        new=total("new"),
        cleared=total("cleared"),
        incidents_before=total("incidents_before"),
        incidents_after=total("incidents_after"),
        by_rule=tuple(RuleReplay(k, *v) for k, v in sorted(rules.items())),
        after_by_party=parties("after_by_party"),
        before_by_party=parties("before_by_party"),
    )


def replay(
    batch: IncidentBatch,
    to: Agreement,
    before: Findings | Agreement,
    *,
    stored_under: Agreement | None = None,
    threshold: float = 0.5,
) -> ReplayResult:
    """Run ``batch`` under the agreement ``to`` and compare with the findings it had before.

    ``before`` is either the stored findings (``incident`` indexing ``batch``) or the agreement to
    classify the batch under as well. With stored findings and ``stored_under`` (the agreement they
    were made under), only the incidents the change can reach are classified again
    (:func:`replay_findings`).
    """
    if isinstance(before, Agreement):
        stored = classify_by_days(before, batch)
        after = replay_findings(batch, before, to, stored).findings
        return compare_findings(stored, after, len(batch), threshold=threshold)
    if stored_under is not None:
        after = replay_findings(batch, stored_under, to, before).findings
    else:
        after = classify_by_days(to, batch)
    return compare_findings(before, after, len(batch), threshold=threshold)


@dataclass(frozen=True, slots=True)
class ReplayFindings:
    """Findings of a batch under the new agreement and which incidents were classified again."""

    findings: Findings
    reclassified: BoolArray


def _segments(line: Any) -> NDArray[np.float64]:
    """Segments of a (multi)line as rows ``(x0, y0, x1, y1)``, each with its ends in sorted order."""
    segs = []
    for part in line_parts(line):
        segs.append(np.column_stack([part[:-1], part[1:]]))
    s = np.vstack(segs)
    flip = (s[:, 0] > s[:, 2]) | ((s[:, 0] == s[:, 2]) & (s[:, 1] > s[:, 3]))
    s[flip] = s[flip][:, [2, 3, 0, 1]]
    return s


def _differing_segments(a: Any, b: Any) -> list[FloatArray]:
    """The segments of either line that the other does not have, vertex for vertex (as parts)."""
    sa, sb = _segments(a), _segments(b)
    ka = {tuple(r) for r in sa.tolist()}  # line vertices (thousands): not a hot path
    kb = {tuple(r) for r in sb.tolist()}
    only = [r for r in sa.tolist() if tuple(r) not in kb] + [
        r for r in sb.tolist() if tuple(r) not in ka
    ]
    return [np.array([[r[0], r[1]], [r[2], r[3]]]) for r in only]


def _reach_m(sigma_m: FloatArray) -> FloatArray:
    """How far from a point the rules may look: sigma points, Monte Carlo draws (8 sigma), + 1 km."""
    return 8.0 * np.nan_to_num(sigma_m, nan=1000.0) + 1000.0


def classify_by_days(ag: Agreement, batch: IncidentBatch, *, max_rows: int = 200_000) -> Findings:
    """The findings of :func:`~truceline.core.rules.classify`, computed a block of whole days at a time.

    The rules judge each incident on its own except the daily count caps, so blocks of whole days
    give the same findings as one call, in bounded memory (``max_rows`` incidents a block, or one
    day if a day holds more).
    """
    n = len(batch)
    if n <= max_rows:
        return classify(ag, batch).findings if n else Findings.empty()
    day = batch.day.astype(np.int64)
    order = np.argsort(day, kind="stable")
    d = day[order]
    # Where each day starts in that order, and the end: blocks are cut only there.
    bounds = np.r_[np.flatnonzero(np.r_[True, d[1:] != d[:-1]]), n]
    parts: list[Findings] = []
    lo = 0
    while lo < n:  # blocks of days (tens), each one vectorised classification
        hi = int(bounds[np.searchsorted(bounds, lo + max_rows, side="right") - 1])
        if hi <= lo:  # one day holds more than max_rows: that day alone
            hi = int(bounds[np.searchsorted(bounds, lo, side="right")])
        idx = order[lo:hi]
        f = classify(ag, batch.take(idx)).findings
        parts.append(Findings(idx[f.incident], f.rule_id, f.rule_type, f.responsible,
                              f.probability, f.explanation))  # fmt: skip
        lo = hi
    return Findings.concat(parts)


def replay_findings(
    batch: IncidentBatch,
    before: Agreement,
    after: Agreement,
    stored: Findings,
    *,
    max_rows: int = 200_000,
) -> ReplayFindings:
    """Findings of ``batch`` under ``after``, reusing ``stored`` (made under ``before``) where they hold.

    An incident keeps its stored findings when nothing the rules look at differs between the two:
    every point it carries (its position, its origin) lies nearer the line's common part than the
    two lines' differing segments by more than twice its reach (8 sigma + 1 km; a crater bearing
    adds the weapon's range), so its distance, side, foot and neighbourhood on the line are the same
    under both; and it lies beyond every changed zone band by that reach. Everything else, and every
    count-cap candidate on a day with a changed incident (caps count a day's incidents together), is
    classified again by :func:`~truceline.core.rules.classify` under ``after`` (whole days at a
    time, :func:`classify_by_days`). Without an area of application of its own (the default area
    follows the line) the whole batch is classified again; so it is when a sample shows that most
    of it lies within reach (sorting would then cost more than it saves).
    """
    n = len(batch)
    redo = np.zeros(n, dtype=bool)
    same_shape = len(before.versions) == len(after.versions) and all(
        va.effective_from == vb.effective_from and va.rules == vb.rules
        for va, vb in zip(before.versions, after.versions, strict=True)
    )
    vidx = after.version_index_at(batch.day) if n else np.zeros(0, np.intp)
    if not same_shape or before.area is None or after.area is None:
        redo[:] = True
    elif n > 4 * _SAMPLE and _reached_share(batch, vidx, before, after) > _WORTH:
        redo[:] = True  # most of it is within reach: classifying it all costs less than sorting
    else:
        for v in np.unique(vidx):  # agreement versions (a handful)
            rows = np.flatnonzero(vidx == v)
            redo[rows] = _reached(batch, rows, before, after, int(v))
    if redo.any() and not redo.all():
        caps = [r for v in after.versions for r in v.rules if r.type == RuleType.count_cap]
        if caps:
            kinds = {k.value for r in caps for k in r.kinds}
            classes = {w for r in caps for w in r.weapon_classes}
            cand = np.isin(batch.kind, sorted(kinds)) | np.isin(batch.weapon_class, sorted(classes))
            redo |= cand & np.isin(batch.day, np.unique(batch.day[redo]))
    if redo.all():
        return ReplayFindings(classify_by_days(after, batch, max_rows=max_rows), redo)
    rows = np.flatnonzero(redo)
    new = classify_by_days(after, batch.take(rows), max_rows=max_rows)
    moved = Findings(rows[new.incident], new.rule_id, new.rule_type, new.responsible,
                     new.probability, new.explanation)  # fmt: skip
    keep = ~redo[stored.incident]
    kept = Findings(*(getattr(stored, f)[keep] for f in Findings.__dataclass_fields__))
    return ReplayFindings(Findings.concat([kept, moved]), redo)


_SAMPLE = 20_000  # incidents screened first, to see whether screening all of them pays
_WORTH = 0.5  # above this share within reach, the whole batch is classified again


def _reached_share(
    batch: IncidentBatch, vidx: NDArray[np.intp], before: Agreement, after: Agreement
) -> float:
    """Share of the incidents within reach of the change, estimated on a fixed random sample."""
    pick = np.sort(np.random.default_rng(0).choice(len(batch), size=_SAMPLE, replace=False))
    hit = np.zeros(pick.size, dtype=bool)
    for v in np.unique(vidx[pick]):  # agreement versions (a handful)
        sel = np.flatnonzero(vidx[pick] == v)
        hit[sel] = _reached(batch, pick[sel], before, after, int(v))
    return float(hit.mean())


def _reached(
    batch: IncidentBatch, rows: NDArray[np.intp], before: Agreement, after: Agreement, v: int
) -> BoolArray:
    """Which incidents of one version the change between the two agreements can reach."""
    va, vb = before.versions[v], after.versions[v]
    if set(va.reference_lines) != set(vb.reference_lines) or any(
        not g.equals(vb.reference_lines[k]) for k, g in va.reference_lines.items()
    ):
        return np.ones(rows.size, dtype=bool)
    za = {z.id: z for z in va.zones}
    zb = {z.id: z for z in vb.zones}
    changed = [k for k in set(za) | set(zb) if za.get(k) != zb.get(k)]
    if any(z.type == "polygon" for k in changed for z in (za.get(k), zb.get(k)) if z is not None):
        return np.ones(rows.size, dtype=bool)
    edge_m = 1000.0 * max(
        (hi for k in changed for z in (za.get(k), zb.get(k)) if z is not None
         for _, hi in z.bands.values()),
        default=-np.inf,
    )  # fmt: skip
    line = _VertexBounds(line_parts(va.line))
    parts = _differing_segments(va.line, vb.line)
    diff = _VertexBounds(parts) if parts else None
    lon, lat = batch.lon[rows], batch.lat[rows]
    reach = _reach_m(batch.uncertainty_m[rows])
    bearing = np.isfinite(batch.bearing_deg[rows]) & ~np.isfinite(batch.origin_lon[rows])
    if bearing.any():
        far = {w.id: (w.max_range_km or 20.0) for w in after.weapon_classes}
        rng_km = np.array([far.get(w, 20.0) for w in batch.weapon_class[rows][bearing].tolist()])
        reach[bearing] += 1000.0 * np.maximum(rng_km, 20.0)
    lo, hi = line.bounds_m(lon, lat)
    out = lo < edge_m + reach
    if diff is not None:
        out |= diff.bounds_m(lon, lat)[0] <= hi + 2.0 * reach + 1.0
        has_o = np.flatnonzero(np.isfinite(batch.origin_lon[rows]))
        if has_o.size:
            r = rows[has_o]
            olon, olat = batch.origin_lon[r], batch.origin_lat[r]
            oreach = _reach_m(batch.origin_uncertainty_m[r])
            _, ohi = line.bounds_m(olon, olat)
            out[has_o] |= diff.bounds_m(olon, olat)[0] <= ohi + 2.0 * oreach + 1.0
    return out


class _VertexBounds:
    """Bounds on the geodesic distance (m) from points to a line, from its vertices alone.

    The line is densified along its geodesics (vertices ``step_m`` apart) and the vertices put in a
    KD-tree in ECEF. With ``c`` the chord to the nearest vertex, the distance ``d`` to the line obeys
    ``c - step_m / 2 <= d <= arc(c)`` (the foot is within half a step of a vertex; an arc is longer
    than its chord, by ``c^3 / 24 R^2`` at most). Cheaper than an exact query for millions of points.
    """

    def __init__(self, parts: Sequence[FloatArray], step_m: float = 500.0) -> None:
        idx = LineIndex(parts, max_segment_m=step_m)
        self.step_m = float(idx.segment_length_m.max()) if idx.lon.size > 1 else step_m
        self.tree = cKDTree(idx.xyz)

    def bounds_m(self, lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
        chord, _ = self.tree.query(ecef(lon, lat))
        chord = np.asarray(chord, dtype=np.float64)
        r_min = 6_335_000.0  # the smallest radius of curvature on WGS84 (meridional, at the equator)
        upper = chord + chord**3 / (24.0 * r_min**2) + 1.0
        return np.maximum(chord - self.step_m / 2.0 - 1.0, 0.0), upper
