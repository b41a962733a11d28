"""The day's expected count of distinct events when a late, vague report could be one of several
events: it counts only what the candidates leave it (its probability spread over them is kept
for the count below the analyst's queue, status ``weighed``), not as an event of its own at full
weight. Small mixes written here, through the API and ``truceline duplicates``."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.geodesy import GEOD
from truceline.services.events import expected_events
from truceline.store import ledger

from .conftest import DAY, Api, make_api
from .test_event_counts import _r

LAT = 48.6
#: three explosions 900 m apart along a line, a minute apart, each fixed by the acoustic network
FIXES = [GEOD.fwd(37.1, LAT, 90.0, 900.0 * k)[:2] for k in range(3)]


def _mix() -> list[dict[str, Any]]:
    fixes = [
        _r(f"ac{k}", float(lon), float(lat), 0, 60 * k, "acoustic", uncertainty_m=5)
        for k, (lon, lat) in enumerate(FIXES)
    ]
    # a patrol 1.5 km-uncertain, in the middle, its time written down 8 minutes later
    mid_lon, mid_lat = FIXES[1]
    patrol = _r("late", float(mid_lon), float(mid_lat), 9, 0, "patrol", uncertainty_m=1500)
    patrol["time_precision"] = "minute"
    return [*fixes, patrol]


def _stored(api: Api) -> dict[str, list[tuple[str, str, float]]]:
    with api.ctx.db.read() as s:
        rows = s.execute(
            text(
                "SELECT p.status, a.report_id, b.report_id, p.probability FROM fusion_pairs p "
                "JOIN incidents a ON a.pk = p.a_pk JOIN incidents b ON b.pk = p.b_pk"
            )
        ).all()
    out: dict[str, list[tuple[str, str, float]]] = {}
    for st, a, b, p in rows:
        out.setdefault(st, []).append((a, b, float(p)))
    return out


def test_a_late_report_spread_over_several_events_counts_what_they_leave(api: Api) -> None:
    got = api.post("/incidents/batch", json={"incidents": _mix()}, role="admin")
    assert got.status_code in (200, 201), got.text
    pairs = _stored(api)
    kept = pairs.get("possible", []) + pairs.get("weighed", [])
    # every pair of events that may be one is kept for the count, the patrol (vaguer) first
    assert {b for _, b, _ in kept} == {"ac0", "ac1", "ac2"} and {a for a, _, _ in kept} == {"late"}
    assert pairs.get("weighed"), "some of the patrol's mass lies below the queue's band"
    mass = sum(p for _, _, p in kept)
    assert 0.5 < mass <= 1.0 + 1e-9
    with api.ctx.db.read() as s:
        n, expected = expected_events(s)
    assert n == 4  # the three explosions and the patrol's report: no automatic link
    assert abs(expected - (4.0 - mass)) < 1e-9 and expected < 3.5
    # the queue only offers the band: the API lists no weighed pair
    listed = api.get("/duplicates", role="analyst").json()
    offered = listed["items"] if isinstance(listed, dict) else listed
    assert len(offered) == len(pairs.get("possible", []))


def test_duplicates_command_says_the_expected_count(
    tmp_path: Path, sectored_dir: Path, agreement_cache: Any
) -> None:
    db = tmp_path / "count.db"
    api = make_api(str(db), sectored_dir, agreement_cache)
    with api.client:
        got = api.post("/incidents/batch", json={"incidents": _mix()}, role="admin")
        assert got.status_code in (200, 201), got.text
    api.ctx.close()
    out = CliRunner().invoke(app, ["duplicates", "--db", str(db), "-o", str(tmp_path / "d.csv")])
    assert out.exit_code == 0, out.output
    m = re.search(r"([\d,]+) events stored, ([\d.,]+) distinct expected", out.output)
    assert m is not None, out.output
    assert m.group(1) == "4" and 3.0 <= float(m.group(2)) <= 3.5


def _on(day: dt.date, recs: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """The records moved to ``day`` (same time of day), their ids tagged."""
    return [{**r, "id": f"{r['id']}{tag}", "observed_at": f"{day}{r['observed_at'][10:]}"} for r in recs]


def test_daily_statistics_and_the_report_lead_with_the_expected_count(api: Api) -> None:
    """Per day, through ``GET /statistics/daily`` and the daily report: the distinct events
    expected next to the events as fused, each day from its own pairs; the published report's
    ledger entry records the figures it leads with."""
    day2 = DAY + dt.timedelta(days=1)
    lone = _r("lone", 37.3, 48.7, 30, 0, "acoustic", uncertainty_m=5)  # far from everything
    for recs in (_mix(), _on(day2, [*_mix(), lone], "-2")):
        got = api.post("/incidents/batch", json={"incidents": recs}, role="admin")
        assert got.status_code in (200, 201), got.text
    pairs = _stored(api)
    kept = pairs.get("possible", []) + pairs.get("weighed", [])
    assert kept and all(a.endswith("-2") == b.endswith("-2") for a, b, _ in kept)  # no pair across days
    mass = {d: sum(p for a, _, p in kept if a.endswith("-2") == (d == day2)) for d in (DAY, day2)}
    assert all(0.5 < m <= 1.0 + 1e-9 for m in mass.values()), mass
    s = api.get("/statistics/daily", params={"start": str(DAY), "end": str(day2)})
    assert s.status_code == 200, s.text
    got_days = {r["day"]: r for r in s.json()}
    one, two = got_days[str(DAY)], got_days[str(day2)]
    assert (one["events"], one["explosions"], two["events"], two["explosions"]) == (4, 4, 5, 5)
    assert one["events_expected"] == pytest.approx(4 - mass[DAY], abs=0.006)
    assert two["events_expected"] == pytest.approx(5 - mass[day2], abs=0.006)
    # the report's lead: "4 explosions in about 3 events", the expected figure beside it
    draft = " ".join(api.get(f"/reports/{DAY}/draft", role="analyst").text.split())
    about = round(4 - mass[DAY])
    assert f'4</div><div class="l">explosions in about {about} events' in draft, draft[:3000]
    assert f'data-events-expected="{4 - mass[DAY]:.1f}"' in draft
    assert f"{4 - mass[DAY]:.1f} distinct expected of 4 as fused" in draft
    # publishing records the figures in the ledger entry, and the ledger still verifies
    assert api.post(f"/reports/{DAY}/publish", role="analyst").status_code == 201
    with api.ctx.db.read() as s:
        body = s.execute(
            text("SELECT body FROM ledger_entries WHERE kind = 'publication' ORDER BY seq")
        ).scalar_one()
        assert ledger.verify(s).ok
    figures = json.loads(body)["content"]["figures"]
    assert figures == {  # the published edition: no finding released yet, all withheld
        "incidents": 4, "events": 4, "explosions": 4, "events_expected": one["events_expected"],
        "rejected": 0, "outside_area": 0, "not_in_force": 0, "withdrawn": 0,
        "findings": 0, "violations": 0, "withheld": one["findings"],
    }  # fmt: skip


def test_a_day_without_doubt_counts_its_events(api: Api) -> None:
    """No pair that may be one event: the expected count is the events as fused, and the
    report's lead says them without "about"."""
    far = [_r(f"f{k}", 37.1 + 0.05 * k, LAT, 0, 600 * k, "acoustic", uncertainty_m=5) for k in range(3)]
    got = api.post("/incidents/batch", json={"incidents": far}, role="admin")
    assert got.status_code in (200, 201), got.text
    s = api.get("/statistics/daily", params={"start": str(DAY), "end": str(DAY)}).json()[0]
    assert (s["events"], s["events_expected"]) == (3, 3.0)
    draft = " ".join(api.get(f"/reports/{DAY}/draft", role="analyst").text.split())
    assert '3</div><div class="l">explosions in 3 events' in draft


def _with_cameras() -> list[dict[str, Any]]:
    """:func:`_mix` with a camera beside each acoustic fix: each round is an event of two reports."""
    cams = [
        _r(f"cam{k}", float(lon) + 0.0001, float(lat), 0, 60 * k + 2, "camera", uncertainty_m=25)
        for k, (lon, lat) in enumerate(FIXES)
    ]
    return [*_mix(), *cams]


@pytest.fixture()
def wide_api(db_url: str, sectored_dir: Path, tmp_path: Path) -> Iterator[Api]:
    """:func:`api` whose queue takes pairs from 0.1: the patrol's pairs, about 1/6 each as the
    default calibration states them, are offered (its own agreement cache: the server's
    ``[fusion]`` table applies to the agreements it loads)."""
    a = make_api(
        db_url, sectored_dir, None, attachments_dir=tmp_path / "attachments",
        fusion={"offer_threshold": 0.1},
    )  # fmt: skip
    with a.client:
        yield a
    a.ctx.close()


def test_dismissing_a_pair_dismisses_the_others_between_the_same_two_events(wide_api: Api) -> None:
    """The patrol may be any round's explosion; an analyst merges rounds 1 and 2 into one event,
    so two stored pairs now link the patrol to that event. Dismissing one stops both counting
    (and neither is offered again); the pair with round 0 still counts."""
    api = wide_api
    got = api.post("/incidents/batch", json={"incidents": _with_cameras()}, role="admin")
    assert got.status_code in (200, 201), got.text
    with api.ctx.db.read() as s:
        rid = {pk: r for r, pk in s.execute(text("SELECT report_id, pk FROM incidents")).all()}
        event: dict[str, int | None] = dict(
            s.execute(text("SELECT report_id, event_id FROM incidents")).all()
        )
        rows = s.execute(
            text("SELECT pk, a_pk, b_pk, probability, status FROM fusion_pairs "
                 "WHERE status IN ('possible', 'weighed')")
        ).all()  # fmt: skip
    assert len({event[f"ac{k}"] for k in range(3)}) == 3 and event["late"] is None
    # the patrol's pair with each round (keyed by the round's number)
    by_round = {int(rid[b][-1]): (pk, p) for pk, a, b, p, _ in rows if rid[a] == "late"}
    assert set(by_round) == {0, 1, 2}, rows
    m = api.post(
        "/events/merge", json={"events": [event["ac1"], event["ac2"]], "comment": "one shell"},
        role="analyst",
    )  # fmt: skip
    assert m.status_code in (200, 201), m.text
    with api.ctx.db.read() as s:
        n_before, before = expected_events(s)
    keep_p = by_round[0][1]
    joint = max(by_round[1][1], by_round[2][1])  # one pair per pair of events counts
    assert n_before == 3 and before == pytest.approx(3 - min(keep_p + joint, 1.0), abs=1e-9)
    dismiss, other = by_round[1][0], by_round[2][0]
    d = api.post(f"/duplicates/{dismiss}/decide", json={"same": False}, role="analyst")
    assert d.status_code == 200, d.text
    with api.ctx.db.read() as s:
        status: dict[int, str] = dict(s.execute(text("SELECT pk, status FROM fusion_pairs")).all())
        n_after, after = expected_events(s)
        audited = s.execute(
            text("SELECT entity_id FROM audit_log WHERE entity = 'fusion_pair' AND action = 'dismiss'")
        ).scalars().all()  # fmt: skip
        assert ledger.verify(s).ok
    assert status[dismiss] == status[other] == "dismissed"
    assert status[by_round[0][0]] in ("possible", "weighed")
    assert sorted(map(int, audited)) == sorted([dismiss, other])
    assert n_after == 3 and after == pytest.approx(3 - keep_p, abs=1e-9)
    day = api.get("/statistics/daily", params={"start": str(DAY), "end": str(DAY)}).json()[0]
    assert day["events_expected"] == pytest.approx(3 - keep_p, abs=0.006)
