"""sensors.csv / detections.csv: every bad row gets a clear reason, nothing else is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from truceline.io.acoustic_csv import parse_time_s, read_detections, read_sensors

SENSORS = """sensor_id,lon,lat,elevation_m,timing_sigma_ms,commissioned_at,decommissioned_at
S1,37.00,48.00,150,5,,
S2,37.05,48.00,150,5,,
S3,37.00,48.05,150,5,,
S4,37.05,48.05,,,2025-03-01T00:00:00Z,2025-03-02T00:00:00Z
S5,,48.10,150,5,,
S6,37.10,48.10,150,fast,,
"""

DETECTIONS = """detection_id,sensor_id,arrival_time,amplitude_db,signal
D1,S1,2025-03-01T12:00:00.000001Z,80,muzzle_blast
D2,S2,2025-03-01T12:00:01.500000Z,,impact
D3,S9,2025-03-01T12:00:01.000000Z,70,unknown
D4,S3,2030-01-01T00:00:00Z,70,unknown
D1,S3,2025-03-01T12:00:02.000000Z,70,unknown
D6,S3,yesterday,70,unknown
D7,S3,2025-03-01T12:00:02.000000Z,loud,unknown
D8,S3,2025-03-01T12:00:02.000000Z,70,thunder
D9,S4,2025-03-05T12:00:00.000000Z,70,
D10,S5,2025-03-01T12:00:02.000000Z,70,
D11,S3,2025-03-01T12:00:03.250000Z,,
"""

NOW = parse_time_s("2025-03-10T00:00:00Z")


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    s = tmp_path / "sensors.csv"
    d = tmp_path / "detections.csv"
    s.write_text(SENSORS)
    d.write_text(DETECTIONS)
    return s, d


def test_parse_time_keeps_microseconds() -> None:
    assert parse_time_s("1970-01-01T00:00:01.000001Z") == pytest.approx(1.000001, abs=1e-9)
    assert parse_time_s("1970-01-01T01:00:00+01:00") == 0.0


def test_sensor_rejects(files: tuple[Path, Path]) -> None:
    sens = read_sensors(files[0])
    assert sens.network is not None
    assert sens.network.sensor_id.tolist() == ["S1", "S2", "S3", "S4"]
    by_line = {r.line: r for r in sens.rejects}
    assert by_line[6].record == "S5" and "no position" in by_line[6].reason
    assert by_line[7].field == "timing_sigma_ms" and "positive number" in by_line[7].reason
    # defaults for the blank elevation and sigma
    assert sens.network.timing_sigma_ms[3] == 5.0 and sens.network.elevation_m[3] == 0.0


@pytest.mark.parametrize(
    ("line", "record", "field", "words"),
    [
        (4, "D3", "sensor_id", "unknown sensor 'S9'"),
        (5, "D4", "arrival_time", "in the future"),
        (6, "D1", "detection_id", "duplicate detection_id"),
        (7, "D6", "arrival_time", "not ISO 8601"),
        (8, "D7", "amplitude_db", "not a number"),
        (9, "D8", "signal", "not one of"),
        (10, "D9", "arrival_time", "not in service"),
        (11, "D10", "sensor_id", "unknown sensor 'S5'"),
    ],
)
def test_detection_rejects(
    files: tuple[Path, Path], line: int, record: str, field: str, words: str
) -> None:
    sens = read_sensors(files[0])
    dets = read_detections(files[1], sens, now_s=NOW)
    hits = [r for r in dets.rejects if r.line == line]
    assert len(hits) == 1
    r = hits[0]
    assert (r.record, r.field) == (record, field)
    assert words in r.reason
    assert "line" in str(r.as_error())


def test_good_rows_are_kept(files: tuple[Path, Path]) -> None:
    sens = read_sensors(files[0])
    dets = read_detections(files[1], sens, now_s=NOW)
    assert dets.detection_id.tolist() == ["D1", "D2", "D11"]
    assert dets.line.tolist() == [2, 3, 12]
    assert dets.signal.tolist() == [1, 2, 0]
    assert dets.arrival_s[0] == pytest.approx(parse_time_s("2025-03-01T12:00:00Z") + 1e-6, abs=1e-7)
    assert len(dets.rejects) == 8


def test_missing_column_is_reported(tmp_path: Path, files: tuple[Path, Path]) -> None:
    d = tmp_path / "bad.csv"
    d.write_text("detection_id,sensor_id\nD1,S1\n")
    dets = read_detections(d, read_sensors(files[0]), now_s=NOW)
    assert [r.field for r in dets.rejects] == ["arrival_time"]
    assert len(dets.detection_id) == 0


def test_weather_sigma_columns_and_their_defaults(tmp_path: Path) -> None:
    from truceline.core.acoustic.propagation import TOLD_TEMPERATURE_SIGMA_C, TOLD_WIND_SIGMA_MPS
    from truceline.io.acoustic_csv import read_weather

    p = tmp_path / "weather.csv"
    p.write_text(
        "time,temperature_c,wind_speed_mps,wind_from_deg,temperature_sigma_c,wind_sigma_mps\n"
        "2025-06-01T06:00:00Z,12,4,270,0.5,0.8\n"
        "2025-06-01T07:00:00Z,14,5,270,,\n"
        "2025-06-01T08:00:00Z,15,5,270,-1,\n"
        "2025-06-01T09:00:00Z,15,-2,270,,\n"
    )
    wx, rej = read_weather(p)
    assert wx is not None
    assert [(r.line, r.field) for r in rej] == [(4, "temperature_sigma_c"), (5, "wind_speed_mps")]
    assert "positive uncertainty" in rej[0].reason
    sc, sw = wx.sigma_at(wx.time_s)
    assert sc.tolist() == pytest.approx([0.606 * 0.5, 0.606 * TOLD_TEMPERATURE_SIGMA_C])
    assert sw.tolist() == pytest.approx([0.8, TOLD_WIND_SIGMA_MPS])
    c, w = wx.at(wx.time_s[:1])
    assert c[0] == pytest.approx(331.3 + 0.606 * 12)
    assert w[0].tolist() == pytest.approx([4.0, 0.0], abs=1e-9)  # from the west: blows east
