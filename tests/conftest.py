"""Shared fixtures: the example agreements and a small synthetic one."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.io.agreement_files import files_of_folder, load_agreement
from truceline.services.agreement_store import AgreementCache, Registration, register_agreement
from truceline.services.auth import Principal, Role

from .pg import db_url, pg_cluster  # noqa: F401  (fixtures: SQLite and PostGIS databases)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

SMALL_YAML = """\
id: small
name: Small test agreement
effective_from: 2025-01-01
parties: [{id: A, name: Alpha}, {id: B, name: Bravo}]
line: {file: line.geojson, left: B, right: A, extend: azimuth}
default_area_km: 250
zones:
  - {id: buffer, name: Buffer zone, type: band, bands: {A: [0, 15], B: [0, 10]}, buffer: true}
  - {id: limitation, name: Limitation band, type: band, bands: {A: [15, 35], B: [10, 30]}}
  - {id: disengagement, name: Disengagement area, type: polygon, file: disengagement.geojson}
weapon_classes:
  - {id: art100, name: Artillery 100 mm+, min_range_km: 2, max_range_km: 30}
  - {id: tank, name: Tanks, max_range_km: 4}
rules:
  - {id: wd-art, type: withdrawal, weapon_classes: [art100], distance_km: 25}
  - id: wd-tank
    type: withdrawal
    weapon_classes: [tank]
    distance_km: {A: 15, B: 10}
    effective_from: 2025-02-01
  - {id: bz-ban, type: zone_ban, zone: buffer, kinds: [armed_personnel, fortification_works]}
  - {id: da-ban, type: zone_ban, zone: disengagement, kinds: [armed_personnel, heavy_weapon]}
  - {id: fire, type: fire_across, zone: buffer}
  - {id: drones, type: drone_flight, zone: buffer}
  - {id: fom, type: movement_restriction}
  - {id: cap-tanks, type: count_cap, zone: limitation, weapon_classes: [tank], max_count: 5}
amendments:
  - effective_from: 2025-06-01
    description: tank limit widened
    rules:
      - {id: wd-tank, type: withdrawal, weapon_classes: [tank], distance_km: 20}
"""

# A line with a sharp bend, running roughly north to south-west.
SMALL_LINE = [[36.0, 50.0], [36.5, 49.0], [37.5, 48.0], [36.0, 47.0], [34.0, 46.8]]
DISENGAGEMENT = [[36.7, 48.75], [36.76, 48.75], [36.76, 48.79], [36.7, 48.79], [36.7, 48.75]]


def write_small_agreement(folder: Path, yaml_text: str = SMALL_YAML) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "agreement.yaml").write_text(yaml_text)
    (folder / "line.geojson").write_text(json.dumps({"type": "LineString", "coordinates": SMALL_LINE}))
    (folder / "disengagement.geojson").write_text(
        json.dumps({"type": "Polygon", "coordinates": [DISENGAGEMENT]})
    )
    return folder


#: Who registers the tests' agreements, and when (before anything else the tests store).
REGISTRAR = Principal(subject="cli:test", role=Role.admin)
REGISTERED_AT = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
_LOADED = AgreementCache()  # each agreement folder is loaded once per session


def register_folder(
    session: Session, folder: str | Path, *, now: dt.datetime = REGISTERED_AT
) -> Registration:
    """Register the agreement of ``folder`` as the CLI does (files, revision, ledger, audit)."""
    return register_agreement(
        session, files_of_folder(folder), source=str(folder), actor=REGISTRAR, now=now, cache=_LOADED
    )


@pytest.fixture(scope="session", autouse=True)
def _index_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Commands under test keep the line's search tables in a throwaway folder, never the
    user's cache (``classify`` saves them there by default)."""
    import os

    old = os.environ.get("TRUCELINE_INDEX_CACHE_DIR")
    os.environ["TRUCELINE_INDEX_CACHE_DIR"] = str(tmp_path_factory.mktemp("line-index-cache"))
    yield
    if old is None:
        os.environ.pop("TRUCELINE_INDEX_CACHE_DIR", None)
    else:
        os.environ["TRUCELINE_INDEX_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_small_agreement(tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="session")
def small(small_dir: Path) -> Agreement:
    return load_agreement(small_dir)


@pytest.fixture(scope="session")
def ukraine() -> Agreement:
    return load_agreement(EXAMPLES / "ukraine-2024")


@pytest.fixture(scope="session")
def korea() -> Agreement:
    return load_agreement(EXAMPLES / "korea-dmz")
