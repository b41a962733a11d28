"""`truceline relink`: a day's reports imported in the order they arrived, in several batches,
end with the links, possible duplicates and expected count of one batch of the same reports
once the day is fused again (the day's final pass)."""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.geodesy import GEOD

runner = CliRunner()
UKR = str(Path(__file__).resolve().parents[2] / "examples" / "ukraine-2024")
DAY = dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
#: (source type, chance it reports an event, stated 1-sigma m, late by up to s, arrives after s)
SOURCES = (
    ("acoustic", 0.5, 10.0, 0.0, 30.0),
    ("camera", 0.5, 80.0, 0.0, 120.0),
    ("patrol", 0.8, 600.0, 900.0, 1200.0),
    ("party_complaint", 0.5, 1000.0, 1200.0, 2400.0),
)


def _mix(seed: int = 3, n_events: int = 40) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Events over an hour in a 4 km square on the example's line, each reported by some of
    :data:`SOURCES` (positions drawn from the stated uncertainty; people's times to the minute,
    late); the reports and when each arrives (s after midnight). Made here, not by the
    simulator."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 3600.0, n_events)
    elon, elat, _ = GEOD.fwd(
        np.full(n_events, 37.87), np.full(n_events, 48.6), rng.uniform(0, 360, n_events),
        2000.0 * np.sqrt(rng.uniform(0, 1, n_events)),
    )  # fmt: skip
    rows: list[dict[str, Any]] = []
    arrive: list[float] = []
    for e in range(n_events):
        for st, share, sig, late_s, after_s in SOURCES:
            if rng.random() >= share:
                continue
            ts = t[e] + rng.uniform(0.0, late_s)
            human = late_s > 0
            if human:
                ts = 60.0 * round(ts / 60.0)
            d = sig * np.sqrt(-2.0 * np.log(1.0 - rng.random()))
            lon, lat, _ = GEOD.fwd(elon[e], elat[e], rng.uniform(0, 360), d)
            rows.append(
                {
                    "id": f"R{len(rows):03d}",
                    "observed_at": (DAY + dt.timedelta(seconds=float(ts))).isoformat(),
                    "time_precision": "minute" if human else "second",
                    "lon": round(float(lon), 7),
                    "lat": round(float(lat), 7),
                    "uncertainty_m": sig,
                    "kind": "explosion",
                    "source_type": st,
                    "reliability": "C" if human else "B",
                    "credibility": 3 if human else 2,
                }
            )
            arrive.append(float(ts + rng.uniform(0.2, 1.0) * after_s))
    return rows, np.array(arrive)


def _write(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _import(csv_path: Path, db: Path) -> None:
    res = runner.invoke(app, ["import", str(csv_path), "-a", UKR, "--db", str(db)])
    assert res.exit_code == 0, res.output


def _state(db: Path) -> tuple[set[frozenset[str]], set[tuple[str, str]], float]:
    """The events (as sets of report ids), the possible duplicates, and the sum of the
    probabilities of the possible and weighed pairs."""
    con = sqlite3.connect(db)
    groups: dict[int, set[str]] = {}
    for rid, ev in con.execute("SELECT report_id, event_id FROM incidents WHERE event_id IS NOT NULL"):
        groups.setdefault(ev, set()).add(rid)
    q = (
        "SELECT a.report_id, b.report_id, p.probability FROM fusion_pairs p JOIN incidents a "
        "ON a.pk = p.a_pk JOIN incidents b ON b.pk = p.b_pk WHERE p.status = ?"
    )
    offered = {(min(a, b), max(a, b)) for a, b, _ in con.execute(q, ("possible",))}
    mass = sum(p for _, _, p in con.execute(q, ("possible",))) + sum(
        p for _, _, p in con.execute(q, ("weighed",))
    )
    con.close()
    return {frozenset(g) for g in groups.values()}, offered, round(mass, 6)


def test_relink_gives_one_batchs_links_whatever_the_order_of_arrival(tmp_path: Path) -> None:
    rows, arrive = _mix()
    one = tmp_path / "one.db"
    _import(_write(rows, tmp_path / "all.csv"), one)
    streamed = tmp_path / "stream.db"
    slot = np.floor(arrive / 600.0)  # a batch per 10 minutes of arrivals
    for k, s in enumerate(np.unique(slot)):
        batch = [rows[i] for i in np.flatnonzero(slot == s)]
        _import(_write(batch, tmp_path / f"b{k}.csv"), streamed)
    before = _state(streamed)
    want = _state(one)
    assert want[0], "the mix links reports"
    assert before != want, "the order of arrival changes this mix's links (else nothing is shown)"
    res = runner.invoke(app, ["relink", "-a", UKR, "--db", str(streamed), "--date", "2025-03-03"])
    assert res.exit_code == 0, res.output
    assert _state(streamed) == want
    # the moves, the links and the pairs withdrawn and written are in the ledger
    res = runner.invoke(app, ["ledger", "verify", "--db", str(streamed)])
    assert res.exit_code == 0, res.output
    # fusing again what is already final changes nothing
    res = runner.invoke(app, ["relink", "-a", UKR, "--db", str(streamed), "--date", "2025-03-03"])
    assert res.exit_code == 0, res.output
    assert "0 reports moved" in res.output
    assert _state(streamed) == want
