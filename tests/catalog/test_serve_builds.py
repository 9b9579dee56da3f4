"""The server builds its catalog in the background: models show LOADING ("building") and turn READY when built,
a model whose system package is missing is UNAVAILABLE with the install command while the rest keep serving,
``AIAAS_CATALOG=none`` builds nothing, and an unknown name is logged while the known ones are served."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from models import mlp

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement
from aiaas.catalog.plugin import BuiltinCatalog
from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository, plugins
from aiaas.registry.onnx_import import import_onnx
from aiaas.registry.plugins import Catalog
from aiaas.server.app import create_app
from aiaas.service import catalog as catalog_service
from aiaas.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from v2kit import ADMIN_KEY, AUTH, running_server

NAMES = ["breast-cancer", "vader-sentiment"]
DEADLINE_S = 300  # a hang guard, not a timing check: two quick builds (~10 s alone) run niced on a busy machine


def needs(*names: str) -> None:
    missing = {n: all_specs()[n].requires.missing() for n in names if all_specs()[n].requires.missing()}
    if missing:
        pytest.skip(f"needs: {missing}")


def poll(
    fetch: Callable[[], list[dict[str, Any]]],
    done: Callable[[dict[str, dict[str, Any]]], bool],
    seen: list[tuple[str, str, str]] | None = None,
    deadline_s: float = DEADLINE_S,
) -> dict[str, dict[str, Any]]:
    """Poll the repository index until ``done`` holds for it; records every (name, state, reason) seen."""
    end = time.monotonic() + deadline_s
    rows: dict[str, dict[str, Any]] = {}
    while time.monotonic() < end:
        rows = {r["name"]: r for r in fetch()}
        if seen is not None:
            for r in rows.values():
                if (r["name"], r["state"], r["reason"]) not in seen:
                    seen.append((r["name"], r["state"], r["reason"]))
        if done(rows):
            return rows
        time.sleep(0.1)
    raise AssertionError(f"index never got there in {deadline_s}s; last: {rows}")


# -- a real `aiaas serve` -------------------------------------------------------------------------------------
def test_serve_builds_the_catalog_in_the_background(tmp_path: Path) -> None:
    needs(*NAMES)
    home = tmp_path / "home"
    with running_server(
        home, ADMIN_KEY, AIAAS_CATALOG=",".join(NAMES), AIAAS_CATALOG_QUICK="1", AIAAS_GOVERNANCE="off"
    ) as server:

        def index() -> list[dict[str, Any]]:
            r = httpx.post(server.url + "/v2/repository/index", json={}, headers=AUTH, timeout=10)
            assert r.status_code == 200, r.text
            return r.json()

        seen: list[tuple[str, str, str]] = []
        first = {r["name"]: r for r in index()}
        # the builds take seconds; right after the start both are listed, waiting or building
        assert set(first) == set(NAMES), first
        assert all(r["state"] == "LOADING" for r in first.values()), first
        try:
            rows = poll(
                index,
                lambda rows: (
                    all(rows.get(n, {}).get("state") == "READY" for n in NAMES)
                    or any(r["state"] == "UNAVAILABLE" for r in rows.values())
                ),
                seen,
            )
        except AssertionError as e:
            logs = {p.name: p.read_text()[-1500:] for p in home.glob("logs/catalog-*.log")}
            raise AssertionError(f"{e}\nseen: {seen}\nbuild logs: {logs}\nserver: {server.output()[-2000:]}") from None
        assert all(rows[n]["state"] == "READY" for n in NAMES), (rows, server.output()[-3000:])
        building = [(n, reason) for n, state, reason in seen if state == "LOADING" and "building" in reason]
        assert {n for n, _ in building} == set(NAMES), seen  # each was shown as being built, one at a time

        # each answers its README example
        for name in NAMES:
            r = httpx.post(
                f"{server.url}/v2/models/{name}/infer", content=all_specs()[name].example, headers=AUTH, timeout=30
            )
            assert r.status_code == 200, r.text
            out = {o["name"]: o["data"] for o in r.json()["outputs"]}
            assert out["label"] == [{"breast-cancer": "malignant", "vader-sentiment": "negative"}[name]]
        for name in NAMES:
            log = (home / "logs" / f"catalog-{name}.log").read_text()
            assert f"STATUS {name} built" in log
            info = ModelRepository(home / "models").read(name).config.card.extra["catalog"]  # type: ignore[union-attr]
            assert info["quick"] is True


# -- in-process CatalogRunner ---------------------------------------------------------------------------------
def never_built(ctx: BuildContext) -> BuildResult:
    raise AssertionError("a model whose requirement is missing must not be built")


MISSING = CatalogSpec(
    name="needs-a-deb",
    scenario="medical",
    task="test",
    summary="needs a Debian package that is not installed",
    source="tests",
    license="MIT",
    build=never_built,
    floors=(Floor("auc", ">=", 0.5),),
    example="{}",
    requires=Requirement(
        apt=(("aiaas-no-such-deb", "/nonexistent/aiaas-probe"),),
        pip=(("aiaas_no_such_module", "aiaas-no-such-pkg==1.0"),),
    ),
)


class OnlyMissing(BuiltinCatalog):
    """A catalog plug-in whose one model needs what is not installed."""

    def specs(self) -> dict[str, CatalogSpec]:
        return {MISSING.name: MISSING}


@pytest.fixture
def home_with_mlp(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    return home


@contextlib.contextmanager
def client_for(home: Path, catalog: str) -> Iterator[TestClient]:
    app = create_app(Settings(home=home, admin_key=ADMIN_KEY, catalog=catalog, catalog_quick=True, governance="off"))
    with TestClient(app) as client:
        yield client


def index_of(client: TestClient) -> Callable[[], list[dict[str, Any]]]:
    def fetch() -> list[dict[str, Any]]:
        r = client.post("/v2/repository/index", json={}, headers=AUTH)
        assert r.status_code == 200, r.text
        return r.json()

    return fetch


def mlp_answers(client: TestClient) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    r = client.post("/v2/models/mlp/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text


def test_missing_requirement_is_unavailable_with_the_install_command(
    home_with_mlp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_service, "installed_catalog", lambda: Catalog([OnlyMissing()]))
    with client_for(home_with_mlp, MISSING.name) as client:
        rows = poll(index_of(client), lambda rows: MISSING.name in rows, deadline_s=30)
        row = rows[MISSING.name]
        assert row["state"] == "UNAVAILABLE"
        assert row["reason"] == ("needs: apt-get install -y aiaas-no-such-deb && pip install 'aiaas-no-such-pkg==1.0'")
        assert rows["mlp"]["state"] == "READY"
        r = client.post(
            f"/v2/models/{MISSING.name}/infer",
            json=json.loads('{"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]}'),
            headers=AUTH,
        )
        assert r.status_code == 503 and "apt-get install -y aiaas-no-such-deb" in r.json()["error"]
        mlp_answers(client)  # the server keeps serving
    assert not (home_with_mlp / "models" / MISSING.name).exists()
    assert not list(home_with_mlp.glob("logs/catalog-*.log"))


def test_catalog_none_builds_nothing(home_with_mlp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(catalog_service, "installed_catalog", lambda: calls.append(1) or Catalog([OnlyMissing()]))
    with client_for(home_with_mlp, "none") as client:
        mlp_answers(client)
        assert [r["name"] for r in index_of(client)()] == ["mlp"]
    assert calls == []
    assert ModelRepository(home_with_mlp / "models").names() == ["mlp"]


def test_no_catalog_plugin_installed_serves_the_repository(
    home_with_mlp: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aiaas.catalog")
    monkeypatch.setattr(catalog_service, "installed_catalog", lambda: plugins.discover("aiaas.tests-no-plugins"))
    with client_for(home_with_mlp, "all") as client:
        mlp_answers(client)
        assert [r["name"] for r in index_of(client)()] == ["mlp"]
        r = client.get("/v2/health/ready")
        assert r.status_code == 200, r.text
    assert any("no catalog plug-in is installed" in r.getMessage() for r in caplog.records)


def test_unknown_name_is_logged_and_the_rest_is_served(home_with_mlp: Path, caplog: pytest.LogCaptureFixture) -> None:
    needs("vader-sentiment")
    caplog.set_level(logging.ERROR, logger="aiaas.catalog")
    with client_for(home_with_mlp, "no-such-model,vader-sentiment") as client:
        rows = poll(
            index_of(client), lambda rows: rows.get("vader-sentiment", {}).get("state") in ("READY", "UNAVAILABLE")
        )
        assert rows["vader-sentiment"]["state"] == "READY", rows
        assert "no-such-model" not in rows
        r = client.post(
            "/v2/models/vader-sentiment/infer", content=all_specs()["vader-sentiment"].example, headers=AUTH
        )
        assert r.status_code == 200, r.text
        assert {o["name"]: o["data"] for o in r.json()["outputs"]}["label"] == ["negative"]
        mlp_answers(client)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("unknown catalog model(s) ['no-such-model']" in m and "AIAAS_CATALOG" in m for m in errors), errors
