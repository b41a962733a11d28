"""One way to register an agreement: one content hash, and a revision, a ledger entry and an audit
row for each change; databases made before keep working."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from truceline.io.agreement_files import files_of_folder
from truceline.services.agreement_store import (
    AgreementCache,
    agreement_files,
    files_hash,
    register_agreement,
)
from truceline.services.auth import Principal, Role
from truceline.store import ledger
from truceline.store.db import Database
from truceline.store.models import AgreementRevisionRow, AgreementRow, AuditRow, LedgerEntryRow

from ..conftest import SMALL_YAML, register_folder, write_small_agreement

T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
UPLOADER = Principal(subject="token:admin", role=Role.admin)


@pytest.fixture()
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(str(tmp_path / "a.db"))
    d.upgrade()
    yield d
    d.dispose()


def _counts(db: Database) -> tuple[int, int, int]:
    """Revisions, agreement ledger entries and agreement audit rows."""
    with db.read() as s:
        return (
            s.execute(select(func.count()).select_from(AgreementRevisionRow)).scalar_one(),
            s.execute(
                select(func.count())
                .select_from(LedgerEntryRow)
                .where(LedgerEntryRow.kind == "agreement")
            ).scalar_one(),
            s.execute(
                select(func.count()).select_from(AuditRow).where(AuditRow.entity == "agreement")
            ).scalar_one(),
        )


def test_a_folder_and_an_upload_of_its_files_register_alike(tmp_path: Path, small_dir: Path) -> None:
    """One content hash, and each a revision, a ledger entry and an audit row, by its actor."""
    by_folder, by_upload = Database(str(tmp_path / "cli.db")), Database(str(tmp_path / "api.db"))
    try:
        for d in (by_folder, by_upload):
            d.upgrade()
        files = files_of_folder(small_dir)
        folder = by_folder.write(lambda s: register_folder(s, small_dir, now=T0))
        up = by_upload.write(
            lambda s: register_agreement(s, dict(files), source="api", actor=UPLOADER, now=T0)
        )
        assert folder.created and up.created
        assert folder.row.content_hash == up.row.content_hash == files_hash(files)
        assert folder.revision.content_hash == up.revision.content_hash == files_hash(files)
        assert (folder.row.source, up.row.source) == (str(small_dir), "api")
        for d, actor in ((by_folder, "cli:test"), (by_upload, "token:admin")):
            assert _counts(d) == (1, 1, 1)
            with d.read() as s:
                audit = s.execute(select(AuditRow)).scalar_one()
                entry = s.execute(
                    select(LedgerEntryRow).where(LedgerEntryRow.kind == "agreement")
                ).scalar_one()
                assert ledger.verify(s).ok
            assert (audit.actor, audit.action) == (actor, "create")
            assert entry.ref == "agreement:small:1" and files_hash(files) in entry.body
    finally:
        by_folder.dispose()
        by_upload.dispose()


def test_unchanged_files_change_nothing_and_other_files_amend(db: Database, tmp_path: Path) -> None:
    folder = write_small_agreement(tmp_path / "a")
    first = db.write(lambda s: register_folder(s, folder, now=T0))
    assert first.created and first.revision.revision == 1
    again = db.write(lambda s: register_folder(s, folder, now=T0 + dt.timedelta(hours=1)))
    assert not again.created and again.revision.revision == 1
    assert _counts(db) == (1, 1, 1)
    (folder / "agreement.yaml").write_text(SMALL_YAML.replace("max_count: 5", "max_count: 3"))
    amended = db.write(lambda s: register_folder(s, folder, now=T0 + dt.timedelta(hours=2)))
    assert amended.created and amended.revision.revision == 2
    assert _counts(db) == (2, 2, 2)
    with db.read() as s:
        row = s.get(AgreementRow, "small")
        last = s.execute(select(AuditRow).order_by(AuditRow.pk.desc()).limit(1)).scalar_one()
    assert row is not None and row.content_hash == files_hash(files_of_folder(folder))
    assert last.action == "amend" and last.before is not None and last.before["revision"] == 1


def test_a_database_made_before_reads_the_cli_folder(db: Database, small_dir: Path) -> None:
    """An agreement the CLI registered before every registration wrote a revision: a row naming its
    folder, with the old hash. It is still read from the folder, until registered again."""
    db.write(
        lambda s: s.add(
            AgreementRow(
                id="small", name="Small test agreement", source=str(small_dir), content_hash="0" * 64
            )
        )
    )
    cache = AgreementCache()
    with db.read() as s:
        ag = cache.get(s, "small")
        digest, files = agreement_files(s, "small")
    assert ag.id == "small" and len(ag.versions) == 2
    assert files == files_of_folder(small_dir) and digest == files_hash(files)
    assert _counts(db) == (0, 0, 0)
    reg = db.write(lambda s: register_folder(s, small_dir, now=T0))
    assert reg.created and reg.revision.revision == 1 and reg.row.content_hash == digest
    with db.read() as s:
        assert agreement_files(s, "small") == (digest, files)
        assert AgreementCache().get(s, "small").id == "small"
