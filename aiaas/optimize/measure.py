"""Measure one artifact the way it will be served: size, parameters, load time, latency, throughput, the metric.

Baseline and candidates are measured in the same process, one after the other, with the same inputs and thread
settings, so their ratios hold even on a noisy machine (absolute milliseconds do not; the report carries the
CPU and the load so a reader can tell). Latency uses real rows from the evaluation set tiled to the batch size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import onnx
import onnxruntime as ort

from aiaas.optimize.artifacts import Artifact, Evaluation, Workload
from aiaas.optimize.quantize import quantization_summary


class Runner(Protocol):
    input_names: list[str]
    output_names: list[str]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


class OrtRunner:
    """An onnxruntime session configured like the serving backend (graph optimizations ``all``)."""

    def __init__(self, path: Path, threads: int, gpu: bool = False) -> None:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if gpu and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, feed)


def open_runner(artifact: Artifact, workload: Workload) -> Runner:
    assert artifact.path is not None, "only ONNX and TVM artifacts can be measured"
    if artifact.kind == "tvm":
        from aiaas.optimize.tvm_backend import TvmRunner

        return TvmRunner(artifact.path)
    return OrtRunner(artifact.path, workload.threads, gpu=workload.target == "gpu")


def weight_stats(artifact: Artifact) -> dict[str, Any]:
    """Parameters and sparsity from the graph's initializers (int8 weights count as parameters too)."""
    assert artifact.path is not None
    if artifact.kind == "tvm":
        return {"parameters": None, "sparsity": None}
    model = onnx.load(str(artifact.path), load_external_data=True)
    total = zeros = 0
    weights = weight_zeros = 0
    for init in model.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        if arr.dtype.kind not in "fiu" or arr.size <= 1:
            continue  # shapes, axes, scalar scales and zero points are not parameters
        if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8:
            continue  # int64: shape constants
        total += arr.size
        z = int((arr == 0).sum())
        zeros += z
        if arr.ndim >= 2:
            weights += arr.size
            weight_zeros += z
    return {
        "parameters": total,
        "sparsity": zeros / total if total else 0.0,
        "weight_sparsity": weight_zeros / weights if weights else 0.0,
    }


def _tile(feed: dict[str, np.ndarray], batch: int, offset: int = 0) -> dict[str, np.ndarray]:
    n = len(next(iter(feed.values())))
    idx = (np.arange(batch) + offset) % n
    return {k: np.ascontiguousarray(v[idx]) for k, v in feed.items()}


def latency(runner: Runner, feed: dict[str, np.ndarray], batch: int, workload: Workload) -> dict[str, Any]:
    x = _tile(feed, batch)
    for _ in range(workload.warmup):
        runner.run(x)
    samples: list[float] = []
    deadline = time.perf_counter() + workload.max_seconds
    while len(samples) < workload.iterations and (len(samples) < 5 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        runner.run(x)
        samples.append((time.perf_counter() - t0) * 1000)
    ms = np.asarray(samples)
    return {
        "batch_size": batch,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "n": len(samples),
    }


def throughput(
    make_runner: Callable[[], Runner],
    shared: Runner,
    feed: dict[str, np.ndarray],
    workload: Workload,
    thread_safe: bool,
) -> dict[str, Any]:
    """Samples/s with ``concurrency`` callers each sending serving-size batches for ``throughput_seconds``."""
    batch, conc = workload.batch_size, max(1, workload.concurrency)
    x = _tile(feed, batch)
    runners = [shared if thread_safe else make_runner() for _ in range(conc)]
    counts = [0] * conc
    stop = time.perf_counter() + workload.throughput_seconds
    barrier = threading.Barrier(conc)

    def work(i: int) -> None:
        barrier.wait()
        while time.perf_counter() < stop:
            runners[i].run(x)
            counts[i] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return {
        "batch_size": batch,
        "concurrency": conc,
        "threads_per_call": workload.threads,
        "samples_per_s": sum(counts) * batch / elapsed,
        "seconds": round(elapsed, 3),
    }


def evaluate(runner: Runner, evaluation: Evaluation, chunk: int = 256) -> float:
    feed = {k: v for k, v in evaluation.inputs.items() if k in runner.input_names}
    missing = sorted(set(runner.input_names) - set(feed))
    if missing:
        raise ValueError(f"the evaluation set has no input(s) {', '.join(missing)}")
    which = evaluation.output
    index = which if isinstance(which, int) else runner.output_names.index(which)
    n = len(evaluation)
    outs = [runner.run({k: v[i : i + chunk] for k, v in feed.items()})[index] for i in range(0, n, chunk)]
    return evaluation.score(np.concatenate(outs))


def measure(artifact: Artifact, evaluation: Evaluation, workload: Workload) -> dict[str, Any]:
    """Everything the report says about one artifact."""
    assert artifact.path is not None
    size = artifact.path.stat().st_size
    t0 = time.perf_counter()
    runner = open_runner(artifact, workload)
    load_ms = (time.perf_counter() - t0) * 1000
    feed = {k: v for k, v in evaluation.inputs.items() if k in runner.input_names}
    out: dict[str, Any] = {
        "runtime": "tvm" if artifact.kind == "tvm" else f"onnxruntime {ort.__version__}",
        "file": artifact.path.name,
        "size_bytes": size,
        **weight_stats(artifact),
        "load_ms": load_ms,
        "metric": {
            "name": evaluation.metric_name,
            "value": evaluate(runner, evaluation),
            "rows": len(evaluation),
            "higher_is_better": evaluation.higher,
        },
        "latency": {
            f"batch_{b}": latency(runner, feed, b, workload)
            for b in sorted({1, workload.batch_size, *workload.extra_batch_sizes})
        },
        "throughput": throughput(
            lambda: open_runner(artifact, workload),
            runner,
            feed,
            workload,
            thread_safe=artifact.kind != "tvm",
        ),
    }
    if artifact.kind == "onnx" and any(k in artifact.details for k in ("quantize-dynamic", "quantize-static")):
        out["quantization"] = quantization_summary(artifact.path)
    return out


def pareto(points: dict[str, tuple[float, float, float]], higher_is_better: bool) -> list[str]:
    """Names not dominated on (size, latency, metric): no other point is at least as good on all three and better
    on one. Size and latency are minimised; the metric follows ``higher_is_better``."""

    def key(p: tuple[float, float, float]) -> tuple[float, float, float]:
        size, lat, metric = p
        return size, lat, -metric if higher_is_better else metric

    keys = {n: key(p) for n, p in points.items()}
    front = []
    for n, a in keys.items():
        dominated = any(
            all(b_i <= a_i for a_i, b_i in zip(a, b, strict=True)) and b != a for m, b in keys.items() if m != n
        )
        if not dominated:
            front.append(n)
    return front
