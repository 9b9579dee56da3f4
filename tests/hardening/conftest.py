"""Fixtures of the hostile-input suite: an in-process app with small, stated limits over a tiny model zoo
(``mlp``: FP32 [-1, 4]; ``strings``: an ONNX identity over strings, i.e. a model that needs text)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from models import identity, mlp
from onnx import TensorProto

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings

ADMIN_KEY = "hardening-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# the limits every in-process test runs under (small, so that "over the limit" is cheap to send)
LIMITS: dict[str, Any] = {
    "max_request_bytes": 256 * 1024,
    "max_openai_request_bytes": 64 * 1024,
    "max_control_request_bytes": 8 * 1024,
    "max_tensor_elements": 100_000,
    "max_upload_bytes": 1024 * 1024,
    "max_upload_columns": 100,
    "max_upload_nesting": 8,
}
MAX_MESSAGE = 600  # no error message may echo a long user string back in full


def build_models(home: Path) -> None:
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(home.parent / "src" / "mlp.onnx"), "mlp", max_batch_size=32)
    import_onnx(repo, identity(home.parent / "src" / "strings.onnx", TensorProto.STRING), "strings", max_batch_size=8)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("hardening") / "home"
    build_models(home)
    settings = Settings(home=home, admin_key=ADMIN_KEY, catalog="none", **LIMITS)
    with TestClient(create_app(settings)) as client:
        client.post("/v1/tenants", json={"name": "acme"}, headers=AUTH)
        yield client


def message(r: Any) -> str:
    """The error message of either error shape, checked for length (long user strings are cut)."""
    err = r.json()["error"]
    text = err if isinstance(err, str) else err["message"]
    assert isinstance(text, str) and text
    assert len(text) <= MAX_MESSAGE, f"message of {len(text)} chars echoes user input: {text[:200]}..."
    return text


def dumps(doc: Any) -> bytes:
    return json.dumps(doc).encode()
