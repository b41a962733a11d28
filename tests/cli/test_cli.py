"""End-to-end through the command line, as a user types it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from truceline.cli import app

from ..conftest import EXAMPLES

runner = CliRunner()
UKR = str(EXAMPLES / "ukraine-2024")


def test_agreement_check() -> None:
    res = runner.invoke(app, ["agreement", "check", UKR])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "km (geodesic)" in res.output and "buffer" in res.output
    out = " ".join(res.output.split())
    # what it assumed: both ends of the example's line reach its area's boundary
    assert "the line's start (lon 36.2000, lat 50.3750) is on the boundary" in out
    assert "the line's end (lon 31.4300, lat 46.5350) is on the boundary" in out
    assert "rules judge reports from 2025-01-20 with no end date" in out


def test_agreement_check_reports_errors(tmp_path: Path) -> None:
    (tmp_path / "agreement.yaml").write_text("id: x\nname: y\n")
    res = runner.invoke(app, ["agreement", "check", str(tmp_path)])
    assert res.exit_code == 2
    assert "agreement.yaml" in res.output and "parties" in res.output


def test_agreement_export(tmp_path: Path) -> None:
    out = tmp_path / "zones.geojson"
    res = runner.invoke(app, ["export", "zones", "-a", UKR, "-o", str(out)])
    assert res.exit_code == 0, res.output
    fc = json.loads(out.read_text())
    zones = [f for f in fc["features"] if f["properties"]["layer"] == "zone"]
    assert {f["properties"]["side"] for f in zones} == {"UA", "RU"}
    assert any(f["properties"]["zone"] == "buffer" for f in zones)


def test_simulate_classify_with_rejects(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    res = runner.invoke(app, ["simulate", UKR, "--days", "1", "--seed", "3", "-o", str(sim)])
    assert res.exit_code == 0, res.output
    reports = sim / "reports.csv"
    lines = reports.read_text().splitlines()
    # Corrupt two rows: a swapped-looking position and a garbage kind.
    header = lines[0].split(",")
    row = lines[1].split(",")
    bad1 = list(row)
    bad1[header.index("id")] = "bad-1"
    bad1[header.index("lon")], bad1[header.index("lat")] = (
        row[header.index("lat")],
        row[header.index("lon")],
    )
    bad2 = list(row)
    bad2[header.index("id")] = "bad-2"
    bad2[header.index("kind")] = "meteor"
    (tmp_path / "in.csv").write_text("\n".join([*lines, ",".join(bad1), ",".join(bad2)]) + "\n")
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["classify", UKR, str(tmp_path / "in.csv"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == len(lines) - 1
    rejects = list(csv.DictReader((tmp_path / "out.rejects.csv").read_text().splitlines()))
    assert {r["id"] for r in rejects} == {"bad-1", "bad-2"}
    assert any("swap" in r["reason"] for r in rejects)
    assert any(r["findings"] for r in rows)
    assert all(r["side"] in ("UA", "RU", "") for r in rows)


def test_ingest_is_idempotent(tmp_path: Path) -> None:
    sim = tmp_path / "sim"
    runner.invoke(app, ["simulate", UKR, "--seed", "5", "-o", str(sim)])
    db = str(tmp_path / "t.db")
    first = runner.invoke(app, ["import", str(sim / "reports.csv"), "-a", UKR, "--db", db])
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["import", str(sim / "reports.csv"), "-a", UKR, "--db", db])
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())  # rich wraps long lines
    assert " 0 accepted" in said and "duplicates, 0 rejected" in said
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        n = conn.execute(text("select count(*) from incidents")).scalar()
    engine.dispose()
    n_rows = len((sim / "reports.csv").read_text().splitlines()) - 1
    assert n == n_rows


def test_demo_writes_report(tmp_path: Path) -> None:
    res = runner.invoke(app, ["demo", "--agreement", UKR, "--output", str(tmp_path / "demo")])
    assert res.exit_code == 0, res.output
    reports = list((tmp_path / "demo").glob("report-*.html"))
    assert reports and "data:image/png;base64" in reports[0].read_text()


def test_import_registers_the_agreement_as_the_server_does(tmp_path: Path, small_dir: Path) -> None:
    """`truceline import` and a server configured with the same folder: one content hash, and each a
    revision, a ledger entry and an audit row; importing again registers nothing more."""
    from sqlalchemy import select

    from truceline.context import build_context
    from truceline.settings import load_settings
    from truceline.store.db import Database
    from truceline.store.models import AgreementRevisionRow, AgreementRow, AuditRow, LedgerEntryRow

    reports = tmp_path / "r.csv"
    reports.write_text(
        "id,observed_at,lon,lat,kind,source_type,uncertainty_m\n"
        "r1,2025-03-01T10:00:00Z,36.95,48.6,armed_personnel,patrol,50\n"
    )
    cli_db = str(tmp_path / "cli.db")
    for _ in range(2):
        res = runner.invoke(app, ["import", str(reports), "-a", str(small_dir), "--db", cli_db])
        assert res.exit_code == 0, res.output
    server = build_context(load_settings(db=str(tmp_path / "server.db"), agreements=[small_dir]))
    server.close()

    def registered(url: str) -> tuple[str, list[str], list[str], list[str]]:
        d = Database(url)
        try:
            with d.read() as s:
                row = s.get(AgreementRow, "small")
                assert row is not None
                return (
                    row.content_hash,
                    list(s.execute(select(AgreementRevisionRow.content_hash)).scalars()),
                    list(
                        s.execute(
                            select(LedgerEntryRow.ref).where(LedgerEntryRow.kind == "agreement")
                        ).scalars()
                    ),
                    list(
                        s.execute(select(AuditRow.actor).where(AuditRow.entity == "agreement")).scalars()
                    ),
                )
        finally:
            d.dispose()

    by_cli, by_server = registered(cli_db), registered(str(tmp_path / "server.db"))
    digest = by_cli[0]
    assert by_server[0] == digest and by_cli[1] == by_server[1] == [digest]
    assert by_cli[2] == by_server[2] == ["agreement:small:1"]
    assert len(by_cli[3]) == 1 and by_cli[3][0].startswith("cli:") and by_server[3] == ["system"]


def test_import_then_duplicates_lists_the_uncertain_pairs(tmp_path: Path) -> None:
    """Reports written by hand (not the simulator): a camera and a patrol that agree (linked),
    and a camera and a patrol 1.2 km and 8 minutes apart (offered, with its probability)."""
    import sqlite3

    from truceline.core.geodesy import GEOD

    lon, lat = 37.6, 48.2
    _, far_lat, _ = GEOD.fwd(lon, lat + 0.05, 0.0, 1200.0)
    rows = [
        ("a-cam", "10:00:05", "second", lon, lat, 80, "camera"),
        ("a-pat", "10:00:00", "minute", lon + 0.001, lat, 400, "patrol"),
        ("b-cam", "14:00:05", "second", lon, lat + 0.05, 80, "camera"),
        ("b-pat", "14:08:00", "minute", lon, far_lat, 800, "patrol"),
    ]
    src = tmp_path / "reports.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["id", "observed_at", "time_precision", "lon", "lat", "uncertainty_m", "kind", "source_type"]
        )
        for rid, t, prec, x, y, unc, st in rows:
            w.writerow([rid, f"2025-03-03T{t}Z", prec, x, y, unc, "explosion", st])
    db = str(tmp_path / "t.db")
    res = runner.invoke(app, ["import", str(src), "-a", UKR, "--db", db])
    assert res.exit_code == 0, res.output
    out = tmp_path / "pairs.csv"
    res = runner.invoke(app, ["duplicates", "--db", db, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "1 possible duplicates" in res.output
    with out.open() as fh:
        pairs = list(csv.DictReader(fh))
    assert [{p["a_report_id"], p["b_report_id"]} for p in pairs] == [{"b-cam", "b-pat"}]
    assert 0.1 <= float(pairs[0]["probability"]) < 0.9
    assert json.loads(pairs[0]["reason"])["sources"] in (["camera", "patrol"], ["patrol", "camera"])
    con = sqlite3.connect(db)
    ev = dict(con.execute("SELECT report_id, event_id FROM incidents").fetchall())
    con.close()
    assert ev["a-cam"] is not None and ev["a-cam"] == ev["a-pat"]
    assert ev["b-cam"] is None and ev["b-pat"] is None


# A hand-written report file in the CSV layout: a 2023 movement restriction (the agreement is in
# force from 2025-01-20), a CoT-like point 7,000+ km away (North America), one that counts.
_LABEL_CSV = """\
id,observed_at,lon,lat,uncertainty_m,kind,party,source_type,reliability,credibility,narrative
old-1,2023-01-01T09:00:00Z,37.60,47.95,100,movement_restriction,,patrol,B,2,patrol stopped
far-1,2025-03-01T09:00:00Z,-75.0,40.0,10,movement_restriction,,uav,C,3,marker far away
far-2,2025-03-01T09:05:00Z,-75.0,40.0,10,armed_personnel,RU,uav,C,3,marker far away
now-1,2025-03-01T09:00:00Z,37.60,47.95,100,movement_restriction,,patrol,B,2,patrol stopped
"""


def test_classify_and_import_label_in_force_and_area(tmp_path: Path) -> None:
    src = tmp_path / "labels.csv"
    src.write_text(_LABEL_CSV)
    out = tmp_path / "out.csv"
    res = runner.invoke(app, ["classify", UKR, str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in csv.DictReader(out.read_text().splitlines())}
    assert {k: (r["in_force"], r["in_area"]) for k, r in rows.items()} == {
        "old-1": ("False", "True"),
        "far-1": ("True", "False"),
        "far-2": ("True", "False"),
        "now-1": ("True", "True"),
    }
    assert [k for k, r in rows.items() if r["findings"]] == ["now-1"]
    assert rows["far-1"]["sector"] == "" and rows["far-2"]["zones"] == ""
    assert rows["old-1"]["sector"] == rows["now-1"]["sector"] != ""
    db = str(tmp_path / "t.db")
    res = runner.invoke(app, ["import", str(src), "-a", UKR, "--db", db])
    assert res.exit_code == 0, res.output
    html = tmp_path / "r.html"
    res = runner.invoke(app, ["report", "-a", UKR, "--date", "2025-03-01", "--db", db, "-o", str(html)])
    assert res.exit_code == 0, res.output
    text = " ".join(html.read_text().split())
    assert "2 reports outside the area of application" in text
    assert "on a day the agreement was not in force" not in text


def test_export_zones_defaults_to_the_version_in_force_today(tmp_path: Path) -> None:
    """Without --date: today's version (here an amendment that widened the buffer), not the first."""
    import datetime as dt

    from ..conftest import SMALL_YAML, write_small_agreement

    widened = SMALL_YAML + (
        "  - effective_from: 2025-09-01\n"
        "    description: buffer widened\n"
        "    zones:\n"
        "      - {id: buffer, name: Buffer zone, type: band, bands: {A: [0, 20], B: [0, 15]}, "
        "buffer: true}\n"
    )
    ag = str(write_small_agreement(tmp_path / "ag", widened))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    runs = {}
    for name, extra in (
        ("default", []),
        ("today", ["--date", today]),
        ("first", ["--date", "2025-03-01"]),
    ):
        out = tmp_path / f"{name}.geojson"
        res = CliRunner().invoke(app, ["export", "zones", "-a", ag, "-o", str(out), *extra])
        assert res.exit_code == 0, res.output
        runs[name] = out.read_bytes()
        if name == "default":
            assert f"in force on {today}" in " ".join(res.output.split())
    assert runs["default"] == runs["today"]
    assert runs["default"] != runs["first"]


def test_export_zones_does_not_offer_acled() -> None:
    res = CliRunner().invoke(app, ["export", "zones", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "acled" not in res.output.lower()
