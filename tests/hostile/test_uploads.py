"""Hostile upload and import files: refused with a 4xx (API) or exit 2 (CLI) naming the file and
the limit (a setting), quickly and without unpacking, expanding or recursing into them."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from truceline.cli import app
from truceline.io.agreement_files import files_of_folder
from truceline.services.agreement_store import AgreementCache

from ..api.conftest import Api, make_api
from .corpus import BAD_AGREEMENT_VALUES, BAD_IMPORTS, BAD_UPLOADS, TEST_LIMITS, BadImport, BadUpload

UPLOADS = [pytest.param(c, id=c.name) for c in BAD_UPLOADS]
IMPORTS = [pytest.param(c, id=c.name) for c in BAD_IMPORTS]
#: Well under what the attacks cost before the limits (8 s for a YAML alias bomb, minutes for
#: nesting, 2 GB for a KMZ): the refusal happens before the work it bounds.
QUICK_S = 5.0
#: The same for a command run in this process (wall time: the process's CPU also counts other tests'
#: server threads). Its start and the agreement's loading take seconds on a loaded machine (7.2 s
#: seen in a full run at load ~10); refusing after the work would take minutes or gigabytes.
QUICK_COMMAND_S = 30.0


@pytest.fixture()
def limited_api(db_url: str, sectored_dir: Path, agreement_cache: AgreementCache) -> Iterator[Api]:
    a = make_api(db_url, sectored_dir, agreement_cache, uploads=TEST_LIMITS)
    with a.client:
        yield a
    a.ctx.close()


@pytest.fixture()
def limits_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A settings file with the test limits, as `truceline` commands read it."""
    cfg = tmp_path / "truceline.toml"
    cfg.write_text("[uploads]\n" + "".join(f"{k} = {v}\n" for k, v in TEST_LIMITS.items()))
    monkeypatch.setenv("TRUCELINE_CONFIG", str(cfg))
    return cfg


def _upload(api: Api, files: dict[str, bytes]) -> tuple[int, dict[str, object], float]:
    body = {"files": {}, "files_base64": {k: base64.b64encode(v).decode() for k, v in files.items()}}
    t = time.perf_counter()
    r = api.post("/agreements", json=body)
    return r.status_code, r.json(), time.perf_counter() - t


@pytest.mark.parametrize("case", UPLOADS)
def test_a_hostile_agreement_upload_is_refused_naming_file_and_limit(
    limited_api: Api, small_dir: Path, case: BadUpload
) -> None:
    good = files_of_folder(small_dir)
    status, body, took = _upload(limited_api, case.files(good))
    assert status == 422, body
    message = str(body["error"]["message"])  # type: ignore[index]
    assert message.startswith(f"{case.file}:") and case.says in message, message
    assert "\n" not in message and "Traceback" not in message
    assert took < QUICK_S, f"{case.name} took {took:.1f} s"
    # the server is still of use: the good files register
    assert _upload(limited_api, good)[0] == 201


def test_the_limits_are_settings(limited_api: Api, small_dir: Path) -> None:
    """A file within the default limits but over the configured one is refused; raising the
    setting lets the same file through."""
    case = next(c for c in BAD_UPLOADS if c.name == "geojson-many-vertices")
    files = case.files(files_of_folder(small_dir))
    assert _upload(limited_api, files)[0] == 422
    roomy = make_api(
        limited_api.ctx.settings.db,
        small_dir,
        uploads={**TEST_LIMITS, "max_vertices": 10_000},
    )
    with roomy.client:
        status, body, _ = _upload(roomy, files)
    roomy.ctx.close()
    assert status == 201, body


@pytest.mark.parametrize("case", UPLOADS)
def test_agreement_check_refuses_a_hostile_folder(
    tmp_path: Path, small_dir: Path, case: BadUpload, limits_config: Path
) -> None:
    folder = tmp_path / "ag"
    folder.mkdir()
    for name, data in case.files(files_of_folder(small_dir)).items():
        (folder / name).write_bytes(data)
    t = time.perf_counter()
    res = CliRunner().invoke(app, ["agreement", "check", str(folder)])
    took = time.perf_counter() - t
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert f"{folder / case.file}:" in said and case.says in said, said
    assert "Traceback" not in res.output and took < QUICK_S


@pytest.mark.parametrize("case", IMPORTS)
def test_a_hostile_import_file_is_refused_whole(
    tmp_path: Path, small_dir: Path, case: BadImport, limits_config: Path
) -> None:
    path = tmp_path / f"in{case.suffix}"
    path.write_bytes(case.content)
    db = str(tmp_path / "t.db")
    for args in (
        ["import", str(path), "-a", str(small_dir), "--db", db],
        ["classify", str(small_dir), str(path), "-o", str(tmp_path / "out.csv")],
    ):
        if args[0] == "classify" and case.suffix not in (".csv", ".geojson"):
            continue  # classify reads Truceline's CSV and GeoJSON only
        t = time.perf_counter()
        res = CliRunner().invoke(app, args)
        took = time.perf_counter() - t
        assert res.exit_code == 2, (args[0], res.output)
        said = " ".join(res.output.split())
        assert str(path) in said and case.says in said, said
        assert "Traceback" not in res.output and took < QUICK_COMMAND_S


def test_a_file_within_the_limits_still_imports(
    tmp_path: Path, small_dir: Path, limits_config: Path
) -> None:
    path = tmp_path / "in.geojson"
    feats = [
        {
            "type": "Feature",
            "properties": {
                "id": f"r{i}",
                "observed_at": "2025-03-01T10:00:00Z",
                "kind": "armed_personnel",
                "source_type": "patrol",
            },
            "geometry": {"type": "Point", "coordinates": [36.95, 48.6]},
        }
        for i in range(TEST_LIMITS["max_import_rows"])
    ]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    res = CliRunner().invoke(
        app, ["import", str(path), "-a", str(small_dir), "--db", str(tmp_path / "t.db")]
    )
    assert res.exit_code == 0, res.output
    assert f"{TEST_LIMITS['max_import_rows']} accepted" in " ".join(res.output.split())


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in BAD_AGREEMENT_VALUES])
def test_a_boolean_for_a_number_in_an_agreement_is_refused(
    limited_api: Api, small_dir: Path, case: BadUpload
) -> None:
    good = files_of_folder(small_dir)
    status, body, _ = _upload(limited_api, case.files(good))
    assert status == 422, body
    message = str(body["error"]["message"])  # type: ignore[index]
    assert message.startswith(case.file) and case.says in message and "not a number" in message
    assert _upload(limited_api, good)[0] == 201
