"""Attachments: evidence files on incidents (file, list, download, release), and resumable uploads
(tus 1.0 core: POST to create, PATCH chunks at ``Upload-Offset``, HEAD for the offset)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from email.utils import format_datetime
from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    Header,
    Path,
    Request,
    Response,
    UploadFile,
    status,
)
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from truceline.api.deps import Ctx, allow
from truceline.api.routes import ERRORS
from truceline.api.schemas import MAX_KEY, AttachmentOut, ReleaseIn
from truceline.errors import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError
from truceline.services import attachments as svc
from truceline.services import uploads as up
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


TUS = {"Tus-Resumable": "1.0.0"}
UploadId = Annotated[str, Path(min_length=32, max_length=32, pattern="^[0-9a-f]{32}$")]


def _metadata(header: str | None) -> dict[str, str]:
    """tus ``Upload-Metadata``: comma-separated ``key base64(value)`` pairs."""
    out: dict[str, str] = {}
    for pair in (header or "").split(","):
        if not pair.strip():
            continue
        key, _, value = pair.strip().partition(" ")
        try:
            out[key] = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # not base64 (or not ASCII at all), not UTF-8
            raise ValidationError(
                f"Upload-Metadata: the value of {key[:40]!r} is not base64 of UTF-8 text",
                field="Upload-Metadata",
                value=key[:40],
                fix="send `filename <base64>,filetype <base64>,sha256 <base64>`",
            ) from None
    return out


def _state_headers(st: up.UploadState) -> dict[str, str]:
    h = {
        **TUS,
        "Upload-Offset": str(st.offset),
        "Upload-Length": str(st.length),
        "Upload-Expires": format_datetime(st.expires.astimezone(dt.UTC), usegmt=True),
        "Cache-Control": "no-store",
    }
    if st.attachment_pk is not None:
        h["X-Attachment-Pk"] = str(st.attachment_pk)
    return h


def _expiry(ctx: Ctx) -> dt.timedelta:
    return dt.timedelta(hours=ctx.settings.attachment_upload_expiry_hours)


@router.post(
    "/incidents/{pk}/uploads",
    status_code=status.HTTP_201_CREATED,
    summary="Start a resumable upload (tus 1.0: `Upload-Length`, `Upload-Metadata` with "
    "filename, filetype, sha256); answers its `Location`",
)
def begin_upload(
    pk: PK,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.attachments_submit))],
    upload_length: Annotated[int, Header(ge=0, le=2**53, description="The file's size (bytes)")],
    upload_metadata: Annotated[str | None, Header(max_length=2048)] = None,
) -> JSONResponse:
    meta = _metadata(upload_metadata)
    st = up.begin(
        ctx.db,
        ctx.uploads,
        pk,
        length=upload_length,
        filename=meta.get("filename", ""),
        declared_sha256=meta.get("sha256"),
        declared_type=meta.get("filetype") or None,
        actor=who,
        now=ctx.clock(),
        max_bytes=svc.max_bytes_for(ctx.settings.attachment_max_bytes, who),
        expiry=_expiry(ctx),
    )
    location = f"/api/v1/uploads/{st.id}"
    return JSONResponse(
        {"id": st.id, "location": location, "offset": 0, "length": st.length},
        status_code=201,
        headers={**_state_headers(st), "Location": location},
    )


@router.head(
    "/uploads/{upload_id}",
    summary="A resumable upload's offset (`Upload-Offset`: the bytes received)",
    response_class=Response,
)
def upload_offset(
    upload_id: UploadId,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.attachments_submit))],
) -> Response:
    st = up.status(ctx.uploads, upload_id, actor=who, now=ctx.clock(), expiry=_expiry(ctx))
    return Response(status_code=200, headers=_state_headers(st))


#: The only media type a tus chunk is sent as (tus 1.0, PATCH).
TUS_CHUNK_TYPE = "application/offset+octet-stream"


def _tus_chunk_type(content_type: str | None, upload_id: str) -> None:
    """Refuse a chunk not sent as :data:`TUS_CHUNK_TYPE` (415), before a byte of it is read."""
    given = (content_type or "").partition(";")[0].strip().lower()
    if given != TUS_CHUNK_TYPE:
        shown = repr(content_type[:100]) if content_type else "no Content-Type"
        raise UnsupportedMediaTypeError(
            f"a chunk of upload {upload_id} was sent as {shown}; a resumable upload's chunks "
            f"are the file's bytes, sent as {TUS_CHUNK_TYPE}",
            field="Content-Type",
            fix=f"send the header Content-Type: {TUS_CHUNK_TYPE}",
        )


@router.patch(
    "/uploads/{upload_id}",
    summary="Send a chunk of a resumable upload at `Upload-Offset` (body: the bytes, "
    "application/offset+octet-stream); the last one files the attachment (201 with it)",
    responses={
        204: {"description": "chunk received"},
        201: {"model": AttachmentOut},
        415: {**ERRORS[422], "description": f"The chunk is not sent as {TUS_CHUNK_TYPE}"},
    },
)
async def upload_chunk(
    upload_id: UploadId,
    request: Request,
    ctx: Ctx,
    who: Annotated[Principal, Depends(allow(Permission.attachments_submit))],
    upload_offset: Annotated[int, Header(ge=0, le=2**53)],
    content_length: Annotated[int | None, Header(ge=0)] = None,
) -> Response:
    _tus_chunk_type(request.headers.get("content-type"), upload_id)
    limit = svc.max_bytes_for(ctx.settings.attachment_max_bytes, who)
    now = ctx.clock()
    with up.chunk(
        ctx.uploads,
        upload_id,
        offset=upload_offset,
        chunk_length=content_length,
        actor=who,
        now=now,
        expiry=_expiry(ctx),
    ) as part:
        if not part.finished_before:
            async for piece in request.stream():
                part.write(piece)  # to disk as it arrives
        if part.offset < part.length:
            st = up.status(ctx.uploads, upload_id, actor=who, now=now, expiry=_expiry(ctx))
            return Response(status_code=204, headers=_state_headers(st))
        retried = part.finished_before
        filed = await run_in_threadpool(
            up.complete, ctx.db, ctx.blobs, ctx.uploads, part, actor=who, now=now, max_bytes=limit
        )
    st = up.status(ctx.uploads, upload_id, actor=who, now=now, expiry=_expiry(ctx))
    body = _out(filed.row, who, filed.created).model_dump(mode="json")
    return JSONResponse(body, status_code=200 if retried else 201, headers=_state_headers(st))
