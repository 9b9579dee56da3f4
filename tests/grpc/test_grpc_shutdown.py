"""Graceful shutdown drains gRPC: a stream's in-flight request is answered and the stream ends cleanly, health
turns NOT_SERVING, and the server then refuses new calls."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as tg
from conftest import run_server, write_models
from v2kit import ADMIN_KEY

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
