"""The daily HTML report: sections, escaping, embedded figures, empty days, engine explanations."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely
from PIL import Image

from truceline.core.agreement import (
    Agreement,
    AgreementVersion,
    ObservationPost,
    Party,
    Rule,
    RuleType,
    Sector,
    WeaponClass,
    Zone,
)
from truceline.core.geodesy import GEOD
from truceline.core.incidents import Incident, IncidentBatch, Kind, SourceType
from truceline.core.rules import classify
from truceline.io.agreement_files import load_agreement
from truceline.report.daily import (
    NONE_RECORDED,
    DayFinding,
    DayReport,
    day_findings,
    render_daily_html,
    render_map_png,
    render_trend_png,
)

DAY = dt.date(2025, 3, 1)
LINE = [(36.0, 50.0), (36.5, 49.0), (37.5, 48.0), (36.0, 47.0), (34.0, 46.8)]
SECTIONS = {
    "summary": "Summary",
    "map": "Map",
    "breakdown": "Findings by rule, party and sector",
    "weapons": "Weapons in violation of withdrawal lines",
    "fire": "Fire across the line",
    "restrictions": "Restrictions of movement",
    "civilian": "Civilian harm",
    "other": "Other findings",
    "trend": "Trend over the previous days",
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _agreement() -> Agreement:
    line = shapely.LineString(LINE)
    da = shapely.Point(35.2, 46.9).buffer(0.03)  # a ~2 x 3 km disengagement area on the line
    zones = (
        Zone(id="buffer", name="Buffer zone", type="band", bands={"A": (0, 15), "B": (0, 10)}),
        Zone(id="da-1", name="Disengagement area 1", type="polygon", geometry=da),
    )
    rules = (
        Rule(
            id="wd-art",
            type=RuleType.withdrawal,
            weapon_classes=("art100",),
            distance_km={"A": 25, "B": 25},
        ),
        Rule(
            id="bz-ban",
            type=RuleType.zone_ban,
            zone="buffer",
            weapon_classes=("tank",),
            kinds=(Kind.fortification_works,),
        ),
        Rule(
            id="da-ban",
            type=RuleType.zone_ban,
            zone="da-1",
            kinds=(Kind.armed_personnel,),
            description="disengagement area kept free of forces",
        ),
        Rule(id="fire", type=RuleType.fire_across, zone="buffer"),
        Rule(id="drones", type=RuleType.drone_flight, zone="buffer"),
        Rule(id="fom", type=RuleType.movement_restriction),
    )
    sectors = tuple(
        Sector(id=sid, nation=nation, name=f"Sector {name}", geometry=shapely.box(*box))
        for sid, nation, name, box in [
            ("N", "Poland", "North", (34.8, 48.6, 38.6, 50.4)),
            ("C", "France", "Centre", (35.0, 47.3, 39.0, 48.6)),
            ("S", "United Kingdom", "South", (33.0, 46.0, 38.0, 47.3)),
        ]
    )
    ops = tuple(
        ObservationPost(id=f"OP-{i + 1}", lon=lon, lat=lat, sector=s)
        for i, (lon, lat, s) in enumerate(
            [
                (36.05, 49.8, "N"),
                (36.7, 48.85, "N"),
                (37.25, 48.1, "C"),
                (36.9, 47.55, "C"),
                (35.5, 46.95, "S"),
                (34.5, 46.8, "S"),
            ]
        )
    )
    return Agreement(
        id="test",
        name="Test agreement",
        parties=(Party(id="A", name="Alpha"), Party(id="B", name="Bravo")),
        left="B",
        right="A",
        line_extends="azimuth",  # the default area: the ends lie inside it
        weapon_classes=(
            WeaponClass(id="art100", name="Artillery 100 mm+", min_range_km=2, max_range_km=30),
            WeaponClass(id="tank", name="Tanks"),
        ),
        sectors=sectors,
        observation_posts=ops,
        versions=(
            AgreementVersion(effective_from=dt.date(2025, 1, 1), line=line, zones=zones, rules=rules),
        ),
    )


def _across(lon: float, lat: float, azimuth: float, km: float) -> tuple[float, float]:
    x, y, _ = GEOD.fwd(lon, lat, azimuth, km * 1000.0)
    return float(x), float(y)


def _incidents() -> list[Incident]:
    # On the segment (36.5, 49) -> (37.5, 48), heading south-east, Bravo (left) lies north-east.
    mid = (37.0, 48.5)
    b_side, a_side = 56.0, 236.0
    t = dt.datetime(2025, 3, 1, 4, 0, tzinfo=dt.UTC)
    common = {"source_type": SourceType.patrol, "uncertainty_m": 300.0}

    def at(i: int, **kw: object) -> Incident:
        return Incident(id=f"SMM-{i:03d}", observed_at=t + dt.timedelta(minutes=37 * i), **common | kw)

    def pos(az: float, km: float, base: tuple[float, float] = mid) -> dict[str, float]:
        lon, lat = _across(*base, az, km)
        return {"lon": lon, "lat": lat}

    north = (36.25, 49.5)  # on the first segment, heading south: Bravo east, Alpha west
    o_lon, o_lat = _across(*mid, a_side, 8)
    return [
        at(1, kind=Kind.heavy_weapon, weapon_class="art100", **pos(252, 12, north)),
        at(2, kind=Kind.heavy_weapon, weapon_class="art100", uncertainty_m=2000, **pos(b_side, 18)),
        at(
            3,
            kind=Kind.explosion,
            origin_lon=o_lon,
            origin_lat=o_lat,
            origin_uncertainty_m=1500,
            **pos(b_side, 3),
        ),
        at(4, kind=Kind.explosion, weapon_class="art100", bearing_deg=b_side, **pos(a_side, 2)),
        at(5, kind=Kind.movement_restriction, source_type=SourceType.patrol, **pos(b_side, 5)),
        at(6, kind=Kind.drone_flight, source_type=SourceType.uav, **pos(a_side, 4)),
        at(7, kind=Kind.heavy_weapon, weapon_class="tank", count=3, **pos(252, 4, north)),
        at(8, kind=Kind.armed_personnel, lon=35.21, lat=46.91, uncertainty_m=100),
        at(9, kind=Kind.civilian_casualty, narrative="<script>x</script>", **pos(b_side, 9)),
        at(10, kind=Kind.small_arms_fire, **pos(a_side, 1)),
    ]


@pytest.fixture(scope="module")
def agreement() -> Agreement:
    return _agreement()


@pytest.fixture(scope="module")
def incidents() -> list[Incident]:
    return _incidents()


@pytest.fixture(scope="module")
def findings(agreement: Agreement, incidents: list[Incident]) -> list[DayFinding]:
    batch = IncidentBatch.from_incidents(incidents)
    out = day_findings(batch, classify(agreement, batch))
    # The ledger issue fills these later; one is enough to show the column.
    return [dataclasses.replace(out[0], ledger_ref="sha256:9f2c41d0"), *out[1:]]


def _trend(findings: list[DayFinding]) -> list[tuple[dt.date, dict[str, int]]]:
    rng = np.random.default_rng(3)
    past = [
        (DAY - dt.timedelta(days=k), {"A": int(rng.integers(0, 9)), "B": int(rng.integers(0, 7))})
        for k in range(13, 0, -1)
    ]
    return [*past, (DAY, dict(Counter(f.responsible for f in findings)))]


def _report(agreement: Agreement, incidents: list[Incident], findings: list[DayFinding]) -> DayReport:
    return DayReport(
        agreement=agreement,
        day=DAY,
        n_incidents=len(incidents),
        incidents_by_kind=dict(Counter(i.kind.value for i in incidents)),
        findings=findings,
        trend=_trend(findings),
        rejected=2,
        generated_at=dt.datetime(2025, 3, 2, 6, 30, tzinfo=dt.UTC),
    )


@pytest.fixture(scope="module")
def report(agreement: Agreement, incidents: list[Incident], findings: list[DayFinding]) -> DayReport:
    return _report(agreement, incidents, findings)


@pytest.fixture(scope="module")
def html(report: DayReport) -> str:
    return render_daily_html(report)


def _section(html: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', html, re.S)
    assert m, f"section {sid} missing"
    return m.group(1)


def _pngs(html: str) -> list[Image.Image]:
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html):
        raw = base64.b64decode(b64, validate=True)
        assert raw.startswith(PNG_MAGIC)
        img = Image.open(io.BytesIO(raw))
        img.verify()
        out.append(Image.open(io.BytesIO(raw)))
    return out


def test_engine_gives_every_kind_of_finding(findings: list[DayFinding]) -> None:
    # Guards the fixture: the sections below are only tested if the engine fills them.
    assert {f.rule_type for f in findings} >= {t.value for t in RuleType} - {"count_cap"}


def test_every_section_and_finding_is_shown(html: str, findings: list[DayFinding]) -> None:
    for sid, title in SECTIONS.items():
        assert f"<h2>{title}</h2>" in _section(html, sid)
    assert "ICD 203" in html and "Test agreement" in html and "2025-03-02 06:30 UTC" in html
    for f in findings:
        assert f.incident_id in html
    assert "sha256:9f2c41d0" in html
    # Each finding has a row in its section.
    assert _section(html, "weapons").count("<tr>") - 1 == sum(
        f.rule_type == "withdrawal" for f in findings
    )
    assert _section(html, "fire").count("<tr>") - 1 == sum(
        f.rule_type == "fire_across" for f in findings
    )
    assert "SMM-005" in _section(html, "restrictions")
    assert "SMM-008" in _section(html, "other") and "Sector South (United Kingdom)" in html


def test_tables_read_the_engines_numbers(html: str, findings: list[DayFinding]) -> None:
    weapons = _section(html, "weapons")
    assert weapons.count("25 km") == sum(f.rule_type == "withdrawal" for f in findings)
    assert re.search(r"1[12]\.\d km", weapons)  # SMM-001 stands ~12 km from the line
    fire = _section(html, "fire")
    assert "colspan" not in fire  # every explanation parsed into its columns
    assert "Alpha side" in fire and "almost certain" in fire


def test_tables_read_the_numbers_not_the_explanation(report: DayReport) -> None:
    """Reworded explanations change nothing in the tables: they show the findings' numbers."""
    reworded = [dataclasses.replace(f, explanation="reworded basis") for f in report.findings]
    html = render_daily_html(dataclasses.replace(report, findings=reworded))
    weapons, fire = _section(html, "weapons"), _section(html, "fire")
    n_wd = sum(f.rule_type == "withdrawal" for f in reworded)
    assert n_wd and weapons.count("25 km") == n_wd and "reworded" not in weapons
    assert re.search(r"1[12]\.\d km", weapons)  # SMM-001 stands ~12 km from the line
    assert "colspan" not in fire and "reworded" not in fire
    for f in reworded:
        if f.rule_type == "fire_across":
            assert f.numbers is not None
            assert f"{f.numbers.origin_distance_km:,.1f} km" in fire
            assert f"{f.numbers.distance_km:,.1f} km" in fire
            assert f"by {f.numbers.origin_method}, P = " in fire
    # the tables as with the engine's wording
    before = render_daily_html(report)
    assert _section(before, "weapons") == weapons and _section(before, "fire") == fire


def test_findings_without_numbers_show_their_explanation(report: DayReport) -> None:
    """A finding recorded before findings carried numbers: its explanation, never parsed."""
    old = [dataclasses.replace(f, numbers=None) for f in report.findings]
    html = render_daily_html(dataclasses.replace(report, findings=old))
    weapons, fire = _section(html, "weapons"), _section(html, "fire")
    for f in old:
        if f.rule_type in ("withdrawal", "fire_across"):
            assert f.explanation in (weapons if f.rule_type == "withdrawal" else fire)
    assert weapons.count('colspan="3"') == sum(f.rule_type == "withdrawal" for f in old)
    assert fire.count('colspan="2"') == sum(f.rule_type == "fire_across" for f in old)
    assert '<td class="n">' not in weapons  # no number cells: nothing read out of the text


def test_an_ambiguous_incident_shows_both_fixes(report: DayReport) -> None:
    """An incident with a second fix (the mirror image across a line of sensors): its row names
    the other fix and its probability, and the map draws it (hollow, joined to the first)."""
    f0 = report.findings[0]
    alt = dataclasses.replace(f0, alt_lon=f0.lon + 0.01, alt_lat=f0.lat - 0.005, alt_weight=0.27)
    amb = dataclasses.replace(report, findings=[alt, *report.findings[1:]])
    html = render_daily_html(amb)
    assert html.count("ambiguous: two fixes") == 1
    assert f"{f0.lat - 0.005:.5f}\u00b0 N, {f0.lon + 0.01:.5f}\u00b0 E, probability 0.27" in html
    assert "ambiguous: two fixes" not in render_daily_html(report)
    # the map differs only by the second fix (and its legend entry)
    one = np.asarray(Image.open(io.BytesIO(render_map_png(report, width_px=700))).convert("RGB"))
    two = np.asarray(Image.open(io.BytesIO(render_map_png(amb, width_px=700))).convert("RGB"))
    assert one.shape == two.shape
    red = (two[..., 0] > 150) & (two[..., 1] < 60) & (two[..., 2] < 60)
    red_before = (one[..., 0] > 150) & (one[..., 1] < 60) & (one[..., 2] < 60)
    assert red.sum() > red_before.sum() + 20


def test_summary_counts(html: str, findings: list[DayFinding]) -> None:
    summary = _section(html, "summary")
    assert re.search(r'<div class="v">10</div><div class="l">incidents received', summary)
    assert f'<div class="v">{len(findings)}</div>' in summary
    assert "civilian casualty" in summary


def test_figures_are_embedded_pngs(html: str) -> None:
    imgs = _pngs(html)
    assert len(imgs) == 2  # the map and the trend
    m = imgs[0]
    assert m.format == "PNG" and m.width == 1400 and 500 <= m.height <= 2000
    assert len(m.convert("RGB").getcolors(1 << 20) or []) > 50  # drawn on, not blank
    assert not re.search(r'(?:src|href)="(?!data:)', html), "no external resources"
    assert "<script" not in html.lower()


def test_map_width(report: DayReport) -> None:
    png = render_map_png(report, width_px=700)
    assert Image.open(io.BytesIO(png)).width == 700
    assert render_trend_png(report).startswith(PNG_MAGIC)


def test_empty_day(agreement: Agreement) -> None:
    empty = DayReport(
        agreement=agreement, day=DAY, n_incidents=0, incidents_by_kind={}, findings=[], trend=[]
    )
    html = render_daily_html(empty)
    for sid in ("weapons", "fire", "restrictions", "civilian", "other", "trend", "breakdown"):
        assert NONE_RECORDED in _section(html, sid), sid
    assert "Alpha" in _section(html, "summary") and "Bravo" in _section(html, "summary")
    assert len(_pngs(html)) == 1  # the map, without findings


def test_escapes_hostile_text(report: DayReport) -> None:
    evil = "<script>alert('x')</script>"
    f = dataclasses.replace(
        report.findings[0],
        incident_id=f"id-{evil}",
        explanation=f'<img src=x onerror="alert(1)"> {evil}',
        ledger_ref=evil,
        rule_type="zone_ban",
    )
    ag = report.agreement.model_copy(update={"name": f"Name {evil}"})
    html = render_daily_html(dataclasses.replace(report, agreement=ag, findings=[f]))
    assert "<script" not in html.lower() and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html


def test_day_findings_copies_the_classification(agreement: Agreement, incidents: list[Incident]) -> None:
    batch = IncidentBatch.from_incidents(incidents)
    result = classify(agreement, batch)
    rows = day_findings(batch, result)
    assert len(rows) == len(result.findings)
    for r, k, j in zip(rows, result.findings.incident, range(len(rows)), strict=True):
        assert r.incident_id == batch.id[k] and r.rule_id == result.findings.rule_id[j]
        assert r.distance_km == pytest.approx(result.distance_km[k])
        assert r.observed_at.tzinfo is dt.UTC and r.ledger_ref is None


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["ukraine-2024", "korea-dmz"])
def test_example_agreements_render(name: str) -> None:
    folder = EXAMPLES / name
    if not (folder / "agreement.yaml").exists():
        pytest.skip(f"examples/{name} not present")
    ag = load_agreement(folder)
    day = ag.effective_from + dt.timedelta(days=30)
    html = render_daily_html(DayReport(ag, day, 0, {}, [], []))
    assert html.count(NONE_RECORDED) >= 6
    (img,) = _pngs(html)
    assert img.width == 1400 and 400 <= img.height <= 2000
