"""One bad record never fails its batch: the API (SQLite and PostGIS) and `truceline import`."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from truceline.cli import app
from truceline.services.intake import Intake
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import IngestBatchRow, RejectRow

from ..api.conftest import API, Api
from .corpus import BAD_RECORDS, BAD_REVISIONS, BadRecord, good_record

CASES = [pytest.param(c, id=c.name) for c in BAD_RECORDS]


def _post_raw(api: Api, path: str, body: Any, role: str = "sensor") -> Any:
    # json.dumps escapes lone surrogates as \ud800, as a hostile client would send them
    return api.client.post(
        API + path,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **api.h(role)},
    )


@pytest.mark.parametrize("case", CASES)
def test_a_bad_record_is_rejected_alone_in_a_batch(api: Api, case: BadRecord) -> None:
    body = {"incidents": [good_record("good-a"), case.record("bad"), good_record("good-b")]}
    r = _post_raw(api, "/incidents/batch", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["status"] for x in out["results"]] == ["accepted", "rejected", "accepted"]
    bad = out["results"][1]
    assert bad["field"] == case.field and bad["reason"], bad
    ids = {x["report_id"] for x in api.get("/incidents").json()["items"]}
    assert ids == {"good-a", "good-b"}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_single_record_is_refused_before_the_commit_group(
    api: Api, case: BadRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[Any] = []
    real = Intake.submit_async

    async def spy(self: Intake, *args: Any) -> Any:
        queued.append(args)
        return await real(self, *args)

    monkeypatch.setattr(Intake, "submit_async", spy)
    r = _post_raw(api, "/incidents", case.record("bad"))
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["field"] == case.field and err["fix"], err
    assert queued == []  # never reached the writer: nobody else's commit group pays for it
    assert _post_raw(api, "/incidents", good_record("good")).status_code == 201
    assert len(queued) == 1


def test_import_keeps_the_good_rows_beside_poison_ones(tmp_path: Path, small_dir: Path) -> None:
    """A CSV with dates out of range and bytes that are not UTF-8: each bad row rejected with its
    field, the good rows stored, no traceback."""
    header = "id,observed_at,lon,lat,kind,source_type,uncertainty_m,narrative\n"
    good = "{},2025-03-01T10:00:00Z,36.95,48.6,armed_personnel,patrol,50,ok\n"
    data = (
        header
        + good.format("good-a")
        + "y1,0001-01-01T00:00:00Z,36.95,48.6,armed_personnel,patrol,50,\n"
        + "y9,9999-12-31T23:59:59Z,36.95,48.6,armed_personnel,patrol,50,\n"
        + good.format("bad-\udcff")
        + good.format("bad-narrative").replace(",ok", ",fire \udcc3(")
        + good.format("good-b")
    ).encode("utf-8", "surrogateescape")
    (tmp_path / "in.csv").write_bytes(data)
    db = str(tmp_path / "t.db")
    rejects = tmp_path / "rejects.csv"
    args = ["import", str(tmp_path / "in.csv"), "-a", str(small_dir), "--db", db]
    res = CliRunner().invoke(app, [*args, "--rejects", str(rejects)])
    assert res.exit_code == 0, res.output
    assert res.exception is None
    said = " ".join(res.output.split())
    assert "2 accepted" in said and "4 rejected" in said, said
    rows = {r["row"]: r for r in csv.DictReader(rejects.read_text(encoding="utf-8").splitlines())}
    assert {k: v["field"] for k, v in rows.items()} == {
        "2": "observed_at",
        "3": "observed_at",
        "4": "id",
        "5": "narrative",
    }
    assert rows["4"]["id"] == "bad-\\udcff"  # shown escaped, never as a byte that breaks the file


def test_geojson_import_rejects_a_surrogate_alone(tmp_path: Path, small_dir: Path) -> None:
    def feature(props: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "Feature",
            "properties": props,
            "geometry": {"type": "Point", "coordinates": [props.pop("lon"), props.pop("lat")]},
        }

    fc = {
        "type": "FeatureCollection",
        "features": [
            feature(good_record("good-a")),
            feature({**good_record("x\ud800")}),
            feature({**good_record("y9"), "observed_at": "9999-12-31T23:59:59Z"}),
            feature(good_record("good-b")),
        ],
    }
    path = tmp_path / "in.geojson"
    path.write_text(json.dumps(fc))  # ASCII: the surrogate travels as the escape \ud800
    res = CliRunner().invoke(
        app, ["import", str(path), "-a", str(small_dir), "--db", str(tmp_path / "t.db")]
    )
    assert res.exit_code == 0 and res.exception is None, res.output
    said = " ".join(res.output.split())
    assert "2 accepted" in said and "2 rejected" in said, said


@pytest.mark.parametrize(("name", "changes", "field"), BAD_REVISIONS, ids=[c[0] for c in BAD_REVISIONS])
def test_a_rejected_revision_counts_in_its_batch(
    db_url: str, tmp_path: Path, small_dir: Path, name: str, changes: dict[str, str], field: str
) -> None:
    """A versioned source's revision the agreement refuses: rejected alone, and counted where the
    batch's other rejects are (the answer, ingest_batches.n_rejected, the stored rejects)."""
    samples = Path(__file__).parents[1] / "io" / "samples"
    with (samples / "acled-week2.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["event_id_cnty"] == "RUR1001"  # the revised row (a later timestamp)
    rows[0] |= changes
    week2 = tmp_path / "week2.csv"
    with week2.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    runner = CliRunner()
    base = ["import", "--format", "acled", "-a", str(small_dir), "--db", db_url]
    first = runner.invoke(app, [*base[:-2], str(samples / "acled-week1.csv"), "--db", db_url])
    assert first.exit_code == 0 and "3 accepted" in first.output, first.output
    rejects = tmp_path / "rejects.csv"
    out = runner.invoke(app, [*base, str(week2), "--rejects", str(rejects)])
    assert out.exit_code == 0 and out.exception is None, out.output
    said = " ".join(out.output.split())
    assert "1 rejected" in said and "0 revised" in said, said
    (rej,) = csv.DictReader(rejects.read_text(encoding="utf-8").splitlines())
    assert rej["id"] == "RUR1001" and rej["field"] == field, rej
    db = Database(db_url)
    try:
        with db.read() as s:
            batch = (
                s.execute(select(IngestBatchRow).order_by(IngestBatchRow.id.desc())).scalars().first()
            )
            assert batch is not None and batch.n_rejected == 1, batch
            stored = s.execute(select(RejectRow).where(RejectRow.batch_id == batch.id)).scalars().all()
            assert [(r.report_id, r.field) for r in stored] == [("RUR1001", field)]
            v = ledger.verify(s)
        assert v.ok, v.problems
    finally:
        db.dispose()


@pytest.mark.parametrize("value", [True, False])
def test_a_boolean_in_an_acled_json_number_is_rejected_not_read_as_1(
    tmp_path: Path, small_dir: Path, value: bool
) -> None:
    """ACLED's API answer (JSON) with ``"latitude": true``: was read as latitude 1 (0)."""
    samples = Path(__file__).parents[1] / "io" / "samples"
    with (samples / "acled-week1.csv").open(encoding="utf-8", newline="") as f:
        rows: list[dict[str, Any]] = list(csv.DictReader(f))
    rows[1]["latitude"] = value
    path = tmp_path / "acled.json"
    path.write_text(json.dumps({"status": 200, "success": True, "data": rows}), encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    args = ["import", str(path), "--format", "acled", "-a", str(small_dir)]
    out = CliRunner().invoke(app, [*args, "--db", str(tmp_path / "t.db"), "--rejects", str(rejects)])
    assert out.exit_code == 0 and out.exception is None, out.output
    said = " ".join(out.output.split())
    assert "2 accepted" in said and "1 rejected" in said, said
    (rej,) = csv.DictReader(rejects.read_text(encoding="utf-8").splitlines())
    assert rej["id"] == rows[1]["event_id_cnty"] and rej["field"] in ("lat", "latitude"), rej
