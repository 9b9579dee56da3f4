"""The objects an optimization moves around: where the model comes from, what a pass produced, how it is judged.

A pass turns one ``Artifact`` into another. Artifacts are torch networks (before ``export-onnx``), ONNX files or
compiled TVM libraries; each carries the details its passes recorded, which end up in the report. Everything
the passes need from outside (training data, a student architecture, a fine-tuning function, calibration rows)
comes in through ``TorchSource`` / ``Evaluation`` / ``PassContext``, so the optimization job plugs the training
recipes in (``aiaas.optimize.worker``) without touching the passes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # torch is an optional extra: ONNX-only optimizations must work without it
    import torch
    from torch import nn

Progress = Callable[[float, str], None]  # (fraction of the whole optimization done, message)


def no_progress(_fraction: float, _message: str) -> None:
    pass


@dataclass
class TrainSet:
    """Rows for fine-tuning and distillation: network inputs and one or more target tensors."""

    inputs: tuple[torch.Tensor, ...]
    targets: tuple[torch.Tensor, ...]

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])


@dataclass
class TrainOptions:
    epochs: int = 2
    learning_rate: float = 1e-3
    batch_size: int = 64
    seed: int = 0


# (output of the network, the batch's targets) -> scalar loss
LossFn = Callable[["torch.Tensor", tuple["torch.Tensor", ...]], "torch.Tensor"]
# trains ``model`` in place on ``data`` with ``loss`` (optimization jobs: aiaas.optimize.worker.recipe_fine_tune)
FineTune = Callable[["nn.Module", TrainSet, LossFn, TrainOptions, Progress], None]


@dataclass
class OnnxSource:
    """An ONNX file, e.g. a version of a served model."""

    path: Path
    recipe: str | None = None
    model: str | None = None  # repository name and version it came from, for the report
    version: int | None = None

    kind: Literal["onnx"] = "onnx"


@dataclass
class TorchSource:
    """A trained torch network and what the torch-level passes need.

    ``net`` is the trainable network (logits for a classifier); ``wrap`` builds the served module around a net
    (a recipe's ``export_module``: scaling, softmax + argmax head) and is applied at export, so pruning and
    distillation work on the bare network. ``student(width, depth)`` builds a smaller network of the same family
    for ``distill``; ``train`` and ``loss`` are the fine-tuning data and the task loss.
    """

    net: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    input_names: list[str]
    output_names: list[str]
    wrap: Callable[[nn.Module], nn.Module] | None = None
    train: TrainSet | None = None
    loss: LossFn | None = None  # None: cross-entropy against targets[0]
    student: Callable[[float, float], nn.Module] | None = None
    recipe: str | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    version: int | None = None

    kind: Literal["torch"] = "torch"


Source = OnnxSource | TorchSource


@dataclass
class Artifact:
    kind: Literal["torch", "onnx", "tvm"]
    path: Path | None = None  # onnx: the .onnx file; tvm: the compiled .so (with its tvm.json beside it)
    net: nn.Module | None = None  # torch: the network the next pass works on
    passes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)  # pass name -> what it did (exporter, sparsity, ...)

    def derive(
        self,
        kind: Literal["torch", "onnx", "tvm"],
        pass_name: str,
        details: dict[str, Any],
        *,
        path: Path | None = None,
        net: nn.Module | None = None,
    ) -> Artifact:
        return Artifact(
            kind,
            path=path,
            net=net,
            passes=[*self.passes, pass_name],
            details={**self.details, pass_name: details},
        )


@dataclass
class Evaluation:
    """The held-out set and the metric the gate compares.

    ``inputs`` is the ONNX feed of the served model (all rows); ``output`` picks the output the metric reads
    (name or index). ``metric`` is one of ``METRICS`` or a callable ``(output, target) -> float`` with
    ``higher_is_better``. ``calibration`` is the feed ``quantize-static`` calibrates on; it should not be the
    evaluation rows (calibrating on the test set flatters the candidate).
    """

    inputs: dict[str, np.ndarray]
    target: np.ndarray
    metric: str | Callable[[np.ndarray, np.ndarray], float] = "accuracy"
    higher_is_better: bool | None = None  # None: from the metric name
    output: str | int = 0
    calibration: dict[str, np.ndarray] | None = None
    name: str | None = None  # where the rows come from, for the report

    @property
    def metric_name(self) -> str:
        return self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "metric")

    @property
    def higher(self) -> bool:
        if self.higher_is_better is not None:
            return self.higher_is_better
        if isinstance(self.metric, str):
            return METRICS[self.metric][1]
        return True

    def score(self, output: np.ndarray) -> float:
        if callable(self.metric):
            return float(self.metric(output, self.target))
        return float(METRICS[self.metric][0](output, self.target))

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])


def _labels(output: np.ndarray) -> np.ndarray:
    return output.argmax(axis=-1) if output.ndim >= 2 and output.shape[-1] > 1 else output.reshape(len(output))


def _accuracy(output: np.ndarray, target: np.ndarray) -> float:
    return float((_labels(output) == target.reshape(len(target))).mean())


def _rmse(output: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((output.reshape(len(target), -1)[:, 0] - target.reshape(-1)) ** 2)))


def _mae(output: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.abs(output.reshape(len(target), -1)[:, 0] - target.reshape(-1))))


def _r2(output: np.ndarray, target: np.ndarray) -> float:
    t = target.reshape(-1).astype(np.float64)
    err = output.reshape(len(t), -1)[:, 0] - t
    return float(1 - np.mean(err**2) / max(float(np.var(t)), 1e-12))


# name -> (function, higher is better)
METRICS: dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], bool]] = {
    "accuracy": (_accuracy, True),
    "rmse": (_rmse, False),
    "mae": (_mae, False),
    "r2": (_r2, True),
}


@dataclass
class Workload:
    """How the model will be served, so latency and throughput are measured where they matter."""

    batch_size: int = 32  # the serving batch size
    threads: int = 1  # intra-op threads per session
    concurrency: int = 2  # callers at once in the throughput measurement
    target: Literal["cpu", "gpu"] = "cpu"
    iterations: int = 50  # latency samples per batch size (fewer when max_seconds runs out)
    max_seconds: float = 3.0  # per latency measurement
    throughput_seconds: float = 2.0
    warmup: int = 3
    extra_batch_sizes: tuple[int, ...] = ()  # latency is also measured at these (besides 1 and batch_size)


@dataclass
class Criterion:
    max_relative_loss: float = 0.01  # the metric may get this much worse, relative to the baseline
    min_speedup: float | None = None  # at the serving batch size (p50), baseline / candidate; None: not checked


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def module_sha256(net: nn.Module) -> str:
    """Hash of the weights (names, shapes, bytes) so the report names exactly which network was optimized."""
    h = hashlib.sha256()
    for name, t in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
