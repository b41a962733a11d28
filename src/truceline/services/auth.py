"""Who is calling and what they may do: roles, permissions, API tokens.

A request becomes a :class:`Principal` through an :class:`Authenticator`. :class:`TokenAuthenticator`
looks bearer tokens up by the SHA-256 of their secret (the secret itself is never stored). An OpenID
Connect provider plugs in as another authenticator that verifies the ID/access token and maps its
claims (role, party, sector) onto a :class:`Principal`; nothing downstream changes.

What each role may do is the table :data:`ROLE_PERMISSIONS`; row-level limits (a monitor's sector,
a liaison's released findings) are applied by the query services from the principal's
:class:`Scope`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from truceline.errors import AuthenticationError, NotFoundError, PermissionDeniedError, ValidationError
from truceline.services.audit import record_change
from truceline.store.models import ApiTokenRow

__all__ = [
    "ANONYMOUS",
    "ROLE_PERMISSIONS",
    "Authenticator",
    "Permission",
    "Principal",
    "Role",
    "TokenAuthenticator",
    "create_token",
    "list_tokens",
    "require",
    "revoke_token",
]

TOKEN_PREFIX = "tl_"


class Role(StrEnum):
    admin = "admin"
    analyst = "analyst"
    monitor = "monitor"
    sensor = "sensor"
    liaison = "liaison"
    public = "public"


class Permission(StrEnum):
    agreements_read = "agreements:read"
    agreements_write = "agreements:write"
    incidents_submit = "incidents:submit"
    incidents_read = "incidents:read"
    incidents_review = "incidents:review"
    findings_read = "findings:read"
    findings_proof = "findings:proof"
    statistics_read = "statistics:read"
    reports_published = "reports:published"
    reports_draft = "reports:draft"
    reports_publish = "reports:publish"
    tokens_manage = "tokens:manage"
    audit_read = "audit:read"
    ledger_roots = "ledger:roots"
    ledger_read = "ledger:read"
    ledger_admin = "ledger:admin"
    planner_read = "planner:read"
    whoami = "whoami"
    #: The map of what may be shown to the caller: the agreement's layers (observation posts only
    #: with ``incidents_read``) and the findings in the caller's scope (the public and liaisons:
    #: the released ones, their incidents' positions, nothing else of the reports).
    map_read = "map:read"
    sensors_read = "sensors:read"
    sensors_register = "sensors:register"
    detections_submit = "detections:submit"
    detections_read = "detections:read"
    acoustic_locate = "acoustic:locate"
    events_read = "events:read"
    events_review = "events:review"
    attachments_submit = "attachments:submit"
    attachments_read = "attachments:read"  # liaisons and the public: released ones
    attachments_release = "attachments:release"


P = Permission
#: The whole policy. Row-level limits for monitors and liaisons are in :class:`Scope`.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.analyst: frozenset(
        {
            P.agreements_read,
            P.incidents_submit,
            P.incidents_read,
            P.incidents_review,
            P.findings_read,
            P.findings_proof,
            P.statistics_read,
            P.reports_published,
            P.reports_draft,
            P.reports_publish,
            P.audit_read,
            P.ledger_roots,
            P.ledger_read,
            # Candidate lines are the mission's negotiating papers: planners (analysts, admins)
            # only; a party's liaison must not see the other candidates, monitors do not plan.
            P.planner_read,
            P.whoami,
            P.map_read,
            P.sensors_read,
            P.detections_read,
            P.acoustic_locate,
            P.events_read,
            P.events_review,
            P.attachments_submit,
            P.attachments_read,
            P.attachments_release,
        }
    ),
    Role.monitor: frozenset(
        {
            P.agreements_read,
            P.incidents_submit,
            P.incidents_read,
            P.findings_read,
            P.reports_published,
            P.ledger_roots,
            P.whoami,
            P.map_read,
            P.sensors_read,  # of their sector
            P.events_read,  # of their sector
            P.attachments_submit,  # on incidents of their sector
            P.attachments_read,  # of their sector
        }
    ),
    Role.sensor: frozenset({P.incidents_submit, P.whoami, P.sensors_register, P.detections_submit}),
    Role.liaison: frozenset(
        {
            P.agreements_read,
            P.findings_read,
            P.findings_proof,
            P.statistics_read,
            P.reports_published,
            P.ledger_roots,
            P.whoami,
            P.map_read,
            P.attachments_read,  # released ones, location removed unless kept
        }
    ),
    Role.public: frozenset({P.reports_published, P.ledger_roots, P.attachments_read, P.map_read}),
}


@dataclass(frozen=True, slots=True)
class Scope:
    """Row-level limits derived from a principal.

    ``sector``/``subject``: a monitor sees incidents of their sector and those they submitted.
    ``released_only``: a liaison (or the public) sees only findings released to the parties, never
    raw reports.
    """

    sector: str | None = None
    subject: str | None = None
    released_only: bool = False
    restricted: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (a person or a device)."""

    subject: str
    role: Role
    party: str | None = None
    sector: str | None = None
    token_id: str | None = None
    anonymous: bool = False

    def can(self, perm: Permission) -> bool:
        return perm in ROLE_PERMISSIONS[self.role]

    @property
    def scope(self) -> Scope:
        if self.role == Role.monitor:
            return Scope(sector=self.sector, subject=self.subject, restricted=True)
        if self.role in (Role.liaison, Role.public):  # the released findings, no raw report
            return Scope(released_only=True, restricted=True)
        return Scope()


ANONYMOUS = Principal(subject="anonymous", role=Role.public, anonymous=True)


def require(principal: Principal, perm: Permission) -> Principal:
    """Raise 401 for an anonymous caller or 403 for a known one that lacks ``perm``."""
    if principal.can(perm):
        return principal
    if principal.anonymous:
        raise AuthenticationError(
            "this call needs an API token",
            field="Authorization",
            fix="send the header `Authorization: Bearer <token>` (ask an admin for a token)",
        )
    raise PermissionDeniedError(
        f"role {principal.role.value} may not do this ({perm.value})",
        field="role",
        value=principal.role.value,
        fix="use a token of a role that may; see README, server section",
    )


class Authenticator(Protocol):
    """Turns a bearer credential into a principal, or ``None`` when it does not recognise it."""

    def authenticate(self, session: Session, credential: str) -> Principal | None: ...


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TokenAuthenticator:
    """Opaque API tokens ``tl_<random>`` looked up by the SHA-256 of the whole token.

    A token found valid is remembered for ``ttl_s`` seconds (the ``token_cache_s`` setting, half
    a second by default), so a device sending many reports costs a lookup per ``ttl_s``, not one
    per request. Revoking through this process forgets at once (:meth:`forget`); a revocation by
    another process sharing the database (another server worker, the CLI) is seen at the first
    lookup after the remembered one expires: within ``ttl_s``.
    """

    def __init__(self, ttl_s: float = 0.5) -> None:
        self.ttl_s = ttl_s
        self._known: dict[str, tuple[float, Principal]] = {}

    def forget(self) -> None:
        self._known.clear()

    def remembered(self, credential: str) -> Principal | None:
        """The principal of a token found valid within ``ttl_s``, without the database (or None)."""
        if not credential.startswith(TOKEN_PREFIX):
            return None
        hit = self._known.get(_digest(credential))
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        return None

    def authenticate(self, session: Session, credential: str) -> Principal | None:
        if not credential.startswith(TOKEN_PREFIX):
            return None
        digest = _digest(credential)
        hit = self._known.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        row = session.execute(
            select(ApiTokenRow).where(ApiTokenRow.secret_sha256 == digest)
        ).scalar_one_or_none()
        if row is None:
            raise AuthenticationError(
                "unknown API token", field="Authorization", fix="check the token or ask for a new one"
            )
        if row.revoked_at is not None:
            raise AuthenticationError(
                f"token {row.id} was revoked", field="Authorization", fix="ask an admin for a new token"
            )
        who = Principal(
            subject=f"token:{row.id}:{row.name}",
            role=Role(row.role),
            party=row.party,
            sector=row.sector,
            token_id=row.id,
        )
        if len(self._known) > 10_000:  # bounded: a flood of distinct tokens cannot grow it
            self._known.clear()
        self._known[digest] = (time.monotonic(), who)
        return who


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token as created: ``secret`` is shown once and never stored."""

    id: str
    name: str
    role: Role
    party: str | None
    sector: str | None
    secret: str
    created_at: dt.datetime


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(
            f"unknown role {value!r}",
            field="role",
            value=value,
            fix="use one of: " + ", ".join(r.value for r in Role),
        ) from None


def create_token(
    session: Session,
    *,
    role: str,
    name: str,
    party: str | None = None,
    sector: str | None = None,
    actor: Principal,
    now: dt.datetime,
) -> IssuedToken:
    """Create a token; a liaison token needs the party it speaks for."""
    r = _role(role)
    if not name.strip():
        raise ValidationError(
            "a token needs a name", field="name", value=name, fix="e.g. --name patrol-7"
        )
    if r == Role.liaison and not party:
        raise ValidationError(
            "a liaison token needs the party it belongs to", field="party", fix="give --party PARTY_ID"
        )
    if r != Role.liaison and party:
        raise ValidationError(
            "only liaison tokens belong to a party", field="party", value=party, fix="drop --party"
        )
    if sector and r != Role.monitor:
        raise ValidationError(
            "only monitor tokens are limited to a sector",
            field="sector",
            value=sector,
            fix="drop --sector",
        )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        id="tok_" + secrets.token_hex(8),
        name=name.strip(),
        role=r.value,
        party=party,
        sector=sector,
        secret_sha256=_digest(secret),
        created_at=now,
        created_by=actor.subject,
    )
    session.add(row)
    session.flush()
    record_change(
        session,
        actor=actor,
        entity="token",
        entity_id=row.id,
        action="create",
        now=now,
        before=None,
        after=token_public(row),
        sealed={"secret_sha256": row.secret_sha256},
    )
    return IssuedToken(row.id, row.name, r, party, sector, secret, now)


def token_public(row: ApiTokenRow) -> dict[str, object]:
    """Everything about a token except its secret's hash."""
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "party": row.party,
        "sector": row.sector,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "created_by": row.created_by,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiTokenRow]:
    q = select(ApiTokenRow).order_by(ApiTokenRow.created_at, ApiTokenRow.id)
    if not include_revoked:
        q = q.where(ApiTokenRow.revoked_at.is_(None))
    return list(session.execute(q).scalars())


def revoke_token(session: Session, token_id: str, *, actor: Principal, now: dt.datetime) -> ApiTokenRow:
    """Revoke a token (idempotent: revoking twice keeps the first time)."""
    row = session.get(ApiTokenRow, token_id)
    if row is None:
        raise NotFoundError(
            f"no token {token_id!r}", field="token_id", value=token_id, fix="see `truceline token list`"
        )
    if row.revoked_at is None:
        before = token_public(row)
        row.revoked_at = now
        session.flush()
        record_change(
            session,
            actor=actor,
            entity="token",
            entity_id=row.id,
            action="revoke",
            now=now,
            before=before,
            after=token_public(row),
            sealed={"secret_sha256": row.secret_sha256},
        )
    return row
