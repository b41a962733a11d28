"""The rule engine: every rule type, probabilities at boundaries, invariants."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core.agreement import Agreement, RuleType
from truceline.core.attribution import UNDETERMINED
from truceline.core.geodesy import GEOD
from truceline.core.incidents import IncidentBatch
from truceline.core.rules import NUMBERS, Classification, FindingNumbers, Findings, classify
from truceline.core.simulate import SimulationConfig, simulate
from truceline.io.agreement_files import load_agreement

from ..conftest import SMALL_YAML, write_small_agreement


def batch(**cols: object) -> IncidentBatch:
    n = np.asarray(cols["lon"]).size
    cols.setdefault("observed_at", np.full(n, np.datetime64("2025-03-01T10:00", "us")))
    cols.setdefault("kind", np.full(n, "heavy_weapon"))
    cols.setdefault("uncertainty_m", np.zeros(n))
    return IncidentBatch.from_columns(**{k: np.asarray(v) for k, v in cols.items()})


def point_at(ag: Agreement, km: float, side: int, chain_frac: float = 0.2) -> tuple[float, float]:
    """A point ``km`` from the line on a side, perpendicular to it at a fraction of its length."""
    cv = ag.compiled(0)
    k = int(chain_frac * (cv.line.lon.size - 1))
    az, _, _ = GEOD.inv(cv.line.lon[k], cv.line.lat[k], cv.line.lon[k + 1], cv.line.lat[k + 1])
    lo, la, _ = GEOD.fwd(cv.line.lon[k], cv.line.lat[k], az - 90 * side, km * 1000.0)
    return float(lo), float(la)


def test_withdrawal_inside_and_outside(small: Agreement) -> None:
    # Side -1 (right) is party A: artillery limit 25 km.
    pts = [point_at(small, km, -1) for km in (18.4, 30.0)]
    b = batch(lon=[p[0] for p in pts], lat=[p[1] for p in pts], weapon_class=["art100", "art100"])
    c = classify(small, b)
    f = c.findings
    assert f.incident.tolist() == [0]
    assert f.rule_id[0] == "wd-art" and f.responsible[0] == "A"
    assert f.probability[0] == pytest.approx(1.0)
    assert "18.4 km from the line on the A side" in f.explanation[0]
    assert "is 25 km" in f.explanation[0]
    assert c.distance_km[0] == pytest.approx(-18.4, abs=1e-3)


def test_boundary_probability_from_uncertainty(small: Agreement) -> None:
    lon, lat = point_at(small, 25.0, -1)
    b = batch(lon=[lon], lat=[lat], weapon_class=["art100"], uncertainty_m=[500.0])
    f = classify(small, b).findings
    assert f.probability[0] == pytest.approx(0.5, abs=0.01)
    assert f.likelihood[0] == "roughly even chance"


def test_staged_rule_and_amendment(small: Agreement) -> None:
    lon, lat = point_at(small, 17.0, -1)
    days = np.array(["2025-01-15T00:00", "2025-03-01T00:00", "2025-07-01T00:00"], dtype="datetime64[us]")
    b = batch(lon=[lon] * 3, lat=[lat] * 3, weapon_class=["tank"] * 3, observed_at=days)
    c = classify(small, b)
    # Not in force before 1 Feb; 15 km for A until the June amendment widens it to 20 km.
    assert c.findings.incident.tolist() == [2]
    assert c.version.tolist() == [0, 0, 1]


def test_buffer_ban_asymmetric_widths(small: Agreement) -> None:
    # Buffer is 15 km on A's side (right), 10 km on B's (left).
    pts = [point_at(small, 12.0, -1), point_at(small, 12.0, 1), point_at(small, 8.0, 1)]
    b = batch(lon=[p[0] for p in pts], lat=[p[1] for p in pts], kind=["armed_personnel"] * 3)
    c = classify(small, b)
    assert c.findings.incident.tolist() == [0, 2]
    assert c.findings.responsible.tolist() == ["A", "B"]
    assert c.zones.tolist() == ["buffer", "limitation", "buffer"]


def test_fire_across_and_attribution(small: Agreement) -> None:
    origin = point_at(small, 8.0, 1)  # B's side
    impact = point_at(small, 3.0, -1, chain_frac=0.21)  # A's side
    near = point_at(small, 0.05, 1, chain_frac=0.19)  # origin 50 m from the line, 2 km uncertain
    b = batch(
        lon=[impact[0], impact[0]],
        lat=[impact[1], impact[1]],
        kind=["explosion", "explosion"],
        origin_lon=[origin[0], near[0]],
        origin_lat=[origin[1], near[1]],
        origin_uncertainty_m=[200.0, 2000.0],
    )
    f = classify(small, b).findings
    fire = f.rule_id == "fire"
    assert f.responsible[fire].tolist() == ["B", UNDETERMINED]
    assert f.probability[fire][0] > 0.99


def test_fire_from_bearing_only(small: Agreement) -> None:
    impact = point_at(small, 2.0, -1)
    # Bearing from the impact towards B's side (the line's left): the line runs roughly south.
    cv = small.compiled(0)
    k = int(0.2 * (cv.line.lon.size - 1))
    az, _, _ = GEOD.inv(cv.line.lon[k], cv.line.lat[k], cv.line.lon[k + 1], cv.line.lat[k + 1])
    b = batch(
        lon=[impact[0]],
        lat=[impact[1]],
        kind=["explosion"],
        bearing_deg=[(az - 90) % 360],
        weapon_class=["art100"],
    )
    f = classify(small, b).findings
    assert f.responsible[f.rule_id == "fire"].tolist() == ["B"]


def test_polygon_zone_drone_movement_and_cap(small: Agreement) -> None:
    inside_da = (36.73, 48.77)
    tanks_lim = point_at(small, 20.0, -1)
    b = batch(
        lon=[inside_da[0], inside_da[0], inside_da[0], tanks_lim[0], tanks_lim[0]],
        lat=[inside_da[1], inside_da[1], inside_da[1], tanks_lim[1], tanks_lim[1]],
        kind=[
            "armed_personnel",
            "drone_flight",
            "movement_restriction",
            "heavy_weapon",
            "heavy_weapon",
        ],
        party=["", "", "", "", ""],
        weapon_class=["", "", "", "tank", "tank"],
        count=[1, 1, 1, 4, 3],
    )
    f = classify(small, b).findings
    got = set(zip(f.incident.tolist(), f.rule_id.tolist(), strict=True))
    assert (0, "da-ban") in got and (0, "bz-ban") in got
    assert (1, "drones") in got and (2, "fom") in got
    assert (3, "cap-tanks") in got and (4, "cap-tanks") in got  # 7 tanks > cap of 5


def test_mission_drones_exempt(small: Agreement) -> None:
    lon, lat = point_at(small, 2.0, 1)
    f = classify(small, batch(lon=[lon], lat=[lat], kind=["drone_flight"], party=["mission"])).findings
    assert len(f) == 0


def test_korea_dmz(korea: Agreement) -> None:
    lon, lat = point_at(korea, 1.0, 1, 0.5)
    b = batch(
        lon=[lon],
        lat=[lat],
        kind=["armed_personnel"],
        observed_at=[np.datetime64("1990-05-01T00:00", "us")],
    )
    c = classify(korea, b)
    assert "dmz" in c.zones[0] or len(c.findings) >= 1


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.02, 0.95), st.floats(0.0, 60.0), st.sampled_from([1, -1])),
        min_size=1,
        max_size=30,
    )
)
def test_zone_membership_agrees_with_distance(
    small: Agreement, pts: list[tuple[float, float, int]]
) -> None:
    xy = [point_at(small, km, s, frac) for frac, km, s in pts]
    lon = np.array([p[0] for p in xy])
    lat = np.array([p[1] for p in xy])
    c = classify(small, batch(lon=lon, lat=lat, kind=np.full(lon.size, "armed_personnel")))
    cv = small.compiled(0)
    side, dist = cv.sides(lon, lat)
    width = np.where(side > 0, 10_000.0, 15_000.0)  # B left 10 km, A right 15 km
    in_buffer = np.array(["buffer" in z.split(";") for z in c.zones])
    clear = np.abs(dist - width) > 1.0
    assert np.array_equal(in_buffer[clear], (dist < width)[clear])


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_classification_independent_of_order(small: Agreement, rnd) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(rnd.randint(0, 2**32 - 1))
    n = 40
    lon = rng.uniform(34.5, 38.5, n)
    lat = rng.uniform(46.5, 50.0, n)
    kinds = rng.choice(["heavy_weapon", "armed_personnel", "explosion", "drone_flight"], n)
    wc = rng.choice(["", "art100", "tank"], n)
    b = batch(
        lon=lon,
        lat=lat,
        kind=kinds,
        weapon_class=wc,
        uncertainty_m=rng.uniform(0, 3000, n),
        id=np.array([f"r{i}" for i in range(n)]),
    )
    perm = rng.permutation(n)
    c1 = classify(small, b)
    c2 = classify(small, b.take(perm))
    f1 = sorted(
        zip(b.id[c1.findings.incident], c1.findings.rule_id, c1.findings.probability, strict=True)
    )
    f2 = sorted(
        zip(
            b.id[perm][c2.findings.incident],
            c2.findings.rule_id,
            c2.findings.probability,
            strict=True,
        )
    )
    assert f1 == f2
    np.testing.assert_allclose(c1.distance_km[perm], c2.distance_km)


def test_zone_ban_places_weapons_where_they_stand(ukraine: Agreement) -> None:
    """A banned weapon's shell landing in the zone is not the weapon in the zone; its origin is."""
    impact = point_at(ukraine, 5.0, -1, 0.5)
    far = point_at(ukraine, 60.0, -1, 0.5)
    near = point_at(ukraine, 8.0, -1, 0.51)
    day = np.datetime64(ukraine.versions[-1].effective_from, "us")
    b = batch(
        lon=[impact[0]] * 2,
        lat=[impact[1]] * 2,
        kind=["explosion"] * 2,
        weapon_class=["mlrs"] * 2,
        origin_lon=[far[0], near[0]],
        origin_lat=[far[1], near[1]],
        origin_uncertainty_m=[300.0, 300.0],
        observed_at=[day, day],
    )
    f = classify(ukraine, b).findings
    bans = f.incident[f.rule_id == "buffer-ban"].tolist()
    assert bans == [1]


def test_reference_line_per_side(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Minsk 2015: one side measures its zones from its own line (here, a line 0.1 deg west)."""
    import json

    from truceline.core.geodesy import LineIndex
    from truceline.io.agreement_files import load_agreement

    from ..conftest import SMALL_LINE, SMALL_YAML, write_small_agreement

    yaml_text = SMALL_YAML.replace(
        "default_area_km: 250", "default_area_km: 250\nreference_lines:\n  A: {file: ref.geojson}"
    )
    folder = write_small_agreement(tmp_path / "ref", yaml_text)
    ref = [[x - 0.1, y] for x, y in SMALL_LINE]
    (folder / "ref.geojson").write_text(json.dumps({"type": "LineString", "coordinates": ref}))
    ag = load_agreement(folder)
    rng = np.random.default_rng(3)
    pts = [
        point_at(ag, km, -1, frac)
        for km, frac in zip(rng.uniform(12, 30, 60), rng.uniform(0.1, 0.3, 60), strict=True)
    ]
    lon = np.array([p[0] for p in pts])
    lat = np.array([p[1] for p in pts])
    c = classify(ag, batch(lon=lon, lat=lat, kind=np.full(lon.size, "armed_personnel")))
    d_ref = LineIndex([np.array(ref)]).distance_m(lon, lat)
    in_buffer = np.array(["buffer" in z.split(";") for z in c.zones])
    on_a = c.side == -1
    clear = np.abs(d_ref - 15_000.0) > 1.0
    assert on_a.sum() > 30
    assert np.array_equal(in_buffer[on_a & clear], (d_ref < 15_000.0)[on_a & clear])
    assert in_buffer.any() and not in_buffer.all()


def test_judge_rules_makes_the_same_findings_as_classify(ukraine: Agreement) -> None:
    """A recount of some rule types gives exactly those findings of the full classification."""
    import datetime as dt

    from truceline.core.agreement import RuleType
    from truceline.core.rules import judge_rules
    from truceline.core.simulate import SimulationConfig, simulate

    start = ukraine.versions[-1].effective_from - dt.timedelta(days=1)  # two versions in force
    sim = simulate(ukraine, SimulationConfig(days=2, seed=11, start=start, events_per_day=1500))
    batch = IncidentBatch.from_incidents(sim.reports)
    full = classify(ukraine, batch).findings
    for types in ({RuleType.count_cap}, {RuleType.withdrawal, RuleType.zone_ban}):
        part = judge_rules(ukraine, batch, types)
        want = np.isin(full.rule_type, [t.value for t in types])
        assert want.sum() > 0 and len(part) == want.sum()
        assert _keys(part, slice(None)) == _keys(full, want)


def _keys(f: Findings, m: object) -> list[tuple[int, str, float]]:
    """Findings as sortable (incident, rule, probability) triples."""
    return sorted(
        zip(
            f.incident[m].tolist(),
            f.rule_id[m].tolist(),
            np.round(f.probability[m], 9).tolist(),
            strict=True,
        )
    )


# -- the numbers on a finding -----------------------------------------------------------------

_KM = r"(?:-?\d+(?:\.\d+)?|nan)"
_AT = rf"(?P<d>{_KM}) km from the line on the (?P<side>\S+) side"
#: What each rule type's explanation says, read here only to check the numbers against it.
_STATES = {
    RuleType.zone_ban: re.compile(
        rf"^(?P<what>.+) observed {_AT}, inside (?P<zone>.+); banned there by "
    ),
    RuleType.withdrawal: re.compile(
        rf" of class (?P<wc>\S*) (?P<where>observed|fired from) {_AT}; the limit for .+ is "
        r"(?P<limit>\d+) km$"
    ),
    RuleType.count_cap: re.compile(
        r"^(?P<n>\d+) .+ counted in (?P<zone>.+) for (?P<party>\S+) on \S+; the cap is (?P<cap>\d+)$"
    ),
    RuleType.fire_across: re.compile(
        rf": fired from the (?P<from>\S+) side \((?P<how>origin|bearing) (?P<od>{_KM}) km from the "
        rf"line, P=(?P<p>\d+(?:\.\d+)?)\), impact {_AT}$"
    ),
    RuleType.drone_flight: re.compile(rf"^drone flight {_AT}, over (?P<zone>.+); only the mission"),
    RuleType.movement_restriction: re.compile(rf"^monitors' freedom of movement restricted {_AT};"),
}


@pytest.fixture(scope="module")
def simulated(ukraine: Agreement) -> tuple[IncidentBatch, Classification]:
    """A simulated day (every rule type finds something)."""
    start = max(ukraine.effective_from + dt.timedelta(days=45), ukraine.versions[-1].effective_from)
    sim = simulate(ukraine, SimulationConfig(days=1, seed=5, start=start, events_per_day=800))
    batch = IncidentBatch.from_incidents(sim.reports)
    return batch, classify(ukraine, batch)


def _applies(n: FindingNumbers) -> dict[str, float | str]:
    """The numbers that apply (not NaN, not "")."""
    return {k: v for k, v in dataclasses.asdict(n).items() if v == v and v != ""}


@pytest.mark.parametrize("rule_type", list(RuleType))
def test_the_numbers_are_those_the_explanation_states(
    ukraine: Agreement, simulated: tuple[IncidentBatch, Classification], rule_type: RuleType
) -> None:
    _, c = simulated
    f = c.findings
    zones = ukraine.compiled(len(ukraine.versions) - 1).zones
    rows = np.flatnonzero(f.rule_type == rule_type.value)
    assert rows.size > 3
    for j in rows.tolist():
        n, text = f.numbers_at(j), str(f.explanation[j])
        m = _STATES[rule_type].search(text)
        assert m, text
        assert set(_applies(n)) <= set(NUMBERS[rule_type]), (text, n)
        if "d" in m.groupdict():  # a distance and a side
            assert float(m["d"]) == pytest.approx(n.distance_km, abs=0.05 + 1e-9), (text, n)
            assert m["side"] == (n.side_party or "?"), (text, n)
            assert n.distance_of in ("incident", "origin")
            if n.distance_of == "incident":  # the engine's own distance, not a rounded one
                assert n.distance_km == abs(c.distance_km[f.incident[j]])
        if "zone" in m.groupdict():
            assert m["zone"] == (zones[n.zone].name or n.zone), (text, n)
        if rule_type == RuleType.zone_ban:
            assert m["what"].endswith(f" ({n.weapon_class})") if n.weapon_class else "(" not in m["what"]
        elif rule_type == RuleType.withdrawal:
            assert m["wc"] == n.weapon_class
            assert (m["where"] == "fired from") == (n.distance_of == "origin"), (text, n)
            limit = round(n.limit_km) if math.isfinite(n.limit_km) else 0
            assert int(m["limit"]) == limit, (text, n)
        elif rule_type == RuleType.count_cap:
            assert int(m["n"]) == pytest.approx(n.counted, abs=0.5 + 1e-9), (text, n)
            assert int(m["cap"]) == n.cap and m["party"] == f.responsible[j]
        elif rule_type == RuleType.fire_across:
            assert m["from"] == n.origin_side_party and m["how"] == n.origin_method, (text, n)
            assert float(m["od"]) == pytest.approx(n.origin_distance_km, abs=0.05 + 1e-9), (text, n)
            assert float(m["p"]) == pytest.approx(n.origin_probability, abs=0.005 + 1e-9), (text, n)


def test_withdrawal_numbers_from_the_origin(small: Agreement) -> None:
    """A weapon that fired is measured where it fired from: that distance, that side, the limit there."""
    origin = point_at(small, 18.4, -1)  # A's side: limit 25 km
    impact = point_at(small, 3.0, 1)
    b = batch(
        lon=[origin[0], impact[0]],
        lat=[origin[1], impact[1]],
        weapon_class=["art100", "art100"],
        kind=["heavy_weapon", "explosion"],
        origin_lon=[np.nan, origin[0]],
        origin_lat=[np.nan, origin[1]],
    )
    f = classify(small, b).findings
    wd = np.flatnonzero(f.rule_id == "wd-art")
    assert f.incident[wd].tolist() == [0, 1]
    seen, fired = (f.numbers_at(j) for j in wd.tolist())
    assert (seen.distance_of, fired.distance_of) == ("incident", "origin")
    for n in (seen, fired):
        assert n.distance_km == pytest.approx(18.4, abs=1e-3)
        assert (n.side_party, n.limit_km, n.weapon_class) == ("A", 25.0, "art100")
        assert _applies(n).keys() == set(NUMBERS[RuleType.withdrawal])


def test_numbers_as_stored_and_read_back(simulated: tuple[IncidentBatch, Classification]) -> None:
    f = simulated[1].findings
    stored = f.numbers()
    assert len(stored) == len(f)
    for j, d in enumerate(stored):
        assert list(d) == sorted(d) and set(d) <= set(NUMBERS[f.rule_type[j]])
        assert all(isinstance(v, str | float) and v == v and v != "" for v in d.values())
        back = FindingNumbers.from_json(d)
        assert back is not None and _applies(back) == _applies(f.numbers_at(j))
    assert FindingNumbers.from_json(None) is None


def test_findings_made_without_numbers_have_none() -> None:
    f = Findings(
        np.array([0, 1]), np.array(["a", "b"]), np.array(["zone_ban", "withdrawal"]),
        np.array(["X", "Y"]), np.array([0.9, 0.6]), np.array(["", ""]),
    )  # fmt: skip
    assert f.numbers() == [{}, {}] and np.isnan(f.limit_km).all() and (f.zone == "").all()
    assert _applies(f.numbers_at(1)) == {}
    with pytest.raises(ValueError, match="limit_km has 1 values for 2 findings"):
        dataclasses.replace(f, limit_km=np.array([1.0]))


# -- in force, in the area of application ----------------------------------------------------


def _restrictions_and_fire(
    ag: Agreement, days: list[str], lon: list[float], lat: list[float]
) -> IncidentBatch:
    """One movement restriction and one shot across the line (origin 5 km on the other side) per day."""
    n = len(days)
    o = point_at(ag, 5.0, 1)
    return batch(
        lon=lon * 2,
        lat=lat * 2,
        observed_at=np.array([f"{d}T10:00" for d in days] * 2, dtype="datetime64[us]"),
        kind=["movement_restriction"] * n + ["explosion"] * n,
        origin_lon=[math.nan] * n + [o[0]] * n,
        origin_lat=[math.nan] * n + [o[1]] * n,
    )


def test_no_finding_before_entry_into_force_or_after_the_end(small: Agreement, tmp_path: Path) -> None:
    """The small agreement is in force from 2025-01-01; a copy of it ends on 2025-09-01."""
    p = point_at(small, 3.0, -1)
    days = ["2023-01-01", "2024-12-31", "2025-01-01", "2025-08-31", "2025-09-01"]
    b = _restrictions_and_fire(small, days, [p[0]] * 5, [p[1]] * 5)
    c = classify(small, b)
    assert c.in_force.tolist() == [False, False, True, True, True] * 2
    assert c.in_area.all()
    judged = sorted(set(c.findings.incident.tolist()))
    assert judged == [2, 3, 4, 7, 8, 9]
    # Geometry labels are still given (by the first version's line).
    assert (c.party_side == "A").all() and np.allclose(np.abs(c.distance_km), 3.0, atol=0.01)
    yaml_text = SMALL_YAML.replace("name: Small", "effective_to: 2025-09-01\nname: Small")
    ending = load_agreement(write_small_agreement(tmp_path, yaml_text))
    assert ending.effective_to == dt.date(2025, 9, 1)
    c2 = classify(ending, b)
    assert c2.in_force.tolist() == [False, False, True, True, False] * 2
    assert sorted(set(c2.findings.incident.tolist())) == [2, 3, 7, 8]


def test_agreement_end_must_follow_its_versions(small: Agreement) -> None:
    with pytest.raises(Exception, match="effective_to"):
        Agreement.model_validate({**dict(small), "effective_to": dt.date(2025, 3, 1)})


def test_outside_the_area_no_finding_no_zone_no_sector(ukraine: Agreement) -> None:
    """A CoT-like point 7,000+ km from the line (in North America) and one near the line."""
    near = point_at(ukraine, 2.0, 1, 0.5)
    far = (-75.0, 40.0)
    b = _restrictions_and_fire(ukraine, ["2025-03-01"] * 2, [near[0], far[0]], [near[1], far[1]])
    c = classify(ukraine, b)
    assert c.in_area.tolist() == [True, False, True, False]
    assert c.in_force.all()
    assert c.sector[0] != "" and c.sector[1] == "" and c.sector[3] == ""
    assert c.zones[1] == "" and c.zones[3] == "" and c.party_side[1] == ""
    assert set(c.findings.incident.tolist()) == {0, 2}
    _, dist_m = ukraine.compiled(0).sides([far[0]], [far[1]])
    assert dist_m[0] > 7_000_000
