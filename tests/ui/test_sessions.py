"""Console sessions and the traffic timeline without a browser (fast): expiry, a session dying with its key,
the sign-in redirect guard, CSRF on the playground calls, and the histogram quantiles of the charts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from models import mlp

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.service.governance.admin import CLI_PRINCIPAL
from aiaas.service.metrics import Metrics
from aiaas.settings import Settings
from aiaas.ui.routes.auth import _safe_next
from aiaas.ui.timeline import Timeline, quantile

KEY = "sessions-admin-key"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(home=tmp_path / "home", admin_key=KEY, catalog="none"))  # type: ignore[call-arg]
    with TestClient(app) as c:
        yield c


def sign_in(c: TestClient, key: str = KEY) -> str:
    """Signs ``c`` in; returns the session's CSRF token."""
    page = c.get("/ui/login").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = c.post("/ui/login", data={"api_key": key, "login_csrf": token})
    assert r.status_code == 200, r.text
    return re.search(r'name="csrf-token" content="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]


def test_sign_in_needs_the_login_form_token(client: TestClient) -> None:
    client.get("/ui/login")
    r = client.post("/ui/login", data={"api_key": KEY, "login_csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and "aiaas_session" not in r.headers.get("set-cookie", "")


def test_a_session_expires(client: TestClient) -> None:
    client.app.state.ui_sessions.ttl = client.app.state.ui_sessions.ttl * 0  # type: ignore[attr-defined]
    sign_in_page = client.get("/ui/login").text
    token = re.search(r'name="login_csrf" value="([^"]+)"', sign_in_page).group(1)  # type: ignore[union-attr]
    r = client.post("/ui/login", data={"api_key": KEY, "login_csrf": token}, follow_redirects=False)
    assert r.status_code == 303
    r = client.get("/ui/models", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_a_revoked_key_ends_its_sessions_at_once(client: TestClient) -> None:
    admin_csrf = sign_in(client)
    r = client.post("/ui/keys", data={"csrf": admin_csrf, "tenant": "system", "role": "developer"})
    secret = re.search(r'data-testid="secret">([^<]+)<', r.text).group(1).strip()  # type: ignore[union-attr]
    other = TestClient(client.app)
    sign_in(other, secret)
    assert other.get("/ui/keys").status_code == 200
    client.post(f"/ui/keys/{secret.split('-')[1]}/revoke", data={"csrf": admin_csrf})
    r = other.get("/ui/keys", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_playground_calls_need_the_csrf_header(client: TestClient) -> None:
    sign_in(client)
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}
    r = client.post("/ui/api/models/nope/infer", json=body)
    assert r.status_code == 403 and "CSRF" in r.text
    anonymous = TestClient(client.app)
    assert anonymous.post("/ui/api/models/nope/infer", json=body).status_code == 401


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/usage?x=1", "/ui/usage?x=1"),
        ("https://evil.example/ui", "/ui/models"),
        ("//evil.example", "/ui/models"),
        ("/ui\\..", "/ui/models"),
        ("", "/ui/models"),
        ("/v1/keys", "/ui/models"),
    ],
)
def test_the_sign_in_redirect_stays_in_the_console(target: str, expected: str) -> None:
    assert _safe_next(target) == expected


def test_quantiles_interpolate_within_buckets() -> None:
    bounds = [0.01, 0.1, 1.0, float("inf")]
    assert quantile(0.5, bounds, [0, 10, 10, 10]) == pytest.approx(0.055)
    assert quantile(0.99, bounds, [0, 0, 0, 4]) == 1.0  # beyond the last finite bucket: its lower edge
    assert quantile(0.5, bounds, [0, 0, 0, 0]) is None


def test_the_timeline_reports_rate_and_latency_per_interval() -> None:
    metrics = Metrics()
    timeline = Timeline(metrics, interval_s=15)
    timeline.sample()
    for _ in range(30):
        metrics.request_done("m", "1", "success", 0.004, None)
    assert timeline._sampled_at is not None
    timeline._sampled_at -= 10.0  # the previous sample, 10 s ago
    timeline.sample()
    series = timeline.series("m")
    assert series["rps"] == [pytest.approx(3.0, rel=0.01)]
    assert 2.5 <= series["p50"][0] <= 5.0 and 2.5 <= series["p99"][0] <= 5.0


def test_the_cookie_is_secure_under_tls(tmp_path: Path) -> None:
    app = create_app(Settings(home=tmp_path / "home", admin_key=KEY, catalog="none"))  # type: ignore[call-arg]
    with TestClient(app, base_url="https://testserver") as c:
        page = c.get("/ui/login")
        assert "secure" in page.headers["set-cookie"].lower()
        token = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = c.post("/ui/login", data={"api_key": KEY, "login_csrf": token}, follow_redirects=False)
        session_cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("aiaas_session="))
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie


def test_usage_exports_csv_and_bad_filters_get_a_clear_page(client: TestClient) -> None:
    sign_in(client)
    r = client.get("/ui/usage.csv?group_by=day&period=7d")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0] == "day,requests,errors,units_in,units_out,compute_s,cost,avg_latency_ms"
    r = client.get("/ui/usage?group_by=planet", headers={"accept": "text/html"})
    assert r.status_code == 400 and "group_by" in r.text and "<h1>" in r.text
    r = client.get("/ui/jobs/trjob-nope", headers={"accept": "text/html"})
    assert r.status_code == 404 and "Not found" in r.text


def test_the_model_page_lists_its_replicas(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "home" / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    app = create_app(Settings(home=tmp_path / "home", admin_key=KEY, catalog="none"))  # type: ignore[call-arg]
    with TestClient(app) as c:
        sign_in(c)
        page = c.get("/ui/models/mlp")
        assert page.status_code == 200, page.text
        assert 'id="replicas-h"' in page.text and "<td>thread</td>" in page.text and "<td>ready</td>" in page.text


def test_the_limits_and_budget_forms_render_from_one_macro_and_set_what_they_say(client: TestClient) -> None:
    csrf = sign_in(client)
    page = client.get("/ui/keys").text
    for heading, prefix, action in (("limits-h", "l", "/ui/limits"), ("budget-h", "b", "/ui/budgets")):
        form = page[page.index(f'aria-labelledby="{heading}"') :]
        form = form[: form.index("</section>")]
        assert f'<form method="post" action="{action}">' in form and f'name="csrf" value="{csrf}"' in form
        assert f'<select id="{prefix}-scope" name="scope"><option>key</option><option>tenant</option></select>' in form
        assert f'<input id="{prefix}-subject" name="subject" type="text" required>' in form
    r = client.post(
        "/ui/limits",
        data={"csrf": csrf, "scope": "tenant", "subject": "system", "rpm": "7", "upm": "", "concurrency": "3"},
    )
    assert r.status_code == 200 and "limits of tenant system set" in r.text
    r = client.post(
        "/ui/budgets", data={"csrf": csrf, "scope": "tenant", "subject": "system", "limit": "12.5", "period": "day"}
    )
    assert r.status_code == 200 and "budget of tenant system set" in r.text
    admin = client.app.state.governance_admin  # type: ignore[attr-defined]
    limits, budget = (
        admin.get_limits(CLI_PRINCIPAL, "tenant", "system"),
        admin.get_budget(CLI_PRINCIPAL, "tenant", "system"),
    )
    assert (limits["requests_per_minute"], limits["units_per_minute"], limits["concurrency"]) == (7, None, 3), limits
    assert (budget["limit"], budget["period"]) == (12.5, "day"), budget
