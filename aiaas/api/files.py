"""``/v1/files``: upload (multipart), list, get and delete training files.

The upload is parsed as a stream: the file part goes straight to a staging file on disk, counted as it arrives,
so an upload is never held in memory and one past ``max_upload_bytes`` is refused with 413 as soon as it
crosses the limit (at once when ``Content-Length`` already says so). Storage, validation and tenancy live in
``aiaas.service.files``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from aiaas.api.deps import principal, services
from aiaas.errors import InvalidInput, PayloadTooLarge, ServiceUnavailable
from aiaas.service.files import FilesService

router = APIRouter(prefix="/v1", tags=["files"])
FORM_OVERHEAD = 64 * 1024  # multipart headers and the small fields around the file
MAX_FIELD = 4096
USAGE = "send the file as multipart/form-data in a field named 'file', e.g. curl -F file=@train.csv .../v1/files"


def _files(request: Request) -> FilesService:
    files: FilesService | None = services(request).files
    if files is None:
        raise ServiceUnavailable("files need the database-backed governance (AIAAS_GOVERNANCE=db)")
    return files


class _Upload:
    """Callbacks for python-multipart: the ``file`` part's bytes are queued for the disk, fields kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_bytes = 0
        self.pending: list[bytes] = []
        self._name: str | None = None
        self._is_file = False
        self._field = bytearray()
        self._disposition = b""
        self._header_name = b""
        self._header_value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_header_field": lambda d, s, e: self._add_header_name(d[s:e]),
            "on_header_value": lambda d, s, e: self._add_header_value(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
        }

    def _add_header_name(self, b: bytes) -> None:
        self._header_name += b

    def _add_header_value(self, b: bytes) -> None:
        self._header_value += b

    def _part_begin(self) -> None:
        self._name, self._is_file, self._disposition = None, False, b""
        self._field = bytearray()

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidInput("malformed multipart part: no field name in Content-Disposition")
        self._name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            if self._name != "file":
                raise InvalidInput(f"unexpected file field {self._name[:40]!r}; {USAGE}", param="file")
            if self.filename is not None:
                raise InvalidInput("upload one file per request", param="file")
            self._is_file = True
            self.filename = options[b"filename"].decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.file_bytes += end - start
            if self.file_bytes > self.limit:
                raise PayloadTooLarge(f"the file exceeds the upload limit of {self.limit} bytes (max_upload_bytes)")
            self.pending.append(data[start:end])
        else:
            self._field += data[start:end]
            if len(self._field) > MAX_FIELD:
                raise InvalidInput(f"form field {self._name!r} is too long", param=self._name)

    def _part_end(self) -> None:
        if not self._is_file and self._name is not None:
            self.fields[self._name] = self._field.decode("utf-8", "replace").strip()


async def receive_upload(request: Request, dest: Path, limit: int) -> _Upload:
    """Stream a multipart upload's ``file`` part into ``dest``; returns the filename and the other fields."""
    mime, params = parse_options_header(request.headers.get("content-type", ""))
    if mime != b"multipart/form-data" or b"boundary" not in params:
        raise InvalidInput(USAGE, param="file")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise PayloadTooLarge(f"the upload of {length} bytes exceeds the limit of {limit} bytes (max_upload_bytes)")
    upload = _Upload(limit)
    parser = MultipartParser(params[b"boundary"], upload.callbacks())  # type: ignore[arg-type]
    total = 0
    with open(dest, "wb") as out:
        try:
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit + FORM_OVERHEAD:
                    raise PayloadTooLarge(f"the upload exceeds the limit of {limit} bytes (max_upload_bytes)")
                parser.write(chunk)
                if upload.pending:
                    data, upload.pending = b"".join(upload.pending), []
                    await run_in_threadpool(out.write, data)
            parser.finalize()
        except FormParserError as e:
            raise InvalidInput(f"malformed multipart upload: {e}; {USAGE}") from None
    if upload.filename is None:
        raise InvalidInput(f"no file in the upload; {USAGE}", param="file")
    return upload


@router.post("/files", status_code=201)
async def upload_file(request: Request) -> dict[str, Any]:
    p = await principal(request)
    files = _files(request)
    with files.staging(p) as staged:
        upload = await receive_upload(request, staged, files.max_bytes)
        fields = upload.fields
        return await run_in_threadpool(
            files.add, p, staged, upload.filename, fields.get("format"), fields.get("purpose")
        )


@router.get("/files")
async def list_files(request: Request, limit: int = 20, after: str | None = None) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_files(request).list, p, limit, after)


@router.get("/files/{file_id}")
async def get_file(request: Request, file_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_files(request).get, p, file_id)


@router.delete("/files/{file_id}")
async def delete_file(request: Request, file_id: str) -> dict[str, Any]:
    p = await principal(request)
    return await run_in_threadpool(_files(request).delete, p, file_id)
