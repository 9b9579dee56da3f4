from __future__ import annotations

import os
import sys

# OpenMP threads (torch, onnxruntime's MLAS is separate) sleep instead of spinning between parallel regions: on 2
# cores a spinning thread pins a core that the suite's other process (a served model, a training rank, a catalog
# build beside a server) needs, and a 2-thread torch step then waits on it (measured: a fashion-vae training step
# 18 ms passive vs 680 ms spinning while one core is busy). Set before anything imports torch; subprocesses
# (servers, torchrun ranks) inherit it. A user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numpy's OpenBLAS spins the same way (sklearn's GaussianMixture in the fashion-vae quick build: 49 s with its 2
# threads vs 7 s with one, one core busy); the suite's matrices are small, one BLAS thread is enough.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))

from models import identity, mlp, scale
from strict import enforce

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.server.app import create_app
from aiaas.settings import Settings

ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def repo(home: Path) -> ModelRepository:
    r = ModelRepository(home / "models")
    r.ensure()
    return r


@pytest.fixture
def make_settings(home: Path):
    def make(**kw: object) -> Settings:
        kw.setdefault("home", home)
        kw.setdefault("admin_key", ADMIN_KEY)
        kw.setdefault("catalog", "none")
        return Settings(**kw)  # type: ignore[arg-type]

    return make


@pytest.fixture
def mlp_model(repo: ModelRepository, tmp_path: Path) -> str:
    import_onnx(repo, mlp(tmp_path / "src" / "mlp.onnx"), "mlp", max_batch_size=32)
    return "mlp"


@pytest.fixture
def client(make_settings, mlp_model: str) -> Iterator[TestClient]:
    app = create_app(make_settings())
    with TestClient(app) as c:
        yield c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    enforce(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    enforce(outcome.get_result())


__all__ = ["ADMIN_KEY", "AUTH", "identity", "mlp", "scale"]
