"""The API under test: a real app on a real database (SQLite and PostGIS), a token per role."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from truceline.api import AppContext, build_context, create_app
from truceline.context import SYSTEM
from truceline.services.agreement_store import AgreementCache
from truceline.services.auth import create_token
from truceline.settings import load_settings

from ..conftest import SMALL_YAML, write_small_agreement

API = "/api/v1"
DAY = dt.date(2025, 3, 1)
# Two sectors split at 48.5 N; the small agreement's line crosses both.
SECTORS = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"id": "north", "nation": "N", "name": "North"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[33, 48.5], [39, 48.5], [39, 50.5], [33, 50.5], [33, 48.5]]],
            },
        },
        {
            "type": "Feature",
            "properties": {"id": "south", "nation": "S", "name": "South"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[33, 46], [39, 46], [39, 48.5], [33, 48.5], [33, 46]]],
            },
        },
    ],
}
ROLES = ("admin", "analyst", "monitor", "sensor", "liaison", "public")


@pytest.fixture(scope="session")
def sectored_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = write_small_agreement(
        tmp_path_factory.mktemp("sectored"), SMALL_YAML + "sectors:\n  file: sectors.geojson\n"
    )
    (folder / "sectors.geojson").write_text(json.dumps(SECTORS))
    return folder


class Clock:
    """A settable clock (the ledger's days depend on it)."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def rec(
    i: int | str,
    *,
    lon: float = 36.95,
    lat: float = 48.6,
    kind: str = "armed_personnel",
    day: dt.date = DAY,
    **extra: Any,
) -> dict[str, Any]:
    """An incident record; the default one lies in the buffer zone on B's side (a zone-ban finding)."""
    return {
        "id": f"r{i}" if isinstance(i, int) else i,
        "observed_at": f"{day}T10:00:00Z",
        "lon": lon,
        "lat": lat,
        "kind": kind,
        "source_type": "patrol",
        "uncertainty_m": 50,
        **extra,
    }


@dataclass
class Api:
    client: TestClient
    ctx: AppContext
    clock: Clock
    tokens: dict[str, str] = field(default_factory=dict)

    def h(self, role: str | None) -> dict[str, str]:
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.client.get(API + path, headers=self.h(role), **kw)

    def post(self, path: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.client.post(API + path, headers=self.h(role), **kw)

    def delete(self, path: str, role: str | None = "admin", **kw: Any) -> Any:
        return self.client.delete(API + path, headers=self.h(role), **kw)


def make_api(db: str, agreement_dir: Path, cache: AgreementCache | None = None, **settings: Any) -> Api:
    clock = Clock(dt.datetime(2025, 3, 2, 8, 0, tzinfo=dt.UTC))
    s = load_settings(db=db, agreements=[agreement_dir], **{"max_batch": 50, **settings})
    ctx = build_context(s, clock=clock, agreements=cache)
    api = Api(TestClient(create_app(ctx)), ctx, clock)
    for role, extra in (
        ("admin", {}),
        ("analyst", {}),
        ("monitor", {"sector": "north"}),
        ("sensor", {}),
        ("liaison", {"party": "A"}),
        ("public", {}),
        ("monitor_south", {"sector": "south"}),
        ("liaison_b", {"party": "B"}),
    ):
        t = ctx.db.write(
            lambda s, role=role, extra=extra: create_token(
                s, role=role.split("_")[0], name=role, actor=SYSTEM, now=clock(), **extra
            )
        )
        api.tokens[role] = t.secret
    return api


@pytest.fixture(scope="session")
def agreement_cache() -> AgreementCache:
    """Shared by every test's app: each agreement is loaded and compiled once per session."""
    return AgreementCache()


@pytest.fixture()
def api(
    db_url: str, sectored_dir: Path, agreement_cache: AgreementCache, tmp_path: Path
) -> Iterator[Api]:
    # the files in the test's folder (on PostgreSQL the default is ./truceline-attachments)
    a = make_api(db_url, sectored_dir, agreement_cache, attachments_dir=tmp_path / "attachments")
    with a.client:
        yield a
    a.ctx.close()
