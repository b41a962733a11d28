"""Agreements held by the server: their files in the database, loaded agreements in a cache.

An agreement enters as a folder (``truceline serve --agreement`` / settings) or as uploaded files
(``POST /api/v1/agreements``). Its files are stored as a numbered revision; a new upload with other
content is a new revision (an amendment). The newest revision is the one in force.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.errors import AgreementError, NotFoundError, ValidationError
from truceline.io.agreement_files import load_agreement
from truceline.services.audit import record_change
from truceline.services.auth import Principal
from truceline.store import ledger
from truceline.store.models import AgreementRevisionRow, AgreementRow

__all__ = [
    "AgreementCache",
    "agreement_files",
    "files_hash",
    "files_of_folder",
    "load_files",
    "materialised",
    "register_agreement",
    "store_agreement",
]

MAX_FILES = 64


def files_of_folder(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by its relative POSIX path."""
    if not (folder / "agreement.yaml").is_file():
        raise AgreementError(f"no agreement.yaml in {folder}", file=str(folder))
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    }


def files_hash(files: Mapping[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def _safe_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or name.startswith("."):
        raise ValidationError(
            f"file name {name!r} is not a plain relative path",
            field="files",
            value=name,
            fix="use names like agreement.yaml or geometry/line.geojson",
        )
    return p


def load_files(files: Mapping[str, bytes]) -> Agreement:
    """Validate and load an agreement from its files (written to a private temporary folder)."""
    if "agreement.yaml" not in files:
        raise AgreementError(
            "the upload has no agreement.yaml",
            file="agreement.yaml",
            field="files",
        )
    if len(files) > MAX_FILES:
        raise ValidationError(
            f"{len(files)} files; at most {MAX_FILES}", field="files", fix="merge geometry files"
        )
    with materialised(files) as root:
        try:
            return load_agreement(root)
        except AgreementError as exc:
            raise AgreementError(_without(exc.message, root)) from exc


@contextmanager
def materialised(files: Mapping[str, bytes]) -> Iterator[Path]:
    """The files written to a private temporary folder (removed afterwards), for folder readers."""
    with tempfile.TemporaryDirectory(prefix="truceline-ag-") as tmp:
        root = Path(tmp)
        for name, data in files.items():
            target = root / _safe_name(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield root


def _without(message: str, root: Path) -> str:
    # Messages name the temporary folder; users know only their file names.
    return message.replace(f"{root}/", "").replace(str(root), "")


def _registered(session: Session, agreement_id: str) -> AgreementRow:
    """The agreement's row; a 404 naming the registered ones when there is none."""
    row = session.get(AgreementRow, agreement_id)
    if row is None:
        known = ", ".join(session.execute(select(AgreementRow.id)).scalars()) or "none"
        raise NotFoundError(
            f"no agreement {agreement_id!r}",
            field="agreement",
            value=agreement_id,
            fix=f"use one of: {known}",
        )
    return row


def agreement_files(session: Session, agreement_id: str) -> tuple[str, dict[str, bytes]]:
    """The files of the agreement in force and their content hash (the revision's identity).

    From the newest stored revision, or from the folder of an agreement registered by the CLI only.
    """
    row = _registered(session, agreement_id)
    latest = _latest(session, agreement_id)
    if latest is not None:
        return latest.content_hash, {k: base64.b64decode(v) for k, v in latest.files.items()}
    files = files_of_folder(Path(row.source))
    return files_hash(files), files


def _latest(session: Session, agreement_id: str) -> AgreementRevisionRow | None:
    return session.execute(
        select(AgreementRevisionRow)
        .where(AgreementRevisionRow.agreement_id == agreement_id)
        .order_by(AgreementRevisionRow.revision.desc())
        .limit(1)
    ).scalar_one_or_none()


def store_agreement(
    session: Session,
    files: Mapping[str, bytes],
    *,
    source: str,
    actor: Principal,
    now: dt.datetime,
    cache: AgreementCache | None = None,
) -> tuple[AgreementRow, AgreementRevisionRow, bool]:
    """Validate the files and store them as a new revision unless identical to the newest.

    Returns the agreement row, the revision in force, and whether a new revision was made. The
    loaded agreement goes into ``cache`` so that the first request does not load it again.
    """
    digest = files_hash(files)
    ag = cache.peek(digest) if cache is not None else None
    if ag is None:
        ag = load_files(files)
        if cache is not None:
            cache.put(digest, ag)
    row = session.get(AgreementRow, ag.id)
    if row is None:
        row = AgreementRow(id=ag.id, name=ag.name, source=source, content_hash=digest, loaded_at=now)
        session.add(row)
        session.flush()
    latest = _latest(session, ag.id)
    if latest is not None and latest.content_hash == digest:
        return row, latest, False
    revision = AgreementRevisionRow(
        agreement_id=ag.id,
        revision=(latest.revision + 1) if latest else 1,
        files={k: base64.b64encode(v).decode() for k, v in files.items()},
        content_hash=digest,
        created_at=now,
        created_by=actor.subject,
    )
    session.add(revision)
    before = {
        "name": row.name,
        "content_hash": row.content_hash,
        "revision": latest.revision if latest else None,
    }
    row.name, row.source, row.content_hash, row.loaded_at = ag.name, source, digest, now
    session.flush()
    ledger.append(
        session,
        [
            (
                "agreement",
                f"agreement:{ag.id}:{revision.revision}",
                {
                    "agreement": ag.id,
                    "revision": revision.revision,
                    "content_hash": digest,
                    "source": source,
                    "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
                },
            )
        ],
        now=now,
    )
    record_change(
        session,
        actor=actor,
        entity="agreement",
        entity_id=ag.id,
        action="create" if latest is None else "amend",
        now=now,
        before=before if latest else None,
        after={"name": ag.name, "content_hash": digest, "revision": revision.revision, "source": source},
    )
    return row, revision, True


class AgreementCache:
    """Loaded agreements by content hash (building the compiled versions takes a while)."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Agreement] = {}
        self._lock = threading.Lock()
        self.generation = 0  # bumped whenever an agreement (revision) is loaded in this process

    def peek(self, key: str) -> Agreement | None:
        with self._lock:
            return self._by_hash.get(key)

    def put(self, key: str, agreement: Agreement) -> None:
        with self._lock:
            self._by_hash[key] = agreement
            self.generation += 1

    def get(self, session: Session, agreement_id: str) -> Agreement:
        """The agreement in force, loaded once per revision."""
        row = _registered(session, agreement_id)
        latest = _latest(session, agreement_id)
        key = latest.content_hash if latest else f"folder:{row.source}:{row.content_hash}"
        with self._lock:
            hit = self._by_hash.get(key)
        if hit is not None:
            return hit
        if latest is not None:
            ag = load_files({k: base64.b64decode(v) for k, v in latest.files.items()})
        else:  # registered by the CLI from a folder only
            ag = load_agreement(row.source)
        with self._lock:
            self._by_hash[key] = ag
        return ag

    def default_id(self, session: Session, given: str | None) -> str:
        """``given``, or the only agreement when there is exactly one."""
        if given:
            return given
        ids = list(session.execute(select(AgreementRow.id).order_by(AgreementRow.id)).scalars())
        if len(ids) == 1:
            return ids[0]
        raise ValidationError(
            "several agreements are registered" if ids else "no agreement is registered",
            field="agreement",
            fix=(
                f"give ?agreement= one of: {', '.join(ids)}"
                if ids
                else "register one: POST /api/v1/agreements or `truceline serve --agreement DIR`"
            ),
        )


def revision_count(session: Session, agreement_id: str) -> int:
    return int(
        session.execute(
            select(func.count())
            .select_from(AgreementRevisionRow)
            .where(AgreementRevisionRow.agreement_id == agreement_id)
        ).scalar_one()
    )


def _agreement_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def register_agreement(session: Session, agreement: Agreement, source: str | Path) -> AgreementRow:
    """Record the agreement (insert or refresh) so incidents can refer to it."""
    src = Path(source)
    row = session.get(AgreementRow, agreement.id)
    digest = _agreement_hash(src) if src.exists() else ""
    if row is None:
        row = AgreementRow(id=agreement.id, name=agreement.name, source=str(src), content_hash=digest)
        session.add(row)
    else:
        row.name, row.source, row.content_hash = agreement.name, str(src), digest
    session.flush()
    return row
