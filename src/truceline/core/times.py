"""Times: every instant inside Truceline is an aware ``datetime`` in UTC.

What a naive ``datetime`` means depends on where it came from, so each reader says which it is:

- from the store, it is UTC (SQLite hands timestamps back without their offset): :func:`as_utc`;
- from a user or a device, it is an error (the offset is not guessed): :func:`require_utc`.

Seconds since 1970 (the acoustic solvers' and fusion's unit) become a ``datetime`` through
:func:`utc_from_epoch_s`, rounded to the microsecond as the files write them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import overload

__all__ = ["EPOCH", "as_utc", "require_utc", "utc_from_epoch_s", "utc_isoformat", "utc_now"]

#: 1970-01-01T00:00:00Z, the origin of POSIX seconds.
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def utc_now() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.UTC)


@overload
def as_utc(t: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(t: None) -> None: ...
@overload
def as_utc(t: dt.datetime | None) -> dt.datetime | None: ...
def as_utc(t: dt.datetime | None) -> dt.datetime | None:
    """``t`` in UTC; a naive ``t`` is taken to be UTC already (as the store returns it).

    ``None`` passes through (a column that may be empty).

    >>> as_utc(dt.datetime(2025, 3, 1, 12)).isoformat()
    '2025-03-01T12:00:00+00:00'
    >>> as_utc(dt.datetime(2025, 3, 1, 12, tzinfo=dt.timezone(dt.timedelta(hours=2)))).isoformat()
    '2025-03-01T10:00:00+00:00'
    """
    if t is None:
        return None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


@overload
def utc_isoformat(t: dt.datetime) -> str: ...
@overload
def utc_isoformat(t: None) -> None: ...
@overload
def utc_isoformat(t: dt.datetime | None) -> str | None: ...
def utc_isoformat(t: dt.datetime | None) -> str | None:
    """ISO 8601 text of :func:`as_utc` of ``t`` (offset ``+00:00``); ``None`` passes through.

    >>> utc_isoformat(dt.datetime(2025, 3, 1, 12))
    '2025-03-01T12:00:00+00:00'
    """
    return None if t is None else as_utc(t).isoformat()


def require_utc(t: dt.datetime, *, example: str = "2025-03-01T04:12:00Z") -> dt.datetime:
    """``t`` in UTC; a naive ``t`` (no offset given) is refused.

    For input validation (pydantic validators call it): the ``ValueError`` becomes the field's error.

    Parameters
    ----------
    example
        A time written the way the field expects it, shown in the error message.

    Raises
    ------
    ValueError
        When ``t`` has no UTC offset.
    """
    if t.tzinfo is None:
        raise ValueError(f"needs a UTC offset, e.g. {example}")
    try:
        return t.astimezone(dt.UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"lies outside the times that can be stored, e.g. {example}") from None


def utc_from_epoch_s(t_s: float) -> dt.datetime:
    """POSIX seconds as an aware UTC ``datetime``, rounded to the nearest microsecond.

    >>> utc_from_epoch_s(1.0000004).isoformat()
    '1970-01-01T00:00:01+00:00'
    >>> utc_from_epoch_s(0.9999996).isoformat()
    '1970-01-01T00:00:01+00:00'
    """
    whole = math.floor(t_s)
    us = round((t_s - whole) * 1e6)
    if us == 1_000_000:  # rounded up into the next second
        whole, us = whole + 1, 0
    return EPOCH + dt.timedelta(seconds=whole, microseconds=us)
