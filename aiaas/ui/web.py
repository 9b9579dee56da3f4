"""What every console page shares: templates, the signed-in caller, CSRF checks and HTML error pages.

Page routes use ``PageRoute``: an ``AiaasError`` raised by a service (403 for a role that may not, 404 for a
model another tenant owns, 400 for bad input) renders the console's error page with the service's own message
instead of the API's JSON, and a request without a live session is sent to the sign-in page.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from fastapi import Request
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from aiaas import __version__
from aiaas.errors import AiaasError, PermissionDenied
from aiaas.service.governance import Principal
from aiaas.ui.sessions import Session, SessionStore

if TYPE_CHECKING:
    from aiaas.service.container import Services

COOKIE = "aiaas_session"
T = TypeVar("T")
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["version"] = __version__


def _ts(value: Any) -> str:
    """Epoch seconds or ISO text as 'YYYY-MM-DD HH:MM:SS' UTC (tables)."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value).replace("T", " ")[:19]


templates.env.filters["ts"] = _ts


class SignInRequired(Exception):
    """No live session: answered with a redirect to the sign-in page (or 401 for scripts)."""


@dataclass
class Console:
    """The signed-in caller of a console request."""

    request: Request
    session: Session
    services: Services

    @property
    def principal(self) -> Principal:
        return self.session.principal

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking service call (database I/O) off the event loop, as the caller."""
        return await run_in_threadpool(fn, self.principal, *args, **kwargs)

    def need(self, *roles: str) -> None:
        if self.principal.role not in roles:
            raise PermissionDenied(
                f"this page needs role {' or '.join(roles)}; your key has role {self.principal.role}"
            )

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        context.update(
            me=self.principal,
            csrf=self.session.csrf,
            key_name=self.session.key_name,
            nav=nav_for(self.principal, self.services),
            path=self.request.url.path,
        )
        return templates.TemplateResponse(
            self.request, template, context, status_code=status, headers={"Cache-Control": "no-store"}
        )


def sessions(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.ui_sessions
    return store


async def console(request: Request) -> Console:
    """Dependency of every signed-in page: the live session behind the cookie, else ``SignInRequired``."""
    session = await run_in_threadpool(sessions(request).resolve, request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired()
    return Console(request, session, request.app.state.services)


async def checked(request: Request) -> Console:
    """Dependency of every state-changing request: a live session *and* its CSRF token, from the form field
    ``csrf`` or the ``X-CSRF-Token`` header (htmx and the playgrounds' fetch calls)."""
    ctx = await console(request)
    supplied = request.headers.get("x-csrf-token")
    if supplied is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get("csrf")
        supplied = value if isinstance(value, str) else None
    if not ctx.session.csrf_ok(supplied):
        raise PermissionDenied(
            "the form's CSRF token is missing or wrong; reload the page and try again", code="csrf_failed"
        )
    return ctx


def nav_for(p: Principal, services: Services) -> list[tuple[str, str]]:
    """The navigation a caller gets: pages their role may open (the pages check again)."""
    items = [("/ui/models", "Models"), ("/ui/usage", "Usage")]
    if p.role in ("admin", "developer"):
        items.append(("/ui/keys", "Keys"))
        if services.jobs is not None:
            items.append(("/ui/jobs", "Jobs"))
        items.append(("/ui/audit", "Audit"))
    items.append(("/ui/server", "Server"))
    return items


def error_page(request: Request, exc: AiaasError) -> Response:
    wants_html = "text/html" in request.headers.get("accept", "") and not request.headers.get("hx-request")
    if not wants_html:  # htmx swaps and fetch calls get the message as text
        return Response(exc.message, status_code=exc.status_code, media_type="text/plain")
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": exc.status_code, "message": exc.message, "me": None, "nav": [], "path": request.url.path},
        status_code=exc.status_code,
    )


def sign_in_redirect(request: Request) -> Response:
    if request.method != "GET" or request.headers.get("hx-request"):
        return Response(
            "your console session ended; sign in again",
            status_code=401,
            media_type="text/plain",
            headers={"HX-Redirect": "/ui/login"},
        )
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)


class PageRoute(APIRoute):
    """An APIRoute whose service errors render as console pages and whose missing session redirects."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                return sign_in_redirect(request)
            except AiaasError as exc:
                return error_page(request, exc)

        return route
