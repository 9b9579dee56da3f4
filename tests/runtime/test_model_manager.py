"""ModelManager (aiaas/service/models.py) at unit level: states, broken models, reload without a gap, unload.

The controllable model lives in ``rt_fakes.py`` next to this file; gates and events order the steps, so
nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rt_fakes
from models import mlp, mlp_reference

from aiaas.errors import InvalidInput, NotFound, ServiceUnavailable
from aiaas.placement.factory import PlacementOptions
from aiaas.registry import ModelRepository
from aiaas.registry.onnx_import import import_onnx
from aiaas.runtime import RuntimeContext
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager

ECHO = """
backend: python
max_batch_size: 4
inputs: [{name: x, datatype: FP32, shape: [-1, 2]}]
outputs: [{name: y, datatype: FP32, shape: [-1, 2]}]
parameters: {class: "rt_fakes:VersionEcho"}
"""


def add_model(repo: ModelRepository, name: str, yaml_text: str, versions: tuple[int, ...] = (1,)) -> Path:
    path = repo.root / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "model.yaml").write_text(yaml_text)
    for v in versions:
        (path / str(v)).mkdir(exist_ok=True)
    return path


@pytest.fixture
def controls() -> rt_fakes.Controls:
    return rt_fakes.reset()


def run(fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(fn(), 60))


def manager(repo: ModelRepository) -> ModelManager:
    # thread placement: the fakes report loads and unloads through in-process state (tests/placement covers
    # the python models' default, worker processes)
    return ModelManager(repo, RuntimeContext(), Metrics(), PlacementOptions(python_placement="thread"))


X = np.array([[1.0, 2.0]], dtype=np.float32)


async def infer(mgr: ModelManager, name: str, version: int | None = None) -> int:
    """One request the way the data plane makes it; returns the version that answered (y = x + version)."""
    vr = mgr.resolve(name, version)
    assert vr.executor is not None
    result = await vr.executor.infer({"x": X}, {})
    return round(float(result.outputs["y"][0, 0] - X[0, 0]))


async def wait_event(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, 10), "the model never reached the gate"


def test_broken_models_are_unavailable_with_reasons_good_ones_ready(
    repo: ModelRepository, tmp_path: Path, controls: rt_fakes.Controls
) -> None:
    import_onnx(repo, mlp(tmp_path / "mlp.onnx"), "mlp", max_batch_size=8)
    add_model(repo, "echo", ECHO)
    add_model(repo, "badyaml", "backend: onnx\ninputs: [oops\n")
    (add_model(repo, "corrupt", "backend: onnx\n") / "1" / "model.onnx").write_bytes(b"\x00 not onnx")
    add_model(repo, "notamodel", ECHO.replace("VersionEcho", "NotAModel"))
    add_model(
        repo, "failing", ECHO.replace('{class: "rt_fakes:VersionEcho"}', '{class: "rt_fakes:VersionEcho", fail: true}')
    )
    import_onnx(repo, mlp(tmp_path / "mlp2.onnx"), "mismatch")
    (repo.root / "mismatch" / "model.yaml").write_text(
        "backend: onnx\ninputs: [{name: x, datatype: INT64, shape: [-1, 4]}]\n"
    )
    add_model(repo, "noversions", ECHO, versions=())

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load_all()
        state = {n: (r.state, r.reason) for n, r in mgr.models.items()}
        assert state["mlp"] == ("READY", "") and state["echo"] == ("READY", "")
        expected = {
            "badyaml": "not valid YAML",
            "corrupt": "version 1: onnxruntime cannot load model.onnx",
            "notamodel": "is not a subclass of aiaas.runtime.Model",
            "failing": "version 1 refuses to load",
            "mismatch": "config input 'x' is INT64 but the artifact expects FP32",
            "noversions": "no version directories",
        }
        for name, reason in expected.items():
            st, why = state[name]
            assert st == "UNAVAILABLE" and reason in why, (name, why)
            with pytest.raises(ServiceUnavailable) as info:
                mgr.resolve(name, None)
            assert info.value.status_code == 503 and reason in info.value.message

        # the good ones serve
        vr = mgr.resolve("mlp", None)
        assert vr.executor is not None and vr.config is not None
        assert [t.name for t in vr.config.outputs] == ["y"]  # resolved from the artifact
        out = (await vr.executor.infer({"x": np.ones((2, 4), np.float32)}, {})).outputs["y"]
        np.testing.assert_allclose(out, mlp_reference(np.ones((2, 4), np.float32)), rtol=1e-5, atol=1e-5)
        assert await infer(mgr, "echo") == 1

        rows = {(r["name"], r["version"]): r["state"] for r in mgr.index()}
        assert rows[("mlp", "1")] == "READY" and rows[("corrupt", "1")] == "UNAVAILABLE"
        assert rows[("badyaml", "")] == "UNAVAILABLE"
        assert {r["name"] for r in mgr.index(ready_only=True)} == {"mlp", "echo"}
        await mgr.close()

    run(main)


def test_resolve_errors(repo: ModelRepository, controls: rt_fakes.Controls) -> None:
    add_model(repo, "echo", ECHO, versions=(1, 2))

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load("echo")
        assert mgr.resolve("echo", None).version == 2  # default policy: latest only
        assert mgr.resolve("echo", "2").version == 2
        with pytest.raises(NotFound, match="no version 1"):
            mgr.resolve("echo", 1)
        with pytest.raises(NotFound, match="unknown model"):
            mgr.resolve("nope", None)
        with pytest.raises(InvalidInput):
            mgr.resolve("echo", "latest")
        with pytest.raises(NotFound):
            await mgr.load("nope")
        await mgr.close()

    run(main)


def test_reload_swaps_versions_without_a_gap(repo: ModelRepository, controls: rt_fakes.Controls) -> None:
    path = add_model(repo, "echo", ECHO)

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load("echo")
        assert await infer(mgr, "echo") == 1

        (path / "2").mkdir()
        controls.load_gate, controls.load_gate_version = threading.Event(), 2
        controls.predict_gate, controls.predict_gate_version = threading.Event(), 1
        reload = asyncio.create_task(mgr.load("echo"))
        await wait_event(controls.load_started)  # version 2 is loading ...
        in_flight = asyncio.create_task(infer(mgr, "echo"))  # ... and version 1 still takes requests
        await wait_event(controls.predict_started)
        controls.load_gate.set()
        while mgr.resolve("echo", None).version != 2:  # the swap happens while v1 still runs a request
            await asyncio.sleep(0.01)
        assert await infer(mgr, "echo") == 2
        assert not reload.done()  # the reload waits for v1 to drain ...
        assert 1 not in controls.unloaded
        controls.predict_gate.set()
        assert await in_flight == 1  # ... so the request that v1 accepted is answered by v1
        await reload
        assert controls.unloaded == [1]
        assert sorted(mgr.record("echo").versions) == [2]
        await mgr.close()

    run(main)


def test_requests_issued_throughout_a_reload_all_succeed(repo: ModelRepository, controls: rt_fakes.Controls) -> None:
    path = add_model(repo, "echo", ECHO)

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load("echo")
        (path / "2").mkdir()
        controls.load_gate, controls.load_gate_version = threading.Event(), 2
        stop = asyncio.Event()
        reloaded = False
        answers: list[tuple[bool, int]] = []  # (issued after the reload returned, version that answered)

        async def client() -> None:
            while not stop.is_set():
                after = reloaded
                answers.append((after, await infer(mgr, "echo")))
                await asyncio.sleep(0)

        clients = [asyncio.create_task(client()) for _ in range(4)]
        reload = asyncio.create_task(mgr.load("echo"))
        await wait_event(controls.load_started)
        while len(answers) < 8:  # requests keep flowing while version 2 loads
            await asyncio.sleep(0.01)
        controls.load_gate.set()
        await reload
        reloaded = True
        while sum(after for after, _ in answers) < 8:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*clients)  # any failed request would raise here
        assert {v for after, v in answers if not after} >= {1}
        assert {v for after, v in answers if after} == {2}
        await mgr.close()

    run(main)


def test_unload_drains_in_flight_requests(repo: ModelRepository, controls: rt_fakes.Controls) -> None:
    add_model(repo, "echo", ECHO)

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load("echo")
        controls.predict_gate = threading.Event()
        in_flight = [asyncio.create_task(infer(mgr, "echo")) for _ in range(3)]
        await wait_event(controls.predict_started)
        unload = asyncio.create_task(mgr.unload("echo"))
        await asyncio.sleep(0.05)
        assert not unload.done() and controls.unloaded == []
        with pytest.raises(ServiceUnavailable):  # no new requests once the unload began
            mgr.resolve("echo", None)
        controls.predict_gate.set()
        assert await asyncio.gather(*in_flight) == [1, 1, 1]
        await unload
        assert controls.unloaded == [1]
        rec = mgr.record("echo")
        assert (rec.state, rec.reason, rec.versions) == ("UNAVAILABLE", "unloaded", {})
        # and it can come back
        await mgr.load("echo")
        assert await infer(mgr, "echo") == 1
        await mgr.close()

    run(main)


def test_a_model_that_breaks_on_reload_reports_why(repo: ModelRepository, controls: rt_fakes.Controls) -> None:
    path = add_model(repo, "echo", ECHO)

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load("echo")
        (path / "model.yaml").write_text("backend: python\n")  # no class any more
        rec = await mgr.load("echo")
        assert rec.state == "UNAVAILABLE" and "parameters.class" in rec.reason
        assert controls.unloaded == [1]
        await mgr.close()

    run(main)


def test_version_policy_all_loads_every_version(repo: ModelRepository, controls: rt_fakes.Controls) -> None:
    add_model(repo, "echo", ECHO + "version_policy: {all: true}\n", versions=(1, 2, 3))

    async def main() -> None:
        mgr = manager(repo)
        await mgr.load("echo")
        assert [await infer(mgr, "echo", v) for v in (1, 2, 3)] == [1, 2, 3]
        assert await infer(mgr, "echo") == 3
        await mgr.close()
        assert sorted(controls.unloaded) == [1, 2, 3]

    run(main)


def test_broken_reload_keeps_serving_the_previous_version(repo: ModelRepository, tmp_path: Path) -> None:
    import_onnx(repo, mlp(tmp_path / "m.onnx"), "mlp")

    async def body() -> None:
        mm = manager(repo)
        await mm.load("mlp")
        (repo.root / "mlp" / "2").mkdir()
        (repo.root / "mlp" / "2" / "model.onnx").write_bytes(b"not an onnx file")
        rec = await mm.load("mlp")  # policy latest 1 now selects only the broken version 2
        assert rec.state == "READY"
        assert "version 2" in rec.last_error and "still serving" in rec.reason
        vr = mm.resolve("mlp", None)
        assert vr.version == 1
        out = await vr.executor.infer({"x": np.ones((1, 4), np.float32)}, {})  # type: ignore[union-attr]
        np.testing.assert_allclose(out.outputs["y"], mlp_reference(np.ones((1, 4), np.float32)), rtol=1e-5)
        states = {r["version"]: r["state"] for r in mm.index()}
        assert states == {"1": "READY", "2": "UNAVAILABLE"}
        await mm.close()

    run(body)
