"""The web console at ``/ui``: server-rendered pages (Jinja2) over the same services as the API.

Why this shape: the server already holds every service the console needs, so pages render there and the
browser gets HTML (no Node build, no client-side state beyond one page). Two small vendored libraries ship in
``static/vendor`` with their licences: htmx 2 (14 kB gzipped; partial page updates from plain attributes) and
uPlot (a 50 kB chart library that draws thousands of points on a canvas, where Chart.js is 4x the size).
Live updates (job progress) use Server-Sent Events: one-way, plain HTTP, reconnecting on their own.

Mounted by ``mount(app)`` as ordinary routes under ``/ui``: no middleware, so the V2 fast path is untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from starlette.staticfiles import StaticFiles

if TYPE_CHECKING:
    from fastapi import FastAPI

    from aiaas.service.container import Services


def mount(app: FastAPI, services: Services) -> bool:
    """Add the console to ``app``; False (and nothing added) when it is off or has no database for sessions."""
    if not services.settings.ui or services.store is None:
        return False
    from aiaas.ui.routes import audit, auth, jobs, keys, models, play, server, usage
    from aiaas.ui.sessions import SessionStore
    from aiaas.ui.timeline import Timeline
    from aiaas.ui.web import SignInRequired, sign_in_redirect

    app.state.ui_sessions = SessionStore(services.store, services.settings.ui_session_ttl_s)
    app.state.ui_timeline = Timeline(services.metrics)
    for module in (auth, models, play, usage, keys, jobs, audit, server):
        app.include_router(module.router)
    app.add_exception_handler(SignInRequired, lambda request, exc: sign_in_redirect(request))
    app.mount("/ui/static", StaticFiles(directory=Path(__file__).parent / "static"), name="ui-static")
    return True
