"""Request ids, access logs and JSON logs, without slowing the V2 fast path when they are off.

With ``AIAAS_LOG_FORMAT=json`` or ``AIAAS_ACCESS_LOG=1`` the app gets an ``AccessLog`` (``App.__call__`` in
server/fastpath.py wraps every HTTP request with it, outermost): every HTTP request gets a request id (the caller's
``x-request-id`` when it is a sane token, else a new one), echoed as
``x-request-id``, carried by every log line written while the request runs (a context variable), and ends
with one access-log line: method, path, status, latency, model and tenant. Off (the default), there is no
wrapper and no context variable: one attribute check per request.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiaas.settings import Settings

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("aiaas_request_id", default=None)
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_MODEL = re.compile(r"^/v2/models/([^/]+)")
_FIELDS = ("method", "path", "status", "latency_ms", "model", "tenant", "job", "event")
access = logging.getLogger("aiaas.access")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, and the access/job fields when set."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None)
        if rid:
            doc["request_id"] = rid
        for key in _FIELDS:
            if key in record.__dict__:
                doc[key] = record.__dict__[key]
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        rid = getattr(record, "request_id", None)
        return f"{line} [request {rid}]" if rid else line


def configure_logging(settings: Settings) -> None:
    """The root handler for aiaas and uvicorn (uvicorn runs with ``log_config=None`` so it keeps this one)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def observed(settings: Settings) -> bool:
    return settings.log_format == "json" or settings.access_log


class AccessLog:
    """A request id and an access-log line around one HTTP request (a plain ASGI wrapper, no framework parts)."""

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        rid = _incoming_id(scope) or uuid.uuid4().hex
        token = REQUEST_ID.set(rid)
        header = (b"x-request-id", rid.encode())
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            path = scope.get("path", "")
            m = _MODEL.match(path)
            access.info(
                "%s %s %d %.1f ms",
                scope.get("method"),
                path,
                status,
                (time.perf_counter() - t0) * 1000,
                extra={
                    "method": scope.get("method"),
                    "path": path,
                    "status": status,
                    "latency_ms": round((time.perf_counter() - t0) * 1000, 3),
                    "model": scope.get("aiaas.model") or (m.group(1) if m else None),
                    "tenant": scope.get("aiaas.tenant"),
                },
            )
            REQUEST_ID.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            return value.decode() if _GOOD_ID.fullmatch(value) else None
    return None
