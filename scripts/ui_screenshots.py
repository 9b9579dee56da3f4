"""Regenerate the console screenshots in docs/ (README): a throwaway server with a few quick-built catalog
models, some traffic, and Debian's chromium driven by Playwright.

    python scripts/ui_screenshots.py            # writes docs/ui-models.png, ui-playground.png, ...
"""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from playwright.sync_api import sync_playwright

from aiaas.catalog.builder import build
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository
from aiaas.server.app import create_app
from aiaas.settings import Settings

KEY = "screenshot-admin-key"
MODELS = ["vader-sentiment", "breast-cancer", "astar-planner"]
SHOTS = {  # file -> (path, button to click first, element to capture: None = the viewport)
    "ui-models.png": ("/ui/models", None, None),
    "ui-model.png": ("/ui/models/vader-sentiment", None, None),
    "ui-playground.png": ("/ui/models/breast-cancer", "Run", "section:has(#play-h)"),
    "ui-usage.png": ("/ui/usage?group_by=model", None, None),
    "ui-keys.png": ("/ui/keys", None, None),
}


def traffic(url: str, app: Any) -> None:
    """A few rounds of requests, with a timeline sample after each (instead of waiting for the sampler)."""
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["What a lovely day"]}]}
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as client:
        for burst in (20, 60, 35, 80, 50):
            for _ in range(burst):
                client.post(f"{url}/v2/models/vader-sentiment/infer", json=body)
            time.sleep(1.0)
            app.state.ui_timeline.sample()
    time.sleep(1.5)  # usage is written every second


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "docs"
    home = Path(tempfile.mkdtemp()) / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    specs = all_specs()
    for name in MODELS:
        if not specs[name].requires.missing():
            build(specs[name], repo, quick=True, progress=lambda f, m: None)
    app = create_app(Settings(home=home, admin_key=KEY, catalog="none"))  # type: ignore[call-arg]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(url + "/ui/login")
            page.get_by_label("API key").fill(KEY)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(re.compile(".*/ui/models"))  # the traffic timeline starts with the console
            traffic(url, app)
            for name, (path, click, element) in SHOTS.items():
                page.goto(url + path)
                if click:
                    page.get_by_role("button", name=click).click()
                    page.wait_for_selector("[data-testid=result] table")
                target = page.locator(element) if element else page
                target.screenshot(path=str(out / name))
                print("wrote", out / name)
            browser.close()
    finally:
        server.should_exit = True


if __name__ == "__main__":
    main()
