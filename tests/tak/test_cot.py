"""CoT parsing, splitting, mapping and the shapes sent back (no sockets)."""

from __future__ import annotations

import datetime as dt

import pytest
import shapely
from defusedxml.ElementTree import fromstring
from hypothesis import given
from hypothesis import strategies as st

from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.io.features import zones_feature_collection
from truceline.tak import cot

NOW = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)


def event(
    type_: str = "a-h-G",
    *,
    uid: str = "dev-1",
    lat: str = "48.6",
    lon: str = "36.95",
    ce: str = "10.0",
    remarks: str = "",
    extra: str = "",
    start: str = "2025-03-01T10:00:00.000Z",
) -> bytes:
    rem = f"<remarks>{remarks}</remarks>" if remarks else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<event version="2.0" uid="{uid}" type="{type_}" how="h-e" '
        f'time="{start}" start="{start}" stale="2025-03-01T10:05:00.000Z">'
        f'<point lat="{lat}" lon="{lon}" hae="0" ce="{ce}" le="9999999"/>'
        f'<detail><contact callsign="PATROL 7"/>{rem}{extra}</detail></event>'
    ).encode()


def test_ce_is_one_sigma_and_unknown_ce_is_refused() -> None:
    # The CoT event schema: ce is one sigma of a zero-mean normal distribution, in metres.
    for ce in ("3.5", "21.46", "250"):
        rec = cot.incident_record(cot.parse_event(event(ce=ce)), now=NOW, source_type="patrol")
        assert rec["uncertainty_m"] == float(ce)
    assert cot.ce_from_sigma(123.4) == 123.4
    for ce in ("9999999", "9999999.0", "0", "-5"):
        with pytest.raises(cot.CotError) as err:
            cot.incident_record(cot.parse_event(event(ce=ce)), now=NOW, source_type="patrol")
        assert err.value.field == "ce" and err.value.fix


@pytest.mark.parametrize(
    ("type_", "remarks", "kind"),
    [
        ("a-h-G", "", "armed_personnel"),
        ("a-h-G-U-C-I", "", "armed_personnel"),
        ("a-s-G-E-V-A-T", "", "heavy_weapon"),
        ("a-u-G-E-W-M", "", "heavy_weapon"),
        ("a-h-G-E-V-C", "", "vehicle_movement"),
        ("a-h-A-M-F-Q", "", "drone_flight"),
        ("a-h-A-M-H-Q", "", "drone_flight"),
        ("a-h-A-W-M", "", "projectile"),
        ("a-h-A-M-H", "drone over the road", "drone_flight"),  # the remarks say it
        ("a-h-G-U-C-A", "", "heavy_weapon"),
        ("b-d-a", "", "explosion"),
        ("b-d-a", "muzzle flash seen", "muzzle_flash"),
        ("b-m-p-s-m", "Trench digging north of the road", "fortification_works"),
        ("b-m-p-s-m", "two MLRS launchers moving", "heavy_weapon"),
    ],
)
def test_kinds(type_: str, remarks: str, kind: str) -> None:
    ev = cot.parse_event(event(type_, remarks=remarks))
    assert cot.disposition(ev) == "incident"
    rec = cot.incident_record(ev, now=NOW, source_type="patrol")
    inc = Incident.model_validate(rec)
    assert inc.kind == kind
    assert inc.source_type == ("acoustic" if type_.startswith("b-d-a") else "patrol")


def test_record_keeps_device_time_position_and_error() -> None:
    ev = cot.parse_event(
        event(lat="48.123456789012345", lon="36.98765432109876", ce="21.46", remarks="2 APCs")
    )
    inc = Incident.model_validate(cot.incident_record(ev, now=NOW, source_type="uav"))
    assert inc.lat == 48.123456789012345 and inc.lon == 36.98765432109876  # full precision
    assert inc.uncertainty_m == 21.46
    assert inc.observed_at == NOW and inc.time_precision == "second"
    assert inc.id == "cot:dev-1"  # the marker's identity is its uid
    assert "PATROL 7" in inc.narrative and "uid dev-1" in inc.narrative and "2 APCs" in inc.narrative


@pytest.mark.parametrize("type_", ["a-h-A-M-H", "a-h-A-M-F", "a-h-A-C-H", "a-h-S-C"])
def test_manned_aircraft_helicopters_and_ships_are_no_drones(type_: str) -> None:
    ev = cot.parse_event(event(type_))
    assert cot.kind_of(ev) is None
    with pytest.raises(cot.CotError, match="no recognisable kind"):
        cot.incident_record(ev, now=NOW, source_type="patrol")


def test_type_table_is_the_readme_table() -> None:
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for frag, kind, _ in cot.TYPE_KINDS:
        assert f"| `a-?-{frag}` | `{kind.value}` |" in readme, frag


def test_stale_is_honoured() -> None:
    ev = cot.parse_event(event())  # start 10:00, stale 10:05
    later = NOW + dt.timedelta(minutes=6)
    with pytest.raises(cot.CotError, match="stale") as err:
        cot.incident_record(ev, now=later, source_type="patrol")
    assert err.value.field == "stale"
    # a capture read from a file is judged by its own times
    assert cot.incident_record(ev, now=later, source_type="patrol", live=False)["id"] == "cot:dev-1"
    bad = event().replace(b'stale="2025-03-01T10:05:00.000Z"', b'stale="2025-03-01T09:00:00.000Z"')
    with pytest.raises(cot.CotError, match="before its start"):
        cot.incident_record(cot.parse_event(bad), now=NOW, source_type="patrol", live=False)


def test_extension_element_says_everything() -> None:
    ext = (
        '<__truceline kind="heavy_weapon" weapon_class="art100" party="B" count="2" '
        'reliability="B" credibility="2"/>'
    )
    rec = cot.incident_record(
        cot.parse_event(event("b-m-p-s-m", extra=ext)), now=NOW, source_type="patrol"
    )
    inc = Incident.model_validate(rec)
    assert (inc.kind, inc.weapon_class, inc.party, inc.count, inc.reliability, inc.credibility) == (
        "heavy_weapon",
        "art100",
        "B",
        2,
        "B",
        2,
    )
    with pytest.raises(cot.CotError, match="unknown kind"):
        cot.incident_record(
            cot.parse_event(event(extra='<__truceline kind="tank"/>')),
            now=NOW,
            source_type="patrol",
        )


@pytest.mark.parametrize(
    ("type_", "remarks", "what"),
    [
        ("t-x-c-t", "", "ping"),
        ("t-x-d-d", "", "ignore"),
        ("t-x-takp-q", "", "protocol"),
        ("a-f-G-U-C", "", "ignore"),  # a friendly track that is no team member's device
        ("a-f-G-U-C", '<__group name="Cyan" role="Team Member"/>', "position"),  # PLI
        ("a-n-A-C-F", "", "ignore"),
        ("u-d-r", "", "ignore"),  # a drawing without remarks
        ("u-d-p", "explosion near the bridge", "incident"),
    ],
)
def test_dispositions(type_: str, remarks: str, what: str) -> None:
    if remarks.startswith("<"):
        ev = cot.parse_event(event(type_, extra=remarks))
    else:
        ev = cot.parse_event(event(type_, remarks=remarks))
    assert cot.disposition(ev) == what


def test_free_form_without_a_kind_is_rejected_with_the_fix() -> None:
    ev = cot.parse_event(event("b-m-p-s-m", remarks="nothing to see"))
    with pytest.raises(cot.CotError) as err:
        cot.incident_record(ev, now=NOW, source_type="patrol")
    assert "kind" in err.value.message and "__truceline" in (err.value.fix or "")


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"<event><point", "well-formed"),
        (
            b'<!DOCTYPE e [<!ENTITY x "y">]><event uid="a" type="b"><point lat="1" lon="2"/></event>',
            "unsafe",
        ),
        (b'<?xml version="1.0"?><!DOCTYPE event SYSTEM "http://x/e.dtd"><event/>', "unsafe"),
        (b'<evil uid="a" type="b"/>', "not <event>"),
        (b'<event uid="a" type="a-h-G"/>', "no <point>"),
        (b'<event uid="a" type="a-h-G"><point lat="north" lon="2"/></event>', "lat is not a number"),
        (b'<event uid="a" type="a-h-G"><point lat="nan" lon="2"/></event>', "not finite"),
        (b'<event type="a-h-G"><point lat="1" lon="2"/></event>', "no uid"),
    ],
)
def test_malformed_events(data: bytes, words: str) -> None:
    with pytest.raises(cot.CotError, match=words):
        cot.parse_event(data)


def test_bad_position_or_time_fails_validation_downstream() -> None:
    rec = cot.incident_record(cot.parse_event(event(lat="95")), now=NOW, source_type="patrol")
    with pytest.raises(ValueError, match="lat"):
        Incident.model_validate(rec)
    with pytest.raises(cot.CotError, match="UTC offset"):
        cot.incident_record(
            cot.parse_event(event(start="2025-03-01T10:00:00")), now=NOW, source_type="patrol"
        )


@given(st.lists(st.integers(1, 300), min_size=1, max_size=30))
def test_splitter_any_chunking(cuts: list[int]) -> None:
    stream = b"".join(event(uid=f"u{k}") + b"\n" for k in range(5))
    sp = cot.EventSplitter(10_000, 10**6)
    out: list[bytes | cot.Oversize] = []
    pos, k = 0, 0
    while pos < len(stream):
        step = cuts[k % len(cuts)]
        out.extend(sp.feed(stream[pos : pos + step]))
        pos += step
        k += 1
    assert [cot.parse_event(e).uid for e in out if isinstance(e, bytes)] == [f"u{k}" for k in range(5)]


def test_splitter_limits() -> None:
    big = event(remarks="x" * 5000)
    sp = cot.EventSplitter(2048, 40_000)
    out = sp.feed(event(uid="a") + big + event(uid="b"))
    assert isinstance(out[1], cot.Oversize) and [cot.parse_event(out[k]).uid for k in (0, 2)] == [
        "a",
        "b",
    ]
    # An oversized event with no end in sight is reported once and skipped to its end.
    sp = cot.EventSplitter(2048, 10**6)
    got = (
        sp.feed(b"<event>" + b"y" * 3000) + sp.feed(b"y" * 3000) + sp.feed(b"</event>" + event(uid="c"))
    )
    assert [type(g).__name__ for g in got] == ["Oversize", "bytes"] and cot.parse_event(
        got[1]
    ).uid == "c"  # type: ignore[arg-type]
    sp = cot.EventSplitter(2048, 5000)
    for _ in range(20):
        sp.feed(event())
    assert sp.exhausted


def test_shapes_and_markers(small: Agreement) -> None:
    fc = zones_feature_collection(small, small.effective_from)
    shapes = cot.shape_events(fc["features"], now=NOW, stale=dt.timedelta(hours=1), simplify_m=10)
    docs = [fromstring(s) for s in shapes]
    assert all(d.get("type") == "u-d-f" for d in docs)
    names = [d.find("detail/contact").get("callsign") for d in docs]  # type: ignore[union-attr]
    assert "Line of contact" in names and any(n.startswith("Buffer zone") for n in names)
    buffer_a = next(f for f in fc["features"] if f["properties"]["id"] == "buffer:A")
    doc = next(d for d in docs if d.get("uid") == "truceline-zone-buffer-A-0")
    pts = [tuple(map(float, ln.get("point").split(","))) for ln in doc.iter("link")]  # type: ignore[union-attr]
    assert pts[0] == pts[-1] and len(pts) > 3  # a closed outline, lat,lon
    drawn = shapely.Polygon([(lon, lat) for lat, lon in pts])
    exact = shapely.geometry.shape(buffer_a["geometry"])
    assert drawn.symmetric_difference(exact).area / exact.area < 1e-3
    m = fromstring(
        cot.finding_marker(
            pk=7,
            rule_id="bz-ban",
            responsible="B",
            probability=0.97,
            likelihood="almost certain",
            explanation="armed personnel in the buffer zone",
            lon=36.9,
            lat=48.6,
            uncertainty_m=10.0,
            observed_at=NOW,
            now=NOW,
            stale=dt.timedelta(hours=1),
        )
    )
    assert m.get("uid") == "truceline-finding-7" and m.get("type") == "b-m-p-s-m"
    assert float(m.find("point").get("ce")) == pytest.approx(10.0)  # type: ignore[union-attr]
    assert "bz-ban" in m.find("detail/remarks").text  # type: ignore[union-attr, operator]
    assert fromstring(cot.pong(NOW)).get("type") == "t-x-c-t-r"
    refusal = fromstring(cot.protobuf_refusal(NOW))
    assert refusal.find("detail/TakControl/TakResponse").get("status") == "false"  # type: ignore[union-attr]
