"""The time helpers: what a naive time means to each reader, epoch seconds to the microsecond."""

from __future__ import annotations

import datetime as dt
import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truceline.core import times
from truceline.core.times import EPOCH, as_utc, require_utc, utc_from_epoch_s, utc_isoformat

PLUS_2 = dt.timezone(dt.timedelta(hours=2))


def test_doctests() -> None:
    assert doctest.testmod(times, raise_on_error=True).attempted > 0


def test_as_utc_reads_naive_as_utc_and_passes_none() -> None:
    naive = dt.datetime(2025, 3, 1, 12, 0)
    assert as_utc(naive) == naive.replace(tzinfo=dt.UTC) and as_utc(naive).tzinfo is dt.UTC
    assert as_utc(dt.datetime(2025, 3, 1, 14, 0, tzinfo=PLUS_2)) == naive.replace(tzinfo=dt.UTC)
    assert as_utc(dt.datetime(2025, 3, 1, 14, 0, tzinfo=PLUS_2)).tzinfo is dt.UTC
    assert as_utc(None) is None and utc_isoformat(None) is None
    assert utc_isoformat(naive) == "2025-03-01T12:00:00+00:00"


def test_require_utc_refuses_naive_with_the_example() -> None:
    with pytest.raises(ValueError, match=r"needs a UTC offset, e\.g\. 2025-03-01T04:12:00Z"):
        require_utc(dt.datetime(2025, 3, 1))
    with pytest.raises(ValueError, match=r"e\.g\. X$"):
        require_utc(dt.datetime(2025, 3, 1), example="X")
    t = require_utc(dt.datetime(2025, 3, 1, 2, tzinfo=PLUS_2))
    assert t == dt.datetime(2025, 3, 1, tzinfo=dt.UTC) and t.tzinfo is dt.UTC


@given(st.floats(min_value=-1e10, max_value=1e10, allow_nan=False))
def test_epoch_seconds_round_to_the_microsecond(t_s: float) -> None:
    t = utc_from_epoch_s(t_s)
    assert t.tzinfo is dt.UTC
    assert abs((t - EPOCH).total_seconds() - t_s) <= 0.5e-6 + abs(t_s) * 1e-15
