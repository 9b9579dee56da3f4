"""Fixtures of the real-server tests: ``python -m aiaas.cli.main serve`` subprocesses, always stopped."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from models import mlp
from v2kit import ADMIN_KEY, ServerProcess, running_server, write_upper_model

from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real server (default governance) with ``mlp`` (onnx, batched) and ``upper`` (python, BYTES)."""
    root = tmp_path_factory.mktemp("served")
    home = root / "home"
    repo = ModelRepository(home / "models")
    repo.ensure()
    import_onnx(repo, mlp(root / "src" / "mlp.onnx"), "mlp", max_batch_size=32)
    write_upper_model(home / "models")
    with running_server(home, ADMIN_KEY, AIAAS_MAX_REQUEST_BYTES=str(1 << 20)) as server:
        yield server


@pytest.fixture
def fast_path_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model of every request the V2 infer fast path served (server/fastpath.py calls ``v2.infer_raw``)."""
    from aiaas.api import v2

    calls: list[str] = []
    real = v2.infer_raw

    async def spy(scope: Any, receive: Any, model: str, version: str | None) -> Any:
        calls.append(model)
        return await real(scope, receive, model, version)

    monkeypatch.setattr(v2, "infer_raw", spy)
    return calls
