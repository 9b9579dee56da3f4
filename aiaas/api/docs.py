"""``/docs`` (Swagger UI) and ``/redoc`` served from assets inside the package, so they work with no internet.

FastAPI's defaults load the JavaScript and CSS from a CDN (and Redoc's fonts from Google): blank pages on an
offline machine. The assets are vendored in ``static/`` (versions and licences in ``static/README.md``) and
served under ``/_docs/``; the pages are FastAPI's own HTML pointing there, with Swagger's online validator off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).with_name("static")
ASSETS = "/_docs"


def install(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Mount the assets and add ``/docs``, its OAuth2 redirect and ``/redoc`` (create the app with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS, StaticFiles(directory=STATIC), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url=root + oauth2_redirect,
            swagger_ui_parameters={"validatorUrl": None},  # the default posts the spec to validator.swagger.io
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
