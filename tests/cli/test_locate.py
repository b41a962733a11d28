"""``truceline locate`` end to end on simulated files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from truceline.cli.locate import locate
from truceline.core import acoustic_sim as S
from truceline.io.acoustic_csv import EVENT_COLUMNS, format_time

LINE_LON = np.array([37.0, 37.5, 38.0])
LINE_LAT = np.array([47.8, 48.0, 48.1])


def _write_inputs(tmp: Path) -> tuple[Path, Path, S.SimShots, S.SimDetections]:
    net = S.line_network(LINE_LON, LINE_LAT, spacing_km=5, chainage_km=(0, 60))
    shots = S.simulate_fire(
        LINE_LON, LINE_LAT, n_shots=15, duration_s=300.0, seed=7, chainage_km=(15, 45),
        with_impacts=False,
    )  # fmt: skip
    det = S.simulate_detections(net, shots, seed=8, p_false=0.05, p_miss=0.1, p_echo=0.05)
    sp = tmp / "sensors.csv"
    with sp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sensor_id", "lon", "lat", "elevation_m", "timing_sigma_ms"])
        for i in range(len(net.lon)):
            w.writerow([net.sensor_id[i], net.lon[i], net.lat[i], net.elevation_m[i], 5])
    dp = tmp / "detections.csv"
    with dp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["detection_id", "sensor_id", "arrival_time", "amplitude_db", "signal"])
        for i in range(len(det)):
            w.writerow(
                [
                    det.detection_id[i],
                    net.sensor_id[det.sensor[i]],
                    format_time(det.arrival_s[i]),
                    f"{det.amplitude_db[i]:.1f}",
                    "muzzle_blast",
                ]
            )
        w.writerow(["BAD1", "NOPE", format_time(det.arrival_s[0]), "", ""])  # unknown sensor
    return sp, dp, shots, det


def test_locate_writes_events_and_reasons(tmp_path: Path) -> None:
    sp, dp, shots, det = _write_inputs(tmp_path)
    app = typer.Typer()
    app.command()(locate)
    out = tmp_path / "events.csv"
    result = CliRunner().invoke(
        app, ["--sensors", str(sp), "--detections", str(dp), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0].keys())[: len(EVENT_COLUMNS)] == EVENT_COLUMNS
    assert len(rows) == len(shots)
    from pyproj import Geod

    g = Geod(ellps="WGS84")
    lon = np.array([float(r["lon"]) for r in rows])
    lat = np.array([float(r["lat"]) for r in rows])
    # each true shot has a located event within 100 m (most within a few metres)
    for i in range(len(shots)):
        d = g.inv(np.full(len(lon), shots.lon[i]), np.full(len(lon), shots.lat[i]), lon, lat)[2]
        assert d.min() < 100.0
    with (tmp_path / "events.rejects.csv").open() as fh:
        rej = list(csv.DictReader(fh))
    assert any(r["record"] == "BAD1" and "unknown sensor" in r["reason"] for r in rej)
    used = {d for r in rows for d in r["detection_ids"].split()}
    listed = {r["record"] for r in rej}
    # every good detection is in an event or in the rejects file with a reason, never both
    assert used.isdisjoint(listed)
    assert used | (listed - {"BAD1"}) == set(det.detection_id.tolist())
    assert all(r["reason"] for r in rej)
