"""A real aiaas server (uvicorn in a thread, loopback, free ports) with gRPC on, and its models: ``mlp`` (onnx,
batched), ``echo`` (python: returns its inputs, any datatype), ``upper`` (python, BYTES), ``sleepy`` (1 s per
request) and, when the llm extra is installed, ``tiny-llm`` (a random decoder built locally)."""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from models import mlp
from v2kit import (
    ADMIN_KEY,
    free_port,
    uvicorn_thread,
    write_python_model,
    write_sleepy_model,
    write_upper_model,
)

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx

ECHO_SOURCE = """
from aiaas.runtime import Model

class Echo(Model):
    def load(self):
        pass

    def predict(self, inputs, parameters):
        return {"out_" + k: v for k, v in inputs.items()}
"""

LLM_YAML = (
    "backend: llm\ntask: text-generation\nparameters: {max_num_seqs: 4, max_waiting: 4, default_max_tokens: 32}\n"
)


@dataclass
class Served:
    app: Any
    http_port: int
    grpc_port: int
    server: Any = None  # the uvicorn.Server (should_exit = True starts the graceful shutdown)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def services(self) -> Any:
        return self.app.state.services


def write_models(home: Path, tmp: Path, llm: bool = True) -> None:
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(tmp / "mlp.onnx"), "mlp", max_batch_size=32)
    write_python_model(home / "models", "echo", ECHO_SOURCE, "Echo", inputs=[], outputs=[])
    write_upper_model(home / "models")
    write_upper_model(home / "models", name="spare")  # unloaded and loaded again by the repository test
    write_sleepy_model(home / "models", tmp / "markers", instances=2)
    if llm:
        try:
            from aiaas.llm.tiny import build_model
        except ImportError:  # the llm extra is not installed: the streaming LLM tests skip
            return
        d = home / "models" / "tiny-llm"
        d.mkdir(parents=True)
        build_model(tmp / "tiny-hf")
        shutil.copytree(tmp / "tiny-hf", d / "1")
        (d / "model.yaml").write_text(LLM_YAML)


@contextlib.contextmanager
def run_server(**settings: Any) -> Iterator[Served]:
    """create_app under uvicorn in a thread, on free ports (HTTP and gRPC); stopped (gracefully) on exit."""
    from aiaas.server.app import create_app
    from aiaas.settings import Settings

    http_port, grpc_port = free_port(), free_port()
    settings.setdefault("admin_key", ADMIN_KEY)
    app = create_app(Settings(catalog="none", host="127.0.0.1", port=http_port, grpc_port=grpc_port, **settings))
    with uvicorn_thread(app, http_port) as srv:
        yield Served(app, http_port, grpc_port, srv)


@pytest.fixture(scope="package")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("grpc")
    write_models(root / "home", root / "src")
    with run_server(home=root / "home") as s:
        yield s


@pytest.fixture(scope="package")
def llm_name(served: Served) -> str:
    if "tiny-llm" not in served.services.models.models:
        pytest.skip("the llm extra is not installed")
    return "tiny-llm"
