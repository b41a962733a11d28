"""TAK markers: a marker is its uid; re-sends change nothing, a move is a revision, in the ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import func, select

from truceline.core.agreement import Agreement
from truceline.services.audit import history
from truceline.services.auth import Principal, Role
from truceline.services.submissions import Verdict, submit_markers
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import FindingRow, IncidentRevisionRow, IncidentRow
from truceline.tak import cot

from ..conftest import register_folder

DEVICE = Principal(subject="cot:tcp:10.1.0.7", role=Role.monitor)
T0 = dt.datetime(2025, 3, 1, 10, 0, tzinfo=dt.UTC)


def capture(uid: str, at: dt.datetime, lon: float, lat: float, remarks: str = "") -> bytes:
    """A marker as ATAK sends it (written here, not by Truceline's own code)."""
    stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    stale = (at + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    rem = f"<remarks>{remarks}</remarks>" if remarks else ""
    return (
        f'<event version="2.0" uid="{uid}" type="a-h-G-U-C-I" how="h-g-i-g-o" time="{stamp}" '
        f'start="{stamp}" stale="{stale}"><point lat="{lat!r}" lon="{lon!r}" hae="0" ce="12.5" '
        f'le="9999999"/><detail><contact callsign="OP 4"/>{rem}</detail></event>'
    ).encode()


def send(db: Database, ag: Agreement, events: list[bytes], now: dt.datetime) -> list[Verdict]:
    parsed = [cot.parse_event(e) for e in events]
    recs = [cot.incident_record(e, source_type="patrol", now=now) for e in parsed]
    vers = [cot.marker_version(e) for e in parsed]

    def work(s):  # type: ignore[no-untyped-def]
        return submit_markers(s, ag, recs, vers, principal=DEVICE, now=now)

    return [r.status for r in db.write(work).results]


def test_ten_markers_resent_for_ten_minutes_are_ten_incidents_and_a_move_is_a_revision(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    db = Database(str(tmp_path / "t.db"))
    db.upgrade()
    db.write(lambda s: register_folder(s, small_dir))
    # ten markers in the buffer zone and around it (the small agreement's line runs NE-SW here)
    spots = [(36.9 + 0.01 * k, 48.6 - 0.005 * k) for k in range(10)]
    verdicts: list[list[Verdict]] = []
    for minute in range(10):
        at = T0 + dt.timedelta(minutes=minute)
        moved = minute >= 5
        evs = [
            capture(f"ANDROID-{k}", at, lon + (0.05 if moved and k == 3 else 0.0), lat)
            for k, (lon, lat) in enumerate(spots)
        ]
        verdicts.append(send(db, small, evs, at + dt.timedelta(seconds=1)))
    assert verdicts[0] == [Verdict.accepted] * 10
    assert verdicts[1] == [Verdict.duplicate] * 10  # re-sends with a fresh start
    assert verdicts[5][3] == Verdict.revised and verdicts[5].count(Verdict.duplicate) == 9
    assert all(v == [Verdict.duplicate] * 10 for v in verdicts[6:])  # the moved marker's re-sends
    with db.read() as s:
        assert s.execute(select(func.count()).select_from(IncidentRow)).scalar() == 10
        row = s.execute(select(IncidentRow).where(IncidentRow.report_id == "cot:ANDROID-3")).scalar_one()
        assert row.revision == 2 and row.lon == spots[3][0] + 0.05
        assert row.observed_at.replace(tzinfo=dt.UTC) == T0 + dt.timedelta(minutes=5)
        assert row.uncertainty_m == 12.5  # ce is one sigma
        (old,) = s.execute(select(IncidentRevisionRow)).scalars()
        assert old.incident_pk == row.pk and old.revision == 1 and old.record["lon"] == spots[3][0]
        # the earlier findings are kept in the revision and audited as withdrawn
        assert [f["pk"] for f in old.findings] and not s.execute(
            select(FindingRow).where(FindingRow.pk.in_([f["pk"] for f in old.findings]))
        ).all()
        actions = [a.action for a in history(s, "incident", row.pk)]
        assert actions == ["revise"]
        v = ledger.verify(s)
        assert v.ok, v.problems


def test_an_older_sending_never_replaces_the_stored_revision(
    tmp_path: Path, small: Agreement, small_dir: Path
) -> None:
    db = Database(str(tmp_path / "t.db"))
    db.upgrade()
    db.write(lambda s: register_folder(s, small_dir))
    late = T0 + dt.timedelta(minutes=3)
    assert send(db, small, [capture("m", late, 36.9, 48.6)], late) == [Verdict.accepted]
    # an older position delivered late (a backlog), still within its stale time
    early = capture("m", T0 + dt.timedelta(minutes=2), 36.95, 48.6)
    (verdict,) = send(db, small, [early], late)
    assert verdict == Verdict.rejected
    with db.read() as s:
        assert s.execute(select(IncidentRow.lon)).scalar_one() == 36.9
