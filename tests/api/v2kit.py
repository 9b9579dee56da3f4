"""Shared helpers for the HTTP, real-server, CLI and client tests of the serving core.

Model directories written straight into a repository (python-backend and pipeline models have no import
command), V2 request builders for the JSON and binary forms, and a real ``aiaas serve`` subprocess that is
always killed. Imported by ``tests/server``, ``tests/cli`` and ``tests/client`` through their conftest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}

# -- model directories --------------------------------------------------------------------------
UPPER_SOURCE = '''
import json

import numpy as np
from aiaas.runtime import Model


class Upper(Model):
    """BYTES in, BYTES out: upper-cases each element, adds a suffix, reports lengths and the parameters seen."""

    def load(self):
        self.suffix = self.config.parameters.get("suffix", "")

    def predict(self, inputs, parameters):
        text = inputs["text"]
        suffix = str(parameters.get("suffix", self.suffix)).encode()
        flat = [bytes(v).upper() + suffix for v in text.reshape(-1)]
        lengths = np.array([len(v) for v in text.reshape(-1)], dtype=np.int32).reshape(text.shape)
        seen = np.array([json.dumps(sorted(parameters)).encode()], dtype=object)
        return {"upper": np.array(flat, dtype=object).reshape(text.shape), "length": lengths, "params": seen}
'''

SLEEPY_SOURCE = '''
import time
import uuid
from pathlib import Path

from aiaas.runtime import Model


class Sleepy(Model):
    """An in-flight request the shutdown tests control without guessing at timings: marks that it started (a
    file in parameters.marker_dir), then holds until the file parameters.gate exists (or sleeps
    parameters.seconds when there is no gate), then returns x + 1."""

    def load(self):
        pass

    def predict(self, inputs, parameters):
        p = self.config.parameters
        if p.get("marker_dir"):
            (Path(p["marker_dir"]) / uuid.uuid4().hex).touch()
        if p.get("gate"):
            deadline = time.monotonic() + 120
            while not Path(p["gate"]).exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            time.sleep(float(p.get("seconds", 1.0)))
        return {"y": inputs["x"] + 1}
'''


def write_python_model(
    models_dir: Path,
    name: str,
    source: str,
    cls: str,
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
    **config: Any,
) -> Path:
    """A python-backend model: ``model.py:<cls>`` in version dir 1, as Triton's python backend lays it out."""
    mdir = models_dir / name
    (mdir / "1").mkdir(parents=True, exist_ok=True)
    (mdir / "1" / "model.py").write_text(textwrap.dedent(source), encoding="utf-8")
    parameters = {"class": f"model.py:{cls}", **config.pop("parameters", {})}
    doc = {"backend": "python", "inputs": inputs, "outputs": outputs, "parameters": parameters, **config}
    (mdir / "model.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return mdir


def write_upper_model(models_dir: Path, name: str = "upper") -> Path:
    return write_python_model(
        models_dir,
        name,
        UPPER_SOURCE,
        "Upper",
        inputs=[{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        outputs=[
            {"name": "upper", "datatype": "BYTES", "shape": [-1]},
            {"name": "length", "datatype": "INT32", "shape": [-1]},
            {"name": "params", "datatype": "BYTES", "shape": [1]},
        ],
        parameters={"suffix": "!"},
    )


def write_sleepy_model(
    models_dir: Path, marker_dir: Path, gate: Path | None = None, name: str = "sleepy", instances: int = 4
) -> Path:
    """No batching and several instances: concurrent requests each hold their own thread."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    parameters: dict[str, Any] = {"seconds": 1.0, "marker_dir": str(marker_dir)}
    if gate is not None:
        parameters["gate"] = str(gate)
    return write_python_model(
        models_dir,
        name,
        SLEEPY_SOURCE,
        "Sleepy",
        inputs=[{"name": "x", "datatype": "FP32", "shape": [-1]}],
        outputs=[{"name": "y", "datatype": "FP32", "shape": [-1]}],
        parameters=parameters,
        instances=instances,
    )


def write_pipeline(
    models_dir: Path, name: str, steps: list[dict[str, Any]], outputs: dict[str, str], **config: Any
) -> Path:
    mdir = models_dir / name
    mdir.mkdir(parents=True, exist_ok=True)
    doc = {"backend": "pipeline", "pipeline": {"steps": steps, "outputs": outputs}, **config}
    (mdir / "model.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    return mdir


def big_mlp(path: Path, n_in: int = 1024, n_hidden: int = 6144, n_out: int = 1024) -> Path:
    """An MLP with ~50 MB of FP32 weights (for memory tests); weights are constant, so building it is fast."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1 = numpy_helper.from_array(np.full((n_in, n_hidden), 0.001, dtype=np.float32), "w1")
    w2 = numpy_helper.from_array(np.full((n_hidden, n_out), 0.001, dtype=np.float32), "w2")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["y"])],
        "big_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# -- V2 requests --------------------------------------------------------------------------------
def _v2_datatype(arr: np.ndarray) -> str:
    from aiaas.codecs.datatypes import v2_datatype

    return v2_datatype(arr)


def json_input(name: str, arr: np.ndarray) -> dict[str, Any]:
    text = arr.dtype.kind in ("O", "S")
    data: list[Any] = [v.decode() for v in arr.reshape(-1)] if text else arr.reshape(-1).tolist()
    return {"name": name, "shape": list(arr.shape), "datatype": _v2_datatype(arr), "data": data}


def bytes_blob(arr: np.ndarray) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + bytes(v) for v in arr.reshape(-1))


def binary_request(
    inputs: dict[str, np.ndarray], outputs: list[dict[str, Any]] | None = None, **doc: Any
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a request with every input in the binary tensor extension."""
    entries, blobs = [], []
    for name, arr in inputs.items():
        dt = _v2_datatype(arr)
        blob = bytes_blob(arr) if dt == "BYTES" else np.ascontiguousarray(arr).tobytes()
        entries.append(
            {
                "name": name,
                "shape": list(arr.shape),
                "datatype": dt,
                "parameters": {"binary_data_size": len(blob)},
            }
        )
        blobs.append(blob)
    head: dict[str, Any] = {"inputs": entries, **doc}
    if outputs is not None:
        head["outputs"] = outputs
    raw = json.dumps(head).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(raw))}
    return raw + b"".join(blobs), headers


def parse_bytes(buf: bytes) -> list[bytes]:
    items, pos = [], 0
    while pos < len(buf):
        (n,) = struct.unpack_from("<I", buf, pos)
        items.append(buf[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return items


def decode_response(body: bytes, header_length: str | None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The JSON header and every output as numpy (binary or JSON), the way a V2 client reads them."""
    from aiaas.types.datatypes import V2_NUMPY_NAMES

    hlen = int(header_length) if header_length is not None else len(body)
    head = json.loads(body[:hlen])
    offset = hlen
    out: dict[str, np.ndarray] = {}
    for o in head["outputs"]:
        size = (o.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            raw = body[offset : offset + size]
            offset += size
            if o["datatype"] == "BYTES":
                out[o["name"]] = np.array(parse_bytes(raw), dtype=object).reshape(o["shape"])
            else:
                out[o["name"]] = np.frombuffer(raw, dtype=V2_NUMPY_NAMES[o["datatype"]]).reshape(o["shape"])
        elif o["datatype"] == "BYTES":
            out[o["name"]] = np.array([s.encode() for s in o["data"]], dtype=object).reshape(o["shape"])
        else:
            out[o["name"]] = np.asarray(o["data"], dtype=V2_NUMPY_NAMES[o["datatype"]]).reshape(o["shape"])
    assert offset == len(body), f"{len(body) - offset} unread bytes after the last binary output"
    return head, out


class AppTransport(httpx.BaseTransport):
    """A sync httpx transport into the app through a running ``TestClient`` (for ``aiaas.client.Client``).

    httpx's ASGITransport is async-only, and the app's models live on the event loop the TestClient runs the
    lifespan on, so requests must go through that same TestClient. Only its public ``request`` is used and
    plain values cross over, because the TestClient may be built on ``httpx2`` rather than ``httpx``.
    """

    def __init__(self, test_client: Any) -> None:
        self.test_client = test_client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        r = self.test_client.request(
            request.method, str(request.url), content=request.read(), headers=request.headers.multi_items()
        )
        return httpx.Response(r.status_code, headers=r.headers.multi_items(), content=r.content, request=request)


# -- a real server --------------------------------------------------------------------------------
@contextlib.contextmanager
def uvicorn_thread(app: Any, port: int, start_timeout: float = 120.0) -> Iterator[Any]:
    """``app`` under uvicorn in a daemon thread on 127.0.0.1:``port``; yields the ``uvicorn.Server`` once started
    (``should_exit = True`` begins its graceful shutdown) and stops and joins it on exit."""
    import uvicorn

    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield srv
    finally:
        srv.should_exit = True
        thread.join(timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path, admin_key: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIAAS_")}
    env.update({"AIAAS_CATALOG": "none", "AIAAS_HOME": str(home), "AIAAS_LOG_LEVEL": "warning", **extra})
    if admin_key is not None:
        env["AIAAS_ADMIN_KEY"] = admin_key
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class ServerProcess:
    """``python -m aiaas.cli.main serve`` on a free port; ``stop()`` (or the context manager) always kills it."""

    def __init__(self, home: Path, admin_key: str | None, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_key = admin_key
        self.log = home.parent / f"server-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiaas.cli.main", "serve", "--home", str(home), "--port", str(self.port)],
            env=server_env(home, admin_key, **env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=str(REPO_ROOT),
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> ServerProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                ok = httpx.get(self.url + "/v2/health/ready", timeout=2).status_code == 200
                if ok and self.proc.poll() is None:  # ours, not another server that took the port
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_file.close()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_server(home: Path, admin_key: str | None, **env: str) -> Iterator[ServerProcess]:
    server = start_server(home, admin_key, **env)
    try:
        yield server
    finally:
        server.stop()


def start_server(home: Path, admin_key: str | None, attempts: int = 3, **env: str) -> ServerProcess:
    """Start and wait until ready; retries on a new port if another process took the free one meanwhile."""
    for attempt in range(attempts):
        server = ServerProcess(home, admin_key, **env)
        try:
            return server.wait_ready()
        except RuntimeError:
            server.stop()
            if "address already in use" not in server.output().lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")
