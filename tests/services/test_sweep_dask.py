"""Replay and sweeps in blocks of days, on a real Dask cluster: a ``dask scheduler`` and two
``dask worker`` processes started here, against the single-process paths.

The history is made here (incidents around the Ukraine example's line, over twelve days, with
fire, origins and a withdrawal-relevant weapon class), independent of ``truceline.core.simulate``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import truceline
from truceline.cli import app
from truceline.cli.plan import BLOCK_ROWS as CLI_BLOCK_ROWS
from truceline.core.incidents import Incident
from truceline.io.agreement_files import files_of_folder, load_agreement
from truceline.io.scenarios import load_scenarios
from truceline.services.ingest import ingest_incidents
from truceline.services.planner import replay_history
from truceline.services.sweep import BLOCK_ROWS, day_blocks, run_sweep
from truceline.store.db import make_engine, session_factory, upgrade

from ..conftest import EXAMPLES, register_folder
from ..live import free_port

UKR = EXAMPLES / "ukraine-2024"
N_DAYS = 12
runner = CliRunner()


def _history(n: int, seed: int = 11) -> list[Incident]:
    """``n`` incidents over 12 days around Selydove / Pokrovsk (where the salient scenario moves the
    line), a mix of kinds, some with an origin of fire, and a busy day (day 3) of its own."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(36.9, 37.9, n), rng.uniform(47.8, 48.5, n)
    kinds = rng.choice(["armed_personnel", "heavy_weapon", "explosion", "vehicle_movement"], n)
    day = np.where(rng.random(n) < 0.25, 3, rng.integers(0, N_DAYS, n))
    t0 = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    out = []
    for k in range(n):  # building the test's records
        rec: dict[str, object] = {
            "id": f"s{k}",
            "observed_at": t0 + dt.timedelta(days=int(day[k]), minutes=int(rng.integers(0, 1440))),
            "lon": float(lon[k]),
            "lat": float(lat[k]),
            "uncertainty_m": float(rng.uniform(50, 3000)),
            "kind": str(kinds[k]),
            "source_type": "patrol",
        }
        if kinds[k] in ("heavy_weapon", "explosion"):
            rec["weapon_class"] = ["tank", "artillery_lt_100mm", "mortar", "artillery_100mm_plus"][k % 4]
        if kinds[k] == "explosion" and k % 3 == 0:
            rec["origin_lon"] = float(lon[k] + rng.uniform(-0.2, 0.2))
            rec["origin_lat"] = float(lat[k] + rng.uniform(-0.1, 0.1))
            rec["origin_uncertainty_m"] = 400.0
        out.append(Incident.model_validate(rec))
    return out


@pytest.fixture(scope="module")
def history_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("sweep") / "history.db")
    ag = load_agreement(UKR)
    incs = _history(400)
    engine = make_engine(db)
    upgrade(engine)
    with session_factory(engine)() as session, session.begin():
        register_folder(session, UKR)
        ingest_incidents(session, ag, incs, list(range(len(incs))), source="test")
    engine.dispose()
    return db


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the dask scheduler exited: {log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"the dask scheduler did not listen on {port} within {timeout_s:g} s")


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``dask scheduler`` and two ``dask worker`` processes (one thread each) on free ports,
    running this checkout's code; stopped and waited for at the end."""
    from distributed import Client

    dask = str(Path(sys.executable).parent / "dask")
    env = dict(os.environ)
    src = str(Path(truceline.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--dashboard-address", ":0", "--no-show"]
    worker = [dask, "worker", address, "--nworkers", "1", "--nthreads", "1", "--host", "127.0.0.1"]
    worker += ["--no-dashboard", "--memory-limit", "2GB"]
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path_factory.mktemp("dask") / "dask.log"
    with log.open("wb") as out:
        try:
            procs.append(subprocess.Popen(scheduler, stdout=out, stderr=out, env=env))
            _wait_port(port, procs[0], log)
            for k in range(2):
                procs.append(
                    subprocess.Popen([*worker, "--name", f"w{k}"], stdout=out, stderr=out, env=env)
                )
            with Client(address, timeout="30s") as client:  # type: ignore[no-untyped-call]
                client.wait_for_workers(2, timeout=60)
            yield address
        finally:
            for p in reversed(procs):
                p.terminate()
            for p in reversed(procs):
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def test_blocks_are_whole_days_and_bounded(history_db: str) -> None:
    assert CLI_BLOCK_ROWS == BLOCK_ROWS
    ag = load_agreement(UKR)
    engine = make_engine(history_db)
    with session_factory(engine)() as session:
        blocks = day_blocks(session, ag.id, max_rows=60)
        assert sum(b.n for b in blocks) == 400 and len(blocks) >= 6
        busy = dt.date(2025, 4, 4)
        for b in blocks:
            assert b.since < b.until
            assert b.n <= 60 or (b.since, b.until) == (busy, busy + dt.timedelta(days=1))
        # Consecutive, no day in two blocks.
        assert all(a.until <= b.since for a, b in itertools.pairwise(blocks))
        since = day_blocks(session, ag.id, since=dt.date(2025, 4, 10), max_rows=60)
        assert since[0].since >= dt.date(2025, 4, 10) and sum(b.n for b in since) < 400
    engine.dispose()


def test_sweep_on_a_dask_cluster_equals_the_single_process_paths(
    history_db: str, dask_cluster: str
) -> None:
    files = files_of_folder(UKR)
    targets = ["salient", "admin-borders"]
    # The whole history in one process and one piece (the path before blocks).
    engine = make_engine(history_db)
    scen = load_scenarios(UKR)
    with session_factory(engine)() as session:
        whole = {t: replay_history(session, scen, to=t, from_="frozen") for t in targets}
        whole_re = replay_history(session, scen, to="salient", from_="frozen", recompute=True)
    engine.dispose()
    assert whole["salient"].new + whole["salient"].cleared > 0  # the line move changes something
    assert whole["admin-borders"] != whole["salient"]

    local = run_sweep(history_db, files, targets, from_="frozen", workers=1, max_rows=60)
    assert local.mode == "in-process" and local.blocks >= 6
    dist = run_sweep(history_db, files, targets, from_="frozen", scheduler=dask_cluster, max_rows=60)
    assert dist.mode == f"scheduler {dask_cluster}" and dist.blocks == local.blocks
    assert dist.workers == 2  # both worker processes replayed blocks
    for t in targets:
        assert dist.results[t] == local.results[t] == whole[t]
    re_dist = run_sweep(
        history_db, files, ["salient"], from_="frozen", recompute=True, scheduler=dask_cluster,
        max_rows=60,
    )  # fmt: skip
    assert re_dist.results["salient"] == whole_re


def test_plan_replay_and_sweep_commands_on_the_cluster(history_db: str, dask_cluster: str) -> None:
    def run(*args: str) -> str:
        res = runner.invoke(app, ["plan", *args, str(UKR), "--db", history_db, "--block-rows", "60"])
        assert res.exit_code == 0, res.output
        return res.output

    base = ["--from", "frozen", "--to", "salient"]
    one = run("replay", *base, "--workers", "1")
    on_cluster = run("replay", *base, "--scheduler", dask_cluster)
    assert "in-process" in one and f"scheduler {dask_cluster}" in on_cluster

    def figures(text: str) -> str:
        m = re.search(r"400 incidents: violations .*?incidents with a violation [\d,]+ -> [\d,]+", text,
                      re.S)  # fmt: skip
        assert m, text
        return m.group(0)

    assert figures(one) == figures(on_cluster)
    assert one.split("By rule")[1] == on_cluster.split("By rule")[1]

    sweep = run("sweep", "--from", "frozen", "--scheduler", dask_cluster)
    rows = {ln.split()[1]: ln for ln in sweep.splitlines() if re.match(r"\W+(salient|admin)", ln)}
    assert set(rows) == {"salient", "admin-borders"}, sweep
    after = re.search(r"-> ([\d,]+) under salient", one)
    assert after and after.group(1) in rows["salient"]


def test_an_unreachable_scheduler_is_one_clear_line(history_db: str) -> None:
    port = free_port()
    res = runner.invoke(app, ["plan", "replay", str(UKR), "--from", "frozen", "--to", "salient",
                              "--db", history_db, "--scheduler", f"tcp://127.0.0.1:{port}"])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "no Dask scheduler answers there" in res.output


def _history_parquet(
    path: Path, incs: list[Incident], *, bad: bool = True, shuffle: bool = False
) -> None:
    """The incidents as GeoParquet (typed columns and a WKB point), in day order unless ``shuffle``,
    with one bad row (a latitude of 123) when ``bad``; written with pyarrow here."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    order = sorted(range(len(incs)), key=lambda k: incs[k].observed_at)
    if shuffle:
        order = order[::-1]
    rows = [incs[k] for k in order]
    lat = [i.lat for i in rows]
    if bad:
        lat[len(lat) // 2] = 123.0
    cols = {
        "id": pa.array([i.id for i in rows]),
        "observed_at": pa.array([i.observed_at for i in rows], pa.timestamp("us", "UTC")),
        "uncertainty_m": pa.array([i.uncertainty_m for i in rows], pa.float64()),
        "kind": pa.array([i.kind.value for i in rows]),
        "weapon_class": pa.array([i.weapon_class for i in rows], pa.string()),
        "origin_lon": pa.array([i.origin_lon for i in rows], pa.float64()),
        "origin_lat": pa.array([i.origin_lat for i in rows], pa.float64()),
        "origin_uncertainty_m": pa.array([i.origin_uncertainty_m for i in rows], pa.float64()),
        "source_type": pa.array([i.source_type.value for i in rows]),
        "geometry": pa.array(
            shapely.to_wkb(shapely.points([i.lon for i in rows], lat)).tolist(), pa.binary()
        ),
    }
    geo = b'{"version":"1.1.0","primary_column":"geometry","columns":{"geometry":{"encoding":"WKB"}}}'
    pq.write_table(pa.table(cols).replace_schema_metadata({b"geo": geo}), path, row_group_size=50)


def test_a_geoparquet_history_replays_as_the_database_does(
    history_db: str, dask_cluster: str, tmp_path: Path
) -> None:
    """``--history FILE.parquet``: blocks of days read from the file, locally and on the cluster;
    the results equal the database's replay with ``recompute`` (the same incidents); a bad row is
    named and left out; a file out of day order is refused naming the row."""
    files = files_of_folder(UKR)
    targets = ["salient", "admin-borders"]
    src = tmp_path / "history.parquet"
    _history_parquet(src, _history(400))
    from_db = run_sweep(history_db, files, targets, from_="frozen", recompute=True, workers=1)
    local = run_sweep("", files, targets, from_="frozen", workers=1, max_rows=60, history=src)
    assert local.mode == "in-process" and local.blocks >= 6
    assert local.rows_read == 400 and [(r.id, r.field) for r in local.rejects] == [
        (local.rejects[0].id, "lat")
    ]
    dist = run_sweep(
        "", files, targets, from_="frozen", scheduler=dask_cluster, max_rows=60, history=src
    )
    assert dist.workers == 2 and dist.blocks == local.blocks
    # the database holds the bad row's incident with its right latitude: compare without it
    good = tmp_path / "good.parquet"
    _history_parquet(good, _history(400), bad=False)
    clean = run_sweep("", files, targets, from_="frozen", scheduler=dask_cluster, max_rows=60,
                      history=good)  # fmt: skip
    assert not clean.rejects
    for t in targets:
        assert clean.results[t] == from_db.results[t]
        assert dist.results[t] == local.results[t]
        assert dist.results[t].n_incidents == 399
    since = run_sweep("", files, ["salient"], from_="frozen", workers=1, max_rows=60, history=good,
                      since=dt.date(2025, 4, 10))  # fmt: skip
    db_since = run_sweep(history_db, files, ["salient"], from_="frozen", recompute=True, workers=1,
                         since=dt.date(2025, 4, 10))  # fmt: skip
    assert since.results == db_since.results and since.results["salient"].n_incidents < 400

    def cli(*args: str) -> str:
        res = runner.invoke(app, ["plan", "replay", str(UKR), "--from", "frozen", "--to", "salient",
                                  "--block-rows", "60", *args])  # fmt: skip
        assert res.exit_code == 0, res.output
        return res.output.split("By rule")[1]

    assert cli("--history", str(good), "--scheduler", dask_cluster) == cli(
        "--db", history_db, "--recompute", "--workers", "1"
    )
    backwards = tmp_path / "backwards.parquet"
    _history_parquet(backwards, _history(400), bad=False, shuffle=True)
    res = runner.invoke(app, ["plan", "replay", str(UKR), "--from", "frozen", "--to", "salient",
                              "--history", str(backwards), "--workers", "1"])  # fmt: skip
    assert res.exit_code == 2 and "in day order" in res.output and "row 2" in res.output, res.output
    res = runner.invoke(app, ["plan", "sweep", str(UKR), "--history", str(good)])
    assert res.exit_code == 2 and "--history needs --from" in res.output, res.output


def _layout_csv(path: Path, step_km: float) -> Path:
    """Sensors on a square grid of ``step_km`` over the history's area (written here)."""
    lon = np.arange(36.8, 38.0, step_km / 74.0)
    lat = np.arange(47.7, 48.6, step_km / 111.2)
    gx, gy = np.meshgrid(lon, lat)
    lines = ["sensor_id,lon,lat"] + [
        f"s{k},{x:.5f},{y:.5f}" for k, (x, y) in enumerate(zip(gx.ravel(), gy.ravel(), strict=True))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sensor_layouts_swept_on_the_cluster(history_db: str, dask_cluster: str, tmp_path: Path) -> None:
    """``plan sweep --sensors A --sensors B``: each layout against the same history, block by block
    on the cluster, equals one computation over the whole history; a denser grid locates more."""
    from truceline.core.planner import SensorParameters, accuracy_at
    from truceline.services.planner import load_history, read_sensor_layout
    from truceline.services.sweep import ACOUSTIC_KINDS, Layout

    files = files_of_folder(UKR)
    paths = {"dense": _layout_csv(tmp_path / "dense.csv", 6.0),
             "sparse": _layout_csv(tmp_path / "sparse.csv", 18.0)}  # fmt: skip
    lays = []
    for name, path in paths.items():
        lon, lat = read_sensor_layout(path)
        lays.append(Layout(name, tuple(lon.tolist()), tuple(lat.tolist())))
    p = SensorParameters(target_accuracy_m=60.0)
    kw = {"from_": "frozen", "max_rows": 60, "layouts": lays, "sensors": p}
    local = run_sweep(history_db, files, ["salient"], workers=1, **kw)  # type: ignore[arg-type]
    dist = run_sweep(history_db, files, ["salient"], scheduler=dask_cluster, **kw)  # type: ignore[arg-type]
    assert dist.workers == 2 and local.layouts == dist.layouts and local.layouts is not None

    engine = make_engine(history_db)  # the whole history at once, outside the sweep
    with session_factory(engine)() as session:
        ag = load_agreement(UKR)
        hist = load_history(session, ag.id)
    engine.dispose()
    b = hist.batch
    src = np.isin(b.kind, np.array(ACOUSTIC_KINDS))
    viol = np.zeros(len(b), bool)
    viol[hist.findings.incident[hist.findings.probability >= 0.5]] = True
    for lay in lays:
        acc = accuracy_at(lay.lon, lay.lat, b.lon[src], b.lat[src], p)
        got = local.layouts[lay.name]
        assert got.sources == int(src.sum()) > 50
        assert got.heard == int(np.isfinite(acc).sum())
        assert got.located == int((acc <= 60.0).sum())
        assert got.violations_located == int(((acc <= 60.0) & viol[src]).sum())
    dense, sparse = local.layouts["dense"], local.layouts["sparse"]
    assert dense.located > sparse.located and dense.heard >= sparse.heard

    res = runner.invoke(app, ["plan", "sweep", str(UKR), "salient", "--from", "frozen", "--db",
                              history_db, "--scheduler", dask_cluster, "--block-rows", "60",
                              "--sensors", str(paths["dense"]), "--sensors", str(paths["sparse"]),
                              "--accuracy-m", "60"])  # fmt: skip
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if re.match(r"\W+dense\s", ln))
    assert f"{dense.located:,}" in row and f"{dense.violations_located:,} of" in row, res.output
