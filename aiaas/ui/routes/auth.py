"""Sign-in with an API key, sign-out.

The sign-in form is itself protected against login CSRF (a forged post signing the victim into the attacker's
key) by a double-submit token: a random value in a SameSite=Strict cookie that the form must echo.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Depends, Form, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from aiaas.errors import AuthenticationError
from aiaas.ui.web import COOKIE, Console, PageRoute, checked, sessions, templates

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)
LOGIN_COOKIE = "aiaas_login_csrf"


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: never an absolute URL (no open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/models"


def _login_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {
            "login_csrf": token,
            "error": error,
            "me": None,
            "nav": [],
            "path": "/ui/login",
            "next": _safe_next(request.query_params.get("next")),
        },
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/ui/login", secure=request.url.scheme == "https"
    )
    return response


@router.get("")
async def root() -> Response:
    return RedirectResponse("/ui/models", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
async def login(
    request: Request, api_key: str = Form(""), login_csrf: str = Form(""), next: str = Form("")
) -> Response:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), login_csrf.encode()):
        return _login_page(request, "The sign-in form expired or was not sent from this console; try again.", 403)
    if not api_key.strip():
        return _login_page(request, "Enter an API key.", 400)
    try:
        principal = await request.app.state.services.governance.authenticate(f"Bearer {api_key.strip()}")
    except AuthenticationError as e:
        return _login_page(request, f"Sign-in refused: {e.message}.", 401)
    token = await run_in_threadpool(sessions(request).open, principal)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/ui",
        secure=request.url.scheme == "https",
        max_age=int(request.app.state.services.settings.ui_session_ttl_s),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
async def logout(request: Request, ctx: Console = Depends(checked)) -> Response:
    await run_in_threadpool(sessions(request).close, request.cookies.get(COOKIE))
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response
