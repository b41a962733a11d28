"""Benchmark: replay a year of stored history under a new line, against re-ingesting it.

A year of simulated monitoring on the Ukraine example (``--n`` incidents, 3,000,000 by default, over
365 days from the agreement's first day; most of them within a few tens of km of the line, a mix of
kinds, weapon classes, fire with origins and a few bearings only) is generated with vectorised code,
adjudicated under the first scenario (what ingest stored), then:

- replay: the same history classified under another scenario's line (``--to``) with the same rule
  engine and compared, violation by violation, with the stored findings (the bar: under a minute);
- with ``--store``: the history and its findings written to SQLite, then replayed from the store as
  ``truceline plan replay`` does (reading included);
- re-ingest, the alternative: the store's own ingest path (records validated, hashed, adjudicated
  and inserted into a fresh SQLite database) on ``--reingest`` incidents of the same history, its rate
  extrapolated to the whole year (re-ingesting millions through it would take the better part of an
  hour; the rate is flat in the batch size).

Run: ``make bench`` or ``.venv/bin/python benchmarks/replay.py [--n 3000000] [--store]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from truceline.core.agreement import Agreement  # noqa: E402
from truceline.core.geodesy import GEOD  # noqa: E402
from truceline.core.incidents import Incident, IncidentBatch  # noqa: E402
from truceline.core.planner import (  # noqa: E402
    apply_scenario,
    classify_by_days,
    compare_findings,
    replay_findings,
)
from truceline.core.rules import Findings, classify  # noqa: E402
from truceline.io.scenarios import load_scenarios  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

_KINDS = np.array(
    ["explosion", "small_arms_fire", "heavy_weapon", "armed_personnel", "vehicle_movement",
     "drone_flight", "muzzle_flash", "fortification_works", "movement_restriction"]
)  # fmt: skip
_KIND_P = np.array([0.34, 0.2, 0.1, 0.1, 0.1, 0.08, 0.05, 0.02, 0.01])


def make_history(ag: Agreement, n: int, days: int = 365, seed: int = 2025) -> IncidentBatch:
    """``n`` incidents over ``days`` days, placed around the line (vectorised throughout)."""
    rng = np.random.default_rng(seed)
    cv = ag.compiled(0)
    v = rng.integers(0, cv.line.lon.size, n)
    # 70 % within a few km (exponential, 8 km), the rest spread over 60 km either side.
    dist = np.where(rng.random(n) < 0.7, rng.exponential(8_000.0, n), rng.uniform(0, 60_000.0, n))
    lon, lat, _ = GEOD.fwd(cv.line.lon[v], cv.line.lat[v], rng.uniform(0, 360, n), dist)
    kind = _KINDS[rng.choice(_KINDS.size, n, p=_KIND_P)]
    classes = np.array(sorted(ag.weapon_class_ids))
    armed = np.isin(kind, ["explosion", "heavy_weapon", "muzzle_flash", "vehicle_movement"])
    wc = np.where(armed & (rng.random(n) < 0.8), classes[rng.integers(0, classes.size, n)], "")
    # A fifth of the explosions come with an origin 2-20 km away (located by the acoustic network or
    # paired with a muzzle flash); 0.5 % with a crater bearing only; the rest were heard or seen.
    expl = kind == "explosion"
    r = rng.random(n)
    has_o = expl & (r < 0.2)
    olon, olat, _ = GEOD.fwd(lon, lat, rng.uniform(0, 360, n), rng.uniform(2_000, 20_000, n))
    bearing = np.where(expl & (r > 0.995), rng.uniform(0, 360, n), np.nan)
    start = np.datetime64(ag.effective_from, "s")
    t = start + rng.integers(0, days * 86_400, n).astype("timedelta64[s]")
    order = np.argsort(t, kind="stable")
    cols = {
        "id": np.char.add("h", np.arange(n).astype(str)),
        "observed_at": t.astype("datetime64[us]"),
        "lon": np.asarray(lon),
        "lat": np.asarray(lat),
        "uncertainty_m": np.clip(rng.lognormal(np.log(300.0), 0.8, n), 10.0, 20_000.0),
        "kind": kind,
        "weapon_class": wc,
        "origin_lon": np.where(has_o, olon, np.nan),
        "origin_lat": np.where(has_o, olat, np.nan),
        "origin_uncertainty_m": np.where(has_o, 500.0, np.nan),
        "bearing_deg": bearing,
    }
    return IncidentBatch.from_columns(**{k: c[order] for k, c in cols.items()})


def _incidents(b: IncidentBatch, rows: np.ndarray) -> list[Incident]:
    """Records as ingest receives them (validated models), for the re-ingest baseline."""

    def opt(x: float) -> float | None:
        return None if np.isnan(x) else float(x)

    out = []
    for i in rows.tolist():  # the baseline's own per-record path, on purpose
        rec = {
            "id": str(b.id[i]),
            "observed_at": b.observed_at[i].astype(dt.datetime).replace(tzinfo=dt.UTC),
            "lon": float(b.lon[i]),
            "lat": float(b.lat[i]),
            "uncertainty_m": float(b.uncertainty_m[i]),
            "kind": str(b.kind[i]),
            "weapon_class": str(b.weapon_class[i]) or None,
            "origin_lon": opt(b.origin_lon[i]),
            "origin_lat": opt(b.origin_lat[i]),
            "origin_uncertainty_m": opt(b.origin_uncertainty_m[i]),
            "bearing_deg": opt(b.bearing_deg[i]),
            "source_type": str(b.source_type[i]),
        }
        out.append(Incident.model_validate(rec))
    return out


def write_store(db: Path, ag: Agreement, b: IncidentBatch, f: Findings) -> None:
    """The history and its findings in SQLite, as ingest would have left them.

    Bulk rows through the driver (``executemany``), in the layout SQLAlchemy stores (timestamps as
    ``YYYY-MM-DD HH:MM:SS.ffffff``, UTC): setting up the benchmark, not part of what is measured.
    """
    from truceline.store.db import make_engine, session_factory, upgrade

    engine = make_engine(str(db))
    upgrade(engine)
    n = len(b)
    stamp = np.char.replace(np.datetime_as_string(b.observed_at, unit="us"), "T", " ")
    day = np.datetime_as_string(b.day, unit="D")
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def opt(x: np.ndarray) -> list[float | None]:
        return np.where(np.isnan(x), None, x).tolist()  # type: ignore[no-any-return]

    inc_cols = (
        "pk", "agreement_id", "report_id", "content_hash", "observed_at", "day", "time_precision",
        "lon", "lat", "uncertainty_m", "kind", "weapon_class", "count", "party", "origin_lon",
        "origin_lat", "origin_uncertainty_m", "bearing_deg", "source_type", "reliability",
        "credibility", "narrative", "side_party", "distance_km", "p_side", "zones", "sector",
        "received_at",
    )  # fmt: skip
    wc = np.where(b.weapon_class == "", None, b.weapon_class).tolist()
    columns = [
        (np.arange(n) + 1).tolist(), [ag.id] * n, b.id.tolist(), [""] * n, stamp.tolist(),
        day.tolist(), ["minute"] * n, b.lon.tolist(), b.lat.tolist(), b.uncertainty_m.tolist(),
        b.kind.tolist(), wc, [1] * n, [None] * n, opt(b.origin_lon), opt(b.origin_lat),
        opt(b.origin_uncertainty_m), opt(b.bearing_deg), b.source_type.tolist(), ["F"] * n, [6] * n,
        [""] * n, [""] * n, [0.0] * n, [0.0] * n, [""] * n, [""] * n, [now] * n,
    ]  # fmt: skip
    k = len(f)
    f_cols = ("incident_pk", "rule_id", "rule_type", "responsible", "probability", "explanation",
              "status", "created_at")  # fmt: skip
    f_columns = [
        (f.incident + 1).tolist(), f.rule_id.tolist(), f.rule_type.tolist(),
        f.responsible.tolist(), f.probability.tolist(), [""] * k, ["open"] * k, [now] * k,
    ]  # fmt: skip
    with session_factory(engine)() as session, session.begin():
        _register(session)
        conn = session.connection()
        for table, cols, data in (
            ("incidents", inc_cols, columns),
            ("findings", f_cols, f_columns),
        ):
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            rows = list(zip(*data, strict=True))
            if rows:
                conn.exec_driver_sql(sql, rows)


def reingest(ag: Agreement, b: IncidentBatch, rows: np.ndarray, db: Path) -> _Clock:
    """Time to re-ingest ``rows`` of the history through the store's ingest path."""
    from truceline.services.ingest import ingest_incidents
    from truceline.store.db import make_engine, session_factory, upgrade

    engine = make_engine(str(db))
    upgrade(engine)
    with session_factory(engine)() as session, session.begin():
        _register(session)  # set-up (a no-op when registered unchanged): not what is measured
    with _Clock() as clock:
        incs = _incidents(b, rows)
        with session_factory(engine)() as session, session.begin():
            ingest_incidents(session, ag, incs, list(range(len(incs))), source="bench")
    return clock


def _register(session: Session) -> None:
    """Register the example agreement (its files, revision, ledger entry) as the CLI would."""
    from truceline.context import SYSTEM
    from truceline.io.agreement_files import files_of_folder
    from truceline.services.agreement_store import register_agreement

    folder = ROOT / "examples" / "ukraine-2024"
    register_agreement(
        session, files_of_folder(folder), source=str(folder), actor=SYSTEM, now=dt.datetime.now(dt.UTC)
    )


class _Clock:
    """Wall and CPU seconds of a block (CPU time is what an idle machine's wall time would be)."""

    def __enter__(self) -> _Clock:
        self.w0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0

    def __str__(self) -> str:
        return f"{self.wall:.1f} s (CPU {self.cpu:.1f} s)"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--from", dest="src", default="frozen")
    ap.add_argument("--to", default="admin-borders")
    ap.add_argument("--reingest", type=int, default=20_000, help="incidents re-ingested for the rate")
    ap.add_argument("--store", action="store_true", help="also replay from a SQLite store")
    ap.add_argument("--check", type=int, default=100_000, help="incidents checked against a full run")
    args = ap.parse_args()
    scen = {s.id: s for s in load_scenarios(ROOT / "examples" / "ukraine-2024")}
    a, b_ag = scen[args.src].agreement, scen[args.to].agreement

    print(f"load average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with _Clock() as t_gen:
        hist = make_history(a, args.n)
    n = len(hist)
    with _Clock() as t_a:
        stored = classify_by_days(a, hist)
    print(
        f"history: {n:,} incidents over 365 days on {a.id} ({a.compiled(0).line_length_km:,.0f} km "
        f"line, scenario {args.src}); generated in {t_gen}; adjudicated under {args.src} in "
        f"{t_a} ({len(stored):,} findings)"
    )

    with _Clock() as t_replay:
        rf = replay_findings(hist, a, b_ag, stored)
        res = compare_findings(stored, rf.findings, n)
    print(
        f"replay under {args.to} ({b_ag.compiled(0).line_length_km:,.0f} km line): {t_replay} "
        f"({n / t_replay.wall:,.0f} incidents/s; target < 60 s), {rf.reclassified.mean():.0%} of the "
        f"incidents within reach of the change classified again; violations {res.before:,} -> "
        f"{res.after:,}: {res.kept:,} kept, {res.new:,} new, {res.cleared:,} cleared"
    )
    # A local change: the salient scenario's line alone (its zones and sectors left as they were).
    local = apply_scenario(a, line=scen["salient"].agreement.versions[0].line)
    with _Clock() as t_local:
        rl = replay_findings(hist, a, local, stored)
        res_l = compare_findings(stored, rl.findings, n)
    print(
        f"replay under the salient line alone ({local.compiled(0).line_length_km:,.0f} km, zones "
        f"unchanged): {t_local}, {rl.reclassified.mean():.0%} classified again; violations "
        f"{res_l.before:,} -> {res_l.after:,} ({res_l.new:,} new, {res_l.cleared:,} cleared)"
    )
    if args.check:
        k = min(args.check, n)
        sub = hist.take(np.arange(k))
        part = replay_findings(sub, a, local, classify(a, sub).findings).findings
        full = classify(local, sub).findings

        def rows(f: Findings) -> list[tuple[int, str, str, float]]:
            o = np.lexsort((f.rule_id, f.incident))
            cols = (f.incident[o], f.rule_id[o], f.responsible[o], f.probability[o])
            return list(zip(*(c.tolist() for c in cols), strict=True))

        same = rows(full) == rows(part)
        print(
            f"check on the first {k:,} incidents: the local replay's findings (only those within "
            f"reach classified again) equal a full classification: {same} ({len(full):,} findings)"
        )
        assert same

    with tempfile.TemporaryDirectory() as tmp:
        if args.store:
            with _Clock() as t_write:
                write_store(Path(tmp) / "history.db", a, hist, stored)
            from truceline.services.planner import replay_history
            from truceline.store.db import make_engine, session_factory

            engine = make_engine(str(Path(tmp) / "history.db"))
            with _Clock() as t_store, session_factory(engine)() as session:
                res2 = replay_history(session, list(scen.values()), to=args.to, from_=args.src)
            assert (res2.before, res2.after, res2.new) == (res.before, res.after, res.new)
            print(
                f"replay from the SQLite store (reading {n:,} incidents and {len(stored):,} findings "
                f"included): {t_store}; the store was written in {t_write} (bulk insert)"
            )
        k = min(args.reingest, n)
        rows = np.sort(np.random.default_rng(1).choice(n, size=k, replace=False))
        t_re = reingest(a, hist, rows, Path(tmp) / "reingest.db")
        full, full_cpu = t_re.wall * n / k, t_re.cpu * n / k
        print(
            f"re-ingest through the store's ingest path (validate, hash, adjudicate, insert): "
            f"{k:,} incidents in {t_re} ({k / t_re.wall:,.0f} incidents/s) -> the whole history "
            f"about {full:,.0f} s, CPU {full_cpu:,.0f} s ({full / 60:,.0f} min); replay is "
            f"{full / t_replay.wall:,.0f}x faster (CPU: {full_cpu / t_replay.cpu:,.0f}x)"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
