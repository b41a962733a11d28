"""Hostile inputs, one named case each: what an attacker (or a broken device) sends.

Every bug found with a hostile input adds its input here; the tests in this folder send each case
through the public paths (API, CLI) and require a 4xx or a per-record rejection naming the field,
never a 500, a traceback or a lost neighbour. The schemathesis run uses them as explicit examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["BAD_RECORDS", "BadRecord", "good_record"]


def good_record(rid: str, **extra: Any) -> dict[str, Any]:
    """A valid incident in the test agreement's buffer zone (made here, not by the simulator)."""
    return {
        "id": rid,
        "observed_at": "2025-03-01T10:00:00Z",
        "lon": 36.95,
        "lat": 48.6,
        "kind": "armed_personnel",
        "source_type": "patrol",
        "uncertainty_m": 50,
        **extra,
    }


@dataclass(frozen=True)
class BadRecord:
    """One poison incident record: ``changes`` applied to a good one; ``field`` the one at fault."""

    name: str
    changes: dict[str, Any]
    field: str

    def record(self, rid: str) -> dict[str, Any]:
        return {**good_record(rid), **self.changes}


BAD_RECORDS = [
    BadRecord("year-1", {"observed_at": "0001-01-01T00:00:00Z"}, "observed_at"),
    BadRecord("year-1-offset", {"observed_at": "0001-01-01T00:00:00+01:00"}, "observed_at"),
    BadRecord("year-9999", {"observed_at": "9999-12-31T23:59:59Z"}, "observed_at"),
    BadRecord("year-9999-offset", {"observed_at": "9999-12-31T23:00:00-02:00"}, "observed_at"),
    BadRecord("before-1900", {"observed_at": "1899-12-31T23:59:59Z"}, "observed_at"),
    BadRecord("year-2100", {"observed_at": "2100-01-01T00:00:00Z"}, "observed_at"),
    BadRecord("surrogate-id", {"id": "\ud800x"}, "id"),
    BadRecord("low-surrogate-id", {"id": "x\udfff"}, "id"),
    BadRecord("surrogate-narrative", {"narrative": "fire \udc80 at dawn"}, "narrative"),
    BadRecord("surrogate-party", {"party": "\ud83d"}, "party"),
    BadRecord("surrogate-weapon", {"weapon_class": "art\udbff"}, "weapon_class"),
    BadRecord("surrogate-kind", {"kind": "\ud800"}, "kind"),
    BadRecord("surrogate-key", {"\ud800": 1}, "\\ud800"),
    BadRecord("nul-id", {"id": "a\x00b"}, "id"),
    BadRecord("lon-true", {"lon": True}, "lon"),
    BadRecord("lat-false", {"lat": False}, "lat"),
    BadRecord("count-true", {"count": True}, "count"),
    BadRecord("uncertainty-true", {"uncertainty_m": True}, "uncertainty_m"),
    BadRecord("lon-object", {"lon": {"deg": 36}}, "lon"),
    BadRecord("lon-huge", {"lon": 1e308}, "lon"),
    BadRecord("count-huge", {"count": 10**30}, "count"),
    BadRecord("id-huge", {"id": "x" * 100_000}, "id"),
]
