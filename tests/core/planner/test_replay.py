"""The replay against counts made by hand and against classifying everything again."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from truceline.core.agreement import Agreement, Zone
from truceline.core.incidents import IncidentBatch
from truceline.core.planner.replay import (
    classify_by_days,
    compare_findings,
    replay,
    replay_findings,
)
from truceline.core.planner.scenario import apply_scenario
from truceline.core.rules import Findings, classify

from .conftest import BASE, BUMP, _brute_distance_m

# -- replay ------------------------------------------------------------------------------------


def test_replay_counts_new_and_cleared_violations(base: Agreement) -> None:
    """Armed personnel 0-30 km north of the line; the buffer widened from 15 to 25 km."""
    rng = np.random.default_rng(11)
    n = 400
    lon = rng.uniform(34.5, 37.5, n)
    lat = rng.uniform(48.01, 48.27, n)  # north of the line (it bulges < 150 m north of 48 N)
    d = _brute_distance_m(BASE, lon, lat)
    keep = (np.abs(d - 15_000) > 50) & (np.abs(d - 25_000) > 50)
    lon, lat, d = lon[keep], lat[keep], d[keep]
    batch = IncidentBatch.from_columns(
        observed_at=np.full(lon.size, np.datetime64("2025-03-01T10:00", "us")),
        lon=lon,
        lat=lat,
        uncertainty_m=np.zeros(lon.size),
        kind=np.full(lon.size, "armed_personnel"),
    )
    wide = apply_scenario(
        base,
        zones=[Zone(id="buffer", type="band", bands={"N": (0.0, 25.0), "S": (0.0, 25.0)}, buffer=True)],
    )
    res = replay(batch, wide, base)
    assert res.before == int(np.sum(d < 15_000))
    assert res.after == int(np.sum(d < 25_000))
    assert res.new == int(np.sum((d >= 15_000) & (d < 25_000)))
    assert res.cleared == 0 and res.kept == res.before
    (ban,) = [r for r in res.by_rule if r.rule_id == "ban"]
    assert (ban.before, ban.after, ban.new) == (res.before, res.after, res.new)
    back = replay(batch, base, wide)
    assert (back.cleared, back.new) == (res.new, 0)
    assert res.after_by_party == {"N": res.after}
    # From stored findings (as the store returns them) the answer is the same.
    stored = classify(base, batch).findings
    again = compare_findings(stored, classify(wide, batch).findings, len(batch))
    assert (again.before, again.after, again.new) == (res.before, res.after, res.new)


def test_compare_findings_thresholds_and_keys() -> None:
    def f(inc: list[int], rule: list[str], p: list[float], who: list[str]) -> Findings:
        k = len(inc)
        return Findings(
            np.array(inc, np.intp), np.array(rule), np.full(k, "zone_ban"), np.array(who),
            np.array(p), np.full(k, ""),
        )  # fmt: skip

    before = f([0, 0, 1, 2], ["a", "b", "a", "a"], [0.9, 0.9, 0.4, 0.7], ["X", "X", "Y", "Y"])
    after = f([0, 2, 3, 3], ["a", "b", "a", "b"], [0.9, 0.6, 0.5, 0.2], ["X", "Y", "Y", "Y"])
    r = compare_findings(before, after, 4)
    # before: (0,a) (0,b) (2,a); after: (0,a) (2,b) (3,a)
    assert (r.before, r.after, r.kept, r.new, r.cleared) == (3, 3, 1, 2, 2)
    assert (r.incidents_before, r.incidents_after) == (2, 3)
    by = {x.rule_id: (x.before, x.after, x.kept, x.new, x.cleared) for x in r.by_rule}
    assert by == {"a": (2, 2, 1, 1, 1), "b": (1, 1, 0, 1, 1)}
    assert r.before_by_party == {"X": 2, "Y": 1} and r.after_by_party == {"X": 1, "Y": 2}


def _mixed_history(n: int, seed: int = 4) -> IncidentBatch:
    """Fire with origins and with bearings only, tanks (a daily cap), personnel, over five days."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(34.3, 37.7, n)  # not beyond the line's ends (Monte Carlo there is slow)
    lat = rng.uniform(47.6, 48.5, n)
    kind = rng.choice(np.array(["explosion", "armed_personnel", "heavy_weapon"]), n)
    wc = np.where(kind == "armed_personnel", "", rng.choice(np.array(["art", "art", "tank"]), n))
    r = rng.random(n)
    expl = kind == "explosion"
    olon = np.where(expl & (r < 0.6), lon + rng.normal(0, 0.1, n), np.nan)
    olat = np.where(expl & (r < 0.6), lat + rng.normal(0, 0.1, n), np.nan)
    t0 = np.datetime64("2025-02-01T00:00", "us")
    return IncidentBatch.from_columns(
        observed_at=t0 + rng.integers(0, 5 * 86_400, n).astype("timedelta64[s]"),
        lon=lon,
        lat=lat,
        uncertainty_m=rng.uniform(50, 3000, n),
        kind=kind,
        weapon_class=wc,
        origin_lon=olon,
        origin_lat=olat,
        origin_uncertainty_m=np.where(np.isfinite(olon), rng.uniform(100, 3000, n), np.nan),
        bearing_deg=np.where(expl & (r > 0.95), rng.uniform(0, 360, n), np.nan),
    )


def _rows(f: Findings) -> list[tuple[int, str, str, float]]:
    o = np.lexsort((f.rule_id, f.incident))
    return list(
        zip(f.incident[o].tolist(), f.rule_id[o].tolist(), f.responsible[o].tolist(),
            f.probability[o].tolist(), strict=True)
    )  # fmt: skip


@pytest.mark.parametrize("change", ["line", "zones", "both"])
def test_replay_reclassifies_only_what_the_change_reaches(base: Agreement, change: str) -> None:
    wide = [Zone(id="buffer", type="band", bands={"N": (0.0, 10.0), "S": (0.0, 10.0)}, buffer=True)]
    after = apply_scenario(
        base,
        line=shapely.LineString(BUMP) if change in ("line", "both") else None,
        zones=wide if change in ("zones", "both") else (),
    )
    batch = _mixed_history(1500)
    stored = classify(base, batch).findings
    got = replay_findings(batch, base, after, stored)
    full = classify(after, batch).findings
    assert _rows(got.findings) == _rows(full)
    assert got.reclassified.mean() > 0.02 and (~got.reclassified).sum() >= 50  # both paths taken
    assert np.any(np.isfinite(batch.origin_lon[~got.reclassified]))
    res = replay(batch, after, stored, stored_under=base)
    assert (res.after, res.new) == (
        compare_findings(stored, full, len(batch)).after,
        compare_findings(stored, full, len(batch)).new,
    )


def test_classify_by_days_equals_one_call(base: Agreement) -> None:
    batch = _mixed_history(1500, seed=9)  # five days, about 300 incidents a day
    one = classify(base, batch).findings
    assert any(r == "cap" for r in one.rule_id.tolist())  # daily caps are exercised
    for rows in (400, 250, 10_000):  # blocks of one or more whole days; a day above the limit
        assert _rows(classify_by_days(base, batch, max_rows=rows)) == _rows(one)
