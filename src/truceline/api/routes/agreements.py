"""Agreements, their versions and zones (read), and registering or amending one (admins)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import (
    AgreementDetail,
    AgreementOut,
    AgreementStored,
    AgreementUpload,
    SectorOut,
    VersionOut,
    ZoneOut,
)
from truceline.core.agreement import Agreement
from truceline.core.times import as_utc
from truceline.errors import ValidationError
from truceline.io.features import zones_feature_collection
from truceline.services.agreement import agreement_summary, layers_for
from truceline.services.agreement_store import register_agreement, revision_count
from truceline.services.auth import Permission, Principal
from truceline.store.models import AgreementRow

router = APIRouter(prefix="/agreements", tags=["agreements"], responses=ERRORS)
Reader = Annotated[Principal, Depends(allow(Permission.agreements_read))]


def _out(row: AgreementRow, revisions: int) -> AgreementOut:
    return AgreementOut(
        id=row.id,
        name=row.name,
        source=row.source,
        content_hash=row.content_hash,
        loaded_at=as_utc(row.loaded_at),
        revisions=revisions,
    )


def _versions(ag: Agreement) -> list[VersionOut]:
    summary = agreement_summary(ag)
    return [
        VersionOut(
            index=i,
            effective_from=ver.effective_from,
            description=ver.description,
            line_length_km=v["line_length_km"],
            area_km2=v["area_km2"],
            territory_km2=v["territory_km2"],
            n_rules=v["n_rules"],
            rules=[r.id for r in ver.rules],
            zones=[ZoneOut(**z) for z in v["zones"]],
            assumptions=v["assumptions"],
        )
        for i, (ver, v) in enumerate(zip(ag.versions, summary["versions"], strict=True))
    ]


@router.get("", response_model=list[AgreementOut], summary="Agreements on this server")
def list_agreements(ctx: Ctx, _: Reader) -> list[AgreementOut]:
    with ctx.db.read() as s:
        rows = s.execute(select(AgreementRow).order_by(AgreementRow.id)).scalars().all()
        return [_out(r, revision_count(s, r.id)) for r in rows]


@router.get("/{agreement_id}", response_model=AgreementDetail, summary="One agreement with its versions")
def get_agreement(agreement_id: str, ctx: Ctx, _: Reader) -> AgreementDetail:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement_id)
        row = s.get(AgreementRow, agreement_id)
        assert row is not None
        base = _out(row, revision_count(s, agreement_id))
    summary = agreement_summary(ag)
    return AgreementDetail(
        **base.model_dump(),
        parties=[{"id": p.id, "name": p.name} for p in ag.parties],
        left=ag.left,
        right=ag.right,
        versions=_versions(ag),
        sectors=[SectorOut(**sec) for sec in summary["sectors"]],
    )


@router.get(
    "/{agreement_id}/versions",
    response_model=list[VersionOut],
    summary="The agreement's versions (the original and each amendment)",
)
def list_versions(agreement_id: str, ctx: Ctx, _: Reader) -> list[VersionOut]:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement_id)
    return _versions(ag)


@router.get(
    "/{agreement_id}/zones",
    summary="Zones in force on a day as GeoJSON (per side), line and sectors",
    response_description="A GeoJSON FeatureCollection (WGS84 lon/lat)",
)
def zones(
    agreement_id: str,
    ctx: Ctx,
    who: Reader,
    date: Annotated[dt.date | None, Query(description="Day (default: the agreement's start)")] = None,
) -> dict[str, Any]:
    with ctx.db.read() as s:
        ag = ctx.agreement(s, agreement_id)
    return layers_for(zones_feature_collection(ag, date or ag.effective_from), who)


@router.post(
    "",
    response_model=AgreementStored,
    status_code=status.HTTP_201_CREATED,
    summary="Register an agreement or amend it (a new revision of its files)",
)
def upload(
    body: AgreementUpload,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.agreements_write))],
) -> AgreementStored:
    files = {k: v.encode("utf-8") for k, v in body.files.items()}
    for k, v in body.files_base64.items():
        try:
            files[k] = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(
                f"file {k!r} is not valid base64", field=f"files_base64.{k}", fix="encode with base64"
            ) from None
    reg = ctx.db.write(
        lambda s: register_agreement(
            s,
            files,
            source="api",
            actor=who,
            now=ctx.clock(),
            cache=ctx.agreements,
            limits=ctx.settings.uploads,
        )
    )
    with ctx.db.read() as s:
        n = revision_count(s, reg.row.id)
    return AgreementStored(
        agreement=_out(reg.row, n), revision=reg.revision.revision, created=reg.created
    )
