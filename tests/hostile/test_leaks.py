"""What a role must not see, formula cells in exports, and the body limit (SQLite and PostGIS)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from truceline.cli import app
from truceline.services.agreement_store import AgreementCache

from ..api.conftest import API, DAY, SECTORS, Api, make_api, rec
from ..conftest import SMALL_YAML, write_small_agreement
from .corpus import FORMULA_CELLS

POSTS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"id": "op-1", "name": "Post one", "sector": "north"},
            "geometry": {"type": "Point", "coordinates": [36.9, 48.7]},
        }
    ],
}


@pytest.fixture(scope="module")
def posts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small agreement with sectors and one observation post (made here)."""
    folder = write_small_agreement(
        tmp_path_factory.mktemp("posts"),
        SMALL_YAML + "sectors:\n  file: sectors.geojson\nobservation_posts:\n  file: posts.geojson\n",
    )
    (folder / "sectors.geojson").write_text(json.dumps(SECTORS))
    (folder / "posts.geojson").write_text(json.dumps(POSTS))
    return folder


@pytest.fixture()
def posts_api(db_url: str, posts_dir: Path) -> Iterator[Api]:
    a = make_api(db_url, posts_dir, AgreementCache())
    with a.client:
        yield a
    a.ctx.close()


def _post_ids(fc: dict[str, object]) -> set[str]:
    feats = fc["features"]
    assert isinstance(feats, list)
    return {f["properties"]["id"] for f in feats if f["properties"]["layer"] == "observation_post"}


@pytest.mark.parametrize("path", ["/agreements/small/zones", "/dashboard/layers"])
def test_observation_posts_only_for_those_who_see_reports(posts_api: Api, path: str) -> None:
    assert _post_ids(posts_api.get(path, role="analyst").json()) == {"op-1"}
    assert _post_ids(posts_api.get(path, role="monitor").json()) == {"op-1"}
    r = posts_api.get(path, role="liaison")
    assert r.status_code == 200, r.text
    assert _post_ids(r.json()) == set()


def test_the_publisher_is_shown_to_audit_readers_only(api: Api) -> None:
    assert api.post("/incidents", json=rec(1)).status_code == 201
    pub = api.post(f"/reports/{DAY}/publish", role="analyst")
    assert pub.status_code == 201, pub.text
    assert "analyst" in pub.json()["published_by"]  # the publisher knows who they are
    for role in (None, "public", "liaison", "monitor"):
        (row,) = api.get("/reports", role=role).json()
        assert row["day"] == str(DAY) and row["published_by"] is None, (role, row)
    (row,) = api.get("/reports", role="analyst").json()
    assert "analyst" in row["published_by"]


def test_csv_export_neutralises_formula_cells(api: Api) -> None:
    for k, (planted, _) in enumerate(FORMULA_CELLS):
        r = api.post("/incidents", json=rec(f"f{k}", narrative=planted))
        assert r.status_code == 201, r.text
    # an id a spreadsheet would run, too
    assert api.post("/incidents", json=rec("=1+2")).status_code == 201
    r = api.get("/export", role="analyst", params={"format": "csv"})
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    cells = {c for row in rows for c in row.values()}
    risky = [c for c in cells if c and c[0] in "=+-@\t\r" and not _is_number(c)]
    assert risky == []
    want = {shown for _, shown in FORMULA_CELLS}
    assert want <= cells
    assert "'=1+2" in cells


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_csv_export_keeps_negative_numbers(api: Api, tmp_path: Path) -> None:
    from truceline.io.csv_safe import safe_cell

    assert [safe_cell(v) for v in ("-12.5", "-1e-3", "+3", -7.25, -3)] == [
        "-12.5",
        "-1e-3",
        "+3",
        -7.25,
        -3,
    ]
    assert safe_cell("-") == "'-" and safe_cell("-1-1") == "'-1-1"


def test_cli_export_and_rejects_neutralise_formula_cells(tmp_path: Path, small_dir: Path) -> None:
    planted = FORMULA_CELLS[0][0].replace('"', "")
    data = (
        "id,observed_at,lon,lat,kind,source_type,narrative\n"
        f'=cmd|x,2025-03-01T10:00:00Z,36.95,48.6,armed_personnel,patrol,"{planted}"\n'
        "@bad,2025-03-01T10:00:00Z,36.95,48.6,meteor,patrol,\n"
    )
    (tmp_path / "in.csv").write_text(data)
    out = tmp_path / "out.csv"
    res = CliRunner().invoke(app, ["classify", str(small_dir), str(tmp_path / "in.csv"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    (row,) = list(csv.DictReader(out.read_text().splitlines()))
    assert row["id"] == "'=cmd|x"
    (rej,) = list(csv.DictReader((tmp_path / "out.rejects.csv").read_text().splitlines()))
    assert rej["id"] == "'@bad"


def test_a_chunked_body_over_the_limit_gets_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"incidents": ['
        for _ in range(3000):
            yield json.dumps(rec(1, narrative="x" * 3900)).encode() + b","
        yield b"{}]}"

    r = api.client.post(
        API + "/incidents/batch",
        content=chunks(),
        headers={"content-type": "application/json", **api.h("admin")},
    )
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["field"] == "body" and "limit" in err["message"]
    assert api.get("/incidents").json()["items"] == []


def test_the_duplicates_export_neutralises_formula_cells(tmp_path: Path) -> None:
    """`truceline duplicates`: report ids a sensor planted as formulas were written as they came."""
    from truceline.core.geodesy import GEOD

    from ..conftest import EXAMPLES

    lon, lat = 37.6, 48.25
    _, far_lat, _ = GEOD.fwd(lon, lat, 0.0, 1200.0)
    planted = ["=HYPERLINK(1)", "@SUM(1,2)"]
    src = tmp_path / "reports.csv"
    with src.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["id", "observed_at", "time_precision", "lon", "lat", "uncertainty_m", "kind", "source_type"]
        )
        w.writerow([planted[0], "2025-03-03T14:00:05Z", "second", lon, lat, 80, "explosion", "camera"])
        w.writerow(
            [planted[1], "2025-03-03T14:08:00Z", "minute", lon, far_lat, 800, "explosion", "patrol"]
        )
    db = str(tmp_path / "t.db")
    runner = CliRunner()
    res = runner.invoke(app, ["import", str(src), "-a", str(EXAMPLES / "ukraine-2024"), "--db", db])
    assert res.exit_code == 0 and "2 accepted" in " ".join(res.output.split()), res.output
    out = tmp_path / "pairs.csv"
    res = runner.invoke(app, ["duplicates", "--db", db, "-o", str(out)])
    assert res.exit_code == 0 and "1 possible duplicates" in res.output, res.output
    (pair,) = csv.DictReader(out.read_text(encoding="utf-8").splitlines())
    assert {pair["a_report_id"], pair["b_report_id"]} == {"'" + p for p in planted}, pair


def test_an_incidents_csv_written_neutralises_formula_cells_and_reads_back(tmp_path: Path) -> None:
    """write_incidents_csv (simulate's reports, the acoustic reports): formula text gets its ' and
    the reader drops it again, so the file re-imports unchanged."""
    import datetime as dt

    from truceline.core.incidents import Incident
    from truceline.io.incidents_io import read_incidents, write_incidents_csv

    inc = Incident(
        id="=1+1", observed_at=dt.datetime(2025, 3, 1, 10, tzinfo=dt.UTC), lon=36.95, lat=48.6,
        kind="explosion", source_type="patrol", narrative="@SUM(1,2)",
    )  # fmt: skip
    path = tmp_path / "r.csv"
    write_incidents_csv(path, [inc])
    (row,) = csv.DictReader(path.read_text(encoding="utf-8").splitlines())
    assert (row["id"], row["narrative"], row["lon"]) == ("'=1+1", "'@SUM(1,2)", "36.95")
    back = read_incidents(path)
    assert [(i.id, i.narrative) for i in back.incidents] == [("=1+1", "@SUM(1,2)")]
