"""Request ids, JSON log lines and the access log (AIAAS_LOG_FORMAT=json / AIAAS_ACCESS_LOG=1); off by default."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from models import mlp
from v2kit import ADMIN_KEY

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import App, create_app
from aiaas.server.observe import AccessLog, JsonFormatter, RequestIdFilter
from aiaas.settings import Settings

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
ROW = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(old)


def _app(tmp_path: Path, **kw: object) -> App:
    repo = ModelRepository(tmp_path / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    return create_app(Settings(home=tmp_path, admin_key=ADMIN_KEY, catalog="none", **kw))  # type: ignore[arg-type]


def test_off_by_default_the_app_is_untouched(tmp_path: Path) -> None:
    app = _app(tmp_path, governance="off")
    assert type(app) is App and app.access_log is None
    with TestClient(app) as c:
        assert "x-request-id" not in c.post("/v2/models/mlp/infer", json=ROW, headers=AUTH).headers


def test_json_lines_carry_the_request_id_and_end_with_an_access_line(tmp_path: Path, log_lines: io.StringIO) -> None:
    app = _app(tmp_path, log_format="json")
    assert type(app) is App and isinstance(app.access_log, AccessLog)
    with TestClient(app) as c:
        r = c.post("/v2/models/mlp/infer", json=ROW, headers={**AUTH, "x-request-id": "req-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        generated = c.post("/v2/repository/models/mlp/load", headers=AUTH).headers["x-request-id"]
        bad = c.get("/v2/models/nope", headers={**AUTH, "x-request-id": "bad id\twith spaces"})
        assert bad.status_code == 404 and bad.headers["x-request-id"] != "bad id\twith spaces"
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    infer = next(d for d in lines if d["logger"] == "aiaas.access" and d.get("request_id") == "req-42")
    assert infer["status"] == 200 and infer["model"] == "mlp" and infer["tenant"] == "system"
    assert infer["method"] == "POST" and infer["latency_ms"] > 0 and infer["level"] == "INFO"
    during = [d for d in lines if d.get("request_id") == generated and d["logger"] == "aiaas.models"]
    assert during and "READY" in during[0]["msg"]  # a line the service wrote while the request ran
    assert next(d for d in lines if d.get("request_id") == bad.headers["x-request-id"])["status"] == 404
