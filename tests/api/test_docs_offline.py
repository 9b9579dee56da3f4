"""``/docs`` and ``/redoc`` render in headless Chromium with every request answered by the server itself."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="pytest-playwright (dev extra) is not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import uvicorn

    from aiaas.server.app import create_app
    from aiaas.settings import Settings

    app = create_app(Settings(home=tmp_path_factory.mktemp("docs"), admin_key="k", catalog="none", governance="off"))  # type: ignore[call-arg]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_assets_are_served_from_the_package(base_url: str) -> None:
    html = httpx.get(base_url + "/docs").text
    assert "/_docs/swagger-ui/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    js = httpx.get(base_url + "/_docs/redoc/redoc.standalone.js")
    assert js.status_code == 200 and len(js.content) > 500_000
    assert "fonts.googleapis" not in httpx.get(base_url + "/redoc").text


@pytest.mark.parametrize(("path", "rendered"), [("/docs", ".opblock"), ("/redoc", "[data-section-id]")])
def test_page_renders_offline(base_url: str, path: str, rendered: str) -> None:
    outside: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()

            def only_local(route: sync_api.Route) -> None:
                if route.request.url.startswith(base_url) or route.request.url.startswith("data:"):
                    route.continue_()
                else:  # what a machine without internet would see: the request fails
                    outside.append(route.request.url)
                    route.abort()

            page.route("**/*", only_local)
            page.goto(base_url + path)
            page.wait_for_selector(rendered, timeout=30_000)
            text = page.inner_text("body")
        finally:
            browser.close()
    assert outside == []
    assert "/v2/models/{model}/infer" in text or "infer" in text.lower()
