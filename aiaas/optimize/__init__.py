"""Model optimization: passes (export, graph, quantization, fp16, pruning, distillation, TVM), measurement and an
accuracy gate. ``optimize`` is the entry point; ``plan`` validates a pass order before any work.

torch is imported only by the torch-level passes, so ONNX-only optimizations work without the ``train`` extra.
The pipeline (``optimize``, ``compare``) is loaded on first use (PEP 562): the server imports
``aiaas.optimize.jobspec`` at startup and must not pay for onnx and onnxruntime until an optimization runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiaas.optimize.artifacts import (
    Artifact,
    Criterion,
    Evaluation,
    OnnxSource,
    TorchSource,
    TrainOptions,
    TrainSet,
    Workload,
)
from aiaas.optimize.gate import Decision, gate
from aiaas.optimize.plan import PASSES, PassSpec, plan

if TYPE_CHECKING:
    from aiaas.optimize.pipeline import OptimizationResult, compare, optimize

__all__ = [
    "PASSES",
    "Artifact",
    "Criterion",
    "Decision",
    "Evaluation",
    "OnnxSource",
    "OptimizationResult",
    "PassSpec",
    "TorchSource",
    "TrainOptions",
    "TrainSet",
    "Workload",
    "compare",
    "gate",
    "optimize",
    "plan",
]


def __getattr__(name: str) -> Any:
    if name in ("OptimizationResult", "compare", "optimize"):
        from aiaas.optimize import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'aiaas.optimize' has no attribute {name!r}")
