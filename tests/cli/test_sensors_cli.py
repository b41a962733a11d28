"""``truceline sensors import`` / ``detections``: the API's services against the store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.services.acoustic import simulate_acoustic
from truceline.store.db import Database
from truceline.store.models import DetectionRow, SensorRow

runner = CliRunner()


def test_sensors_and_detections_from_csv(tmp_path: Path, small: Agreement, small_dir: Path) -> None:
    sim = tmp_path / "sim"
    made = simulate_acoustic(small, sim, seed=2, n_shots=3, duration_s=120.0)
    db = str(tmp_path / "t.db")
    args = ["-a", str(small_dir), "--db", db]
    r = runner.invoke(app, ["sensors", "import", str(sim / "sensors.csv"), *args])
    assert r.exit_code == 0 and f"{made['sensors']} created" in r.output, r.output
    r = runner.invoke(app, ["sensors", "import", str(sim / "sensors.csv"), *args])
    assert f"{made['sensors']} unchanged" in r.output
    for verdict in ("accepted", "duplicate"):  # a second import stores nothing twice
        r = runner.invoke(app, ["sensors", "detections", str(sim / "detections.csv"), *args])
        assert r.exit_code == 0 and f"{made['detections']} {verdict}" in r.output, r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("sensor_id,lon,lat\nS-X,37.1,95\n")
    r = runner.invoke(app, ["sensors", "import", str(bad), *args])
    assert r.exit_code == 1 and "1 rejected" in r.output and "lat" in r.output
    d = Database(db)
    with d.read() as s:
        assert s.execute(select(func.count()).select_from(SensorRow)).scalar_one() == made["sensors"]
        n = s.execute(select(func.count()).select_from(DetectionRow)).scalar_one()
        assert n == made["detections"]
    d.dispose()
