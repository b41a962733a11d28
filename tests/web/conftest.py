"""Fixtures of the dashboard tests: the API on a real database, and what a missing tool means.

A missing browser, ``pdftoppm`` or Pango skips the tests that need it, loudly, on a developer's
machine; under ``CI=true`` (``.ci/run`` installs them) the same absence is a failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from truceline.services.agreement_store import AgreementCache
from truceline.services.selection import stop_builds

from ..api.conftest import SECTORS, Api, make_api
from ..conftest import SMALL_YAML, write_small_agreement

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "out" / "test-artifacts"


def pytest_configure(config: pytest.Config) -> None:
    # Known with or without pytest-xdist (-p no:xdist): the browser tests share one server.
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one xdist worker")


def missing(what: str) -> None:
    """Skip (locally) or fail (in CI) because ``what`` is not installed."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but {what}; .ci/run installs it")
    pytest.skip(f"SKIPPED LOUDLY: {what} (CI=true makes this a failure)")


@pytest.fixture(scope="session")
def web_agreement_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small test agreement with two sectors (north and south of 48.5 N)."""
    folder = write_small_agreement(
        tmp_path_factory.mktemp("web-agreement"), SMALL_YAML + "sectors:\n  file: sectors.geojson\n"
    )
    (folder / "sectors.geojson").write_text(json.dumps(SECTORS))
    return folder


@pytest.fixture(scope="session")
def web_agreement_cache() -> AgreementCache:
    """Shared by the tests' apps: the agreement (and its drawn layers) is built once per worker."""
    return AgreementCache()


@pytest.fixture()
def api(db_url: str, web_agreement_dir: Path, web_agreement_cache: AgreementCache) -> Iterator[Api]:
    a = make_api(db_url, web_agreement_dir, web_agreement_cache)
    with a.client:
        yield a
    stop_builds(a.ctx.db)  # a background build of the map summary, if a request started one
    a.ctx.db.dispose()


@pytest.fixture()
def sqlite_api(
    tmp_path: Path, web_agreement_dir: Path, web_agreement_cache: AgreementCache
) -> Iterator[Api]:
    """The API on SQLite only, for what does not depend on the database (pages, PDFs)."""
    a = make_api(str(tmp_path / "web.db"), web_agreement_dir, web_agreement_cache)
    with a.client:
        yield a
    stop_builds(a.ctx.db)  # a background build of the map summary, if a request started one
    a.ctx.db.dispose()
