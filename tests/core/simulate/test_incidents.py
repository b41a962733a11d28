"""The monitoring simulator: reproducible, true to the agreement, and a fair test of the engine."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core.agreement import Agreement, RuleType
from truceline.core.geodesy import GEOD
from truceline.core.incidents import FIRE_KINDS, PRESENCE_KINDS, Incident, IncidentBatch, Kind
from truceline.core.rules import classify
from truceline.core.simulate import Simulation, SimulationConfig, simulate
from truceline.errors import ValidationError

MISSION_SOURCES = {"patrol", "observation_post", "camera", "uav"}
#: Shots whose report may say where they came from (heavy_weapon is a fire kind, but is drawn as a
#: weapon seen standing).
DIRECTED = {k.value for k in FIRE_KINDS - {Kind.muzzle_flash, Kind.heavy_weapon}}
COMPLIANT_SCENARIOS = {
    "weapon_rear",
    "vehicle_movement",
    "fire_own_side",
    "flare",
    "armed_personnel_rear",
    "drone_own_side",
    "detonation",
    "fortification_rear",
}
VIOLATION_SCENARIOS = {
    "withdrawal_breach",
    "zone_ban_breach",
    "cap_exceeded",
    "fire_across",
    "drone_over_zone",
    "restriction_patrol",
    "restriction_op",
}
SCENARIO_OF = {
    RuleType.withdrawal: "withdrawal_breach",
    RuleType.zone_ban: "zone_ban_breach",
    RuleType.count_cap: "cap_exceeded",
    RuleType.fire_across: "fire_across",
    RuleType.drone_flight: "drone_over_zone",
    RuleType.movement_restriction: "restriction_patrol",
}
#: Stated uncertainty (m) per source type: the mission brief's ranges.
UNCERTAINTY_M = {
    "patrol": (200, 800),
    "observation_post": (300, 1500),
    "camera": (50, 200),
    "uav": (10, 50),
    "party_complaint": (1000, 5000),
    "open_source": (500, 10000),
}
ID_RE = re.compile(r"^(?P<source>[a-z_]+)-(?P<day>\d{4}-\d{2}-\d{2})-\d{6}$")


@dataclass(frozen=True)
class Case:
    agreement: Agreement
    sim: Simulation

    @property
    def truth(self) -> dict[str, dict[str, Any]]:
        return {t["event_id"]: t for t in self.sim.truth}

    def event(self, report: Incident) -> dict[str, Any]:
        return self.truth[self.sim.event_of_report[report.id]]


@pytest.fixture(scope="module")
def cases(small: Agreement, ukraine: Agreement, korea: Agreement) -> dict[str, Case]:
    """Simulations with every rule type in force; the small one crosses an amendment."""
    configs = {
        "small": (small, SimulationConfig(days=4, seed=7, start=dt.date(2025, 5, 30))),
        "ukraine": (ukraine, SimulationConfig(days=4, seed=11, start=dt.date(2025, 4, 1))),
        "korea": (korea, SimulationConfig(days=2, seed=3, start=dt.date(2019, 6, 1))),
    }
    return {k: Case(ag, simulate(ag, cfg)) for k, (ag, cfg) in configs.items()}


CASES = ["small", "ukraine", "korea"]


# -- reproducibility --------------------------------------------------------------------------


def _dump(sim: Simulation) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [r.model_dump() for r in sim.reports], sim.truth


def test_same_seed_same_simulation(small: Agreement) -> None:
    cfg = SimulationConfig(days=2, seed=42, events_per_day=150)
    assert _dump(simulate(small, cfg)) == _dump(simulate(small, cfg))


def test_different_seeds_differ(small: Agreement) -> None:
    a = simulate(small, SimulationConfig(seed=1, events_per_day=150))
    b = simulate(small, SimulationConfig(seed=2, events_per_day=150))
    assert [r.lon for r in a.reports[:20]] != [r.lon for r in b.reports[:20]]
    assert [t["lon"] for t in a.truth[:20]] != [t["lon"] for t in b.truth[:20]]


def test_default_start_is_the_agreement_date(small: Agreement) -> None:
    sim = simulate(small, SimulationConfig(events_per_day=50))
    assert {t["day"] for t in sim.truth} == {small.effective_from}


@pytest.mark.parametrize(
    ("field", "value"),
    [("days", 0), ("events_per_day", -1), ("violation_rate", 1.5), ("miss_rate", -0.1),
     ("duplicate_rate", 1.0)],
)  # fmt: skip
def test_config_is_checked(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        SimulationConfig(**{field: value})


def test_no_events(small: Agreement) -> None:
    sim = simulate(small, SimulationConfig(events_per_day=0))
    assert sim.reports == [] and sim.truth == []


# -- records ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_reports_are_valid_incidents_with_stable_ids(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    reports = case.sim.reports
    assert len(reports) > 100
    ids = [r.id for r in reports]
    assert len(set(ids)) == len(ids)
    for r in reports:
        assert Incident.model_validate(r.model_dump()) == r
        m = ID_RE.match(r.id)
        assert m is not None and m["source"] == r.source_type.value
        assert m["day"] == case.event(r)["day"].isoformat()


@pytest.mark.parametrize("name", CASES)
def test_vocabulary_comes_from_the_agreement(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    ag = case.agreement
    classes = {r.weapon_class for r in case.sim.reports} - {None}
    assert classes and classes <= ag.weapon_class_ids
    assert {t["weapon_class"] for t in case.sim.truth} - {None} <= ag.weapon_class_ids
    assert {r.party for r in case.sim.reports} - {None} <= set(ag.party_ids)
    assert {t["party"] for t in case.sim.truth} <= set(ag.party_ids)
    # Every rule id in the truth is a rule in force on that day.
    for t in case.sim.truth:
        in_force = {r.id for r in ag.version_at(t["day"]).rules if r.in_force(t["day"])}
        assert set(t["rule_ids"]) <= in_force


@pytest.mark.parametrize("name", CASES)
def test_positions_lie_in_the_area_of_application(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    ag = case.agreement
    day = np.array([case.event(r)["day"] for r in case.sim.reports], dtype="datetime64[D]")
    version = ag.version_index_at(day)
    for v in np.unique(version):
        area = ag.compiled(int(v)).area
        rows = [r for r, k in zip(case.sim.reports, version, strict=True) if k == v]
        assert shapely.contains_xy(area, [r.lon for r in rows], [r.lat for r in rows]).all()
        origins = [r for r in rows if r.origin_lon is not None]
        assert origins
        assert shapely.contains_xy(
            area, [r.origin_lon for r in origins], [r.origin_lat for r in origins]
        ).all()
    for t in case.sim.truth:
        area = ag.version_at(t["day"]).area
        assert shapely.contains_xy(area, t["lon"], t["lat"])
        if t["origin_lon"] is not None:
            assert shapely.contains_xy(area, t["origin_lon"], t["origin_lat"])


# -- truth ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_truth_matches_the_scenarios(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    by_id = case.truth
    report_ids = [rid for t in case.sim.truth for rid in t["report_ids"]]
    assert sorted(report_ids) == sorted(r.id for r in case.sim.reports)
    for t in case.sim.truth:
        assert t["violation"] == bool(t["rule_ids"])
        if t["scenario"] in COMPLIANT_SCENARIOS:
            assert not t["violation"], t
        elif t["scenario"] in VIOLATION_SCENARIOS:
            assert t["violation"], t
        else:
            assert t["scenario"] == "civil_harm"
            cause = by_id[t["caused_by"]]
            assert cause["scenario"] == "fire_across" and cause["time"] <= t["time"]
        shot = t["kind"] in DIRECTED | {"muzzle_flash"} and t["scenario"] != "detonation"
        assert (t["origin_lon"] is not None) == shot, t
    # Every type of rule in force is broken somewhere.
    expected = {
        SCENARIO_OF[r.type]
        for t in case.sim.truth
        for r in case.agreement.version_at(t["day"]).rules
        if r.in_force(t["day"])
    }
    if case.agreement.observation_posts:
        expected.add("restriction_op")
    assert expected <= {t["scenario"] for t in case.sim.truth}


def test_rates_are_honoured(cases: dict[str, Case]) -> None:
    case = cases["ukraine"]
    cfg_days = len({t["day"] for t in case.sim.truth})
    truth = [t for t in case.sim.truth if t["scenario"] != "civil_harm"]
    assert 0.8 * 400 * cfg_days < len(truth) < 1.2 * 400 * cfg_days
    assert np.mean([t["violation"] for t in truth]) == pytest.approx(0.25, abs=0.03)
    n_reports = np.array([len(t["report_ids"]) for t in case.sim.truth])
    assert np.mean(n_reports == 0) == pytest.approx(0.2, abs=0.03)
    assert np.mean(n_reports[n_reports > 0] > 1) == pytest.approx(0.15, abs=0.03)


def test_withdrawal_truth_is_the_geodesic_distance(cases: dict[str, Case]) -> None:
    """Independent check of the truth: presence within a withdrawal distance breaks that rule."""
    case = cases["small"]
    ag = case.agreement
    presence = {k.value for k in PRESENCE_KINDS} - {"muzzle_flash"}
    checked = 0
    for day in sorted({t["day"] for t in case.sim.truth}):
        cv = ag.version_at(day)
        events = [t for t in case.sim.truth if t["day"] == day and t["kind"] in presence]
        side, dist_m = cv.sides([t["lon"] for t in events], [t["lat"] for t in events])
        for rule in (r for r in cv.rules if r.type == RuleType.withdrawal and r.in_force(day)):
            for t, s, d in zip(events, side, dist_m, strict=True):
                if t["weapon_class"] not in rule.weapon_classes:
                    continue
                limit_m = rule.distance_km[ag.party_on_side(int(s))] * 1000.0
                assert (rule.id in t["rule_ids"]) == (d < limit_m), (rule.id, t, d)
                checked += 1
    assert checked > 50


def test_amendment_applies_from_its_date(cases: dict[str, Case]) -> None:
    """The small agreement's tank limit (A 15 km, B 10 km) becomes 20 km on 2025-06-01."""
    case = cases["small"]
    amended = dt.date(2025, 6, 1)
    breaches = [t for t in case.sim.truth if "wd-tank" in t["rule_ids"]]
    cv = case.agreement.version_at(amended)  # the line is the same in both versions
    side, dist_m = cv.sides([t["lon"] for t in breaches], [t["lat"] for t in breaches])
    old = np.where(side < 0, 15_000.0, 10_000.0)  # A holds the right side
    new_limit = np.array([t["day"] >= amended for t in breaches])
    assert new_limit.any() and (~new_limit).any()
    assert (dist_m < np.where(new_limit, 20_000.0, old)).all()
    # Breaches that only the amended limit makes breaches.
    assert (dist_m[new_limit] >= old[new_limit]).sum() >= 3


# -- sources and their errors -----------------------------------------------------------------


def _errors(case: Case) -> tuple[list[Incident], np.ndarray]:
    """Reports that carry a position error, and their error (m) from the true position."""
    reports = [r for r in case.sim.reports if r.kind != Kind.movement_restriction]
    truth = [case.event(r) for r in reports]
    _, _, err = GEOD.inv(
        [r.lon for r in reports], [r.lat for r in reports],
        [t["lon"] for t in truth], [t["lat"] for t in truth],
    )  # fmt: skip
    return reports, np.asarray(err)


def test_position_errors_follow_the_stated_uncertainty(cases: dict[str, Case]) -> None:
    case = cases["ukraine"]
    reports, err = _errors(case)
    sigma = np.array([r.uncertainty_m for r in reports])
    source = np.array([r.source_type.value for r in reports])
    for s, (lo, hi) in UNCERTAINTY_M.items():
        assert lo <= sigma[source == s].min() and sigma[source == s].max() <= hi, s
    # 1-sigma per axis of a circular Gaussian: E[(r / sigma)^2] = 2, P(r < sigma) = 1 - e^-0.5.
    unbiased = source != "party_complaint"
    z2 = (err[unbiased] / sigma[unbiased]) ** 2
    assert z2.mean() == pytest.approx(2.0, rel=0.1)
    assert np.mean(z2 < 1.0) == pytest.approx(1 - np.exp(-0.5), abs=0.04)


def test_party_complaints_are_biased_towards_the_complainant(cases: dict[str, Case]) -> None:
    case = cases["ukraine"]
    ag = case.agreement
    rows = [r for r in case.sim.reports if r.source_type.value == "party_complaint"]
    truth = [case.event(r) for r in rows]
    assert len(rows) > 30 and all(r.party == t["party"] for r, t in zip(rows, truth, strict=True))
    cv = ag.version_at(truth[0]["day"])
    s_rep, d_rep = cv.sides([r.lon for r in rows], [r.lat for r in rows])
    s_true, d_true = cv.sides([t["lon"] for t in truth], [t["lat"] for t in truth])
    complainant = np.array([-ag.side_of_party(t["party"]) for t in truth])
    # Signed distance across the line, positive into the complaining party's side.
    shift = (s_rep * d_rep - s_true * d_true) * complainant
    sigma = np.array([r.uncertainty_m for r in rows])
    assert np.mean(shift / sigma) > 0.3
    assert {r.reliability for r in rows} <= {"D", "E", "F"}


def test_grading_is_plausible_per_source(cases: dict[str, Case]) -> None:
    reports = cases["ukraine"].sim.reports
    for r in reports:
        if r.source_type.value in MISSION_SOURCES:
            assert r.reliability in "AB" and r.credibility <= 4
        else:
            assert r.reliability in "CDEF" and r.credibility >= 2


def test_times_carry_source_noise_and_precision(cases: dict[str, Case]) -> None:
    case = cases["ukraine"]
    limit_s = {"camera": 60, "uav": 120, "observation_post": 600, "patrol": 3000}
    for r in case.sim.reports:
        lag_s = abs((r.observed_at - case.event(r)["time"]).total_seconds())
        assert lag_s <= limit_s.get(r.source_type.value, 2 * 86400), r
        if r.time_precision.value == "hour":
            assert r.observed_at.minute == 0 and r.observed_at.second == 0


def test_fire_reports_give_an_origin_or_a_bearing(cases: dict[str, Case]) -> None:
    case = cases["ukraine"]
    fire = [r for r in case.sim.reports if r.kind.value in DIRECTED]
    with_origin = [r for r in fire if r.origin_lon is not None]
    with_bearing = [r for r in fire if r.bearing_deg is not None]
    assert len(with_origin) > 50 and len(with_bearing) > 50
    assert not [r for r in fire if r.origin_lon is not None and r.bearing_deg is not None]
    assert all(r.origin_uncertainty_m is not None for r in with_origin)
    truth = [case.event(r) for r in with_bearing]
    az, _, _ = GEOD.inv(
        [t["lon"] for t in truth], [t["lat"] for t in truth],
        [t["origin_lon"] for t in truth], [t["origin_lat"] for t in truth],
    )  # fmt: skip
    diff = (np.array([r.bearing_deg for r in with_bearing]) - np.asarray(az) + 180.0) % 360.0 - 180.0
    assert np.median(np.abs(diff)) < 10.0
    assert np.mean(np.abs(diff) < 45.0) > 0.98


# -- the rule engine against the truth ---------------------------------------------------------


def _precise(r: Incident) -> bool:
    return (
        r.source_type.value in MISSION_SOURCES
        and r.uncertainty_m <= 800.0
        and (r.origin_uncertainty_m is None or r.origin_uncertainty_m <= 3000.0)
    )


def _complete(r: Incident, t: dict[str, Any]) -> bool:
    """The report carries what the rules need: the true weapon class, and where fire came from."""
    named = t["weapon_class"] is None or r.weapon_class == t["weapon_class"]
    located = r.kind.value not in DIRECTED or r.origin_lon is not None or r.bearing_deg is not None
    return named and located


def _score(case: Case, min_p: float = 0.5) -> dict[str, float]:
    reports = case.sim.reports
    cls = classify(case.agreement, IncidentBatch.from_incidents(reports))
    f = cls.findings
    keep = f.probability >= min_p
    found: dict[int, set[str]] = {}
    for i, rule in zip(f.incident[keep].tolist(), f.rule_id[keep].tolist(), strict=True):
        found.setdefault(i, set()).add(rule)
    hit: dict[str, bool] = {}
    hit_complete: dict[str, bool] = {}
    flagged_compliant = n_compliant = right = wrong = 0
    for i, r in enumerate(reports):
        if not _precise(r):
            continue
        t = case.event(r)
        rules = found.get(i, set())
        good = bool(rules & set(t["rule_ids"]))
        right += len(rules & set(t["rule_ids"]))
        wrong += len(rules - set(t["rule_ids"]))
        if t["violation"]:
            hit[t["event_id"]] = hit.get(t["event_id"], False) or good
            if _complete(r, t):
                hit_complete[t["event_id"]] = hit_complete.get(t["event_id"], False) or good
        else:
            n_compliant += 1
            flagged_compliant += bool(rules)
    return {
        "recall": float(np.mean(list(hit.values()))),
        "recall_complete": float(np.mean(list(hit_complete.values()))),
        "n_violations": len(hit),
        "false_alarm": flagged_compliant / n_compliant,
        "precision": right / max(right + wrong, 1),
    }


@pytest.mark.parametrize("name", CASES)
def test_engine_finds_simulated_violations(cases: dict[str, Case], name: str) -> None:
    """Recall of true violations seen by precise reports, and how rarely compliance is flagged."""
    s = _score(cases[name])
    assert s["n_violations"] > 50
    assert s["recall"] >= 0.8, s
    assert s["recall_complete"] >= 0.9, s
    assert s["false_alarm"] <= 0.03, s
    assert s["precision"] >= 0.9, s


# -- invariants over seeds ----------------------------------------------------------------------


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_invariants_hold_for_any_seed(small: Agreement, seed: int) -> None:
    sim = simulate(small, SimulationConfig(seed=seed, events_per_day=80))
    ids = [r.id for r in sim.reports]
    assert len(set(ids)) == len(ids)
    area = small.compiled(0).area
    assert shapely.contains_xy(area, [r.lon for r in sim.reports], [r.lat for r in sim.reports]).all()
    assert {r.weapon_class for r in sim.reports} - {None} <= small.weapon_class_ids
    for t in sim.truth:
        assert t["violation"] == bool(t["rule_ids"])
        assert (t["scenario"] in COMPLIANT_SCENARIOS) <= (not t["violation"])
