"""Graceful shutdown drains gRPC: a stream's in-flight request is answered and the stream ends cleanly, and the
server then refuses new calls; a gRPC port already in use is a clear error."""

from __future__ import annotations

import queue
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as tg
from conftest import run_server, write_models
from v2kit import ADMIN_KEY

from aiaas.server.grpc_server import _check_free

H = {"authorization": f"Bearer {ADMIN_KEY}"}


def test_shutdown_drains_streams(tmp_path: Path) -> None:
    write_models(tmp_path / "home", tmp_path / "src", llm=False)
    got: queue.Queue[Any] = queue.Queue()
    with run_server(home=tmp_path / "home", governance="off") as s:
        c = tg.InferenceServerClient(s.grpc_url)
        c.start_stream(lambda result, error: got.put((result, error)), headers=H)
        inp = tg.InferInput("x", [1], "FP32")
        inp.set_data_from_numpy(np.array([41.0], np.float32))
        c.async_stream_infer("sleepy", [inp], request_id="in-flight")  # takes 1 s
        time.sleep(0.3)
        s.server.should_exit = True  # SIGTERM's path: uvicorn stops, then the lifespan drains gRPC
        result, error = got.get(timeout=30)
        assert error is None, error
        assert result.get_response().id == "in-flight" and result.as_numpy("y").tolist() == [42.0]
        c.stop_stream()
        c.close()
    # leaving run_server joined the server thread: the shutdown has finished
    with tg.InferenceServerClient(s.grpc_url) as after:
        try:
            after.is_server_live(client_timeout=2)
            raise AssertionError("the gRPC server still answers after shutdown")
        except tg.InferenceServerException as e:
            assert e.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(RuntimeError, match=r"cannot bind gRPC on 127\.0\.0\.1:\d+: it is in use"):
            _check_free("127.0.0.1", taken.getsockname()[1])
