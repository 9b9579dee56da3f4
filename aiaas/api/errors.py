"""Render every error in the protocol of the route it happened on.

KServe V2 routes (``/v2/...``) answer ``{"error": "message"}`` as the V2 spec says; every other route answers
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``. Client mistakes are never a 500.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from aiaas.errors import AiaasError, InvalidInput

log = logging.getLogger("aiaas.api")

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 413: "payload_too_large", 415: "invalid_request_error", 429: "rate_limit_error"}  # fmt: skip


def is_v2(request: Request) -> bool:
    return request.url.path.startswith("/v2")


def render(request: Request, exc: AiaasError) -> Response:
    body = exc.to_v2() if is_v2(request) else exc.to_openai()
    return Response(orjson.dumps(body), status_code=exc.status_code, headers=exc.headers, media_type="application/json")


def install(app: FastAPI) -> None:
    @app.exception_handler(AiaasError)
    async def _aiaas(request: Request, exc: AiaasError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {err.get('msg')}")
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        param = ".".join(str(x) for x in first if x != "body") or None
        return render(request, InvalidInput("invalid request: " + "; ".join(parts), param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        err = AiaasError(str(exc.detail), headers=dict(exc.headers or {}))
        err.status_code = exc.status_code
        err.type = _TYPES.get(exc.status_code, "error")
        if exc.status_code == 404 and exc.detail == "Not Found":
            err.message = f"no route {request.method} {request.url.path}"
            err.args = (err.message,)
        return render(request, err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return render(request, AiaasError(f"internal server error: {type(exc).__name__}"))

    from sqlalchemy.exc import DBAPIError  # the database's errors; most routes reach the store

    from aiaas.store.db import DatabaseUnavailable, is_unavailable

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> Response:
        """A database that is down or restarting is a 503 to retry, not a server error; the pool reconnects."""
        if is_unavailable(exc):
            log.warning("database unavailable on %s %s: %s", request.method, request.url.path, str(exc.orig)[:200])
            return render(request, DatabaseUnavailable())
        return await _unexpected(request, exc)
