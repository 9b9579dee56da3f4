"""AIAAS_FAST_PATH (server/fastpath.py): V2 infer answers are the same bytes and headers with the fast path on
and off, successes and every kind of error, and the fast path really serves them when it is on."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from models import mlp
from v2kit import ADMIN_KEY, AUTH, binary_request, write_upper_model

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.server.fastpath import FastPath, http_protocol
from aiaas.settings import Settings

ROW = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}
LIMIT = 4096  # max_request_bytes of these apps
_x = np.arange(8, dtype=np.float32).reshape(2, 4)
_binary_body, _binary_headers = binary_request({"x": _x}, outputs=[{"name": "y", "parameters": {"binary_data": True}}])
_json = json.dumps(ROW).encode()
_JSON = {**AUTH, "Content-Type": "application/json"}
_TEXT = {"id": "r1", "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["ab", "cd"]}]}
_WRONG = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": [1, 2]}]}

# name -> (path, body, headers): what a client may send, good and bad
REQUESTS: dict[str, tuple[str, bytes | list[bytes], dict[str, str]]] = {
    "json": ("/v2/models/mlp/infer", _json, _JSON),
    "version route": ("/v2/models/mlp/versions/1/infer", _json, _JSON),
    "binary in and out": ("/v2/models/mlp/infer", _binary_body, {**AUTH, **_binary_headers}),
    "bytes model": ("/v2/models/upper/infer", json.dumps(_TEXT).encode(), _JSON),
    "gzip body": ("/v2/models/mlp/infer", gzip.compress(_json), {**_JSON, "Content-Encoding": "gzip"}),
    "no key": ("/v2/models/mlp/infer", _json, {"Content-Type": "application/json"}),
    "wrong key": ("/v2/models/mlp/infer", _json, {"Authorization": "Bearer nope", "Content-Type": "application/json"}),
    "not json": ("/v2/models/mlp/infer", b"{not json", _JSON),
    "wrong shape": ("/v2/models/mlp/infer", json.dumps(_WRONG).encode(), _JSON),
    "unknown model": ("/v2/models/nope/infer", _json, _JSON),
    "unknown version": ("/v2/models/mlp/versions/9/infer", _json, _JSON),
    "bad header length": ("/v2/models/mlp/infer", _json, {**_JSON, "Inference-Header-Content-Length": "x1"}),
    "too large": ("/v2/models/mlp/infer", b"{" + b" " * LIMIT + b"}", _JSON),
    "too large, chunked": ("/v2/models/mlp/infer", [b"{", b" " * LIMIT, b"}"], _JSON),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fastpath")
    repo = ModelRepository(root / "home" / "models")
    repo.ensure()
    import_onnx(repo, mlp(root / "mlp.onnx"), "mlp", max_batch_size=8)
    write_upper_model(root / "home" / "models")
    return root / "home"


def _settings(home: Path, fast: bool, **kw: Any) -> Settings:
    return Settings(
        home=home,
        admin_key=ADMIN_KEY,
        catalog="none",
        governance="off",
        fast_path=fast,  # type: ignore[call-arg]
        max_request_bytes=LIMIT,
        **kw,
    )


@pytest.fixture(scope="module", params=[False, True], ids=["access-log-off", "access-log-on"])
def clients(home: Path, request: pytest.FixtureRequest) -> Iterator[dict[bool, TestClient]]:
    """An app with the fast path off and one with it on (each with or without the access log)."""
    on, off = (
        create_app(_settings(home, True, access_log=request.param)),
        create_app(_settings(home, False, access_log=request.param)),
    )
    assert on.fast_path is not None and off.fast_path is None
    with TestClient(on, raise_server_exceptions=False) as c_on, TestClient(off, raise_server_exceptions=False) as c_off:
        yield {True: c_on, False: c_off}


def _answer(
    c: TestClient, path: str, body: bytes | list[bytes], headers: dict[str, str]
) -> tuple[int, list[tuple[str, str]], bytes]:
    content = body if isinstance(body, bytes) else iter(body)  # a list: sent chunked, with no content-length
    r = c.post(path, content=content, headers={"x-request-id": "same-id", **headers})
    return r.status_code, r.headers.multi_items(), r.content


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_same_bytes_and_headers_with_the_fast_path_on_and_off(
    name: str, clients: dict[bool, TestClient], fast_path_calls: list[str]
) -> None:
    path, body, headers = REQUESTS[name]
    off = _answer(clients[False], path, body, headers)
    assert fast_path_calls == []  # AIAAS_FAST_PATH=0: the routed path answered
    on = _answer(clients[True], path, body, headers)
    # AIAAS_FAST_PATH=1: the fast path answered, oversized bodies included (infer authenticates first, then reads)
    assert len(fast_path_calls) == 1
    assert on == off
    expected = {
        "json": 200,
        "no key": 401,
        "not json": 400,
        "unknown model": 404,
        "too large": 413,
        "too large, chunked": 413,
    }
    assert on[0] == expected.get(name, on[0])


def test_an_unhandled_error_answers_the_same_500_and_reaches_the_server(
    clients: dict[bool, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = []
    for fast in (False, True):
        dataplane = clients[fast].app.state.services.dataplane  # type: ignore[attr-defined]

        async def broken(*args: Any, **kw: Any) -> Any:
            raise RuntimeError("model exploded")

        monkeypatch.setattr(dataplane, "infer", broken)
        answers.append(_answer(clients[fast], *REQUESTS["json"]))
        with pytest.raises(RuntimeError, match="model exploded"):  # re-raised to the server, as Starlette does
            TestClient(clients[fast].app).post(*REQUESTS["json"][:1], content=_json, headers=_JSON)
    assert answers[0] == answers[1] and answers[0][0] == 500


def test_off_touches_no_framework_internals(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any) -> Any:
        raise AssertionError("AIAAS_FAST_PATH=0 must not reach the fast path")

    monkeypatch.setattr(FastPath, "telemetry", forbidden)
    monkeypatch.setattr(FastPath, "infer", forbidden)
    app = create_app(_settings(home, False))
    assert app.fast_path is None and http_protocol(False) == "auto"
    with TestClient(app) as c:
        assert c.post("/v2/models/mlp/infer", json=ROW, headers=AUTH).status_code == 200


def test_middleware_or_overrides_send_infer_down_the_routed_path(home: Path, fast_path_calls: list[str]) -> None:
    calls = fast_path_calls
    app = create_app(_settings(home, True))
    with TestClient(app) as c:
        assert c.post("/v2/models/mlp/infer", json=ROW, headers=AUTH).status_code == 200 and calls == ["mlp"]
        app.dependency_overrides[object] = object
        assert c.post("/v2/models/mlp/infer", json=ROW, headers=AUTH).status_code == 200 and calls == ["mlp"]
