"""ModelExecutor: dynamic batching, per-request results and errors, queue limits, replicas, drain and stats.

The fake model records every batch it is given; overlap and ordering are proven with threading events and
barriers rather than with timings.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aiaas.batching import InferResult, ModelExecutor
from aiaas.errors import DeadlineExceeded, InferenceError, InvalidInput, ServiceUnavailable
from aiaas.runtime import BlockingModel, Model, RuntimeContext, Tensors
from aiaas.types.model_config import BatchingConfig, ModelConfig

POISON = -1.0  # a row holding this value makes the fake model raise


class Recorder(BlockingModel):
    """y = 2x; records the batches it sees; can block on a gate, meet a barrier, or fail on a poison row."""

    def __init__(
        self,
        config: ModelConfig,
        *,
        gate: threading.Event | None = None,
        barrier: threading.Barrier | None = None,
        short_output: bool = False,
        fail_unload: bool = False,
    ) -> None:
        super().__init__(config, Path("."), RuntimeContext())
        self.gate = gate
        self.barrier = barrier
        self.short_output = short_output
        self.fail_unload = fail_unload
        self.started = threading.Event()
        self.batches: list[Tensors] = []
        self.parameters: list[dict[str, Any]] = []
        self.unloaded = 0

    def load(self) -> None:
        pass

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        self.batches.append({k: np.array(v, copy=True) for k, v in inputs.items()})
        self.parameters.append(parameters)
        self.started.set()
        if self.barrier is not None:
            self.barrier.wait()  # BrokenBarrierError unless another instance is inside predict at the same time
        if self.gate is not None and not self.gate.wait(10):
            raise RuntimeError("test gate never opened")
        x = inputs["x"]
        if np.any(x == POISON):
            raise ValueError("poison row in the input")
        y = x * 2
        return {"y": y[:-1] if self.short_output else y}

    def unload(self) -> None:
        self.unloaded += 1
        if self.fail_unload:
            raise RuntimeError("unload failed")


class AsyncRecorder(Model):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config, Path("."), RuntimeContext())
        self.calls = 0

    def load(self) -> None:
        pass

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        self.calls += 1
        await asyncio.sleep(0)
        if np.any(inputs["x"] == POISON):
            raise KeyError("bad step")
        return {"y": inputs["x"] + 1}


def config(max_batch_size: int = 8, instances: int = 1, **batching: Any) -> ModelConfig:
    return ModelConfig(
        name="fake",
        backend="fake",
        max_batch_size=max_batch_size,
        instances=instances,
        batching=BatchingConfig(**batching),
    )


def run(coro_fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(coro_fn(), 30))


@asynccontextmanager
async def executor(cfg: ModelConfig, models: list[Model]) -> AsyncIterator[ModelExecutor]:
    ex = ModelExecutor(cfg, models)
    ex.start()
    try:
        yield ex
    finally:
        for g in (getattr(m, "gate", None) for m in models):
            if g is not None:
                g.set()
        await ex.drain(timeout=5)
        ex.unload()


def rows(start: float, n: int, width: int = 4, dtype: Any = np.float32) -> np.ndarray:
    return (np.arange(n * width, dtype=np.float64).reshape(n, width) + start).astype(dtype)


async def started(model: Recorder) -> None:
    assert await asyncio.to_thread(model.started.wait, 10), "the model was never called"


# -- batching ---------------------------------------------------------------------------------------
def test_concurrent_requests_are_batched_and_each_gets_its_own_rows() -> None:
    async def main() -> None:
        model = Recorder(config())
        async with executor(config(), [model]) as ex:
            sizes = [1, 2, 3, 1, 1]  # 8 rows = max_batch_size
            xs = [rows(100 * i, n) for i, n in enumerate(sizes)]
            results = await asyncio.gather(*(ex.infer({"x": x}, {}) for x in xs))
        assert [len(b["x"]) for b in model.batches] == [8]
        for x, r in zip(xs, results, strict=True):
            np.testing.assert_array_equal(r.outputs["y"], x * 2)
            assert r.batch_size == 8

    run(main)


def test_batches_never_exceed_max_batch_size() -> None:
    async def main() -> None:
        model = Recorder(config())
        async with executor(config(), [model]) as ex:
            xs = [rows(10 * i, 3) for i in range(7)]  # 21 rows, 3 per request: at most 2 requests per batch of 8
            results = await asyncio.gather(*(ex.infer({"x": x}, {}) for x in xs))
        seen = [len(b["x"]) for b in model.batches]
        assert all(n <= 8 for n in seen) and sum(seen) == 21
        assert max(seen) == 6  # they were batched at all
        for x, r in zip(xs, results, strict=True):
            np.testing.assert_array_equal(r.outputs["y"], x * 2)

    run(main)


def test_incompatible_requests_are_not_mixed() -> None:
    async def main() -> None:
        model = Recorder(config())
        async with executor(config(), [model]) as ex:
            reqs: list[tuple[Tensors, dict[str, Any]]] = [
                ({"x": rows(0, 1)}, {}),
                ({"x": rows(10, 1, width=5)}, {}),  # other non-batch dim
                ({"x": rows(20, 1, dtype=np.float64)}, {}),  # other dtype
                ({"x": rows(30, 1)}, {"mode": "b"}),  # other parameters
                ({"x": rows(40, 2)}, {}),  # compatible with the first
            ]
            results = await asyncio.gather(*(ex.infer(i, p) for i, p in reqs))
        for (inputs, _), r in zip(reqs, results, strict=True):
            assert r.outputs["y"].dtype == inputs["x"].dtype
            np.testing.assert_array_equal(r.outputs["y"], inputs["x"] * 2)
        assert len(model.batches) == 4
        assert sorted(len(b["x"]) for b in model.batches) == [1, 1, 1, 3]
        assert {"mode": "b"} in model.parameters

    run(main)


def test_poison_request_fails_alone() -> None:
    async def main() -> None:
        model = Recorder(config())
        async with executor(config(), [model]) as ex:
            xs = [rows(0, 2), rows(10, 1), rows(20, 2), rows(30, 1)]
            xs[2][1, 3] = POISON
            results = await asyncio.gather(*(ex.infer({"x": x}, {}) for x in xs), return_exceptions=True)
        assert len(results) == len(xs)
        assert len(model.batches[0]["x"]) == 6  # they really shared a batch before the retry
        for i, (x, r) in enumerate(zip(xs, results, strict=True)):
            if i == 2:
                assert isinstance(r, InferenceError), r
                assert "'fake'" in r.message and "poison row" in r.message
            else:
                assert isinstance(r, InferResult), r
                np.testing.assert_array_equal(r.outputs["y"], x * 2)
        assert ex.stats.fail.count == 1 and ex.stats.success.count == 3

    run(main)


def test_full_queue_is_refused_with_503_and_retry_after() -> None:
    async def main() -> None:
        gate = threading.Event()
        cfg = config(max_queue_size=2)
        model = Recorder(cfg, gate=gate)
        async with executor(cfg, [model]) as ex:
            first = asyncio.create_task(ex.infer({"x": rows(0, 1)}, {}))
            await started(model)  # running, out of the queue
            queued = [asyncio.create_task(ex.infer({"x": rows(10 * i, 1)}, {})) for i in (1, 2)]
            await asyncio.sleep(0)
            assert ex.queue_depth == 2
            with pytest.raises(ServiceUnavailable) as info:
                await ex.infer({"x": rows(99, 1)}, {})
            assert info.value.status_code == 503
            assert info.value.headers.get("Retry-After") == "1"
            assert "'fake'" in info.value.message and "max_queue_size 2" in info.value.message
            gate.set()
            for t in (first, *queued):
                await t  # the queued ones still run

    run(main)


def test_request_queued_past_timeout_gets_504() -> None:
    async def main() -> None:
        gate = threading.Event()
        cfg = config(max_batch_size=0, timeout_ms=50)
        model = Recorder(cfg, gate=gate)
        async with executor(cfg, [model]) as ex:
            first = asyncio.create_task(ex.infer({"x": rows(0, 1)}, {}))
            await started(model)
            late = asyncio.create_task(ex.infer({"x": rows(10, 1)}, {}))
            await asyncio.sleep(0.3)  # makes the condition true; nothing asserts on how long anything took
            gate.set()
            await first
            with pytest.raises(DeadlineExceeded) as info:
                await late
        assert info.value.status_code == 504
        assert "'fake'" in info.value.message and "timeout_ms 50" in info.value.message
        assert len(model.batches) == 1  # the expired request never reached the model
        assert ex.stats.fail.count == 1

    run(main)


def test_two_instances_run_concurrently() -> None:
    async def main() -> None:
        barrier = threading.Barrier(2, timeout=10)
        cfg = config(max_batch_size=0, instances=2)
        models = [Recorder(cfg, barrier=barrier), Recorder(cfg, barrier=barrier)]
        async with executor(cfg, list(models)) as ex:
            r1, r2 = await asyncio.gather(ex.infer({"x": rows(0, 1)}, {}), ex.infer({"x": rows(10, 1)}, {}))
        np.testing.assert_array_equal(r1.outputs["y"], rows(0, 1) * 2)
        np.testing.assert_array_equal(r2.outputs["y"], rows(10, 1) * 2)
        assert [len(m.batches) for m in models] == [1, 1]

    run(main)


def test_drain_finishes_queued_requests_and_refuses_new_ones() -> None:
    async def main() -> None:
        gate = threading.Event()
        cfg = config(max_batch_size=0)
        model = Recorder(cfg, gate=gate)
        ex = ModelExecutor(cfg, [model])
        ex.start()
        xs = [rows(10 * i, 1) for i in range(3)]
        first = asyncio.create_task(ex.infer({"x": xs[0]}, {}))
        await started(model)
        rest = [asyncio.create_task(ex.infer({"x": x}, {})) for x in xs[1:]]
        await asyncio.sleep(0)
        drain = asyncio.create_task(ex.drain())
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailable) as info:
            await ex.infer({"x": rows(99, 1)}, {})
        assert "unloading" in info.value.message and "Retry-After" in info.value.headers
        await asyncio.sleep(0.2)  # a drain that gave up early would be done by now; a correct one never is
        assert not drain.done()
        gate.set()
        results = [await t for t in (first, *rest)]
        await drain
        for x, r in zip(xs, results, strict=True):
            np.testing.assert_array_equal(r.outputs["y"], x * 2)
        assert len(model.batches) == 3
        ex.unload()

    run(main)


def test_unload_calls_every_instance_unload() -> None:
    async def main() -> None:
        cfg = config(instances=2)
        models = [Recorder(cfg, fail_unload=True), Recorder(cfg)]  # one failing unload must not skip the other
        ex = ModelExecutor(cfg, list(models))
        ex.start()
        await ex.infer({"x": rows(0, 1)}, {})
        await ex.drain()
        ex.unload()
        assert [m.unloaded for m in models] == [1, 1]
        assert ex.instances == []

    run(main)


def test_model_failures_name_the_model() -> None:
    async def main() -> None:
        model = Recorder(config())
        async with executor(config(), [model]) as ex:
            bad = rows(0, 1)
            bad[0, 0] = POISON
            with pytest.raises(InferenceError) as info:
                await ex.infer({"x": bad}, {})
        assert info.value.status_code == 500
        assert "model 'fake' failed" in info.value.message and "ValueError" in info.value.message

    run(main)


def test_wrong_output_rows_fail_with_the_model_and_output_named() -> None:
    async def main() -> None:
        model = Recorder(config(), short_output=True)
        async with executor(config(), [model]) as ex:
            with pytest.raises(InferenceError) as info:
                await ex.infer({"x": rows(0, 3)}, {})
        assert "'fake'" in info.value.message and "'y'" in info.value.message

    run(main)


def test_bad_batch_inputs_are_client_errors() -> None:
    async def main() -> None:
        model = Recorder(config())
        async with executor(config(), [model]) as ex:
            with pytest.raises(InvalidInput, match=r"exceeds max_batch_size 8 of model 'fake'"):
                await ex.infer({"x": rows(0, 9)}, {})
            with pytest.raises(InvalidInput, match="'b' has 2 rows"):
                await ex.infer({"a": rows(0, 3), "b": rows(0, 2)}, {})
            with pytest.raises(InvalidInput, match="batch dimension"):
                await ex.infer({"x": np.float32(1.0)}, {})
        assert model.batches == []

    run(main)


def test_no_batching_passes_requests_through_whole() -> None:
    async def main() -> None:
        cfg = config(max_batch_size=0)
        model = Recorder(cfg)
        async with executor(cfg, [model]) as ex:
            xs = [rows(0, 3), rows(10, 20), rows(30, 1)]  # no row limit without batching
            results = await asyncio.gather(*(ex.infer({"x": x}, {}) for x in xs))
        assert [b["x"].shape for b in model.batches] == [(3, 4), (20, 4), (1, 4)]
        for x, r in zip(xs, results, strict=True):
            np.testing.assert_array_equal(r.outputs["y"], x * 2)
        assert ex.stats.execution_count == 3 and ex.stats.inference_count == 3  # one inference per request

    run(main)


def test_stats_counters() -> None:
    class Observer:
        def __init__(self) -> None:
            self.sizes: list[int] = []
            self.depths: list[int] = []

        def batch(self, size: int, compute_s: float) -> None:
            self.sizes.append(size)

        def queue_depth(self, depth: int) -> None:
            self.depths.append(depth)

    async def main() -> None:
        model = Recorder(config())
        obs = Observer()
        ex = ModelExecutor(config(), [model], obs)
        ex.start()
        await asyncio.gather(*(ex.infer({"x": rows(0, n)}, {}) for n in (1, 2, 3)))
        await ex.infer({"x": rows(0, 2)}, {})
        s = ex.stats
        assert (s.execution_count, s.inference_count) == (2, 8)
        assert {size: c.count for size, c in s.batches.items()} == {6: 1, 2: 1}
        assert (s.success.count, s.fail.count, s.queue.count, s.compute_infer.count) == (4, 0, 4, 4)
        assert s.last_inference_ms > 0
        assert obs.sizes == [6, 2]
        assert max(obs.depths) == 3

        bad = rows(0, 1)
        bad[0, 0] = POISON
        with pytest.raises(InferenceError):
            await ex.infer({"x": bad}, {})
        # a failed execution is a failure, not an inference (Triton counts successful executions only)
        assert (s.execution_count, s.inference_count, s.fail.count, s.success.count) == (2, 8, 1, 4)
        await ex.drain()
        ex.unload()

    run(main)


def test_lone_request_is_not_held_for_max_queue_delay() -> None:
    async def main() -> None:
        cfg = config(max_queue_delay_ms=10_000)
        model = Recorder(cfg)
        async with executor(cfg, [model]) as ex:
            for i in range(3):  # one client, one request at a time
                r = await asyncio.wait_for(ex.infer({"x": rows(i, 1)}, {}), 5)
                assert r.batch_size == 1

    run(main)


def test_cancelled_request_is_skipped() -> None:
    async def main() -> None:
        gate = threading.Event()
        cfg = config(max_batch_size=0)
        model = Recorder(cfg, gate=gate)
        async with executor(cfg, [model]) as ex:
            first = asyncio.create_task(ex.infer({"x": rows(0, 1)}, {}))
            await started(model)
            gone = asyncio.create_task(ex.infer({"x": rows(50, 1)}, {}))
            await asyncio.sleep(0)
            gone.cancel()
            gate.set()
            await first
            after = await ex.infer({"x": rows(60, 1)}, {})
        np.testing.assert_array_equal(after.outputs["y"], rows(60, 1) * 2)
        assert [float(b["x"][0, 0]) for b in model.batches] == [0.0, 60.0]

    run(main)


def test_async_model_path() -> None:
    async def main() -> None:
        cfg = config(max_batch_size=0)
        model = AsyncRecorder(cfg)
        async with executor(cfg, [model]) as ex:
            r = await ex.infer({"x": rows(0, 2)}, {})
            np.testing.assert_array_equal(r.outputs["y"], rows(0, 2) + 1)
            bad = rows(0, 1)
            bad[0, 0] = POISON
            with pytest.raises(InferenceError, match="model 'fake' failed"):
                await ex.infer({"x": bad}, {})
            assert (ex.stats.execution_count, ex.stats.success.count, ex.stats.fail.count) == (1, 1, 1)
        assert model.calls == 2

    run(main)
