"""Fixtures of the in-process HTTP tests: a repository holding one model of every kind, good and broken."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from models import mlp, scale
from v2kit import ADMIN_KEY, write_pipeline, write_upper_model

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings


def build_zoo(models_dir: Path, src: Path) -> None:
    """mlp (onnx, batched), upper (python, BYTES), double/triple (onnx) chained by pipe, a pipeline whose second
    step gets the wrong shape, a model.yaml that is not YAML and an .onnx that is not ONNX."""
    repo = ModelRepository(models_dir)
    repo.ensure()
    import_onnx(repo, mlp(src / "mlp.onnx"), "mlp", max_batch_size=32)
    import_onnx(repo, scale(src / "double.onnx", 2.0), "double", max_batch_size=8)
    import_onnx(repo, scale(src / "triple.onnx", 3.0), "triple", max_batch_size=8)
    write_upper_model(models_dir)
    fp32 = {"datatype": "FP32", "shape": [-1, -1]}
    write_pipeline(
        models_dir,
        "pipe",
        steps=[
            {"name": "twice", "model": "double", "inputs": {"x": "x"}},
            {"name": "thrice", "model": "triple", "inputs": {"x": "twice.y"}},
        ],
        outputs={"y": "thrice.y", "doubled": "twice.y"},
        inputs=[{"name": "x", **fp32}],
    )
    write_pipeline(
        models_dir,
        "badpipe",
        steps=[
            {"name": "twice", "model": "double", "inputs": {"x": "x"}},
            {"name": "classify", "model": "mlp", "inputs": {"x": "twice.y"}},
        ],
        outputs={"y": "classify.y"},
    )
    (models_dir / "broken" / "1").mkdir(parents=True)
    (models_dir / "broken" / "model.yaml").write_text("backend: [onnx\n", encoding="utf-8")
    (models_dir / "corrupt" / "1").mkdir(parents=True)
    (models_dir / "corrupt" / "model.yaml").write_text("backend: onnx\n", encoding="utf-8")
    (models_dir / "corrupt" / "1" / "model.onnx").write_bytes(b"this is not a protobuf")


def zoo_settings(home: Path, **kw: object) -> Settings:
    """Only the bootstrap admin key (governance "off"): these tests are about the serving core, and skipping the
    database keeps each app cheap. The real-server tests run with the default governance."""
    kw.setdefault("admin_key", ADMIN_KEY)
    kw.setdefault("catalog", "none")
    kw.setdefault("governance", "off")
    return Settings(home=home, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def zoo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("zoo") / "home"
    build_zoo(home / "models", home.parent / "src")
    return home


@pytest.fixture(scope="module")
def zoo(zoo_home: Path) -> Iterator[TestClient]:
    """One app over the zoo for tests that do not change it. Server errors become 500 answers, as in production."""
    with TestClient(create_app(zoo_settings(zoo_home)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A new app over a new zoo (for tests that load, unload or change settings)."""
    clients: list[TestClient] = []
    home = tmp_path / "home"
    build_zoo(home / "models", tmp_path / "src")

    def make(**kw: object) -> TestClient:
        c = TestClient(create_app(zoo_settings(home, **kw)), raise_server_exceptions=False)
        c.__enter__()
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.__exit__(None, None, None)
