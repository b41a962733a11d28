"""``truceline locate`` end to end on simulated files."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from truceline.cli.locate import locate
from truceline.core.simulate import acoustic as S  # noqa: N812 - short module aliases read like the maths
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
    result = CliRunner().invoke(app, ["--sensors", str(sp), "--detections", str(dp), "-o", str(out)])
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


AGREEMENT_YAML = """\
id: line3
name: Three-vertex test line
effective_from: 2025-01-01
parties: [{id: A, name: Alpha}, {id: B, name: Bravo}]
line: {file: line.geojson, left: B, right: A, extend: azimuth}
zones:
  - {id: buffer, type: band, bands: {A: [0, 5], B: [0, 5]}}
rules:
  - {id: fire, type: fire_across, zone: buffer}
"""


def _agreement_dir(tmp: Path) -> Path:
    import json

    folder = tmp / "agreement"
    folder.mkdir()
    (folder / "agreement.yaml").write_text(AGREEMENT_YAML)
    coords = np.column_stack([LINE_LON, LINE_LAT]).tolist()
    (folder / "line.geojson").write_text(json.dumps({"type": "LineString", "coordinates": coords}))
    return folder


def test_locate_with_an_agreement_says_who_fired(tmp_path: Path) -> None:
    sp, dp, shots, _ = _write_inputs(tmp_path)
    app = typer.Typer()
    app.command()(locate)
    out = tmp_path / "events.csv"
    args = ["--sensors", str(sp), "--detections", str(dp), "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "-a", str(_agreement_dir(tmp_path))])
    assert result.exit_code == 0, result.output
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"p_A", "p_B", "responsible", "likelihood", "launch_point"} <= set(rows[0])
    lon = np.array([float(r["lon"]) for r in rows])
    lat = np.array([float(r["lat"]) for r in rows])
    from pyproj import Geod

    g = Geod(ellps="WGS84")
    for i in range(len(shots)):  # each true shot: its located event names the party that fired
        d = g.inv(np.full(len(lon), shots.lon[i]), np.full(len(lon), shots.lat[i]), lon, lat)[2]
        r = rows[int(np.argmin(d))]
        assert float(r["p_A"]) + float(r["p_B"]) == pytest.approx(1.0)
        assert r["responsible"] == ("B" if shots.side[i] > 0 else "A")  # B holds the left
        assert r["likelihood"] == "almost certain" and r["launch_point"] == "muzzle_blast"


def test_simulate_acoustic_then_ingest(tmp_path: Path) -> None:
    from truceline.cli import app

    ag = _agreement_dir(tmp_path)
    sim = tmp_path / "sim"
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", str(ag), "-o", str(sim), "--acoustic",
                            "--acoustic-shots", "15", "--sensor-depths-km", "2,7"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "Acoustic:" in r.output
    db = tmp_path / "t.db"
    args = ["locate", "--store", "--sensors", str(sim / "sensors.csv"), "--detections",
            str(sim / "detections.csv"), "--weather", str(sim / "weather.csv"), "-a", str(ag),
            "--db", str(db)]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    n = int(re.search(r"(\d+) events located", first.output).group(1))  # type: ignore[union-attr]
    assert n >= 25
    assert f"{n} accepted" in first.output and f"{n} duplicates" in second.output


def test_detections_out_of_order_give_the_same_events(tmp_path: Path) -> None:
    """Rows in any order (as sensors upload them): the same events, nothing lost."""
    from truceline.cli.locate import run_locate

    sp, dp, _, _ = _write_inputs(tmp_path)
    lines = dp.read_text().splitlines()
    rng = np.random.default_rng(3)
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("\n".join([lines[0], *rng.permutation(lines[1:]).tolist()]) + "\n")
    now = 2e9
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    ca = run_locate(sp, dp, None, a, now_s=now)
    cb = run_locate(sp, shuffled, None, b, now_s=now)
    assert ca == cb

    def sets(p: Path) -> set[frozenset[str]]:
        with p.open() as fh:
            return {frozenset(r["detection_ids"].split()) for r in csv.DictReader(fh)}

    assert sets(a) == sets(b)


def test_store_needs_an_agreement(tmp_path: Path) -> None:
    from truceline.cli import app

    for name in ("s.csv", "d.csv"):
        (tmp_path / name).write_text("x\n")
    args = ["locate", "--store", "--sensors", str(tmp_path / "s.csv"), "--detections",
            str(tmp_path / "d.csv"), "--db", str(tmp_path / "t.db")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2 and "--store needs the agreement" in res.output, res.output
    assert not (tmp_path / "t.db").exists()
