"""The map's summary (``map_cells``) on SQLite and PostGIS: the overview's clusters and the
timeline read from it answer exactly what counting the rows answers, for every filter, date range
(whole months and cut ones), zoom and audience, and stay so after writes (new reports, a release,
a review), which the triggers mark for the rebuild the next request makes. A first build (many
days stale) is a step of its own (``truceline db summarise``, or a background thread the map
starts), in steps of a few days; the map answers from the rows meanwhile."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.services import selection
from truceline.services.auth import Scope
from truceline.store import map_cells
from truceline.store.models import MapCellRow, MapStaleDayRow

from ..api.conftest import Api, rec

FIRST = dt.date(2025, 1, 20)
LAST = dt.date(2025, 3, 1)
KINDS = ["armed_personnel", "vehicle_movement", "flare", "explosion", "fortification_works"]
SOURCES = ["patrol", "camera", "uav"]


def _reports(
    n: int, seed: int, prefix: str, first: dt.date = FIRST, last: dt.date = LAST
) -> list[dict[str, Any]]:
    """``n`` reports over six weeks (three months cut), spread over the small agreement's area,
    many in the buffer zone (zone-ban findings), of several kinds and sources."""
    rng = np.random.default_rng(seed)
    days = (last - first).days + 1
    near = rng.random(n) < 0.5
    lon = np.where(near, rng.uniform(36.9, 37.0, n), rng.uniform(35.5, 38.5, n))
    lat = np.where(near, rng.uniform(48.55, 48.65, n), rng.uniform(47.8, 49.8, n))
    out = []
    for k in range(n):
        day = first + dt.timedelta(days=int(rng.integers(days)))
        out.append(
            rec(
                f"{prefix}-{k}",
                lon=round(float(lon[k]), 5),
                lat=round(float(lat[k]), 5),
                kind=str(rng.choice(KINDS)),
                day=day,
                source_type=str(rng.choice(SOURCES)),
            )
        )
    return out


def _post(api: Api, records: list[dict[str, Any]]) -> None:
    for k in range(0, len(records), 50):
        res = api.post("/incidents/batch", json={"incidents": records[k : k + 50]}).json()
        assert res["accepted"] == len(records[k : k + 50]), res


FILTERS: list[dict[str, Any]] = [
    {},
    {"start": str(FIRST), "end": str(LAST)},
    {"start": "2025-02-01", "end": "2025-02-28"},  # one whole month
    {"start": "2025-01-25", "end": "2025-02-28"},  # a cut month, then a whole one
    {"start": "2025-02-01", "end": "2025-03-01"},  # a whole month, then a cut one
    {"start": "2025-02-03", "end": "2025-02-10"},  # days inside a month
    {"end": "2025-02-14"},
    {"start": "2025-02-14"},
    {"rule": "bz-ban"},
    {"kind": "explosion,flare", "start": "2025-01-31"},
    {"status": "new"},
    {"source_type": "camera"},
    {"party": "B", "sector": "north"},
]


def _rows_answer(api: Api, params: dict[str, Any], zoom: int | None, released_only: bool) -> Any:
    """What counting the rows answers (the service's ``from_rows``), for the same filter."""
    sel = selection.Selection(
        agreement_id="small",
        start=dt.date.fromisoformat(params["start"]) if "start" in params else None,
        end=dt.date.fromisoformat(params["end"]) if "end" in params else None,
        kinds=tuple(params.get("kind", "").split(",")) if "kind" in params else (),
        rules=(params["rule"],) if "rule" in params else (),
        parties=(params["party"],) if "party" in params else (),
        sectors=(params["sector"],) if "sector" in params else (),
        statuses=(params["status"],) if "status" in params else (),
        source_types=(params["source_type"],) if "source_type" in params else (),
        incidents=not released_only,
    )
    scope = Scope(released_only=released_only)
    with api.ctx.db.read() as s:
        if zoom is None:
            return selection.timeline(s, sel, scope=scope, from_rows=True)
        return selection.clusters(s, sel, scope=scope, zoom=zoom, from_rows=True)


def _same_clusters(got: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("n", "gx", "gy", "findings", "incidents", "by_party", "by_rule", "by_kind"):
        assert got[key] == want[key], key
    assert got["lon"] == pytest.approx(want["lon"], abs=1e-4)
    assert got["lat"] == pytest.approx(want["lat"], abs=1e-4)


def _check_all(api: Api) -> None:
    for params, zoom, role in itertools.product(FILTERS, (3, 6, 7, 9, 10), ("analyst", "liaison")):
        if role == "liaison" and "source_type" in params:
            continue  # refused to liaisons (tested elsewhere)
        r = api.get("/dashboard/clusters", role=role, params={**params, "zoom": zoom})
        assert r.status_code == 200, r.text
        _same_clusters(r.json(), _rows_answer(api, params, zoom, role == "liaison"))
    for params, role in itertools.product(FILTERS, ("analyst", "liaison")):
        if role == "liaison" and "source_type" in params:
            continue
        got = api.get("/dashboard/timeline", role=role, params=params).json()
        assert got == _rows_answer(api, params, None, role == "liaison"), (params, role)


def _summary_state(api: Api) -> tuple[int, int, int | None]:
    with api.ctx.db.read() as s:
        cells = s.execute(select(func.count()).select_from(MapCellRow)).scalar_one()
        stale = s.execute(select(func.count()).select_from(MapStaleDayRow)).scalar_one()
        return cells, stale, map_cells.version(s, "small")


def test_the_summary_answers_what_the_rows_answer_before_and_after_writes(api: Api) -> None:
    _post(api, _reports(300, seed=3, prefix="a"))
    cells, stale, _ = _summary_state(api)
    assert cells == 0 and stale > 0  # the triggers marked the days; nothing read yet
    assert stale > selection.REQUEST_DAYS  # a first build: in the background, not in the request
    timeline = api.get("/dashboard/timeline", role="analyst").json()
    assert timeline == _rows_answer(api, {}, None, False)
    assert not selection.summarising(api.ctx.db, "small", wait=60)
    cells, stale, v1 = _summary_state(api)
    assert cells > 0 and stale == 0 and v1 is not None  # built in the background
    assert timeline["days"][0] == str(FIRST) and timeline["days"][-1] == str(LAST)
    assert sum(timeline["findings"]) > 0 and sum(timeline["incidents"]) > 0
    assert {r: sum(v) for r, v in timeline["by_rule"].items()}["bz-ban"] > 0
    _check_all(api)

    # Writes: more reports on days already summed, a finding released, an incident reviewed.
    before = api.get("/dashboard/clusters", role="liaison", params={"zoom": 6}).json()
    assert sum(before["findings"]) == 0  # nothing released yet
    _post(api, _reports(60, seed=4, prefix="b"))
    fid = api.get("/findings", role="analyst", params={"limit": 1}).json()["items"][0]
    ipk = fid["incident_pk"]
    for action in ("verify", "release"):
        assert api.post(f"/incidents/{ipk}/review", json={"action": action}).status_code == 200
    assert _summary_state(api)[1] > 0  # marked stale by the triggers
    after = api.get("/dashboard/clusters", role="liaison", params={"zoom": 6}).json()
    assert sum(after["findings"]) == len(api.get(f"/incidents/{ipk}").json()["findings"]) > 0
    assert not selection.summarising(api.ctx.db, "small", wait=60)  # 30 days: in the background
    _, stale, v2 = _summary_state(api)
    assert stale == 0 and v2 is not None and v2 > v1
    _check_all(api)


YEARS = [
    {},
    {"start": "2024-12-05"},  # a cut month, then a whole year
    {"start": "2024-11-20", "end": "2024-12-31"},  # a year's data, the year not whole
    {"start": "2025-01-01"},  # a whole year (its data ends before its end)
    {"start": "2024-12-01", "end": "2025-02-28"},  # whole months across the new year
    {"rule": "bz-ban"},
    {"sector": "north", "kind": "explosion"},
]


def test_whole_years_are_read_from_their_own_rows(api: Api) -> None:
    """A year whose days are all built is summed from its months (``map_cells.sum_years``, after
    a build); a selection holding it whole reads its rows, one per cell and value, and answers
    what the rows answer. A write to one of its days drops its rows (the map reads its months)
    until the year is summed again in the background."""
    december = {"first": dt.date(2024, 11, 25), "last": dt.date(2024, 12, 31)}
    _post(api, _reports(150, seed=9, prefix="y", **december))
    _post(api, _reports(200, seed=10, prefix="z"))
    api.get("/dashboard/timeline", role="analyst")  # starts the first build (in the background)
    assert not selection.summarising(api.ctx.db, "small", wait=60)
    years = [dt.date(2024, 1, 1), dt.date(2025, 1, 1)]
    with api.ctx.db.read() as s:
        for z in map_cells.FULL_LEVELS:
            assert sorted(map_cells.summed_years(s, "small", z)) == years
        assert map_cells.unsummed_years(s, "small") == []
        assert map_cells.check(s) == []

    def same_as_rows() -> None:
        for params, zoom, role in itertools.product(YEARS, (5, 9, 10), ("analyst", "liaison")):
            r = api.get("/dashboard/clusters", role=role, params={**params, "zoom": zoom})
            assert r.status_code == 200, r.text
            _same_clusters(r.json(), _rows_answer(api, params, zoom, role == "liaison"))

    same_as_rows()
    _post(api, [rec("y-new", kind="explosion", day=dt.date(2025, 2, 2))])
    api.get("/dashboard/clusters", role="analyst", params={"zoom": 9})  # rebuilds the day
    with api.ctx.db.read() as s:  # unless the background sum was quicker than this read
        assert sorted(map_cells.summed_years(s, "small", 10)) in ([years[0]], years)
    assert not selection.summarising(api.ctx.db, "small", wait=60)
    with api.ctx.db.read() as s:
        assert sorted(map_cells.summed_years(s, "small", 10)) == years
        assert map_cells.check(s) == []
    same_as_rows()


def test_a_monitor_and_a_box_are_answered_from_the_rows(api: Api) -> None:
    """A monitor sees part of the rows (their sector, their own reports), which the summary does
    not hold apart: their map is counted from the rows, and is theirs only."""
    _post(api, _reports(120, seed=5, prefix="m"))
    mine = api.get("/dashboard/clusters", role="monitor", params={"zoom": 6}).json()
    everyone = api.get("/dashboard/clusters", role="analyst", params={"zoom": 6}).json()
    listed = api.get("/dashboard/features", role="monitor").json()
    assert sum(mine["findings"]) == listed["findings"]["n"] <= sum(everyone["findings"])
    assert sum(mine["incidents"]) == listed["incidents"]["n"] < sum(everyone["incidents"])
    assert not selection.summarising(api.ctx.db, "small", wait=60)  # the build they started


def test_a_first_build_is_its_own_step_and_the_map_answers_meanwhile(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many days to build (as after the migration): the map's requests do not build them (here
    nothing does until asked), answer from the rows, and equal them; a build in steps, stopped
    half-way, still answers from the rows; ``truceline db summarise`` ends it, with the summary
    equal to the rows for every filter (months summed once their last day is built)."""
    started: list[str] = []
    monkeypatch.setattr(selection, "_build_in_background", lambda db, aid: started.append(aid))
    _post(api, _reports(300, seed=6, prefix="s"))
    _, stale, _ = _summary_state(api)
    assert stale > selection.REQUEST_DAYS
    for params in FILTERS[:4]:
        got = api.get("/dashboard/clusters", role="analyst", params={**params, "zoom": 6}).json()
        _same_clusters(got, _rows_answer(api, params, 6, False))
    assert started and _summary_state(api)[:2] == (0, stale)  # asked for, not done in a request

    # Steps of five days, stopped half-way (as an interrupted build): still the rows' answers.
    for _ in range(3):
        api.ctx.db.write(lambda s: map_cells.refresh(s, "small", limit=5))
    cells, left, _ = _summary_state(api)
    assert cells > 0 and left == stale - 15
    got = api.get("/dashboard/timeline", role="analyst", params={"start": "2025-02-01"}).json()
    assert got == _rows_answer(api, {"start": "2025-02-01"}, None, False)

    res = CliRunner().invoke(
        app,
        ["db", "summarise", "--db", api.ctx.db.write_engine.url.render_as_string(hide_password=False)],
    )
    assert res.exit_code == 0, res.output
    assert f"small: the map's summary of {left} days built" in res.output
    assert _summary_state(api)[1] == 0
    _check_all(api)
    again = CliRunner().invoke(
        app,
        ["db", "summarise", "--db", api.ctx.db.write_engine.url.render_as_string(hide_password=False)],
    )
    assert again.exit_code == 0 and "up to date" in again.output


def _get(api: Api, path: str, role: str, params: dict[str, Any], tag: str | None = None) -> Any:
    headers = api.h(role) | ({"If-None-Match": tag} if tag else {})
    return api.client.get("/api/v1" + path, headers=headers, params=params)


def test_a_browser_holding_an_answer_is_told_not_modified_until_a_write(api: Api) -> None:
    """Answers read from the summary carry an entity tag and are kept by the browser (private,
    revalidated): asked again with the tag, the server answers 304 without a body until a write
    changes the summary; then the new answer, with a new tag. Answers counted from the rows (a
    monitor, a box) are not kept (no-store, no tag)."""
    _post(api, _reports(200, seed=8, prefix="e"))
    api.get("/dashboard/timeline", role="analyst")  # starts the first build (in the background)
    assert not selection.summarising(api.ctx.db, "small", wait=60)
    asks = [
        ("/dashboard/clusters", "analyst", {"zoom": 6}),
        ("/dashboard/clusters", "liaison", {"zoom": 9, "start": "2025-02-01"}),
        ("/dashboard/timeline", "analyst", {"kind": "explosion"}),
    ]
    tags = []
    for path, role, params in asks:
        first = _get(api, path, role, params)
        tag = first.headers["ETag"]
        assert first.status_code == 200 and first.headers["Cache-Control"] == "private, no-cache"
        again = _get(api, path, role, params, tag)
        assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
        assert _get(api, path, role, params, '"other"').status_code == 200
        tags.append((tag, first.json()))
    others = {t for t, _ in tags}
    assert len(others) == len(asks)  # one tag per filter, zoom and audience
    for path, role, params in (
        ("/dashboard/clusters", "monitor", {"zoom": 6}),
        ("/dashboard/clusters", "analyst", {"zoom": 6, "bbox": "35,47,39,50"}),
        ("/dashboard/clusters", "analyst", {"zoom": 12}),
    ):
        r = _get(api, path, role, params)
        assert r.status_code == 200 and "ETag" not in r.headers
        assert r.headers["Cache-Control"] == "no-store"

    _post(api, [rec("e-new", kind="explosion", day=LAST)])  # a write: the summary's day rebuilt
    for (path, role, params), (tag, before) in zip(asks, tags, strict=True):
        r = _get(api, path, role, params, tag)
        assert r.status_code == 200 and r.headers["ETag"] != tag, (path, role)
        if role == "analyst":
            assert r.json() != before  # the new report counts
