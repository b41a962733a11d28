"""Count caps recounted over stored reports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from truceline.core.agreement import Agreement
from truceline.services.caps import recount_caps
from truceline.store.db import Database

from ..conftest import register_folder

T0 = dt.datetime(2025, 3, 2, 12, tzinfo=dt.UTC)


def test_a_day_with_nothing_counted_recounts_to_nothing(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    """A recount of days that hold no counted report adds nothing (it raised an IndexError)."""
    db = Database(str(tmp_path / "t.db"))
    try:
        db.upgrade()
        db.write(lambda s: register_folder(s, small_dir, now=T0))
        out = db.write(
            lambda s: recount_caps(s, small, [dt.date(2025, 3, 1), dt.date(2025, 3, 2)], now=T0)
        )
    finally:
        db.dispose()
    assert out.days == (dt.date(2025, 3, 1), dt.date(2025, 3, 2))
    assert out.reports == 0 and out.new_findings == ()
