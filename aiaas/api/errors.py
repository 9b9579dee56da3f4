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
from starlette.routing import Match

from aiaas.errors import AiaasError, AuthenticationError, InvalidInput, clip

log = logging.getLogger("aiaas.api")

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "payload_too_large",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


MAX_REPORTED = 5  # validation errors named in one message
_PUBLIC = ("/v2/health/", "/metrics", "/docs", "/redoc", "/openapi.json")


async def _unauthenticated(request: Request) -> AiaasError | None:
    """The authentication error of a caller without a valid key on a route that needs one, else None."""
    if request.url.path.startswith(_PUBLIC):
        return None
    governance = getattr(request.app.state, "governance", None)
    if governance is None:
        return None
    try:
        await governance.authenticate(request.headers.get("authorization"))
    except AuthenticationError as e:
        return e
    except AiaasError:
        return None
    return None


def _allowed(request: Request) -> set[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        route_methods = getattr(route, "methods", None)
        if match != Match.NONE and route_methods:
            methods |= set(route_methods)
    return methods


def is_v2(request: Request) -> bool:
    return request.url.path.startswith("/v2")


MAX_MESSAGE = 2000  # characters of an error message (a last guard; messages cut user strings themselves)


def render(request: Request, exc: AiaasError) -> Response:
    if len(exc.message) > MAX_MESSAGE:
        exc.message = clip(exc.message, MAX_MESSAGE)
    body = exc.to_v2() if is_v2(request) else exc.to_openai()
    return Response(orjson.dumps(body), status_code=exc.status_code, headers=exc.headers, media_type="application/json")


def install(app: FastAPI) -> None:
    @app.exception_handler(AiaasError)
    async def _aiaas(request: Request, exc: AiaasError) -> Response:
        return render(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI validates the body before a route's key dependency runs: a caller without a valid key gets
        # the 401 it would have got, never a description of what the route accepts
        refused = await _unauthenticated(request)
        if refused is not None:
            return render(request, refused)
        parts = []
        for err in exc.errors()[:MAX_REPORTED]:
            loc = ".".join(clip(str(x), 40) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc or 'body'}: {clip(str(err.get('msg')), 200)}")
        first = exc.errors()[0].get("loc", ()) if exc.errors() else ()
        param = ".".join(str(x) for x in first if x != "body") or None
        return render(request, InvalidInput("invalid request: " + "; ".join(parts), param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "There was an error parsing the body": a body, before the key
            refused = await _unauthenticated(request)
            if refused is not None:
                return render(request, refused)
        message = str(exc.detail)
        if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError | UnicodeDecodeError):
            message = "the request body is not UTF-8 JSON of a sane depth (nested too deeply or not UTF-8)"
        err = AiaasError(message, headers=dict(exc.headers or {}))
        err.status_code = exc.status_code
        err.type = _TYPES.get(exc.status_code, "error")
        if exc.status_code == 404 and exc.detail == "Not Found":
            err.message = f"no route {request.method} {clip(request.url.path, 200)}"
            err.args = (err.message,)
        if exc.status_code == 405:  # every method of every route on this path (Starlette names one route's)
            err.headers["Allow"] = ", ".join(sorted(_allowed(request)))
        return render(request, err)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, clip(request.url.path, 200))
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
