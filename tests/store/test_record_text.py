"""The texts ingest writes by hand are byte for byte what the canonical JSON encoder writes.

A report's content hash and its ledger text, and a finding's ledger content, are built field by
field on ingest (for speed). A party re-serialises them with any canonical JSON encoder to verify
the ledger, so the two must never differ, whatever the values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from truceline.core.agreement import RuleType
from truceline.core.incidents import Incident, Kind, SourceType, TimePrecision
from truceline.core.rules import NUMBER_FIELDS, FindingNumbers, Findings
from truceline.ledger_verify import canonical_json, commitment
from truceline.store import ledger
from truceline.store.record_text import content_hash, hash_text, record_text

# NUL is refused (PostgreSQL cannot store it); lone surrogates are not text (pydantic refuses them)
CHARS = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
TEXT = st.text(CHARS, max_size=40)
FLOAT_LON = st.floats(-180, 180, allow_nan=False)
FLOAT_LAT = st.floats(-90, 90, allow_nan=False)


def _general(inc: Incident) -> tuple[str, str]:
    """Hash and ledger text the general way: the model's JSON dump through the encoder."""
    doc = inc.model_dump(mode="json")
    ascii_text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(ascii_text.encode()).hexdigest(), canonical_json(doc)


incidents = st.builds(
    Incident,
    id=st.text(CHARS, min_size=1, max_size=30).filter(lambda s: s.strip() != ""),
    observed_at=st.datetimes(
        # the times an Incident accepts (core.incidents.OBSERVED_MIN .. OBSERVED_MAX)
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2099, 12, 31),
        timezones=st.just(dt.UTC),
    ),
    time_precision=st.sampled_from(TimePrecision),
    lon=FLOAT_LON,
    lat=FLOAT_LAT,
    uncertainty_m=st.floats(0, 200_000),
    kind=st.sampled_from(Kind),
    weapon_class=st.none() | st.text(CHARS, min_size=1, max_size=20).filter(lambda s: s.strip() != ""),
    count=st.integers(1, 100_000),
    party=st.none() | st.text(CHARS, min_size=1, max_size=20).filter(lambda s: s.strip() != ""),
    origin_lon=st.none(),
    origin_lat=st.none(),
    origin_uncertainty_m=st.none() | st.floats(0, 200_000),
    bearing_deg=st.none() | st.floats(0, 359.999),
    source_type=st.sampled_from(SourceType),
    reliability=st.sampled_from("ABCDEF"),
    credibility=st.integers(1, 6),
    narrative=TEXT,
)


@settings(max_examples=300, deadline=None)
@given(incidents)
def test_a_record_is_hashed_and_written_as_its_json_dump_would_be(inc: Incident) -> None:
    assert hash_text(inc) == _general(inc)
    assert content_hash(inc) == _general(inc)[0]


def test_the_plain_record_takes_the_direct_path() -> None:
    inc = Incident(
        id="op-7/1",
        observed_at=dt.datetime(2025, 3, 1, 4, 12, 0, 500, tzinfo=dt.UTC),
        lon=37.5,
        lat=-0.0,
        kind=Kind.explosion,
        source_type=SourceType.patrol,
        origin_lon=1e-7,
        origin_lat=48,
        narrative='said "two" \\ then',
    )
    text = record_text(inc)
    assert text is not None  # not the general path in disguise
    assert text == canonical_json(inc.model_dump(mode="json"))
    assert '"observed_at":"2025-03-01T04:12:00.000500Z"' in text
    assert '"origin_lon":1e-07' in text


def _damage(rid: str, narrative: str) -> Incident:
    """A plain report whose narrative is the point of the test."""
    return Incident(
        id=rid,
        observed_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
        lon=30.5,
        lat=50.4,
        kind=Kind.damage,
        source_type=SourceType.patrol,
        narrative=narrative,
    )


def test_a_record_with_other_letters_hashes_its_ascii_escaped_form() -> None:
    inc = _damage("kyiv-1", "Київ \u2028")
    h, text = hash_text(inc)
    assert "Київ" in text  # the ledger keeps UTF-8
    assert (h, text) == _general(inc)


@settings(max_examples=200, deadline=None)
@given(
    explanation=TEXT,
    responsible=TEXT,
    rule_id=TEXT,
    probability=st.floats(0, 1),
    pk=st.integers(1, 2**62),
    incident=st.integers(1, 2**62),
    salt=st.one_of(st.none(), st.binary(min_size=16, max_size=16).map(bytes.hex)),
)
def test_a_finding_is_written_as_its_content_would_be(
    explanation: str,
    responsible: str,
    rule_id: str,
    probability: float,
    pk: int,
    incident: int,
    salt: str | None,
) -> None:
    f = {
        "pk": pk,
        "incident_pk": incident,
        "rule_id": rule_id,
        "rule_type": "fire_across",
        "responsible": responsible,
        "probability": probability,
        "explanation": explanation,
        "ledger_salt": salt,
    }
    want = canonical_json(ledger.finding_content(f, "ab" * 32, "ukraine-2024"))
    assert ledger.finding_text(f, "ab" * 32, "ukraine-2024") == want
    content = json.loads(want)
    if salt is None:  # as entries were written before commitments
        assert (content["incident"], content["report_hash"]) == (incident, "ab" * 32)
        return
    assert "incident" not in content and "report_hash" not in content
    # the openings open the commitments, and only to the values committed to
    for name, o in ledger.finding_openings(salt, incident, "ab" * 32).items():
        assert commitment(o["key"], o["value"]) == content["commitments"][name]
        assert (
            commitment(o["key"], o["value"] + 1 if name == "incident" else "cd" * 32)
            != (content["commitments"][name])
        )


def test_a_record_with_a_delete_character_hashes_its_escaped_form() -> None:
    # DEL is ASCII, but only the ASCII-escaped form escapes it: the hash must stay over that form.
    inc = _damage("del-1", "a\x7fb")
    doc = inc.model_dump(mode="json")
    escaped = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert "\\u007f" in escaped
    assert content_hash(inc) == hashlib.sha256(escaped.encode()).hexdigest()


# A finding's numbers as the engine gives them (sorted keys, strings and finite floats), and other
# mappings (unsorted keys, integers, nested values) that must take the general path.
NUMBERS = st.dictionaries(
    st.sampled_from(["distance_km", "side_party", "limit_km", "zone", "origin_method", "cap", "é"]),
    st.one_of(TEXT, st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.none()),
    max_size=7,
)


@settings(max_examples=300, deadline=None)
@given(numbers=NUMBERS, sort=st.booleans(), explanation=TEXT, probability=st.floats(0, 1))
def test_a_findings_numbers_are_written_as_their_content_would_be(
    numbers: dict[str, object], sort: bool, explanation: str, probability: float
) -> None:
    if sort:
        numbers = dict(sorted(numbers.items()))
    text = ledger.numbers_text(numbers)
    assert text == canonical_json(numbers) and isinstance(text, ledger.CanonicalJSON)
    f = {
        "pk": 3,
        "incident_pk": 2,
        "rule_id": "wd-art",
        "rule_type": "withdrawal",
        "responsible": "A",
        "probability": probability,
        "explanation": explanation,
        "numbers": text,
    }
    want = canonical_json(ledger.finding_content(f, "ab" * 32, "ukraine-2024"))
    assert ledger.finding_text(f, "ab" * 32, "ukraine-2024") == want
    assert json.loads(want)["numbers"] == numbers
    # as a stored row gives them (parsed), and without any: the same content
    assert ledger.finding_text({**f, "numbers": numbers}, "ab" * 32, "ukraine-2024") == want
    without = ledger.finding_text({**f, "numbers": None}, "ab" * 32, "ukraine-2024")
    assert "numbers" not in json.loads(without)


_RULE_TYPES = [t.value for t in RuleType] + ["unknown"]
_IDS = st.sampled_from(["", "", "A", "buffer", "art100", "origin", "é", 'q"x', "\u2028"])
_NUMBER = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(-0.0), st.just(math.nan))


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(0, 40))
def test_findings_numbers_written_column_wise_are_their_canonical_text(
    data: st.DataObject, n: int
) -> None:
    """What ingest stores and ledgers: the numbers of many findings at once, byte for byte the
    canonical JSON of each finding's mapping (whatever applies, whatever the values)."""
    cols: dict[str, object] = {}
    for k in NUMBER_FIELDS:
        is_float = isinstance(getattr(FindingNumbers(), k), float)
        draw = _NUMBER if is_float else st.one_of(_IDS, TEXT)
        cols[k] = np.array(data.draw(st.lists(draw, min_size=n, max_size=n)), float if is_float else str)
    f = Findings(
        incident=np.arange(n),
        rule_id=np.full(n, "r"),
        rule_type=np.array(
            data.draw(st.lists(st.sampled_from(_RULE_TYPES), min_size=n, max_size=n)), str
        ),
        responsible=np.full(n, "A"),
        probability=np.full(n, 0.5),
        explanation=np.full(n, ""),
        **cols,  # type: ignore[arg-type]
    )
    want = [canonical_json(d) for d in f.numbers()]
    assert ledger.numbers_texts(f) == want
    assert all(json.loads(w) == d for w, d in zip(want, f.numbers(), strict=True))
