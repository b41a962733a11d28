"""The dashboard in a real browser, as people use it: Debian's Chromium driven by Playwright against
``truceline serve`` on the demo's data (the same `run_demo` as ``make demo``), on a free port.

Counts on the screen are checked against the database read directly (sqlite3), not against the
API the page uses. Screenshots go to out/test-artifacts/web/.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pyproj import Geod
from rich.console import Console

from truceline.io.agreement_files import load_agreement
from truceline.services.demo import demo_tokens, run_demo

from ..live import free_port, truceline_process, wait_ready
from ..media_samples import photo, wav
from .conftest import ARTIFACTS, ROOT, missing

pytestmark = pytest.mark.xdist_group("browser")  # one demo server and one browser per run

UKRAINE = ROOT / "examples" / "ukraine-2024"
SHOTS = ARTIFACTS / "web"
CHROMIUM = "/usr/bin/chromium"
# As on this machine's notes: no GPU, no background connections to a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The URL holds the map's view (written a moment after the map stops moving).
SETTLED = """() => {
  const u = new URLSearchParams(location.search), m = window.truceline.map.map, c = m.getCenter();
  return Number(u.get('z')) === m.getZoom()
    && Math.abs(u.get('lat') - c.lat) < 1e-4 && Math.abs(u.get('lon') - c.lng) < 1e-4;
}"""
VIEW = (
    "() => { const m = window.truceline.map.map, c = m.getCenter(); return [m.getZoom(), c.lat, c.lng] }"
)

FINDINGS = "SELECT count(*) FROM findings f JOIN incidents i ON i.pk = f.incident_pk"
QUIET = (
    "SELECT count(*) FROM incidents i WHERE i.day = ?"
    " AND NOT EXISTS (SELECT 1 FROM findings f WHERE f.incident_pk = i.pk)"
)
READY = (
    "document.body.dataset.ready === '1' && document.body.dataset.layers === '1'"
    " && document.body.dataset.base === '1' && !document.body.dataset.loading"
)


def wait(page: Any, expr: str, timeout: float = 30_000) -> None:
    """Wait until ``expr`` holds in the page. Passed as a function: the page's Content-Security-Policy
    has no 'unsafe-eval', which Playwright needs for a bare expression (so the CSP is tested too)."""
    page.wait_for_function(f"() => ({expr})", timeout=timeout)


def count_changed(before: int) -> str:
    """A page condition: the count of findings is no longer ``before`` and nothing is loading."""
    return (
        "!document.body.dataset.loading && document.querySelector('#count-findings') !== null"
        f" && document.querySelector('#count-findings').dataset.count !== '{before}'"
    )


@dataclass
class Server:
    url: str
    db: Path
    tokens: dict[str, str]
    day: dt.date
    first: dt.date
    parties: tuple[str, str]

    def sql(self, query: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as c:
            return c.execute(query, args).fetchall()

    def count(self, query: str, *args: Any) -> int:
        return int(self.sql(query, *args)[0][0])

    def api(self, path: str, role: str = "admin") -> Any:
        req = urllib.request.Request(
            self.url + "/api/v1" + path, headers={"Authorization": f"Bearer {self.tokens[role]}"}
        )
        with urllib.request.urlopen(req, timeout=180) as r:
            return json.load(r)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    out = tmp_path_factory.mktemp("demo")
    ag = load_agreement(UKRAINE)
    made = run_demo(ag, UKRAINE, out, console=Console(file=io.StringIO()))
    db = Path(str(made["db"]))
    tokens = demo_tokens(db, (ag.left, ag.right))
    port = free_port()
    proc = truceline_process(
        "serve", "--port", port, "--db", db, "--agreement", UKRAINE, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        s = Server(url, db, tokens, made["day"], made["first"], (ag.left, ag.right))  # type: ignore[arg-type]
        # The zone outlines are built once per server (seconds for a 1,000 km line): build them now,
        # so that each test's page load measures the page.
        s.api(f"/dashboard/layers?date={s.day}", "analyst")
        yield s
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        missing(f"Chromium is not installed at {CHROMIUM} (Debian: chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the Python package playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Tab:
    page: Any
    errors: list[str] = field(default_factory=list)

    def ready(self, timeout_ms: int = 60_000) -> None:
        wait(self.page, READY, timeout=timeout_ms)

    def count(self) -> int:
        return int(self.page.get_attribute("#count-findings", "data-count"))

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def no_errors(self) -> None:
        assert not self.errors, self.errors


@pytest.fixture()
def open_tab(server: Server, browser: Any) -> Iterator[Callable[..., Tab]]:
    contexts: list[Any] = []

    def make(role: str | None, path: str = "/", *, viewport: tuple[int, int] = (1280, 800)) -> Tab:
        ctx = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
        )
        contexts.append(ctx)
        if role is not None:
            # Signed in as the page keeps it (this tab's sessionStorage); the report's sandboxed
            # frame has no storage, hence the try.
            token = json.dumps(server.tokens[role])
            ctx.add_init_script(
                f"try {{ sessionStorage.setItem('truceline.token', {token}); }} catch (e) {{}}"
            )
        page = ctx.new_page()
        tab = Tab(page)
        page.on("pageerror", lambda e: tab.errors.append(str(e)))
        page.goto(server.url + path)
        return tab

    yield make
    for c in contexts:
        c.close()


# The clusters (drawn on a canvas, a button over each) and the single symbols (markers).
POINTS_ON_MAP = ".leaflet-points-pane .leaflet-marker-icon, .leaflet-points-pane button.cluster"


def _map_points(tab: Tab) -> int:
    """Points the map shows: cluster sizes plus single symbols (from the titles of the clusters'
    buttons and of the symbols' markers)."""
    titles = tab.page.eval_on_selector_all(
        POINTS_ON_MAP, "els => els.map(e => e.getAttribute('title') || '')"
    )
    total = 0
    for t in titles:
        if t.startswith("Cluster of "):
            total += int(t.split(":")[0].removeprefix("Cluster of "))
        else:
            total += 1
    return total


LABEL_OVERLAPS = """(POINTS) => {
  const boxes = (sel) => [...document.querySelectorAll(sel)].map((e) => [e, e.getBoundingClientRect()]);
  const labels = boxes('.leaflet-lines-pane .sector-label span');
  const points = boxes(POINTS);
  const out = [];
  for (const [l, a] of labels) for (const [p, b] of points)
    if (a.left < b.right && a.right > b.left && a.top < b.bottom && a.bottom > b.top)
      out.push([l.textContent, p.getAttribute('title')]);
  return out;
}"""


def _label_overlaps(tab: Tab) -> list[list[str]]:
    """Sector labels that cover a cluster or a symbol on the screen (none should)."""
    return list(tab.page.evaluate(LABEL_OVERLAPS, POINTS_ON_MAP))


def test_map_shows_the_zones_and_the_demo_days_findings(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    tab = open_tab("analyst")
    tab.ready()
    day = server.day.isoformat()
    assert (
        f"start={day}" in tab.page.url and f"end={day}" in tab.page.url
    )  # the newest day with findings
    findings = server.count(FINDINGS + " WHERE i.day = ?", day)
    quiet = server.count(QUIET, day)
    assert tab.count() == findings > 50
    assert int(tab.page.get_attribute("#count-incidents", "data-count")) == quiet
    # Every one of them is on the map, clustered or not (one zoom level out, none is off the view).
    z = tab.page.evaluate("() => window.truceline.map.map.getZoom()")
    tab.page.click(".leaflet-control-zoom-out")
    wait(tab.page, f"new URLSearchParams(location.search).get('z') === '{z - 1}'")
    assert _map_points(tab) == findings + quiet
    tab.page.click(".leaflet-control-zoom-in")
    wait(tab.page, f"new URLSearchParams(location.search).get('z') === '{z}'")
    # The agreement's layers: each zone per side, the withdrawal lines, the sectors, the line.
    assert tab.page.locator(".leaflet-zones-pane path").count() >= 10
    assert (
        tab.page.locator(".leaflet-lines-pane path[stroke-dasharray='6 4']").count() >= 8
    )  # withdrawal lines
    # Sector labels: inside their sectors, over no cluster or symbol (most fit at the first view).
    assert 5 <= tab.page.locator(".leaflet-lines-pane .sector-label").count() <= 7
    assert _label_overlaps(tab) == []
    assert tab.page.locator(".leaflet-base-pane canvas").count() == 1  # the Natural Earth base map
    legend = tab.page.inner_text("#legend")
    for text in ("15 km", "25 km", "35 km", "70 km", "Russian Federation", "Ukraine", "fire across"):
        assert text in legend, text
    tab.shot("map-analyst-1280x800")
    tab.no_errors()


def test_a_big_selection_is_clustered_by_the_server_and_points_load_per_view(
    server: Server, browser: Any
) -> None:
    """Past the page's threshold (set low here) the overview is the server's clusters, and the
    single points are fetched for the view only when zoomed in."""
    first, last = server.first.isoformat(), server.day.isoformat()
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        token = json.dumps(server.tokens["analyst"])
        ctx.add_init_script(
            f"try {{ sessionStorage.setItem('truceline.token', {token}); }} catch (e) {{}}"
            " globalThis.trucelineBig = 100;"
        )
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{server.url}/?start={first}&end={last}")
        tab = Tab(page, errors)
        tab.ready()
        findings = server.count(FINDINGS + " WHERE i.day BETWEEN ? AND ?", first, last)
        assert tab.count() == findings > 100
        assert page.evaluate("() => window.truceline.map.drawn.server") is True
        assert any("/dashboard/clusters" in u for u in requests)
        assert not any("/dashboard/features" in u for u in requests)  # no point fetched
        quiet = server.count(QUIET.replace("i.day = ?", "i.day BETWEEN ? AND ?"), first, last)
        z = page.evaluate("() => window.truceline.map.map.getZoom()")
        page.click(".leaflet-control-zoom-out")  # every cell in view, counted once
        wait(page, f"window.truceline.viewZoom === {z - 1} && !document.body.dataset.loading")
        assert page.evaluate("() => window.truceline.map.drawn.server") is True
        assert _map_points(tab) == findings + quiet
        tab.shot("map-server-clusters")
        # A cluster is a button: reached from the keyboard, Enter zooms into it.
        page.focus(".leaflet-points-pane button.cluster")
        page.keyboard.press("Enter")
        wait(page, f"window.truceline.map.map.getZoom() > {z - 1} && !document.body.dataset.loading")
        # Zoomed in: the view's points, fetched with its box.
        page.evaluate("() => window.truceline.map.map.setZoom(11, { animate: false })")
        wait(page, "window.truceline.viewZoom === 11 && !document.body.dataset.loading")
        assert page.evaluate("() => window.truceline.map.drawn.server") is False
        assert any("/dashboard/features" in u and "bbox=" in u for u in requests)
        assert _map_points(tab) <= findings + quiet
        tab.no_errors()
    finally:
        ctx.close()


PER_DAY_RULE = (
    "SELECT i.day, f.rule_id, count(*) FROM findings f JOIN incidents i ON i.pk = f.incident_pk"
    " WHERE i.withdrawn_at IS NULL{} GROUP BY i.day, f.rule_id"
)
RULE_BARS = """() => [...document.querySelectorAll('#rule-bars .rb-hit')].map((r) => [
  r.dataset.day, r.querySelector('title').textContent])"""
RULE_TOTALS = """() => Object.fromEntries([...document.querySelectorAll('#rule-bars .rb-legend li')]
  .map((li) => [li.dataset.rule, Number(li.querySelector('.muted').textContent.replace(/,/g, ''))]))"""


def _bars_by_day(tab: Tab) -> dict[str, dict[str, int]]:
    """What the strip under the map says per day: each rule's findings (from the tooltips)."""
    out: dict[str, dict[str, int]] = {}
    for day, title in tab.page.evaluate(RULE_BARS):
        inner = title.split("(", 1)[1].rstrip(")") if "(" in title else ""
        out[day] = {
            r: int(n.replace(",", "")) for r, n in (p.rsplit(" ", 1) for p in inner.split(", ") if p)
        }
    return out


def test_the_strip_under_the_map_shows_findings_per_day_by_rule(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    """Under the map, findings per day stacked by rule over every day with data (the server's
    timeline, read from the map's summary), equal to the database's counts for the analyst and
    to the released findings for a liaison; a click selects a day, a shift-click extends it."""
    tab = open_tab("analyst")
    tab.ready()
    want: dict[str, dict[str, int]] = {}
    for day, rule, n in server.sql(PER_DAY_RULE.format("")):
        want.setdefault(day, {})[rule] = n
    got = _bars_by_day(tab)
    assert {d: r for d, r in got.items() if r} == want and len(want) >= 5
    totals: dict[str, int] = {}
    for per in want.values():
        for rule, n in per.items():
            totals[rule] = totals.get(rule, 0) + n
    assert tab.page.evaluate(RULE_TOTALS) == totals and len(totals) >= 3
    # Coloured by the agreement's rules: one colour per rule, the same in the legend and the bars.
    colours = tab.page.evaluate(
        "() => [...new Set([...document.querySelectorAll('#rule-bars path[data-rule]')]"
        ".map((r) => r.dataset.rule + '=' + r.getAttribute('fill')))]"
    )
    assert len(colours) == len(totals)
    tab.shot("map-rule-strip-analyst")
    # A day clicked in the strip selects it; shift-click on a later one extends the range.
    days = sorted(want)
    first, other = days[1], days[3]
    tab.page.click(f"#rule-bars .rb-hit[data-day='{first}']", force=True)
    wait(tab.page, f"new URLSearchParams(location.search).get('end') === '{first}'")
    tab.ready()
    assert f"start={first}" in tab.page.url
    assert tab.count() == sum(want[first].values())
    assert tab.page.locator("#rule-bars .rb-sel").count() == 1
    tab.page.click(f"#rule-bars .rb-hit[data-day='{other}']", modifiers=["Shift"], force=True)
    wait(tab.page, f"new URLSearchParams(location.search).get('end') === '{other}'")
    tab.ready()
    assert f"start={first}" in tab.page.url
    assert tab.count() == sum(sum(want[d].values()) for d in days[1:4])
    tab.no_errors()

    liaison = open_tab(f"liaison-{server.parties[0]}")
    liaison.ready()
    released: dict[str, dict[str, int]] = {}
    for day, rule, n in server.sql(PER_DAY_RULE.format(" AND f.released_at IS NOT NULL")):
        released.setdefault(day, {})[rule] = n
    assert released and {d: r for d, r in _bars_by_day(liaison).items() if r} == released
    liaison.shot("map-rule-strip-liaison")
    liaison.no_errors()


def test_filters_change_the_count_and_the_url_and_a_reload_restores_the_view(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    tab = open_tab("analyst")
    tab.ready()
    page = tab.page
    before = tab.count()
    page.click("details[data-filter='rule'] summary")
    page.check("#f-rule-fire-across")
    wait(page, count_changed(before))
    want = server.count(
        FINDINGS + " WHERE i.day = ? AND f.rule_id = 'fire-across'",
        server.day.isoformat(),
    )
    assert tab.count() == want < before
    assert "rule=fire-across" in page.url
    # The export button downloads exactly what is filtered.
    with page.expect_download() as dl:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert len(rows) == want and {r["rule_id"] for r in rows} == {"fire-across"}
    # Zoom in, pick a finding from the list: both go into the URL.
    page.click(".leaflet-control-zoom-in")
    wait(page, "new URLSearchParams(location.search).get('z') !== null")
    page.click("#list-details summary")
    page.click("#list li:first-child button")
    page.wait_for_selector("#panel:not([hidden]) .finding.highlight")
    wait(page, "new URLSearchParams(location.search).get('sel') !== null")
    page.wait_for_function(SETTLED)  # the map's move is written to the URL once it settles
    url = page.url
    view = page.evaluate(VIEW)
    title = page.inner_text("#panel .finding.highlight h3")
    tab.shot("filtered-selected")
    page.reload()
    tab.ready()
    page.wait_for_selector("#panel:not([hidden]) .finding.highlight")
    assert page.is_checked("#f-rule-fire-across") and tab.count() == want
    assert page.inner_text("#panel .finding.highlight h3") == title
    again = page.evaluate(VIEW)
    assert again[0] == view[0] and abs(again[1] - view[1]) < 1e-3 and abs(again[2] - view[2]) < 1e-3
    # A shared link opens the same view in another browser session.
    other = open_tab("analyst", url.removeprefix(server.url))
    other.ready()
    other.page.wait_for_selector("#panel:not([hidden]) .finding.highlight")
    assert other.count() == want and other.page.inner_text("#panel .finding.highlight h3") == title
    tab.no_errors()


def test_the_in_force_and_in_area_filters_reach_the_api_and_the_url(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    """Issue 16: reports no rule judged (outside the area, agreement not in force) are a filter."""
    tab = open_tab("analyst")
    tab.ready()
    page = tab.page
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    before = tab.count()
    assert before > 0
    page.click("details[data-filter='in_area'] summary")
    page.check("#f-in_area-false")
    wait(page, count_changed(before))
    assert tab.count() == 0  # no finding outside the area of application: no rule judged there
    assert "in_area=false" in page.url
    assert any("/dashboard/features" in u and "in_area=false" in u for u in requests)
    page.check("#f-in_area-true")  # both ticked: every report again
    wait(page, count_changed(0))
    assert tab.count() == before
    page.uncheck("#f-in_area-true")
    wait(page, count_changed(before))
    page.reload()
    tab.ready()
    assert page.is_checked("#f-in_area-false") and tab.count() == 0
    page.click("details[data-filter='in_force'] summary")
    page.check("#f-in_force-true")
    page.uncheck("#f-in_area-false")
    wait(page, count_changed(0))
    assert tab.count() == before and "in_force=true" in page.url
    tab.no_errors()


def test_a_monitors_observation_from_the_form_lands_in_its_sector(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    """Issue 16: the dashboard's form carries the observation as monitors write it (observer, time
    window, direction arc, distance range); the server puts it in the sector (pyproj checks)."""
    tab = open_tab("analyst")
    tab.ready()
    page = tab.page
    page.click("#observe-details summary")
    obs = (37.7560, 48.4010)
    page.fill("#obs-id", "WEB-OBS-1")
    page.fill("#obs-observer_lon", str(obs[0]))
    page.fill("#obs-observer_lat", str(obs[1]))
    page.fill("#obs-observed_from", "2025-03-01T21:00+02:00")
    page.fill("#obs-observed_to", "2025-03-01T23:30+02:00")
    page.fill("#obs-bearing_from_deg", "270")
    page.fill("#obs-bearing_to_deg", "0")
    page.fill("#obs-distance_min_km", "3")
    page.fill("#obs-distance_max_km", "5")
    page.select_option("#obs-kind", "bursts")
    page.fill("#obs-count", "40")
    page.click("#obs-send")
    wait(page, "document.querySelector('#obs-result').dataset.status === 'accepted'")
    assert "Stored as incident" in page.inner_text("#obs-result")
    [(lon, lat, sigma, kind, t)] = server.sql(
        "SELECT lon, lat, uncertainty_m, kind, observed_at FROM incidents WHERE report_id = ?",
        "WEB-OBS-1",
    )
    az, _, dist = Geod(ellps="WGS84").inv(obs[0], obs[1], lon, lat)
    assert 270.0 <= az % 360.0 <= 360.0 and 3000.0 <= dist <= 5000.0, (az, dist)
    assert kind == "small_arms_fire" and sigma > 500.0 and str(t).startswith("2025-03-01 20:15")
    # a bad one is refused with the field and the fix, nothing stored
    page.fill("#obs-id", "WEB-OBS-2")
    page.fill("#obs-distance_max_km", "80")
    page.click("#obs-send")
    wait(page, "document.querySelector('#obs-result').dataset.status === 'rejected'")
    assert "distance_max_km" in page.inner_text("#obs-result")
    assert server.count("SELECT count(*) FROM incidents WHERE report_id = 'WEB-OBS-2'") == 0
    tab.no_errors()


def test_an_analysts_verify_persists_and_shows_in_the_history(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    tab = open_tab("analyst", "/?view=queue")
    page = tab.page
    page.wait_for_selector("#queue tbody tr")
    assert "awaiting review" in page.inner_text("#queue-summary")
    first = page.locator("#queue tbody tr").first
    pk = int(first.get_attribute("data-pk"))
    assert "serious" in first.inner_text()  # most serious first
    first.press("Enter")  # keyboard: a row opens with Enter
    page.wait_for_selector("#panel:not([hidden]) #act-verify")
    page.fill("#review-comment", "corroborated by two patrols")
    page.click("#act-verify")
    page.wait_for_selector("#panel .history li[data-action='verify']")
    assert server.sql("SELECT status FROM incidents WHERE pk = ?", pk) == [("verified",)]
    tab.shot("queue-verified")
    page.reload()
    page.wait_for_selector("#panel:not([hidden]) .history li[data-action='verify']")
    history = page.inner_text("#panel .history")
    assert "corroborated by two patrols" in history and "demo-analyst" in history
    page.wait_for_selector("#queue tbody tr")  # the queue, loaded beside the panel
    assert page.locator(f"#queue tbody tr[data-pk='{pk}']").count() == 0  # no longer awaiting review
    assert page.is_disabled("#act-verify")
    tab.no_errors()


def test_a_liaison_cannot_see_unreleased_findings(server: Server, open_tab: Callable[..., Tab]) -> None:
    first, last = server.first.isoformat(), server.day.isoformat()
    tab = open_tab(f"liaison-{server.parties[0]}", f"/?start={first}&end={last}")
    tab.ready()
    page = tab.page
    between = FINDINGS + " WHERE i.day BETWEEN ? AND ?"
    released = server.count(between + " AND f.released_at IS NOT NULL", first, last)
    total = server.count(between, first, last)
    assert 0 < tab.count() == released < total
    assert page.locator("#count-incidents").count() == 0  # no raw reports at all
    assert _map_points(tab) == released
    assert page.is_hidden("#tab-queue")
    legend = page.inner_text("#legend")
    assert "Observation posts" not in legend and "Other incidents" not in legend and "null" not in legend
    tab.shot("map-liaison")
    # A link to an unreleased finding opens nothing about it.
    (pk,) = server.sql("SELECT pk FROM findings WHERE released_at IS NULL LIMIT 1")[0]
    other = open_tab(f"liaison-{server.parties[0]}", f"/?start={first}&end={last}&sel=f{pk}")
    other.ready()
    other.page.wait_for_selector("#panel:not([hidden]) .error")
    assert "no finding" in other.page.inner_text("#panel").lower()
    other.shot("liaison-unreleased-link")
    # A released one shows the finding and not the report behind it.
    (rpk,) = server.sql("SELECT pk FROM findings WHERE released_at IS NOT NULL LIMIT 1")[0]
    shown = open_tab(f"liaison-{server.parties[0]}", f"/?start={first}&end={last}&sel=f{rpk}")
    shown.ready()
    shown.page.wait_for_selector("#panel:not([hidden]) .finding")
    text = shown.page.inner_text("#panel")
    assert (
        "not released" in text
        and "Report and linked records" not in text
        and "Review history" not in text
    )
    # Its ledger proof is offered: today's entries are proved against a checkpoint (main's ledger
    # checkpoints), or the day is not closed yet (a server that has not checkpointed).
    shown.page.click("#panel .proof button")
    shown.page.wait_for_selector(
        "#panel .proof span:has-text('not closed yet'), #panel .proof span:has-text('saved finding-')"
    )
    tab.no_errors()


def test_the_public_sees_the_published_report_only(server: Server, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab(None, "/?view=daily")
    page = tab.page
    wait(page, "document.body.dataset.daily === '1'")
    assert page.is_visible("#tab-map") and page.is_hidden("#tab-queue")  # the published map
    # The newest published report: the day before the demo day.
    published = (server.day - dt.timedelta(days=1)).isoformat()
    assert page.input_value("#daily-day") == published
    frame = page.frame_locator("#daily-frame")
    assert "Ukraine line of contact" in frame.locator("h1").inner_text()
    assert "Published report" in page.inner_text("#daily-state")
    assert page.is_hidden(".trend")  # statistics are not for the public
    tab.shot("daily-public")
    page.fill("#daily-day", server.day.isoformat())
    page.dispatch_event("#daily-day", "change")
    wait(page, "document.body.dataset.daily === '1'")
    assert "not published yet" in page.inner_text("#daily-state")  # the demo day is not
    tab.no_errors()


def test_the_public_map_shows_the_released_findings_only(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    """Signed out (the public, a journalist): the map of what the mission has published."""
    first, last = server.first.isoformat(), server.day.isoformat()
    tab = open_tab(None, f"/?start={first}&end={last}")
    tab.ready()
    page = tab.page
    between = FINDINGS + " WHERE i.day BETWEEN ? AND ?"
    released = server.count(between + " AND f.released_at IS NOT NULL", first, last)
    assert 0 < tab.count() == released < server.count(between, first, last)
    assert page.locator("#count-incidents").count() == 0  # no raw reports
    assert _map_points(tab) == released
    assert page.is_hidden("#tab-queue") and page.is_hidden("#export-csv")
    assert page.locator(".leaflet-zones-pane path").count() >= 10  # the agreement's layers
    assert page.locator(".op-icon").count() == 0  # where monitors stand is not published
    legend = page.inner_text("#legend")
    assert "Observation posts" not in legend and "Other incidents" not in legend
    tab.shot("map-public")
    # A released finding opens as published; an unreleased one is not found.
    (rpk,) = server.sql("SELECT pk FROM findings WHERE released_at IS NOT NULL LIMIT 1")[0]
    shown = open_tab(None, f"/?start={first}&end={last}&sel=f{rpk}")
    shown.ready()
    shown.page.wait_for_selector("#panel:not([hidden]) .finding")
    text = shown.page.inner_text("#panel")
    assert "Published by the mission" in text and "Ledger proof" not in text
    (pk,) = server.sql("SELECT pk FROM findings WHERE released_at IS NULL LIMIT 1")[0]
    other = open_tab(None, f"/?start={first}&end={last}&sel=f{pk}")
    other.ready()
    other.page.wait_for_selector("#panel:not([hidden]) .error")
    assert "no finding" in other.page.inner_text("#panel").lower()
    tab.no_errors()
    shown.no_errors()


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``truceline serve --agreement examples/ukraine-2024`` on an empty database."""
    db = tmp_path_factory.mktemp("empty") / "empty.db"
    ag = load_agreement(UKRAINE)
    tokens = demo_tokens(db, (ag.left, ag.right))  # migrates the new database
    port = free_port()
    proc = truceline_process(
        "serve", "--port", port, "--db", db, "--agreement", UKRAINE, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        s = Server(url, db, tokens, ag.effective_from, ag.effective_from, (ag.left, ag.right))
        s.api("/dashboard/layers", "analyst")  # the outlines, built once per server
        yield s
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.parametrize("role", ["analyst", None])
def test_an_empty_database_shows_the_agreement_fitted_to_its_area(
    empty_server: Server, browser: Any, role: str | None
) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        if role is not None:
            token = json.dumps(empty_server.tokens[role])
            ctx.add_init_script(
                f"try {{ sessionStorage.setItem('truceline.token', {token}); }} catch (e) {{}}"
            )
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(empty_server.url + "/")
        tab = Tab(page, errors)
        tab.ready()
        assert tab.count() == 0
        assert page.locator(".leaflet-zones-pane path").count() >= 10
        assert page.locator(".leaflet-lines-pane .sector-label").count() >= 5
        assert (page.locator(".op-icon").count() > 0) == (role is not None)  # posts: staff only
        # The first view holds the whole area of application, and not much more.
        legend = empty_server.api("/dashboard/legend", "analyst")
        w, s, e, n = legend["area_bbox"]
        view = page.evaluate(
            "() => { const b = window.truceline.map.map.getBounds();"
            " return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()] }"
        )
        assert view[0] <= w and view[1] <= s and view[2] >= e and view[3] >= n, (view, legend)
        assert (view[2] - view[0]) < 2.5 * (e - w), view  # one zoom level out would fail this
        tab.shot(f"empty-{role or 'public'}")
        tab.no_errors()
    finally:
        ctx.close()


def test_daily_view_report_trend_and_pdf(server: Server, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab("analyst", "/?view=daily")
    page = tab.page
    wait(page, "document.body.dataset.daily === '1'", timeout=120_000)
    frame = page.frame_locator("#daily-frame")
    assert "Summary" in frame.locator("#summary h2").inner_text()
    assert page.locator("#trend-party svg rect").count() >= 7  # a bar per day and party
    assert page.locator("#trend-rule .chart-legend li").count() >= 5
    tab.shot("daily-analyst")
    with page.expect_download(timeout=120_000) as dl:
        page.click("#daily-pdf")
    data = Path(dl.value.path()).read_bytes()
    assert data.startswith(b"%PDF-") and dl.value.suggested_filename.endswith("-draft.pdf")
    tab.no_errors()


def test_tablet_and_keyboard(server: Server, open_tab: Callable[..., Tab]) -> None:
    tab = open_tab("analyst", viewport=(820, 1180))  # a tablet held upright
    tab.ready()
    page = tab.page
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "false"  # the map first
    tab.shot("map-tablet-820x1180")
    page.focus("#sidebar-toggle")
    page.keyboard.press("Enter")
    assert page.get_attribute("#sidebar-toggle", "aria-expanded") == "true"
    before = tab.count()
    page.focus("details[data-filter='party'] summary")
    page.keyboard.press("Enter")  # open the group
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the first party's checkbox
    wait(page, count_changed(before))
    assert 0 < tab.count() < before and "party=" in page.url
    # The timeline answers the arrow keys: a day earlier.
    page.focus("#timeline")
    page.keyboard.press("ArrowLeft")
    earlier = (server.day - dt.timedelta(days=1)).isoformat()
    wait(
        page,
        f"new URLSearchParams(location.search).get('end') === '{earlier}'"
        " && !document.body.dataset.loading",
    )
    tab.shot("filters-tablet")
    tab.no_errors()


# -- the planner's view (issue 7) ------------------------------------------------------------------

PLANNED = "document.body.dataset.planner === '1' && document.body.dataset.planbase === '1'"
TABLE = """() => [...document.querySelectorAll('#plan-table tbody tr[data-label]')].map(
  tr => [tr.dataset.label, ...[...tr.querySelectorAll('td')].map(td => td.textContent)])"""


def _planned(page: Any, a: str, b: str) -> None:
    wait(
        page,
        f"{PLANNED} && document.querySelector('#view-planner').dataset.a === '{a}'"
        f" && document.querySelector('#view-planner').dataset.b === '{b}'",
        timeout=120_000,
    )


def test_planner_shows_two_scenarios_and_their_differences(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    from truceline.core.planner import SensorParameters
    from truceline.report.planner import comparison_rows
    from truceline.services.planner import compare_plan

    tab = open_tab("analyst", "/?view=planner&a=frozen&b=salient")
    page = tab.page
    _planned(page, "frozen", "salient")
    got = server.api("/planner/compare?a=frozen&b=salient", "analyst")
    # The API's figures are those of `truceline plan compare` (the same service, computed here anew).
    cli = compare_plan(UKRAINE, ["frozen", "salient"], sensors=SensorParameters())
    assert got["rows"] == json.loads(json.dumps(comparison_rows(cli)))
    # The table shows them, row by row, cell by cell.
    table = page.evaluate(TABLE)
    assert table == [[r["label"], *r["cells"]] for r in got["rows"]]
    assert ["Land passing to UA (km²)", "—", f"{cli.scenarios[1].changed_km2:,.0f}"] in table
    # The map: both lines, four buffer outlines, the land changing hands in the gainer's colour.
    assert page.locator("#plan-map path.line-a").count() == 1
    assert page.locator("#plan-map path.line-b").count() == 1
    assert page.locator("#plan-map path.plan-buffer").count() == 4
    changes = [f for f in got["geojson"]["features"] if f["properties"]["layer"] == "change"]
    assert len(changes) == 1 and changes[0]["properties"]["to_party"] == "UA"
    shaded = page.locator("#plan-map path.plan-change.to-UA")
    assert shaded.count() == 1
    colour = "#0072B2" if server.parties[0] == "UA" else "#D55E00"
    assert shaded.get_attribute("fill").upper() == colour.upper()
    assert float(shaded.get_attribute("fill-opacity")) > 0.3
    assert page.locator("#plan-map path.plan-place").count() == 11  # the places changing hands
    assert "1,575 km²" in page.inner_text("#plan-legend")
    tab.shot("planner-1280x800")

    # Another scenario B: the URL and the numbers follow; a reload restores them.
    page.select_option("#plan-b", "admin-borders")
    _planned(page, "frozen", "admin-borders")
    assert "a=frozen" in page.url and "b=admin-borders" in page.url
    other = server.api("/planner/compare?a=frozen&b=admin-borders", "analyst")
    table2 = page.evaluate(TABLE)
    assert table2 == [[r["label"], *r["cells"]] for r in other["rows"]] and table2 != table
    assert page.locator("#plan-map path.plan-change").count() == sum(
        f["properties"]["layer"] == "change" for f in other["geojson"]["features"]
    )
    assert page.locator("#plan-map path.plan-change.to-RU").count() >= 1  # both ways this time
    assert page.locator("#plan-map path.plan-change.to-UA").count() >= 1
    tab.shot("planner-admin-borders-1280x800")
    page.reload()
    _planned(page, "frozen", "admin-borders")
    assert page.input_value("#plan-b") == "admin-borders" and page.evaluate(TABLE) == table2
    tab.no_errors()


def test_planner_on_a_tablet_with_the_keyboard_and_not_for_liaisons(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    tab = open_tab("analyst", "/?view=planner", viewport=(820, 1180))
    page = tab.page
    _planned(page, "frozen", "admin-borders")  # the defaults: the first two scenarios
    assert "a=frozen" in page.url and "b=admin-borders" in page.url
    box = page.locator("#plan-map").bounding_box()
    assert box["width"] > 800 and box["height"] > 400  # the map first, across the screen
    tab.shot("planner-tablet-820x1180")
    page.focus("#plan-swap")
    page.keyboard.press("Enter")
    _planned(page, "admin-borders", "frozen")
    assert "a=admin-borders" in page.url and "b=frozen" in page.url
    tab.no_errors()
    liaison = open_tab(f"liaison-{server.parties[0]}", "/?view=planner&a=frozen&b=salient")
    liaison.ready()
    assert liaison.page.is_hidden("#tab-planner") and liaison.page.is_hidden("#view-planner")
    assert "view=map" in liaison.page.url
    liaison.no_errors()


def test_an_analyst_reviews_one_finding_and_a_liaison_gets_no_buttons(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    pk, n = server.sql(
        "SELECT i.pk, count(*) FROM incidents i JOIN findings f ON f.incident_pk = i.pk"
        " WHERE i.status = 'new' AND f.status = 'open' AND i.day = ?"
        " GROUP BY i.pk HAVING count(*) >= 2 ORDER BY i.pk LIMIT 1",
        server.day.isoformat(),
    )[0]
    fpks = [r[0] for r in server.sql("SELECT pk FROM findings WHERE incident_pk = ? ORDER BY pk", pk)]
    target = fpks[-1]
    tab = open_tab("analyst", f"/?view=queue&sel=i{pk}")
    page = tab.page
    card = page.locator(f"#panel .finding[data-finding='{target}']")
    card.wait_for()
    assert page.locator("#panel .finding [data-finding-action='verify']").count() == n
    card.locator(".finding-comment").fill("tank seen on the drone video")
    card.locator("[data-finding-action='verify']").click()
    page.wait_for_selector(f"#panel .history li[data-action='verify']:has-text('finding {target}')")
    assert server.sql("SELECT status FROM findings WHERE pk = ?", target) == [("verified",)]
    others = server.sql(
        "SELECT DISTINCT status FROM findings WHERE incident_pk = ? AND pk != ?", pk, target
    )
    assert others == [("open",)]  # only that finding
    assert server.sql("SELECT status FROM incidents WHERE pk = ?", pk) == [("new",)]  # still queued
    tab.shot("finding-verified")
    page.reload()
    card = page.locator(f"#panel .finding[data-finding='{target}']")
    card.wait_for()
    assert "verified" in card.locator(".status").first.inner_text()
    assert card.locator("[data-finding-action='verify']").is_disabled()
    history = page.inner_text("#panel .history")
    assert "tank seen on the drone video" in history and "demo-analyst" in history
    # still awaiting review (the queue loads beside the panel: wait for its row)
    page.locator(f"#queue tbody tr[data-pk='{pk}']").wait_for()
    tab.no_errors()
    # A liaison sees a released finding with no review buttons at all.
    (rpk,) = server.sql("SELECT pk FROM findings WHERE released_at IS NOT NULL LIMIT 1")[0]
    first, last = server.first.isoformat(), server.day.isoformat()
    liaison = open_tab(f"liaison-{server.parties[0]}", f"/?start={first}&end={last}&sel=f{rpk}")
    liaison.ready()
    liaison.page.wait_for_selector("#panel:not([hidden]) .finding")
    assert liaison.page.locator("#panel [data-finding-action], #panel #act-verify").count() == 0
    assert liaison.page.locator("#panel .finding-comment, #panel #review-comment").count() == 0
    liaison.no_errors()


def test_the_panel_lists_the_reports_of_the_same_event_and_opens_them(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    rows = server.sql(
        "SELECT a.pk, b.pk, b.report_id FROM incidents a JOIN incidents b"
        " ON a.event_id = b.event_id AND a.pk != b.pk WHERE a.event_id IS NOT NULL"
        " ORDER BY a.pk LIMIT 1"
    )
    assert rows, "the demo data holds fused events (duplicate reports of one event)"
    pk, other, other_id = rows[0]
    n_linked = server.sql(
        "SELECT count(*) FROM incidents WHERE event_id = (SELECT event_id FROM incidents WHERE pk = ?)",
        pk,
    )[0][0]
    tab = open_tab("analyst", f"/?view=queue&sel=i{pk}")
    page = tab.page
    page.wait_for_selector("#panel .linked-reports li")
    assert page.locator("#panel .linked-reports li").count() == n_linked - 1
    item = page.locator(f"#panel .linked-reports li[data-pk='{other}']")
    assert "away" in item.inner_text()
    item.locator("button").click()
    page.wait_for_selector(f"#panel .sub code:text-is('{other_id}')")
    assert f"sel=i{other}" in page.url
    tab.shot("panel-linked-reports")
    tab.no_errors()


# -- sensors on the map (issue 6) ------------------------------------------------------------------

SENSOR_FC = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [37.55, 48.62]},
            "properties": {"id": "S-A", "network": "north", "kind": "acoustic", "status": "active",
                           "detections_24h": 12},
        },
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [37.7, 48.3]},
            "properties": {"id": "S-R", "network": "north", "kind": "acoustic", "status": "retired",
                           "detections_24h": 0},
        },
    ],
}  # fmt: skip


def _post(server: Server, path: str, body: Any, role: str = "admin") -> Any:
    req = urllib.request.Request(
        server.url + "/api/v1" + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {server.tokens[role]}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=180) as r:
        return json.load(r)


def _sensor_ids(tab: Tab) -> list[str]:
    return sorted(
        tab.page.evaluate(
            "() => window.truceline.map.groups.sensors.getLayers().map(l => l.getTooltip().getContent())"
        )
    )


def test_sensors_layer_from_the_server(server: Server, open_tab: Callable[..., Tab]) -> None:
    """Sensors registered through the API appear with their status; a liaison never asks for them."""
    try:
        server.api("/sensors", "analyst")
    except urllib.error.HTTPError as exc:  # a server without the endpoint: the layer is left out
        assert exc.code == 404
        tab = open_tab("analyst")
        tab.ready()
        wait(tab.page, "document.body.dataset.sensors === 'none'")
        assert "Acoustic sensors" not in tab.page.inner_text("#legend")
        tab.no_errors()
        return
    x, y = 37.62, 48.55  # near the line in the Donetsk sectors
    sensors = [
        {"id": f"web-{k}", "network": "web-test", "lon": x + 0.05 * k, "lat": y + 0.02 * k}
        for k in range(4)
    ]
    sensors[3]["retired_at"] = "2025-01-01T00:00:00Z"
    _post(server, "/sensors", {"sensors": sensors})
    want = server.api("/sensors", "analyst")["features"]
    assert {"web-0", "web-3"} <= {f["properties"]["id"] for f in want}
    tab = open_tab("analyst")
    tab.ready()
    wait(tab.page, f"document.body.dataset.sensors === '{len(want)}'")
    page = tab.page
    assert page.locator(".leaflet-sensors-pane path.sensor").count() == len(want)
    assert page.locator(".leaflet-sensors-pane path.sensor.retired").count() == sum(
        f["properties"]["status"] == "retired" for f in want
    )
    assert "Acoustic sensors" in page.inner_text("#legend")
    page.evaluate("() => window.truceline.map.map.setView([48.58, 37.7], 10, {animate: false})")
    page.locator(".leaflet-sensors-pane path.sensor.retired").first.click(force=True)
    popup = page.locator(".leaflet-popup-content")
    popup.wait_for()
    assert "retired" in popup.inner_text() and "web-test" in popup.inner_text()
    tab.shot("map-sensors")
    # The switch hides them (keyboard: the legend's checkbox).
    page.focus("#legend input[data-layer='sensors']")
    page.keyboard.press("Space")
    assert page.locator(".leaflet-sensors-pane path.sensor").count() == 0
    tab.no_errors()
    # A liaison's page never asks for sensors.
    asked: list[str] = []
    liaison = open_tab(f"liaison-{server.parties[0]}", "/", viewport=(1280, 800))
    liaison.page.on("request", lambda r: asked.append(r.url))
    liaison.page.reload()
    liaison.ready()
    wait(liaison.page, "document.body.dataset.sensors === 'none'")
    assert not [u for u in asked if "/api/v1/sensors" in u]
    assert liaison.page.locator(".leaflet-sensors-pane path").count() == 0
    assert "sensors" not in liaison.page.inner_text("#legend").lower()
    liaison.no_errors()


def test_patrol_tracks_for_the_mission_and_not_for_the_parties(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    """A patrol's position reports on the shown day draw as its track, with a legend switch; a
    liaison's page never asks for them."""
    from truceline.services.patrols import PatrolPosition, store_positions
    from truceline.store.db import Database

    t0 = dt.datetime.combine(server.day, dt.time(9), tzinfo=dt.UTC)
    fixes = [
        PatrolPosition(
            uid="web-patrol",
            cot_type="a-f-G-U-C",
            observed_at=t0 + dt.timedelta(minutes=10 * k),
            lon=37.55 + 0.03 * k,
            lat=48.45 + 0.01 * k,
            uncertainty_m=10.0,
            callsign="WEB-1",
            group_name="Cyan",
        )
        for k in range(6)
    ]
    db = Database(str(server.db))
    try:
        db.write(lambda s: store_positions(s, "ukraine-2024", fixes, submitted_by="web-test", now=t0))
    finally:
        db.dispose()
    want = server.api(f"/dashboard/patrols?start={server.day}", "analyst")["features"]
    assert "web-patrol" in {f["properties"]["uid"] for f in want}
    tab = open_tab("analyst")
    tab.ready()
    wait(tab.page, f"document.body.dataset.patrols === '{len(want)}'")
    page = tab.page
    assert page.locator(".leaflet-sensors-pane path.patrol-track").count() >= 1
    assert "Patrol tracks" in page.inner_text("#legend")
    page.evaluate("() => window.truceline.map.map.setView([48.48, 37.62], 11, {animate: false})")
    wait(page, READY)
    tab.shot("map-patrols")
    page.focus("#legend input[data-layer='patrols']")
    page.keyboard.press("Space")
    assert page.locator(".leaflet-sensors-pane path.patrol-track").count() == 0
    tab.no_errors()
    asked: list[str] = []
    liaison = open_tab(f"liaison-{server.parties[0]}", "/", viewport=(1280, 800))
    liaison.page.on("request", lambda r: asked.append(r.url))
    liaison.page.reload()
    liaison.ready()
    wait(liaison.page, "document.body.dataset.patrols === 'none'")
    assert not [u for u in asked if "/dashboard/patrols" in u]
    assert "patrol" not in liaison.page.inner_text("#legend").lower()
    liaison.no_errors()


def test_sensors_layer_follows_the_contract_and_hides_on_refusal(
    server: Server, open_tab: Callable[..., Tab]
) -> None:
    """The page against the endpoint's contract (answers stubbed): drawn from a FeatureCollection,
    left out without a message on 404 or 403."""
    tab = open_tab(None)
    page = tab.page
    page.route(
        "**/api/v1/sensors*",
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(SENSOR_FC)
        ),
    )
    token = json.dumps(server.tokens["admin"])
    page.evaluate(f"() => sessionStorage.setItem('truceline.token', {token})")
    page.reload()
    tab.ready()
    wait(page, "document.body.dataset.sensors === '2'")
    assert _sensor_ids(tab) == ["Sensor S-A", "Sensor S-R (retired)"]
    legend = page.inner_text("#legend")
    assert "Acoustic sensors (1 active)" in legend and "retired (1)" in legend
    for status in (404, 403):
        page.unroute("**/api/v1/sensors*")
        body = json.dumps({"error": {"status": status, "message": "no"}})
        page.route(
            "**/api/v1/sensors*",
            lambda route, _req=None, status=status, body=body: route.fulfill(
                status=status, content_type="application/json", body=body
            ),
        )
        page.reload()
        tab.ready()
        wait(page, "document.body.dataset.sensors === 'none'")
        assert page.locator(".leaflet-sensors-pane path.sensor").count() == 0
        assert "sensors" not in page.inner_text("#legend").lower()
        assert page.is_hidden("#notice")
    tab.no_errors()


# The overlay's image, drawn whole: a blob: URL fetched with the token (no token in any URL).
DRAWN = (
    "(() => { const i = document.querySelector('.viewer img.viewer-media');"
    " return !!i && i.complete && i.naturalWidth === 64 && i.src.startsWith('blob:'); })()"
)
THUMB = (
    "(() => { const i = document.querySelector('#panel .attachment .thumb img');"
    " return !!i && i.complete && i.naturalWidth === 64 && i.src.startsWith('blob:'); })()"
)


def test_an_analyst_files_a_photo_from_40_km_away_views_and_releases_it(
    server: Server, open_tab: Callable[..., Tab], tmp_path: Path
) -> None:
    pk, lon, lat, observed = server.sql(
        "SELECT pk, lon, lat, observed_at FROM incidents ORDER BY pk LIMIT 1"
    )[0]
    taken = dt.datetime.fromisoformat(str(observed))
    taken = (taken if taken.tzinfo else taken.replace(tzinfo=dt.UTC)) + dt.timedelta(minutes=20)
    plon, plat, _ = Geod(ellps="WGS84").fwd(lon, lat, 0.0, 40_000.0)  # 40 km north
    jpeg = photo(lon=plon, lat=plat, taken=taken, seed=21)
    sha = hashlib.sha256(jpeg).hexdigest()
    good = tmp_path / "crater.jpg"
    good.write_bytes(jpeg)
    cut = tmp_path / "cut.jpg"  # truncated: refused with a reason, the good one still filed
    cut.write_bytes(jpeg[: len(jpeg) // 2])

    tab = open_tab("analyst", f"/?view=queue&sel=i{pk}")
    page = tab.page
    page.wait_for_selector("#panel .evidence[data-count]")
    before = server.count("SELECT count(*) FROM attachments WHERE incident_pk = ?", pk)
    page.set_input_files("#panel .att-input", [str(good), str(cut)])
    page.click("#panel .att-send")
    item = page.locator(f"#panel .attachment[data-sha256='{sha}']")
    item.wait_for()
    results = page.locator("#panel .upload-result")
    assert results.count() == 2
    assert results.nth(0).get_attribute("data-outcome") == "filed"
    assert results.nth(1).get_attribute("data-outcome") == "refused"
    assert "cut.jpg: refused" in results.nth(1).inner_text()
    # Stored once, in the database the page does not read through.
    rows = server.sql(
        "SELECT size_bytes, media_type, consistent, released FROM attachments"
        " WHERE incident_pk = ? AND sha256 = ?",
        pk,
        sha,
    )
    assert rows == [(len(jpeg), "image/jpeg", 0, 0)]
    assert server.count("SELECT count(*) FROM attachments WHERE incident_pk = ?", pk) == before + 1

    assert item.get_attribute("data-consistent") == "false"
    text = item.inner_text()
    assert "inconsistent with the report" in text
    assert "taken 40.0 km from the reported position" in text
    assert "image/jpeg" in text and sha[:12] in text and "c2pa:" in text
    assert "not released" in text
    wait(page, THUMB)

    item.locator(".thumb").click()
    wait(page, DRAWN)
    tab.shot("evidence-viewer")
    page.keyboard.press("Escape")
    page.wait_for_selector(".viewer", state="detached")
    assert not page.is_hidden("#panel")  # Escape closed the viewer, not the panel

    tab.shot("evidence-filed")
    liaison = f"liaison-{server.parties[0]}"
    assert sha not in [a["sha256"] for a in server.api(f"/incidents/{pk}/attachments", liaison)]
    item.locator(".release-file").click()
    page.wait_for_selector(f"#panel .attachment[data-sha256='{sha}'][data-released='true']")
    released = server.sql(
        "SELECT released, keep_location, released_sha256 FROM attachments WHERE sha256 = ?", sha
    )
    assert released[0][:2] == (1, 0) and released[0][2] not in (None, sha)  # GPS removed
    item = page.locator(f"#panel .attachment[data-sha256='{sha}']")
    assert "location removed" in item.inner_text()
    # A liaison now sees it, without its position.
    (seen,) = [a for a in server.api(f"/incidents/{pk}/attachments", liaison) if a["sha256"] == sha]
    assert seen["released"] and seen["exif_lat"] is None
    tab.shot("evidence-released")

    # A recording plays in the viewer (the page's CSP lets <audio> play a blob: URL).
    sound = tmp_path / "fire.wav"
    sound.write_bytes(wav(seconds=0.5))
    page.set_input_files("#panel .att-input", [str(sound)])
    page.click("#panel .att-send")
    rec = page.locator("#panel .attachment:has-text('fire.wav')")
    rec.wait_for()
    assert rec.get_attribute("data-consistent") == "null" and "audio/" in rec.inner_text()
    rec.locator(".thumb").click()
    wait(
        page,
        "(() => { const a = document.querySelector('.viewer audio');"
        " return !!a && a.src.startsWith('blob:') && a.readyState >= 1 && a.duration > 0.4; })()",
    )
    page.click(".viewer-close")
    page.wait_for_selector(".viewer", state="detached")
    tab.no_errors()
