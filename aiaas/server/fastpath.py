"""The fast path: every place aiaas leans on uvicorn's, Starlette's or FastAPI's internals, in this one module.

For a small model, the framework costs more CPU per request than aiaas itself (bench/serving.py measured +8.6%
requests/s for the two pieces below together). So, with ``AIAAS_FAST_PATH=1`` (the default):

1. ``App.__call__`` answers ``POST /v2/models/{m}[/versions/{v}]/infer`` itself (``api/v2.py: infer_raw``),
   skipping routing, dependency solving and the middleware stack. Errors are rendered by the app's own
   exception handlers through Starlette's own middleware classes, as the routed path renders them; with
   FastAPI's OpenTelemetry on, the request runs inside FastAPI's own request telemetry (the same server span,
   named after the route, and metrics). Any user middleware, dependency override, ``root_path`` or the
   contrib OpenTelemetry middleware sends requests down the routed path instead.
2. ``http_protocol`` gives uvicorn an httptools protocol that writes a response with a known length in one
   ``send()`` (status line, headers and body) instead of two.

With ``AIAAS_FAST_PATH=0``, ``App`` calls FastAPI's ``__call__`` for every request and uvicorn runs its stock
protocol: nothing private is touched. Either way the bytes on the wire are the same (tests/server/test_fastpath.py).

The contract: ``WRITTEN_AGAINST`` are the versions pinned (``==``) in pyproject.toml; ``internals_problems``
names every attribute and signature used here that is missing or different, and
tests/server/test_fastpath_contract.py fails with that list when an upgrade changes them. At start, a fast
path whose internals do not match turns itself off with a warning: slower, never wrong.

``App.__call__`` is also where the access log (``server/observe.py: AccessLog``) wraps each request, outermost,
so that it sees every response, 500s included; off, it costs one attribute check.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from aiaas.api import v2
from aiaas.server.bodylimit import BodyLimits
from aiaas.server.observe import AccessLog

log = logging.getLogger("aiaas.server")

# The versions this module was written against; pyproject.toml pins exactly these (a test checks both agree).
WRITTEN_AGAINST = {"fastapi": "0.165.0", "starlette": "1.10.0", "uvicorn": "0.55.0"}
# The routed path's route templates, for the telemetry span name and ``http.route``
ROUTES = (
    f"{v2.router.prefix}/models/{{model}}/infer",
    f"{v2.router.prefix}/models/{{model}}/versions/{{version}}/infer",
)
_ROUTED = object()  # telemetry state: instrumentation the fast path cannot carry is on


class App(FastAPI):
    """FastAPI plus aiaas's per-request wrapping: the access log, the V2 infer fast path, the body limits."""

    body_limits: BodyLimits | None = None  # the per-route body limits (server/bodylimit.py)
    access_log: AccessLog | None = None  # request ids and access-log lines (server/observe.py)
    fast_path: FastPath | None = None  # None: every request takes FastAPI's routed path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.access_log is not None and scope["type"] == "http":
            await self.access_log(self._dispatch, scope, receive, send)
        else:
            await self._dispatch(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast_path
        if fast is not None and scope["type"] == "http" and scope["method"] == "POST":
            m = v2.INFER_PATH.fullmatch(scope["path"])
            if m is not None and not self.root_path and not self.user_middleware and not self.dependency_overrides:
                telemetry = fast.telemetry(self)
                if telemetry is not _ROUTED:
                    await fast.infer(self, telemetry, scope, receive, send, m.group(1), m.group(2))
                    return
        if scope["type"] == "http" and self.body_limits is not None:
            await self.body_limits.guard(super().__call__, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class FastPath:
    """The V2 infer fast path of one app (``install`` builds it when the internals match)."""

    def __init__(self) -> None:
        self._telemetry: Any = None  # FastAPI's request telemetry when on, _ROUTED, or None when off
        self._checked = -1.0
        self._errors: ASGIApp | None = None  # the app's exception handlers, as Starlette's middleware runs them

    def telemetry(self, app: FastAPI) -> Any:
        """FastAPI's native telemetry when it is on, ``_ROUTED`` when the contrib OpenTelemetry middleware is
        installed (it instruments the middleware stack the fast path skips), else None. Re-checked each second:
        ``enabled()`` reads the global providers and costs ~9 us."""
        now = time.monotonic()
        if now - self._checked > 1.0:
            native = app._native_telemetry
            state = None
            if native.enabled():
                if app.middleware_stack is None:
                    app.middleware_stack = app.build_middleware_stack()
                state = _ROUTED if _legacy_otel()(app.middleware_stack) else native
            self._telemetry, self._checked = state, now
        return self._telemetry

    async def infer(
        self, app: App, telemetry: Any, scope: Scope, receive: Receive, send: Send, model: str, version: str | None
    ) -> None:
        """Answer one infer request and, when FastAPI's telemetry is on, inside it (the routed path's server span).
        Like the routed route, ``infer_raw`` authenticates first and then reads the body under
        ``max_request_bytes`` (``BodyLimits`` leaves infer routes to them): a caller without a key gets 401 and
        its body is never read."""
        scope["app"] = app  # what FastAPI sets, and what the handlers and ``infer_raw`` read
        if telemetry is None:  # the common case, with no wrapper at all
            await self._answer(scope, receive, send, model, version)
            return
        route = ROUTES[version is not None]
        selected = _route_selected()

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            selected(scope=scope, path=route)  # names the span and sets http.route, as routing does
            await self._answer(scope, receive, send, model, version)

        await telemetry(app=traced, scope=scope, receive=receive, send=send, legacy_otel=False)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, model: str, version: str | None) -> None:
        try:
            response = await v2.infer_raw(scope, receive, model, version)
        except ClientDisconnect:
            raise  # the client went away: nobody to answer
        except Exception as exc:
            scope["aiaas.error"] = exc
            await self._error_stack(scope["app"])(scope, receive, send)  # re-raises what no handler answers
            return
        await response(scope, receive, send)

    def _error_stack(self, app: FastAPI) -> ASGIApp:
        """Starlette's ServerErrorMiddleware around its ExceptionMiddleware around an app that raises the error:
        the handlers split as ``build_middleware_stack`` splits them (500 and Exception to the outer one)."""
        if self._errors is None:
            inner: dict[Any, Any] = {}
            outer = None
            for key, handler in app.exception_handlers.items():
                if key in (500, Exception):
                    outer = handler
                else:
                    inner[key] = handler
            self._errors = ServerErrorMiddleware(
                ExceptionMiddleware(_reraise, handlers=inner, debug=app.debug), handler=outer, debug=app.debug
            )
        return self._errors


async def _reraise(scope: Scope, receive: Receive, send: Send) -> None:
    raise scope.pop("aiaas.error")


def install(app: App, enabled: bool) -> None:
    """Turn the fast path on for ``app`` when ``enabled`` (``AIAAS_FAST_PATH``) and the internals match."""
    if not enabled:
        return
    problems = internals_problems(app)
    if problems:
        log.warning(
            "V2 fast path off: the installed FastAPI/Starlette/uvicorn differ from what aiaas was written "
            "against (%s): %s",
            _versions_line(),
            "; ".join(problems),
        )
        return
    app.fast_path = FastPath()


# -- uvicorn: one write per response ------------------------------------------------------------
_CONTENT_LENGTH = b"content-length"


class _Collect:
    """Stands in for the transport while uvicorn formats a response: keeps the bytes and a close request."""

    __slots__ = ("_real", "close_requested", "parts")

    def __init__(self, real: Any) -> None:
        self.parts: list[bytes] = []
        self.close_requested = False
        self._real = real

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.close_requested = True

    def is_closing(self) -> bool:
        return bool(self._real.is_closing())

    def __getattr__(self, name: str) -> Any:  # anything else uvicorn may ask of a transport
        return getattr(self._real, name)


def http_protocol(enabled: bool) -> Any:
    """The ``http`` argument of ``uvicorn.Config``: the one-write protocol when ``enabled`` and uvicorn's
    httptools protocol is what this module was written against; otherwise uvicorn's own choice ("auto").

    Stock uvicorn writes the status line and headers on ``http.response.start`` and the body on
    ``http.response.body``: two system calls and two TCP segments per response (~30% of the event loop's time
    for a small V2 request, py-spy). Here a start message with a ``content-length`` (every non-streaming
    Starlette response) is held until its first body message and both leave in one write, formatted by
    uvicorn's own ``send`` against a buffer. Streaming responses (no content-length) are written as before."""
    if not enabled:
        return "auto"
    try:
        from uvicorn.protocols.http import httptools_impl as impl
    except ImportError:
        return "auto"
    if _uvicorn_problems():
        return "auto"
    cycle_cls, proto_cls = impl.RequestResponseCycle, impl.HttpToolsProtocol

    class OneWriteCycle(cycle_cls):  # type: ignore[misc,valid-type]
        _held: Any = None  # the start message waiting for its body
        transport: Any  # uvicorn's attribute (its type is not visible through the dynamic base class)

        async def send(self, message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start" and not self.response_started:
                if any(k.lower() == _CONTENT_LENGTH for k, _ in message.get("headers", ())):
                    self._held = message
                    return
            elif kind == "http.response.body" and self._held is not None:
                start, self._held = self._held, None
                real = self.transport
                self.transport = buf = _Collect(real)
                try:
                    await super().send(start)
                    await super().send(message)
                finally:
                    self.transport = real
                    if buf.parts and not real.is_closing():
                        real.write(b"".join(buf.parts))
                    if buf.close_requested:
                        real.close()
                return
            await super().send(message)

    class OneWriteProtocol(proto_cls):  # type: ignore[misc,valid-type]
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            # uvicorn builds the cycle here and schedules its task, which has not run yet: give the new cycle
            # the one-write ``send`` before the app first sees it
            if type(self.cycle) is cycle_cls:
                self.cycle.__class__ = OneWriteCycle

    return OneWriteProtocol


# -- the contract ------------------------------------------------------------------------------
def _route_selected() -> Callable[..., None]:
    from fastapi.telemetry._api import _route_selected as selected  # imports opentelemetry: only when tracing

    return selected


def _legacy_otel() -> Callable[[Any], bool]:
    from fastapi.telemetry._asgi import _legacy_otel as legacy

    return legacy


def internals_problems(app: FastAPI | None = None) -> list[str]:
    """What this module relies on in FastAPI, Starlette and uvicorn that is missing or has changed shape, one
    line each naming it; empty when everything is as written against."""
    app = app if app is not None else FastAPI()
    problems = _fastapi_problems(app) + _uvicorn_problems()
    problems += _params(ServerErrorMiddleware, ("app", "handler", "debug"), "starlette ServerErrorMiddleware(...)")
    problems += _params(ExceptionMiddleware, ("app", "handlers", "debug"), "starlette ExceptionMiddleware(...)")
    return problems


def _fastapi_problems(app: FastAPI) -> list[str]:
    problems = [
        f"FastAPI instance has no attribute {name!r}"
        for name in (
            "user_middleware",
            "dependency_overrides",
            "middleware_stack",
            "build_middleware_stack",
            "root_path",
            "exception_handlers",
            "debug",
            "_native_telemetry",
        )
        if not hasattr(app, name)
    ]
    native = getattr(app, "_native_telemetry", None)
    if native is not None:
        if not callable(getattr(native, "enabled", None)):
            problems.append("FastAPI._native_telemetry has no enabled() method")
        problems += _params(
            native, ("app", "scope", "receive", "send", "legacy_otel"), "FastAPI._native_telemetry(...)"
        )
    try:
        problems += _params(_route_selected(), ("scope", "path"), "fastapi.telemetry._api._route_selected(...)")
        problems += _params(_legacy_otel(), ("stack",), "fastapi.telemetry._asgi._legacy_otel(...)")
    except ImportError as e:
        problems.append(f"fastapi.telemetry: {e}")
    return problems


def _uvicorn_problems() -> list[str]:
    try:
        from uvicorn.protocols.http import httptools_impl as impl
    except ImportError:
        return []  # no httptools: the one-write protocol is not used, nothing to check
    cycle, proto = getattr(impl, "RequestResponseCycle", None), getattr(impl, "HttpToolsProtocol", None)
    if cycle is None or proto is None:
        return ["uvicorn httptools_impl has no RequestResponseCycle / HttpToolsProtocol"]
    problems = _params(cycle.send, ("self", "message"), "uvicorn RequestResponseCycle.send(...)")
    if not inspect.iscoroutinefunction(cycle.send):
        problems.append("uvicorn RequestResponseCycle.send is no longer a coroutine function")
    problems += [
        f"uvicorn RequestResponseCycle.__init__ no longer sets self.{a}"
        for a in ("transport", "response_started")
        if a not in _assigned(cycle.__init__)
    ]
    problems += _params(proto.on_headers_complete, ("self",), "uvicorn HttpToolsProtocol.on_headers_complete(...)")
    if "cycle" not in _assigned(proto.on_headers_complete):
        problems.append("uvicorn HttpToolsProtocol.on_headers_complete no longer sets self.cycle")
    return problems


def _params(fn: Any, names: tuple[str, ...], what: str) -> list[str]:
    try:
        have = inspect.signature(fn).parameters
    except (TypeError, ValueError) as e:
        return [f"{what}: no signature ({e})"]
    missing = [n for n in names if n not in have]
    return [f"{what} lost parameter(s) {', '.join(missing)} (has {', '.join(have)})"] if missing else []


def _assigned(fn: Any) -> set[str]:
    """Attribute names a function's code stores or reads (``self.x = ...`` puts ``x`` in ``co_names``)."""
    code = getattr(fn, "__code__", None)
    return set(code.co_names) if code is not None else set()


def _versions_line() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)} (written against {want})" for name, want in WRITTEN_AGAINST.items())
