"""``truceline locate`` on scenes made without truceline (benchmarks/acoustic_cases.py: pyproj and
NumPy only), scored against their truth: wind, weather told wrong, a sparse network, the radius."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from truceline.cli import app


def _suite() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "acoustic_cases.py"
    spec = importlib.util.spec_from_file_location("acoustic_cases", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["acoustic_cases"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


AC = _suite()


def _locate(folder: Path, *extra: str) -> tuple[Path, str]:
    out = folder / "events.csv"
    args = ["locate", "--sensors", str(folder / "sensors.csv"), "--detections",
            str(folder / "detections.csv"), "-o", str(out)]  # fmt: skip
    if (folder / "weather.csv").exists():
        args += ["--weather", str(folder / "weather.csv")]
    res = CliRunner().invoke(app, [*args, *extra])
    assert res.exit_code == 0, res.output
    return out, res.output


@pytest.mark.parametrize(("wind", "told"), [(8.0, "right"), (6.0, "wrong")])
def test_isolated_events_in_wind_get_their_own_arrivals(tmp_path: Path, wind: float, told: str) -> None:
    """Wind in the association, known weather as a prior, a wrong reading overruled by the data."""
    case = AC.Case("t", "irregular", "isolated", wind, told, n_events=120, seed=71)
    AC.build(case, tmp_path)
    out, _ = _locate(tmp_path)
    r = AC.score(tmp_path, out)
    assert r["ghosts"] == 0
    assert r["right"] >= 0.95 * r["heard5"], r  # was 0.92 (wind 8, told) and 0.90 (told wrong)
    assert r["over100"] <= 1 and r["median_m"] < 8.0, r
    assert 0.85 <= r["coverage95"] <= 1.0, r


def test_sparse_network_locates(tmp_path: Path) -> None:
    """Six sensors 13-16 km apart: the association radius grows with the network."""
    case = AC.Case("t", "sparse", "isolated", 3.0, "right", n_events=80, seed=72)
    AC.build(case, tmp_path)
    out, _ = _locate(tmp_path)
    r = AC.score(tmp_path, out)
    assert r["matched"] >= 0.9 * r["heard5"], r  # was about half
    assert r["ghosts"] == 0


def test_max_range_option_is_the_association_radius(tmp_path: Path) -> None:
    case = AC.Case("t", "sparse", "isolated", 3.0, "right", n_events=40, seed=73)
    AC.build(case, tmp_path)
    out, _ = _locate(tmp_path, "--max-range-km", "12")
    with out.open() as fh:
        few = len(list(csv.DictReader(fh)))
    out, _ = _locate(tmp_path)
    with out.open() as fh:
        many = len(list(csv.DictReader(fh)))
    assert few < 0.5 * many  # 12 km: most events are heard by fewer than 5 sensors that near
    res = CliRunner().invoke(app, ["locate", "--sensors", str(tmp_path / "sensors.csv"),
                                   "--detections", str(tmp_path / "detections.csv"),
                                   "-o", str(tmp_path / "x.csv"), "--max-range-km", "0"])  # fmt: skip
    assert res.exit_code != 0 and "--max-range-km" in res.output


def test_road_mirror_fixes_are_flagged_and_attribution_stays_calibrated(tmp_path: Path) -> None:
    """Ten sensors along a straight road (+-10 m: the sides are told apart by little more than
    noise) and the line 1.5 km off it: every event stays one row, the mirror mode goes to alt_*
    columns, and confident statements are right."""
    case = AC.Case("t", "road", "isolated", 3.0, "right", n_events=150, seed=74, attribution=True,
                   road_jitter_m=10.0)  # fmt: skip
    AC.build(case, tmp_path)
    out, _ = _locate(tmp_path, "-a", str(tmp_path / "agreement"))
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"ambiguous", "alt_lon", "alt_lat", "alt_weight"} <= set(rows[0])
    amb = [r for r in rows if r["ambiguous"] == "true"]
    assert amb and all(0.01 <= float(r["alt_weight"]) <= 0.5 and r["alt_lon"] for r in amb)
    assert all(r["alt_lon"] == "" for r in rows if r["ambiguous"] == "false")
    r = AC.score(tmp_path, out)
    assert r["located"] == len(rows) and r["ghosts"] <= 0.01 * len(rows)  # target: <= 1 %
    wrong, confident = r["p95_wrong"]
    assert wrong <= 0.05 * confident, r  # was 19 of 396 (and 36 % in the trial)
    flagged, off = r["ambiguous_flagged"]
    assert flagged >= 0.75 * off, r  # mirror fixes are flagged (8 of 9 here)


def test_road_ambiguous_events_are_stored_no_more_confident_than_both_fixes(tmp_path: Path) -> None:
    """``locate --store``: an ambiguous event becomes one incident whose uncertainty gives the rule
    engine the side probability integrated over both fixes, and whose narrative names the other."""
    import numpy as np

    from truceline.core.attribution import side_probability
    from truceline.io.agreement_files import load_agreement
    from truceline.services.acoustic import acoustic_incidents, run_acoustic

    case = AC.Case("t", "road", "isolated", 3.0, "right", n_events=150, seed=75, attribution=True,
                   road_jitter_m=10.0)  # fmt: skip
    AC.build(case, tmp_path)
    ag = load_agreement(tmp_path / "agreement")
    run = run_acoustic(tmp_path / "sensors.csv", tmp_path / "detections.csv",
                       tmp_path / "weather.csv", agreement=ag)  # fmt: skip
    incidents, _ = acoustic_incidents(ag, run)
    amb = np.flatnonzero(run.events.ambiguous)
    assert len(amb) and len(incidents) == len(run.events)
    unc = np.array([incidents[i].uncertainty_m for i in amb])
    lon, lat = run.events.lon[amb], run.events.lat[amb]
    p_rule = side_probability(ag.compiled(0), lon, lat, unc[:, None, None] ** 2 * np.eye(2)).p_left
    assert run.side is not None
    want = run.side.p_left[amb]
    # as confident as the mixture at most (more cautious only where the mixture names the other side)
    assert np.all(np.abs(p_rule - 0.5) <= np.abs(want - 0.5) + 0.01)
    assert all("AMBIGUOUS" in (incidents[i].narrative or "") for i in amb)
    db = tmp_path / "t.db"
    res = CliRunner().invoke(app, ["locate", "--sensors", str(tmp_path / "sensors.csv"),
                                   "--detections", str(tmp_path / "detections.csv"), "--weather",
                                   str(tmp_path / "weather.csv"), "-a", str(tmp_path / "agreement"),
                                   "--store", "--db", str(db)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"{len(run.events)} events located, {len(run.events)} accepted" in res.output


def test_salvo_rounds_share_a_salvo_id(tmp_path: Path) -> None:
    """Salvos, overlapping pairs, echoes and multipath: rounds of one point share ``salvo_id``."""
    case = AC.Case("t", "irregular", "mixed", 4.0, "right", n_events=120, seed=73, p_echo=0.05,
                   p_multipath=0.03, rate_per_min=3.0)  # fmt: skip
    AC.build(case, tmp_path)
    out, _ = _locate(tmp_path)
    r = AC.score(tmp_path, out)
    ok, n = r["salvo_grouped"]
    assert n > 40 and ok >= 0.75 * n, r
    assert r["single_in_salvo"][0] <= 0.02 * r["single_in_salvo"][1], r
    with out.open() as fh:
        rows = list(csv.DictReader(fh))
    by_id: dict[str, int] = {}
    for row in rows:
        if row["salvo_id"]:
            by_id[row["salvo_id"]] = by_id.get(row["salvo_id"], 0) + 1
    ids = {row["event_id"] for row in rows}
    for row in rows:  # the id is the salvo's first round's event, the size its number of rounds
        if row["salvo_id"]:
            assert row["salvo_id"] in ids and int(row["salvo_size"]) == by_id[row["salvo_id"]]
        else:
            assert row["salvo_size"] == "1"
