"""The one ``Model`` interface: an async ``predict``, ``BlockingModel.run`` for blocking frameworks, and the
shim that keeps classes written for the earlier interface (a sync ``predict``; ``is_async`` + ``predict_async``)
loading. Models that run on the event loop load exactly the one instance that serves, whatever ``instances``
says (they used to load N and serve from the first)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rt_fakes
from test_model_manager import add_model, manager, run

from aiaas.placement.factory import PlacementOptions, on_loop, resolve
from aiaas.registry import ModelRepository
from aiaas.runtime import BlockingModel, Model, RuntimeContext, Tensors, predict_blocking
from aiaas.runtime.python import PythonModel
from aiaas.types.model_config import ModelConfig

X = np.array([[1.0, 2.0]], dtype=np.float32)


def py_config(cls: str, instances: int = 1) -> ModelConfig:
    return ModelConfig(name="py", backend="python", instances=instances, parameters={"class": f"rt_fakes:{cls}"})


@pytest.fixture
def controls() -> rt_fakes.Controls:
    return rt_fakes.reset()


@pytest.mark.parametrize(
    ("cls", "loop"),
    [("AsyncEcho", True), ("LegacyAsyncEcho", True), ("LegacySyncEcho", False), ("VersionEcho", False)],
)
def test_python_classes_run_where_their_interface_says(cls: str, loop: bool) -> None:
    cfg = py_config(cls)
    assert PythonModel.on_loop(cfg, Path(".")) is loop
    assert on_loop(cfg, Path(".")) is loop
    assert resolve(cfg, Path("."), PlacementOptions(python_placement="process")) == ("thread" if loop else "process")
    m = PythonModel(cfg, Path("1"), RuntimeContext())
    assert (m.blocking() is None) is loop


@pytest.mark.parametrize("cls", ["AsyncEcho", "LegacyAsyncEcho", "LegacySyncEcho"])
def test_python_predict_and_default_stream_for_every_interface(cls: str, controls: rt_fakes.Controls) -> None:
    m = PythonModel(py_config(cls), Path("1"), RuntimeContext())
    m.load()

    async def main() -> tuple[Tensors, list[Tensors]]:
        out = await m.predict({"x": X}, {})
        return out, [chunk async for chunk in m.predict_stream({"x": X}, {})]

    out, chunks = asyncio.run(main())
    np.testing.assert_array_equal(out["y"], X + 1)
    assert len(chunks) == 1
    np.testing.assert_array_equal(chunks[0]["y"], X + 1)
    assert controls.served == {id(m.inner)}


def test_blocking_model_runs_in_a_thread_from_predict_and_directly_from_workers() -> None:
    class Threads(BlockingModel):
        def load(self) -> None:
            pass

        def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
            import threading

            return {"main": np.array([threading.current_thread() is threading.main_thread()])}

    m = Threads(py_config("x"), Path("."), RuntimeContext())
    assert Threads.on_loop(m.config, Path(".")) is False
    assert m.blocking() == m.run
    assert not asyncio.run(m.predict({}, {}))["main"][0]  # predict moved the blocking call off the loop
    assert predict_blocking(m, {}, {})["main"][0]  # a worker calls run in its own thread


def test_predict_blocking_runs_an_async_model_without_a_loop() -> None:
    class Async(Model):
        def load(self) -> None:
            pass

        async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
            await asyncio.sleep(0)
            return {"y": inputs["x"] * 3}

    m = Async(py_config("x"), Path("."), RuntimeContext())
    assert Async.on_loop(m.config, Path(".")) is True and m.blocking() is None
    np.testing.assert_array_equal(predict_blocking(m, {"x": X}, {})["y"], X * 3)


@pytest.mark.parametrize(("cls", "loaded"), [("AsyncEcho", 1), ("LegacyAsyncEcho", 1), ("LegacySyncEcho", 3)])
def test_instances_load_exactly_what_serves(
    repo: ModelRepository, controls: rt_fakes.Controls, cls: str, loaded: int
) -> None:
    """``instances: 3``: a model on the event loop loads one instance and it serves everything; a blocking one
    loads three thread replicas, one per batcher thread."""
    add_model(repo, "m", f'backend: python\ninstances: 3\nparameters: {{class: "rt_fakes:{cls}"}}\n')

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load_all()
        vr = mgr.resolve("m", None)
        assert vr.executor is not None
        assert len(controls.loaded) == loaded == len(vr.executor.replicas) == len(vr.executor.instances)
        results = await asyncio.gather(*(vr.executor.infer({"x": X}, {}) for _ in range(12)))
        for r in results:
            np.testing.assert_array_equal(r.outputs["y"], X + 1)
        assert controls.served <= set(controls.loaded)
        if loaded == 1:
            assert controls.served == set(controls.loaded)
        await mgr.close()

    run(main)
