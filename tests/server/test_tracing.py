"""OpenTelemetry (AIAAS_OTEL_ENDPOINT): a span per request with queue, batch and model children, checked with an
in-process span exporter."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))
from models import mlp
from v2kit import ADMIN_KEY

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server import tracing
from aiaas.server.app import App, create_app
from aiaas.settings import Settings

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402


def _traced_app(tmp_path: Path, fast: bool) -> tuple[App, InMemorySpanExporter]:
    """An app over ``mlp`` whose spans go to the returned in-memory exporter."""
    repo = ModelRepository(tmp_path / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(home=tmp_path, admin_key=ADMIN_KEY, catalog="none", governance="off", fast_path=fast)  # type: ignore[call-arg]
    return create_app(settings, tracer_provider=provider), exporter


ROW = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "routed"])
def test_request_span_with_queue_batch_and_model_children(
    tmp_path: Path, fast: bool, fast_path_calls: list[str]
) -> None:
    app, exporter = _traced_app(tmp_path, fast)
    with TestClient(app) as c:
        r = c.post("/v2/models/mlp/infer", json=ROW, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert r.status_code == 200
    assert fast_path_calls == (["mlp"] if fast else [])  # tracing on, the fast path still serves (and carries the span)
    spans = exporter.get_finished_spans()
    by_name = {s.name: s for s in spans}
    assert {"queue", "batch", "model"} <= set(by_name)
    server = next(s for s in spans if s.kind.name == "SERVER")
    assert (
        server.name == "POST /v2/models/{model}/infer" and server.attributes["http.route"] == "/v2/models/{model}/infer"
    )
    assert (
        server.attributes["http.response.status_code"] == 200
        and server.attributes["url.path"] == "/v2/models/mlp/infer"
    )
    ids = {sp.context.span_id: sp for sp in spans}

    def ancestors(sp):  # type: ignore[no-untyped-def]
        while sp.parent is not None and sp.parent.span_id in ids:
            sp = ids[sp.parent.span_id]
            yield sp

    for child in ("queue", "batch"):  # inside the request's span (FastAPI may add its own span in between)
        assert server in list(ancestors(by_name[child])) and by_name[child].context.trace_id == server.context.trace_id
    assert by_name["model"].parent.span_id == by_name["batch"].context.span_id
    assert by_name["batch"].attributes["aiaas.batch_size"] == 2 and by_name["model"].attributes["aiaas.model"] == "mlp"
    assert by_name["queue"].end_time <= by_name["batch"].start_time <= by_name["model"].end_time <= server.end_time


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "routed"])
def test_the_fast_path_span_is_the_routed_one(tmp_path: Path, fast: bool, fast_path_calls: list[str]) -> None:
    """Version route, an error answer and a propagated parent: the same server span either way."""
    app, exporter = _traced_app(tmp_path, fast)
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with TestClient(app) as c:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}", "traceparent": parent}
        assert c.post("/v2/models/mlp/versions/1/infer", json=ROW, headers=auth).status_code == 200
        assert c.post("/v2/models/nope/infer", json=ROW, headers=auth).status_code == 404
    assert fast_path_calls == (["mlp", "nope"] if fast else [])
    servers = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert [s.name for s in servers] == [
        "POST /v2/models/{model}/versions/{version}/infer",
        "POST /v2/models/{model}/infer",
    ]
    assert [s.attributes["http.response.status_code"] for s in servers] == [200, 404]
    assert all(s.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C for s in servers)


def test_off_without_an_endpoint_and_a_clear_error_without_the_extra(tmp_path: Path) -> None:
    assert tracing.tracer_provider(Settings(home=tmp_path)) is None
    provider = tracing.tracer_provider(Settings(home=tmp_path, otel_endpoint="http://127.0.0.1:4318"))  # type: ignore[call-arg]
    assert provider is not None
    provider.shutdown()
