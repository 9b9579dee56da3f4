"""The web console in a real browser (chromium via Playwright) against a real server: sign-in and sessions,
CSRF, every page, one playground per scenario family, keys, a training job, roles and tenants, accessibility."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from .conftest import ADMIN_KEY, Server, axe_violations, png, sign_in

PAGES = [
    "/ui/models",
    "/ui/models/vader-sentiment",
    "/ui/usage?group_by=day",
    "/ui/keys",
    "/ui/jobs",
    "/ui/audit",
    "/ui/server",
]


def _watch(page: Page) -> list[str]:
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)
    return problems


def test_sign_in_refuses_a_bad_key_sets_a_strict_cookie_and_signs_out(page: Page, server: Server) -> None:
    page.goto(server.url + "/ui/models")
    expect(page).to_have_url(re.compile("/ui/login"))
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid API key")
    sign_in(page, server)
    cookie = next(c for c in page.context.cookies() if c["name"] == "aiaas_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert ADMIN_KEY not in cookie["value"] and not cookie["secure"]  # plain http here; Secure under TLS
    assert page.evaluate("document.cookie") == ""  # invisible to scripts
    assert page.evaluate("Object.keys(localStorage).length") == 0
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile("/ui/login"))
    page.context.add_cookies([{**cookie}])  # the old session id is dead on the server
    page.goto(server.url + "/ui/models")
    expect(page).to_have_url(re.compile("/ui/login"))


def test_a_forged_form_post_is_refused(page: Page, server: Server) -> None:
    sign_in(page, server)
    forged = page.request.post(server.url + "/ui/tenants", form={"name": "forged", "csrf": "guess"})
    assert forged.status == 403 and "CSRF" in forged.text()
    missing = page.request.post(server.url + "/ui/models/mlp/unload", form={})
    assert missing.status == 403
    page.goto(server.url + "/ui/models/mlp")
    expect(page.get_by_text("READY").first).to_be_visible()


def test_every_page_renders_without_errors_and_passes_axe(page: Page, server: Server) -> None:
    problems = _watch(page)
    sign_in(page, server)
    for path in PAGES:
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").count() == 1, path
        assert axe_violations(page) == [], path
    assert problems == []


def _run(page: Page, server: Server, model: str) -> Any:
    page.goto(server.url + f"/ui/models/{model}")
    page.get_by_role("button", name="Run").click()
    result = page.get_by_test_id("result")
    expect(result).not_to_have_text(re.compile("^running"), timeout=30_000)
    return result


def _needs(server: Server, model: str) -> None:
    if model not in server.app.state.services.models.models:
        pytest.skip(f"{model} was not built (missing requirements)")


def test_playground_text_shows_labels_and_the_curl_call(page: Page, server: Server) -> None:
    _needs(server, "vader-sentiment")
    sign_in(page, server)
    result = _run(page, server, "vader-sentiment")
    expect(result).to_contain_text("label")
    expect(result.locator("td").first).to_have_text(re.compile("positive|negative|neutral"))
    expect(page.locator("pre.code").first).to_contain_text("/v2/models/vader-sentiment/infer")
    page.goto(server.url + "/ui/models/tiny-embed")
    page.get_by_label("text (one sentence per line)").fill("the cat sat\nThe cat sat\nzzzz")
    page.get_by_role("button", name="Run").click()
    cells = page.locator(".matrix td")
    expect(cells).to_have_count(9)  # 3 sentences: a 3 x 3 similarity matrix
    assert cells.nth(1).inner_text() == "1.000"  # two identical sentences


def test_playground_tabular_draws_the_contributions(page: Page, server: Server) -> None:
    _needs(server, "breast-cancer")
    sign_in(page, server)
    page.goto(server.url + "/ui/models/breast-cancer")
    assert page.locator("fieldset input").count() >= 10  # the form is built from the feature list
    result = _run(page, server, "breast-cancer")
    expect(result).to_contain_text("contributions")
    assert result.locator(".bar").count() >= 10


def test_playground_game_and_driving(page: Page, server: Server) -> None:
    _needs(server, "astar-planner")
    sign_in(page, server)
    result = _run(page, server, "astar-planner")
    expect(result.locator(".cells")).to_be_visible()
    assert result.locator(".cells .path").count() > 0
    if "chess-stockfish" in server.app.state.services.models.models:
        result = _run(page, server, "chess-stockfish")
        assert result.locator(".board .hl").count() == 2  # the engine's move, from and to


def test_playground_image_draws_boxes_on_an_upload(page: Page, server: Server, tmp_path: Path) -> None:
    sign_in(page, server)
    page.goto(server.url + "/ui/models/dark-box")
    image = tmp_path / "shape.png"
    image.write_bytes(png())
    page.get_by_label("Image (PNG or JPEG)").set_input_files(str(image))
    expect(page.locator(".preview img")).to_be_visible()
    page.get_by_role("button", name="Run").click()
    result = page.get_by_test_id("result")
    expect(result).to_contain_text("1 face(s)")
    assert result.locator("polygon").get_attribute("points") == "10,8 31,8 31,29 10,29"


def test_playground_audio_draws_speech_segments(page: Page, server: Server) -> None:
    _needs(server, "silero-vad")
    sign_in(page, server)
    result = _run(page, server, "silero-vad")
    expect(result).to_contain_text("Speech segments")
    expect(result.locator("canvas")).to_be_visible()


def test_playground_chat_streams_tokens(page: Page, server: Server) -> None:
    _needs(server, "tiny-llm")
    sign_in(page, server)
    page.goto(server.url + "/ui/models/tiny-llm")
    page.get_by_label("Max tokens").fill("8")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=60_000)
    assert page.get_by_test_id("result").inner_text().strip() != ""
    expect(page.locator("pre.code").first).to_contain_text("/v1/chat/completions")


def _create_key(page: Page, server: Server, tenant: str, role: str) -> str:
    page.goto(server.url + "/ui/keys")
    page.get_by_label("Tenant", exact=True).select_option(tenant)
    page.get_by_label("Role").select_option(role)
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("secret").inner_text().strip()
    assert secret.startswith("aiaas-")
    return secret


def test_a_key_is_shown_once_and_refused_after_revoke(page: Page, server: Server) -> None:
    sign_in(page, server)
    secret = _create_key(page, server, "system", "user")
    page.goto(server.url + "/ui/keys")
    assert secret not in page.content()
    key_id = secret.split("-")[1]
    page.get_by_role("button", name=f"Revoke key {key_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"key {key_id} revoked")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("revoked")


def test_a_user_key_gets_403_on_admin_pages_and_sees_only_its_tenant(page: Page, server: Server) -> None:
    sign_in(page, server)
    page.goto(server.url + "/ui/keys")
    if page.get_by_text("acme (").count() == 0:
        page.get_by_label("New tenant name").fill("acme")
        page.get_by_role("button", name="Create tenant").click()
    secret = _create_key(page, server, "acme", "user")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server, secret)
    expect(page.get_by_role("link", name="mlp", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="private-mlp")).to_have_count(0)  # another tenant's model is absent
    for admin_page in ("Keys", "Jobs", "Audit"):  # not offered, and refused below
        expect(page.get_by_role("link", name=admin_page)).to_have_count(0)
    for path in ("/ui/keys", "/ui/audit", "/ui/jobs"):
        response = page.goto(server.url + path)
        assert response is not None and response.status == 403, path
        expect(page.locator("h1")).to_have_text("Not allowed")
    assert page.goto(server.url + "/ui/models/private-mlp").status == 404  # type: ignore[union-attr]
    page.goto(server.url + "/ui/usage?group_by=key")
    key_id = secret.split("-")[1]
    rows = page.locator("#usage-table tbody tr td:first-child").all_inner_texts()
    assert all(r in (key_id, "No usage in this period.") for r in rows)


def test_keyboard_reaches_the_sign_in_form(page: Page, server: Server) -> None:
    page.goto(server.url + "/ui/login")
    assert page.evaluate("document.activeElement.id") == "api_key"  # focused on arrival
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Shift+Tab")
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile("/ui/models"))
    assert axe_violations(page) == []


def test_a_training_job_started_from_the_ui_succeeds_with_its_curve(page: Page, server: Server, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] - x[:, 1] > 0).astype(int)
    data = tmp_path / "train.csv"
    data.write_text(
        "a,b,c,label\n" + "".join(f"{a:.4f},{b:.4f},{c:.4f},{t}\n" for (a, b, c), t in zip(x, y, strict=True))
    )
    sign_in(page, server, path="/ui/jobs")
    page.get_by_label("Training file").set_input_files(str(data))
    page.get_by_label("Model name to register").fill("ui-trained")
    page.get_by_label("Epochs").fill("3")
    page.get_by_label("More hyperparameters").fill("{not json")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#j-error")).to_contain_text("JSON object")  # validated before submit
    page.get_by_label("More hyperparameters").fill('{"batch_size": 32, "hidden": [8]}')
    page.get_by_role("button", name="Start").click()
    expect(page).to_have_url(re.compile("/ui/jobs/"))
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=150_000)
    expect(page.locator("#job-curve canvas").first).to_be_visible()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "ui-trained" not in server.app.state.services.models.models:
        time.sleep(0.2)
    page.goto(server.url + "/ui/models/ui-trained")
    expect(page.locator("h1")).to_contain_text("ui-trained")
