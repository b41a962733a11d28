"""Agreements held in the store: the one way to register them, their files, loaded agreements.

An agreement enters as files by name: uploaded (``POST /api/v1/agreements``) or read from a folder
(the CLI, ``truceline serve --agreement`` / settings) with
:func:`truceline.io.agreement_files.files_of_folder`. :func:`register_agreement` validates them in
memory and stores them as a numbered revision, with a ledger entry and an audit row; files
identical to the newest revision change nothing, other files are a new revision (an amendment).
The newest revision is the one in force; its content hash is :func:`files_hash` of its files.

Databases made before every registration wrote a revision may hold agreements the CLI registered
with none: those are still read from their folder (``AgreementRow.source``) until registered again.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from truceline.core.agreement import Agreement
from truceline.errors import AgreementError, NotFoundError, ValidationError
from truceline.io.agreement_files import files_of_folder, load_agreement, load_agreement_files
from truceline.io.limits import DEFAULT_LIMITS, UploadLimits
from truceline.services.audit import record_change
from truceline.services.auth import Principal
from truceline.store import ledger
from truceline.store.models import AgreementRevisionRow, AgreementRow

__all__ = [
    "AgreementCache",
    "Registration",
    "agreement_files",
    "files_hash",
    "load_files",
    "register_agreement",
    "revision_count",
]

MAX_FILES = 64


def files_hash(files: Mapping[str, bytes]) -> str:
    """The content hash of an agreement's files: SHA-256 over their sorted names and digests."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def _check_name(name: str) -> None:
    p = PurePosixPath(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or name.startswith("."):
        raise ValidationError(
            f"file name {name!r} is not a plain relative path",
            field="files",
            value=name,
            fix="use names like agreement.yaml or geometry/line.geojson",
        )


def load_files(
    files: Mapping[str, bytes],
    *,
    origin: str | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> Agreement:
    """Validate and load an agreement from its files by name, in memory.

    ``origin``: the folder they were read from, named in messages (none for an upload);
    ``limits``: what each file may hold (the settings' ``uploads``).
    """
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
    for name in files:
        _check_name(name)
    return load_agreement_files(files, origin=origin, limits=limits)


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

    From the newest stored revision, or (a database made before every registration wrote one) from
    the folder the CLI registered the agreement from.
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


@dataclass(frozen=True, slots=True)
class Registration:
    """What :func:`register_agreement` did."""

    row: AgreementRow
    revision: AgreementRevisionRow  # the revision in force (new, or the identical newest one)
    created: bool  # whether a new revision was made
    agreement: Agreement  # as loaded from the files


def register_agreement(
    session: Session,
    files: Mapping[str, bytes],
    *,
    source: str,
    actor: Principal,
    now: dt.datetime,
    cache: AgreementCache | None = None,
    limits: UploadLimits = DEFAULT_LIMITS,
) -> Registration:
    """Validate the files and store them as a new revision unless identical to the newest.

    A new revision gets a ledger entry (the files' hashes) and an audit row (``create`` for the
    first, ``amend`` after). The caller owns the transaction.

    Parameters
    ----------
    files
        The agreement's files by relative POSIX name (an upload, or
        :func:`truceline.io.agreement_files.files_of_folder`).
    source
        Where they came from: ``api``, or the folder.
    actor
        Who registers them (the audit row's actor, the revision's ``created_by``).
    cache
        Loaded agreements by content hash: used if the files were loaded already, and given the
        loaded agreement so that the first request does not load it again.
    limits
        What each file may hold (the settings' ``uploads``); files over them are refused.
    """
    digest = files_hash(files)
    ag = cache.load(files, limits=limits) if cache is not None else load_files(files, limits=limits)
    row = session.get(AgreementRow, ag.id)
    if row is None:
        row = AgreementRow(id=ag.id, name=ag.name, source=source, content_hash=digest, loaded_at=now)
        session.add(row)
        session.flush()
    latest = _latest(session, ag.id)
    if latest is not None and latest.content_hash == digest:
        return Registration(row, latest, False, ag)
    revision = AgreementRevisionRow(
        agreement_id=ag.id,
        revision=(latest.revision + 1) if latest else 1,
        files={k: base64.b64encode(v).decode() for k, v in files.items()},
        content_hash=digest,
        created_at=now,
        created_by=actor.subject,
    )
    session.add(revision)
    before: dict[str, object] = {
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
                    "name": ag.name,
                    "pk": revision.pk,
                    "created_at": ledger.stored_time(now),
                    "created_by": actor.subject,
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
    return Registration(row, revision, True, ag)


class AgreementCache:
    """Loaded agreements by content hash (building the compiled versions takes a while)."""

    def __init__(self, fusion: Mapping[str, Any] | None = None) -> None:
        """``fusion``: the server's fusion parameters over each agreement's (settings' ``fusion``;
        :meth:`truceline.core.fusion.FusionSettings.overridden`)."""
        self._by_hash: dict[str, Agreement] = {}
        self._lock = threading.Lock()
        self._fusion = dict(fusion or {})
        self.generation = 0  # bumped whenever an agreement (revision) is loaded in this process

    def _served(self, agreement: Agreement) -> Agreement:
        """The agreement with the server's fusion parameters over its own."""
        if not self._fusion:
            return agreement
        fusion = agreement.fusion.overridden(self._fusion)
        if fusion == agreement.fusion:
            return agreement
        return agreement.model_copy(update={"fusion": fusion})

    def peek(self, key: str) -> Agreement | None:
        with self._lock:
            return self._by_hash.get(key)

    def put(self, key: str, agreement: Agreement) -> None:
        agreement = self._served(agreement)
        with self._lock:
            self._by_hash[key] = agreement
            self.generation += 1

    def load(
        self,
        files: Mapping[str, bytes],
        *,
        origin: str | None = None,
        limits: UploadLimits = DEFAULT_LIMITS,
    ) -> Agreement:
        """The agreement of these files (:func:`load_files`), loaded once per content hash."""
        digest = files_hash(files)
        hit = self.peek(digest)
        if hit is None:
            hit = self._served(load_files(files, origin=origin, limits=limits))
            self.put(digest, hit)
        return hit

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
        else:  # a database made before every registration wrote a revision: the CLI's folder
            ag = load_agreement(row.source)
        ag = self._served(ag)
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
