"""Attachments: evidence files on incidents (file, list, download, release)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Path, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import MAX_KEY, AttachmentOut, ReleaseIn
from truceline.errors import PayloadTooLargeError
from truceline.services import attachments as svc
from truceline.services.auth import Permission, Principal
from truceline.store.models import AttachmentRow

router = APIRouter(tags=["attachments"], responses=ERRORS)
PK = Annotated[int, Path(ge=1, le=MAX_KEY)]


def _out(row: AttachmentRow, who: Principal, created: bool | None = None) -> AttachmentOut:
    out = AttachmentOut.model_validate(row)
    out.created = created
    if svc.released_only(who):
        out.filed_by = None
        if not row.keep_location:
            out.exif_lon = out.exif_lat = None
    return out


@router.post(
    "/incidents/{pk}/attachments",
    response_model=list[AttachmentOut],
    status_code=status.HTTP_201_CREATED,
    summary="Attach files to an incident (multipart `file` fields; identical bytes filed once)",
)
async def attach(
    pk: PK,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.attachments_submit))],
    file: Annotated[list[UploadFile], File(description="One or more files")],
    content_type: Annotated[
        str | None, Form(max_length=128, description="Declared type (else each part's own)")
    ] = None,
) -> list[AttachmentOut]:
    limit = svc.max_bytes_for(ctx.settings.attachment_max_bytes, who)
    parts = []
    for f in file:
        data = await f.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"attachment {f.filename!r} is over {limit} bytes, the most role "
                f"{who.role.value} may attach",
                field="file",
                value=f.filename,
                fix="send a smaller file (setting attachment_max_bytes)",
            )
        parts.append((data, f.filename or "", content_type or f.content_type))

    def write() -> list[AttachmentOut]:
        uploads = [svc.Upload(data, name, declared) for data, name, declared in parts]
        filed: list[svc.Filed] = ctx.db.write(
            lambda s: svc.file_attachments(
                s, ctx.blobs, pk, uploads, actor=who, now=ctx.clock(), max_bytes=limit
            )
        )
        return [_out(r.row, who, r.created) for r in filed]

    return await run_in_threadpool(write)


@router.get(
    "/incidents/{pk}/attachments",
    response_model=list[AttachmentOut],
    summary="An incident's attachments (liaisons and the public: released ones)",
)
def list_attachments(
    pk: PK, ctx: Ctx, who: Annotated[Principal, Depends(allow(Permission.attachments_read))]
) -> list[AttachmentOut]:
    with ctx.db.read() as s:
        return [_out(r, who) for r in svc.list_attachments(s, pk, who=who)]


@router.get(
    "/attachments/{sha256}",
    summary="An attachment's bytes, checked against their hash (liaisons and the public: "
    "released ones, location removed unless kept)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download(
    sha256: Annotated[str, Path(min_length=64, max_length=64, pattern="^[0-9a-fA-F]{64}$")],
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.attachments_read))],
) -> Response:
    with ctx.db.read() as s:
        served = svc.get_file(s, ctx.blobs, sha256, who=who)
    headers = {
        "X-Content-SHA256": served.sha256,
        "X-Filed-SHA256": served.filed_sha256,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": "attachment",
    }
    if served.location_removed:
        headers["X-Location-Removed"] = (
            "location metadata removed on release: these bytes' hash differs from the filed one"
        )
    return Response(served.data, media_type=served.media_type, headers=headers)


@router.post(
    "/attachments/{pk}/release",
    response_model=AttachmentOut,
    summary="Release an attachment to liaisons and the public (location removed unless kept)",
)
def release(
    pk: PK,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.attachments_release))],
    body: ReleaseIn | None = None,
) -> AttachmentOut:
    b = body or ReleaseIn()
    row = ctx.db.write(
        lambda s: _out(
            svc.release(
                s,
                ctx.blobs,
                pk,
                keep_location=b.keep_location,
                actor=who,
                now=ctx.clock(),
                comment=b.comment,
            ),
            who,
        )
    )
    return row
