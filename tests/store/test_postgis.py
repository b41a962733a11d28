"""One schema on both databases; spatial boxes answered from an index on each."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from truceline.services.queries import BBox, _bbox_clause
from truceline.store.db import make_engine
from truceline.store.models import Base, IncidentRow

from ..pg import require_postgis


def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        dialect = conn.dialect.name
    engine.dispose()

    # PostGIS adds what the models leave to the migration: incidents.geom (+ its index) and
    # PostGIS's own tables.
    def ours(d: object) -> bool:
        text_ = repr(d)
        return not any(k in text_ for k in ("geom", "spatial_ref_sys", "topology", "layer"))

    assert [d for d in diffs if ours(d)] == [], dialect


def test_bbox_uses_an_index(db_url: str) -> None:
    engine = make_engine(db_url)
    box = BBox(36.5, 48.0, 37.5, 49.0)
    with engine.begin() as conn:
        dialect = conn.dialect.name
        q = IncidentRow.__table__.select().where(_bbox_clause(box, dialect))
        sql = str(q.compile(conn, compile_kwargs={"literal_binds": True}))
        if dialect == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny table: force the planner's hand
            plan = "\n".join(conn.execute(text(f"EXPLAIN {sql}")).scalars())
            assert "ix_incident_geom" in plan, plan
            kind = conn.execute(
                text(
                    "select am.amname from pg_index i join pg_class c on c.oid = i.indexrelid "
                    "join pg_am am on am.oid = c.relam where c.relname = 'ix_incident_geom'"
                )
            ).scalar_one()
            assert kind == "gist"
            col = conn.execute(
                text("select type, srid from geometry_columns where f_table_name = 'incidents'")
            ).one()
            assert tuple(col) == ("POINT", 4326)
        else:
            plan = " ".join(str(r[-1]) for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "ix_incident_lonlat" in plan, plan
    engine.dispose()


def test_missing_postgis_skips_loudly_and_fails_under_ci(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUCELINE_PG_BINDIR", str(tmp_path / "no-such-dir"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(
        pytest.skip.Exception, match="PostgreSQL/PostGIS tests cannot run: no PostgreSQL"
    ):
        require_postgis()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: a skipped PostGIS test is a failure"):
        require_postgis()
