"""Model optimization: passes (export, graph, quantization, fp16, pruning, distillation, TVM), measurement and an
accuracy gate. ``optimize`` is the entry point; ``plan`` validates a pass order before any work.

torch is imported only by the torch-level passes, so ONNX-only optimizations work without the ``train`` extra.
"""

from __future__ import annotations

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
from aiaas.optimize.pipeline import OptimizationResult, optimize
from aiaas.optimize.plan import PASSES, PassSpec, plan

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
    "gate",
    "optimize",
    "plan",
]
