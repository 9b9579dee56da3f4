"""Uploaded training files, owned by a tenant.

An upload is streamed by the API layer into a staging file (``staging()``) under the tenant's directory, then
``add()`` validates the whole content with ``aiaas.training.files.validate_file`` -- the same parser the
workers use -- and only a file that parses is moved to ``$AIAAS_HOME/files/<tenant>/<id>.<format>`` and gets
a database row. A refused upload (too large, wrong format, a bad line) leaves nothing behind: no row, no
bytes. The extension is kept on disk because the training engine tells formats apart by it.

Visibility follows the governance rule: a tenant sees its own files, an admin sees all; anything else answers
the same 404 as a file that does not exist. Methods are blocking (database and disk): call them from a
worker thread in async code.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select

from aiaas.errors import InvalidInput, NotFound, PermissionDenied
from aiaas.service.governance import Principal
from aiaas.service.governance.audit import write_audit
from aiaas.store.db import Store
from aiaas.store.jobs import FileRow
from aiaas.store.models import utcnow
from aiaas.training.files import FORMATS, detect_format, validate_file
from aiaas.training.uploadcheck import UploadLimits

MANAGE_ROLES = ("admin", "developer")
MAX_FILENAME = 256
MAX_PAGE = 100


def file_not_found(file_id: str, param: str | None = "file_id") -> NotFound:
    """The one 404 for a file that does not exist *or* belongs to another tenant (indistinguishable)."""
    return NotFound(f"no file {str(file_id)[:80]!r}", param=param, code="file_not_found")


def require_manage(p: Principal, what: str) -> None:
    if p.role not in MANAGE_ROLES:
        raise PermissionDenied(
            f"{what} needs a key with role admin or developer; this key has role '{p.role}'", code="insufficient_role"
        )


def new_file_id() -> str:
    return "file-" + uuid.uuid4().hex[:24]


def clean_filename(name: str | None) -> str:
    """The uploaded name as shown back to the user: its last path component, printable, bounded."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = "".join(ch for ch in base if ch.isprintable())[:MAX_FILENAME]
    if not base or base in (".", ".."):
        raise InvalidInput("the uploaded file needs a name with its extension, e.g. train.csv", param="file")
    return base


class FilesService:
    def __init__(self, store: Store, root: Path, max_bytes: int, limits: UploadLimits | None = None) -> None:
        self.store = store
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.limits = limits or UploadLimits(max_bytes=max_bytes)

    # -- paths ----------------------------------------------------------------------------------------
    def tenant_dir(self, tenant: str) -> Path:
        # tenant ids are validated names (letters, digits, '.', '_', '-'; never '.' or '..'): safe as a path part
        if not tenant or "/" in tenant or tenant in (".", ".."):
            raise InvalidInput(f"invalid tenant {tenant!r}")
        return self.root / tenant

    def path_of(self, row: FileRow) -> Path:
        return self.tenant_dir(row.tenant_id) / f"{row.id}.{row.format}"

    @contextlib.contextmanager
    def staging(self, p: Principal) -> Iterator[Path]:
        """A fresh path to stream an upload into; removed on exit unless ``add`` moved it into place."""
        require_manage(p, "uploading files")
        d = self.tenant_dir(p.tenant_id)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f".upload-{uuid.uuid4().hex}.part"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    # -- operations -------------------------------------------------------------------------------------
    def add(
        self,
        p: Principal,
        staged: Path,
        filename: str | None,
        declared_format: str | None = None,
        purpose: str | None = None,
    ) -> dict[str, Any]:
        """Validate a staged upload and keep it; raises InvalidInput naming the line/column that is wrong."""
        require_manage(p, "uploading files")
        name = clean_filename(filename)
        purpose = (purpose or "training").strip()
        if purpose not in ("training", "validation", "fine-tune"):
            raise InvalidInput(f"unknown purpose {purpose[:40]!r}: use training or validation", param="purpose")
        fmt = detect_format(Path(name), declared_format or None)
        if not staged.is_file() or staged.stat().st_size == 0:
            raise InvalidInput(f"{name}: the file is empty", param="file")
        try:
            summary = validate_file(staged, fmt, replace(self.limits, started=time.thread_time()))
        except InvalidInput as e:
            # the parser names the staging file; the user knows the file by the name they uploaded
            raise InvalidInput(e.message.replace(staged.name, name), param="file") from None
        row = FileRow(
            id=new_file_id(),
            tenant_id=p.tenant_id,
            filename=name,
            format=fmt,
            purpose=purpose,
            bytes=summary.bytes,
            sha256=summary.sha256,
            rows=summary.rows,
            summary=summary.to_dict(),
            created_at=utcnow(),
        )
        final = self.path_of(row)
        os.replace(staged, final)
        try:
            with self.store.session() as session:
                session.add(row)
                write_audit(
                    session,
                    p,
                    "file.upload",
                    row.id,
                    tenant=p.tenant_id,
                    details={"filename": name, "bytes": row.bytes, "sha256": row.sha256},
                )
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return file_info(row)

    def _visible(self, p: Principal, file_id: str, param: str | None = "file_id") -> FileRow:
        if not isinstance(file_id, str) or not file_id or len(file_id) > 64:
            raise file_not_found(str(file_id), param)
        with self.store.session() as session:
            row = session.get(FileRow, file_id)
        if row is None or not (p.is_admin or row.tenant_id == p.tenant_id):
            raise file_not_found(file_id, param)
        return row

    def get(self, p: Principal, file_id: str) -> dict[str, Any]:
        require_manage(p, "reading files")
        return file_info(self._visible(p, file_id))

    def resolve(self, p: Principal, file_id: str, param: str) -> Path:
        """The path of a file ``p`` may use in a job (404 otherwise, naming the request field)."""
        row = self._visible(p, file_id, param)
        path = self.path_of(row)
        if not path.is_file():
            raise NotFound(f"file {file_id!r} has lost its content on the server; upload it again", param=param)
        return path

    def list(self, p: Principal, limit: int = 20, after: str | None = None) -> dict[str, Any]:
        """Newest first; ``after`` is the id of the last file of the previous page."""
        require_manage(p, "listing files")
        limit = _page_size(limit)
        with self.store.session() as session:
            stmt = select(FileRow)
            if not p.is_admin:
                stmt = stmt.where(FileRow.tenant_id == p.tenant_id)
            if after:
                cursor = self._visible(p, after, "after")
                stmt = stmt.where(
                    or_(
                        FileRow.created_at < cursor.created_at,
                        and_(FileRow.created_at == cursor.created_at, FileRow.id < cursor.id),
                    )
                )
            rows = list(session.scalars(stmt.order_by(FileRow.created_at.desc(), FileRow.id.desc()).limit(limit + 1)))
        return {"object": "list", "data": [file_info(r) for r in rows[:limit]], "has_more": len(rows) > limit}

    def delete(self, p: Principal, file_id: str) -> dict[str, Any]:
        """Remove the row and the bytes. Jobs made from the file keep their own copy in their directory."""
        require_manage(p, "deleting files")
        row = self._visible(p, file_id)
        with self.store.session() as session:
            current = session.get(FileRow, row.id)
            if current is not None:
                session.delete(current)
                write_audit(session, p, "file.delete", row.id, tenant=row.tenant_id, details={"filename": row.filename})
        self.path_of(row).unlink(missing_ok=True)
        return {"id": row.id, "object": "file", "deleted": True}


def _page_size(limit: int) -> int:
    if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}", param="limit")
    return limit


def file_info(row: FileRow) -> dict[str, Any]:
    s = row.summary or {}
    return {
        "id": row.id,
        "object": "file",
        "filename": row.filename,
        "purpose": row.purpose,
        "format": row.format,
        "bytes": row.bytes,
        "rows": row.rows,
        "columns": s.get("columns", []),
        "dtypes": s.get("dtypes", {}),
        "shapes": s.get("shapes", {}),
        "sha256": row.sha256,
        "owner": row.tenant_id,
        "created_at": int(row.created_at.replace(tzinfo=UTC).timestamp()),
    }


__all__ = ["FORMATS", "FilesService", "file_info", "file_not_found", "require_manage"]
