"""HTTP routes for adapters that send files (取り込み): ``POST /v1/imports/{format}``, the same imports as
``tsunagu import school-monthly|school-daily|health-checkup|provider|jsonl``, as the token's organisation.

The body is ``multipart/form-data`` with the file in the field ``file``; the answer is the summary that
``tsunagu import ... --json`` prints (``services.schools.uploads``). A file larger than
``events.limits.MAX_IMPORT_FILE_BYTES`` is refused with 413 before anything of it is read (the body limit of
these paths is that size, ``services.http.app.BodyLimit``); a file that cannot be read (not a CSV, another
encoding, a line too long …) with 422, whose ``summary`` says what was imported before the line at fault.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from python_multipart.exceptions import MultipartParseError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from adapters.health_center import BASES
from events.limits import MAX_ID_CHARS, MAX_IMPORT_FILE_BYTES, MiB
from services.http.deps import ApiError, HubDep, PublishDep, error_responses
from services.schools.uploads import NotAllowed, UploadFormat, file_name, run_upload

router = APIRouter(prefix="/v1/imports", tags=["imports"])

_FILE_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": f"The file (CSV in CP932 or UTF-8, or JSON lines), at most "
                        f"{MAX_IMPORT_FILE_BYTES // MiB} MB.",
                    }
                },
            }
        }
    },
}


async def uploaded_file(request: Request) -> UploadFile:
    """The ``file`` field of a multipart body: 422 when the body is not one or has no file, 413 when the file is
    larger than a file to import may be."""
    try:
        form = await request.form(max_files=1, max_fields=20)
    except (MultiPartException, MultipartParseError, ValueError, KeyError):
        raise ApiError(
            422,
            "invalid_upload",
            "the body must be multipart/form-data with the file in the field 'file'",
            "送信データを読めません。ファイルは multipart/form-data の file 欄で送ってください",
            field="file",
        ) from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise ApiError(
            422,
            "missing_file",
            "no file in the field 'file'",
            "ファイルがありません。file 欄にファイルを添付してください",
            field="file",
        )
    if upload.size is not None and upload.size > MAX_IMPORT_FILE_BYTES:
        raise ApiError(
            413,
            "file_too_large",
            f"the file is {upload.size} bytes; at most {MAX_IMPORT_FILE_BYTES} bytes are accepted",
            f"ファイルが大きすぎます（{MAX_IMPORT_FILE_BYTES // MiB} MB まで）。期間や学校ごとにファイルを分けて送ってください",
            field="file",
        )
    return upload


@router.post(
    "/{format}",
    openapi_extra={"requestBody": _FILE_BODY},
    responses=error_responses(401, 403, 413, 422),
    summary="Import a file as the token's organisation (取り込み)",
)
async def import_file(
    request: Request,
    format: Annotated[UploadFormat, Path(description="What the file is, as for tsunagu import.")],  # noqa: A002
    member: PublishDep,
    hub: HubDep,
    basis: Annotated[
        str, Query(description="health-checkup: cwa-21-10-5 (a 保健所, default) or internal (a centre's 母子保健).")
    ] = "cwa-21-10-5",
    to: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_ID_CHARS, description="provider: the commissioning centre (委託元)."),
    ] = None,
) -> dict[str, Any]:
    """Import a school's monthly report or daily attendance, 乳幼児健診 results, a provider's usage and visit
    reports, or a JSON-lines feed, as ``tsunagu import`` does, as the token's organisation: a school file's rows
    must be the organisation's own (学校コード), a feed's events must have it as ``source``.

    The answer is the import's summary (``status`` ok, or rejected: the rejected rows, each with its line and
    reasons in Japanese, are kept in the organisation's quarantine for correction). Rows for children who are
    not on the school's target list are counted, never stored."""
    if basis not in BASES:
        raise ApiError(
            422,
            "invalid_basis",
            f"basis is one of {', '.join(BASES)}",
            f"basis は {' か '.join(BASES)} を指定してください",
            field="basis",
        )
    upload = await uploaded_file(request)
    name = file_name(upload.filename)
    try:
        summary = await run_in_threadpool(
            lambda: run_upload(hub, org=member.org, fmt=format, file=upload.file, name=name, basis=basis, to=to)
        )
    except NotAllowed as refused:
        p = refused.problem
        raise ApiError(403, p.code, p.message, p.message_ja) from None
    finally:
        await upload.close()
    if summary["status"] == "refused":
        first = summary["refused"][0]
        raise ApiError(
            422,
            first["code"],
            first["message"],
            first["message_ja"],
            field="file",
            problems=summary["refused"],
            summary=summary,
        )
    return summary
