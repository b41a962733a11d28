"""``truceline plan`` end to end: compare the example's scenarios, replay a stored history."""

from __future__ import annotations

import base64
import datetime as dt
import re
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from truceline.cli import app
from truceline.core.incidents import Incident, Kind, SourceType
from truceline.io.agreement_files import load_agreement
from truceline.services.ingest import ingest_incidents
from truceline.store.db import make_engine, session_factory, upgrade

from ..conftest import EXAMPLES, register_folder

runner = CliRunner()
UKR = str(EXAMPLES / "ukraine-2024")


def test_plan_compare_writes_table_and_html_with_maps(tmp_path: Path) -> None:
    layout = tmp_path / "sensors.csv"
    # A small given layout: its gaps cover nearly the whole line.
    lon = np.linspace(36.3, 37.9, 12)
    lines = ["sensor_id,lon,lat"] + [
        f"s{i},{x:.4f},{50.2 + 0.02 * (i % 2):.4f}" for i, x in enumerate(lon)
    ]
    layout.write_text("\n".join(lines) + "\n")
    out = tmp_path / "plan.html"
    res = runner.invoke(
        app,
        ["plan", "compare", UKR, "frozen", "salient", "--min-population", "15000", "--density",
         "unficyp", "--sensors", str(layout), "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Line length (km, geodesic)" in res.output and "Acoustic sensors needed" in res.output
    assert "salient" in res.output and "admin-borders" not in res.output
    assert "GeoNames" in res.output and "15,000" in res.output
    html = out.read_text()
    pngs = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(pngs) == 3  # the overview and one map per scenario
    assert all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "given layout" in html and "Withdrawal from the Pokrovsk salient" in html
    assert "4.5 troops per km" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html


def test_plan_compare_errors(tmp_path: Path) -> None:
    res = runner.invoke(app, ["plan", "compare", UKR, "nope", "--no-sensors"])
    assert res.exit_code == 2 and "no scenario 'nope'" in res.output
    res = runner.invoke(app, ["plan", "compare", UKR, "--density", "lots"])
    assert res.exit_code != 0 and "osce-smm" in res.output


def test_plan_replay(tmp_path: Path) -> None:
    ag = load_agreement(UKR)
    rng = np.random.default_rng(2)
    # Armed personnel around Selydove / Kurakhove (the salient the third scenario gives back).
    lon, lat = rng.uniform(37.1, 37.6, 150), rng.uniform(47.9, 48.25, 150)
    t0 = dt.datetime(2025, 4, 1, tzinfo=dt.UTC)
    incs = [
        Incident(
            id=f"x{k}",
            observed_at=t0 + dt.timedelta(hours=k),
            lon=float(lon[k]),
            lat=float(lat[k]),
            uncertainty_m=100.0,
            kind=Kind.armed_personnel,
            source_type=SourceType.patrol,
        )
        for k in range(150)
    ]
    db = str(tmp_path / "h.db")
    engine = make_engine(db)
    upgrade(engine)
    with session_factory(engine)() as session, session.begin():
        register_folder(session, UKR)
        ingest_incidents(session, ag, incs, list(range(150)), source="test")
    res = runner.invoke(app, ["plan", "replay", UKR, "--from", "frozen", "--to", "salient", "--db", db])
    assert res.exit_code == 0, res.output
    m = re.search(
        r"150 incidents: violations \(P >= 0.5\) (\d+) under .* -> (\d+) under salient", res.output
    )
    assert m, res.output
    assert int(m.group(1)) != int(m.group(2))
    assert "buffer-ban" in res.output
    res = runner.invoke(app, ["plan", "replay", UKR, "--to", "elsewhere", "--db", db])
    assert res.exit_code == 2 and "no scenario 'elsewhere'" in res.output
