"""Export a filtered view from the store, import it elsewhere: the same incidents, nothing more.

The filter is checked against a brute-force selection of the submitted records, so "exactly the
filtered view" is tested, not assumed; every format round-trips through a second database.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.agreement import Agreement
from truceline.core.incidents import Incident
from truceline.io.formats import FORMATS
from truceline.services import queries
from truceline.services.auth import Principal, Role
from truceline.services.exchange import (
    export_incidents,
    export_records,
    import_incidents,
    incident_of_row,
)
from truceline.services.ingest import ingest_incidents
from truceline.store.db import Database
from truceline.store.models import IncidentRow

from ..conftest import register_folder

ADMIN = Principal(subject="test", role=Role.admin)
NOW = dt.datetime(2025, 3, 2, tzinfo=dt.UTC)
KINDS = ("armed_personnel", "explosion", "vehicle_movement", "flare")
BOX = queries.BBox(36.5, 48.0, 37.4, 48.9)
START, END = dt.datetime(2025, 3, 1, 6, tzinfo=dt.UTC), dt.datetime(2025, 3, 3, tzinfo=dt.UTC)


def incidents(n: int = 160) -> list[Incident]:
    rng = np.random.default_rng(5)
    out = []
    for k in range(n):
        out.append(
            Incident(
                id=f"e{k}",
                observed_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
                + dt.timedelta(seconds=float(rng.uniform(0, 3 * 86400))),
                lon=float(rng.uniform(36.0, 37.8)),
                lat=float(rng.uniform(47.6, 49.2)),
                uncertainty_m=float(rng.uniform(5, 900)),
                kind=KINDS[k % len(KINDS)],
                party=("A", "B", None)[k % 3],
                source_type="patrol",
                narrative=f"report {k}, seen from OP {k % 7}",
            )
        )
    return out


def brute_force(items: list[Incident]) -> list[str]:
    return [
        i.id
        for i in items
        if i.kind in ("armed_personnel", "explosion")
        and BOX.west <= i.lon <= BOX.east
        and BOX.south <= i.lat <= BOX.north
        and START <= i.observed_at < END
    ]


def store(url: str, small: Agreement, small_dir: Path, items: list[Incident]) -> Database:
    db = Database(url)
    db.upgrade()

    def work(s):  # type: ignore[no-untyped-def]
        register_folder(s, small_dir)
        return ingest_incidents(s, small, items, list(range(1, len(items) + 1)), source="t", now=NOW)

    res = db.write(work)
    assert len(res.accepted) == len(items), res.rejects
    return db


def stored(db: Database) -> dict[str, Incident]:
    with db.read() as s:
        rows = s.query(IncidentRow).all()
        return {r.report_id: incident_of_row(r) for r in rows}


FLT = queries.IncidentFilter(
    agreement_id="small", bbox=BOX, start=START, end=END, kind=("armed_personnel", "explosion")
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_then_import_gives_the_same_incidents(
    db_url: str, small: Agreement, small_dir: Path, tmp_path: Path, fmt: str
) -> None:
    items = incidents()
    src = store(db_url, small, small_dir, items)
    want = brute_force(items)
    assert 5 < len(want) < len(items)  # the filter selects some, not all
    path = tmp_path / f"view.{'csv' if fmt == 'acled' else fmt}"
    with src.read() as s:
        n = export_incidents(s, FLT, path, fmt, scope=ADMIN.scope)
        records = export_records(s, FLT, scope=ADMIN.scope)
    src.dispose()
    assert n == len(want) and sorted(r["id"] for r in records) == sorted(want)
    # Findings and adjudication go along for the analyst (and are recomputed on import).
    assert any(r["findings"] for r in records) and all(r["side_party"] for r in records)

    dst = Database(str(tmp_path / "other.db"))
    dst.upgrade()

    def imp(s):  # type: ignore[no-untyped-def]
        register_folder(s, small_dir)
        return import_incidents(s, small, path, fmt, principal=ADMIN, now=NOW)

    out = dst.write(imp)
    assert out.read.read.rejects == [] and len(out.stored.accepted) == len(want)
    by_id = {i.id: i for i in items}
    assert stored(dst) == {k: by_id[k] for k in want}
    again = dst.write(imp)  # importing the same file again changes nothing
    assert len(again.stored.duplicates) == len(want) and not again.stored.accepted
    dst.dispose()


def test_cli_import_export(tmp_path: Path, small: Agreement, small_dir: Path) -> None:
    runner = CliRunner()
    items = incidents(24)
    db = str(tmp_path / "a.db")
    store(db, small, small_dir, items).dispose()
    out = tmp_path / "x.kmz"
    r = runner.invoke(
        app,
        [
            "export",
            "incidents",
            "-o",
            str(out),
            "--db",
            db,
            "--kind",
            "explosion",
            "--bbox",
            "36.5,48,37.4,48.9",
        ],
    )
    assert r.exit_code == 0, r.output
    n_want = sum(
        1
        for i in items
        if i.kind == "explosion" and BOX.west <= i.lon <= BOX.east and BOX.south <= i.lat <= BOX.north
    )
    assert f"Wrote {n_want} incidents" in r.output
    other = str(tmp_path / "b.db")
    r = runner.invoke(app, ["import", str(out), "-a", str(small_dir), "--db", other])
    assert r.exit_code == 0 and f"{n_want} accepted" in r.output, r.output
    z = tmp_path / "zones.gpkg"
    r = runner.invoke(app, ["export", "zones", "--db", other, "-o", str(z), "--date", "2025-07-01"])
    assert r.exit_code == 0 and z.exists() and "in force on 2025-07-01" in r.output, r.output
    acled = tmp_path / "acled.csv"
    acled.write_text(
        "event_id_cnty,event_date,event_type,sub_event_type,actor1,latitude,longitude,geo_precision\n"
        "X1,2025-03-01,Explosions/Remote violence,Air/drone strike,Bravo,48.6,36.95,1\n"
        "X2,2025-03-01,Riots,Mob violence,,48.6,36.95,1\n"
    )
    r = runner.invoke(
        app,
        [
            "import",
            str(acled),
            "-a",
            str(small_dir),
            "--db",
            other,
            "--format",
            "acled",
            "--rejects",
            str(tmp_path / "rej.csv"),
        ],
    )
    assert (
        r.exit_code == 0
        and "1 accepted" in r.output
        and "NOT MAPPED 1 x Riots > Mob violence" in r.output
    )
    assert "Mob violence" in (tmp_path / "rej.csv").read_text()
    bad = runner.invoke(app, ["export", "incidents", "-o", str(tmp_path / "x.xlsx"), "--db", db])
    assert bad.exit_code == 2 and "suffix" in bad.output
