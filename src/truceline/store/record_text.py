"""A report's canonical text: the one its content hash is taken over and its ledger entry holds.

``canonical_json(record.model_dump(mode="json"))`` (sorted keys, no spaces, UTF-8), written field by
field for speed; ``tests/store/test_record_text.py`` holds it to the encoder byte for byte. The
content hash is the SHA-256 of the ASCII-escaped form: a retry of the same report has the same hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

from truceline.core.incidents import Incident, Kind, SourceType, TimePrecision
from truceline.ledger_verify import canonical_json, json_text

__all__ = ["content_hash", "hash_text", "record_text"]


class _NotPlainError(Exception):
    """A value :func:`record_text` does not write itself."""


def _str(v: object) -> str:
    if v.__class__ is not str:
        raise _NotPlainError
    return json_text(v)


def _opt_str(v: object) -> str:
    return "null" if v is None else _str(v)


def _float(v: object) -> str:
    if v.__class__ is not float or not math.isfinite(v):
        raise _NotPlainError
    return float.__repr__(v)


def _opt_float(v: object) -> str:
    return "null" if v is None else _float(v)


def _int(v: object) -> str:
    if v.__class__ is not int:
        raise _NotPlainError
    return int.__repr__(v)


#: The JSON text of every value of the record's enumerations (a lookup, not a call per field).
_ENUM_TEXT = {m: json_text(m._value_) for e in (Kind, SourceType, TimePrecision) for m in e}


def _datetime(v: object) -> str:
    # Only a datetime in dt.UTC itself: the dump writes any other zone (or a subclass) differently.
    if v.__class__ is not dt.datetime or v.tzinfo is not dt.UTC:
        raise _NotPlainError
    return f'"{v.isoformat()[:-6]}Z"'  # "+00:00" as the dump writes it


#: The fields :func:`record_text` writes; another set (a changed model) takes the general path.
_RECORD_FIELDS = frozenset(
    ("bearing_deg", "count", "credibility", "id", "kind", "lat", "lon", "narrative", "observed_at",
     "origin_lat", "origin_lon", "origin_uncertainty_m", "party", "reliability", "source_type",
     "time_precision", "uncertainty_m", "weapon_class")
)  # fmt: skip
#: Field serialisers would change what ``model_dump`` gives: then only the general path is right.
_PLAIN_RECORD = set(Incident.model_fields) == _RECORD_FIELDS and not (
    Incident.__pydantic_decorators__.field_serializers
    or Incident.__pydantic_decorators__.model_serializers
)


def record_text(inc: Incident) -> str | None:
    """``canonical_json(inc.model_dump(mode="json"))`` written directly, keys in sorted order.

    Each value as the JSON dump has it: strings and enum values quoted as the encoder quotes them,
    numbers by their ``repr``, UTC times in ISO 8601 with ``Z``. None for a value of another kind
    (or not finite): the caller then takes the general path. Twice as fast as dump and encode.
    """
    if not _PLAIN_RECORD:
        return None
    d = inc.__dict__
    try:
        return (
            f'{{"bearing_deg":{_opt_float(d["bearing_deg"])},"count":{_int(d["count"])},'
            f'"credibility":{_int(d["credibility"])},"id":{_str(d["id"])},'
            f'"kind":{_ENUM_TEXT[d["kind"]]},"lat":{_float(d["lat"])},"lon":{_float(d["lon"])},'
            f'"narrative":{_str(d["narrative"])},"observed_at":{_datetime(d["observed_at"])},'
            f'"origin_lat":{_opt_float(d["origin_lat"])},"origin_lon":{_opt_float(d["origin_lon"])},'
            f'"origin_uncertainty_m":{_opt_float(d["origin_uncertainty_m"])},'
            f'"party":{_opt_str(d["party"])},"reliability":{_str(d["reliability"])},'
            f'"source_type":{_ENUM_TEXT[d["source_type"]]},'
            f'"time_precision":{_ENUM_TEXT[d["time_precision"]]},'
            f'"uncertainty_m":{_float(d["uncertainty_m"])},'
            f'"weapon_class":{_opt_str(d["weapon_class"])}}}'
        )
    except (_NotPlainError, KeyError):
        return None


def hash_text(inc: Incident) -> tuple[str, str]:
    """The record's content hash and its ledger text (canonical JSON).

    The content hash is over the ASCII-escaped form (``json.dumps`` with sorted keys); the ledger
    keeps UTF-8. For the usual record (printable ASCII: DEL is the one ASCII character only the
    escaped form escapes) the two texts are the same, so it is serialised once.
    """
    text = record_text(inc)
    if text is not None and text.isascii() and "\x7f" not in text:
        return hashlib.sha256(text.encode()).hexdigest(), text
    doc = inc.model_dump(mode="json")
    ledger_text = canonical_json(doc)
    ascii_text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(ascii_text.encode()).hexdigest(), ledger_text


def content_hash(inc: Incident) -> str:
    """SHA-256 of the record's canonical JSON: a retry of the same report has the same hash."""
    return hash_text(inc)[0]
