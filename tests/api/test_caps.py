"""Daily count caps over the stored day, one count per fused event, whatever the batches were."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import shapely

from truceline.io.agreement_files import load_agreement

from .conftest import DAY, Api, rec

CAP = 5  # cap-tanks in tests/conftest.py: at most 5 tanks a day in the limitation band


@pytest.fixture(scope="module")
def band_points(sectored_dir: Path) -> list[tuple[float, float]]:
    """Points well inside the limitation band on A's side, ~10 km apart (separate events)."""
    ag = load_agreement(sectored_dir)
    cv = ag.compiled(0)
    zone = next(z for z in cv.version.zones if z.id == "limitation")
    inner = cv.zone_polygons(zone)[-1 if ag.right == "A" else 1].buffer(-0.06)
    x0, y0, _, _ = inner.bounds
    pts: list[tuple[float, float]] = []
    lat = y0
    while len(pts) < 12:
        lat += 0.02
        for lon in (x0 + k * 0.14 for k in range(60)):
            if inner.contains(shapely.Point(lon, lat)) and all(
                abs(lon - a) > 0.13 or abs(lat - b) > 0.09 for a, b in pts
            ):
                pts.append((lon, lat))
                break
    return pts


def _tank(i: int, pt: tuple[float, float], hour: int, **extra: Any) -> dict[str, Any]:
    return rec(
        f"tank-{i}",
        lon=pt[0],
        lat=pt[1],
        kind="heavy_weapon",
        weapon_class="tank",
        observed_at=f"{DAY}T{hour:02d}:00:00Z",
        **extra,
    )


def _cap_findings(api: Api, day: dt.date = DAY) -> dict[str, dict[str, Any]]:
    items = api.get("/findings", params={"rule": "cap-tanks", "start": str(day), "end": str(day)}).json()
    return {f["report_id"]: f for f in items["items"]}


def test_cap_counts_single_submissions_over_the_day(api: Api, band_points: list) -> None:
    for i in range(CAP):
        r = api.post("/incidents", json=_tank(i, band_points[i], hour=6 + i))
        assert r.status_code in (200, 201), r.text
    assert _cap_findings(api) == {}, "at the cap is not over it"
    r = api.post("/incidents", json=_tank(CAP, band_points[CAP], hour=6 + CAP))
    assert r.status_code in (200, 201), r.text
    found = _cap_findings(api)
    # the sixth tank puts the day over the cap: every tank counted that day is in violation
    assert set(found) == {f"tank-{i}" for i in range(CAP + 1)}
    for f in found.values():
        assert f["responsible"] == "A" and f["probability"] > 0.95
        assert f"{CAP + 1} tank counted" in f["explanation"]
    # the ledger holds each new finding
    assert api.get("/ledger/verify").json()["ok"] is True
    # a re-sent report changes nothing; another day is counted on its own
    api.post("/incidents", json=_tank(CAP, band_points[CAP], hour=6 + CAP))
    assert len(_cap_findings(api)) == CAP + 1
    other = DAY + dt.timedelta(days=1)
    api.post(
        "/incidents", json={**_tank(99, band_points[0], hour=8), "observed_at": f"{other}T08:00:00Z"}
    )
    assert _cap_findings(api, other) == {}


def test_duplicate_reports_of_one_tank_count_once(api: Api, band_points: list) -> None:
    """Six reports, two of them of the same tank by different sources: five tanks, no violation."""
    batch = [_tank(i, band_points[i], hour=6 + i) for i in range(CAP)]
    twin = {**_tank("twin", band_points[0], hour=6), "source_type": "camera"}
    r = api.post("/incidents/batch", json={"incidents": [*batch, twin]}, role="analyst")
    assert r.status_code in (200, 201), r.text
    assert _cap_findings(api) == {}
    detail = api.get(f"/incidents/{r.json()['results'][-1]['pk']}").json()
    assert detail["event_id"] is not None and detail["linked_reports"]
    # a sixth tank elsewhere: now over the cap, one finding per event (the twin's event has one)
    api.post("/incidents", json=_tank(CAP, band_points[CAP], hour=15))
    found = _cap_findings(api)
    assert len(found) == CAP + 1 and not ({"tank-0", "twin"} <= set(found))
    assert all(f"{CAP + 1} tank counted" in f["explanation"] for f in found.values())


def test_a_day_under_every_cap_is_not_classified_again(
    api: Api, band_points: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the sum of counts no cap can be over: the recount stops before the rule engine."""
    from truceline.services import caps

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the rule engine ran for a day under every cap")

    monkeypatch.setattr(caps, "judge_rules", must_not_run)
    day = DAY + dt.timedelta(days=5)
    for i in range(CAP):
        r = api.post(
            "/incidents",
            json={
                **_tank(200 + i, band_points[i], hour=6 + i),
                "observed_at": f"{day}T{6 + i:02d}:00:00Z",
            },
        )
        assert r.status_code in (200, 201), r.text
    assert _cap_findings(api, day) == {}
