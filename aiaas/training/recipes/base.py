"""What a recipe is: everything the generic DDP worker needs to know about one kind of model.

The worker owns the distributed loop (sampler, DDP, checkpoints, events); a recipe owns the data-to-tensors
step, the network, the loss, the metrics and the ONNX export. Keeping that split means a new recipe is ~100 lines
and inherits fault tolerance for free.

``prepare`` must be deterministic: every rank runs it on the same file and must get the same ``meta`` (class
list, standardization stats, id maps). ``meta`` is JSON, saved in every checkpoint and in the model card.
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from aiaas.errors import InvalidInput
from aiaas.training.spec import format_errors
from aiaas.types.model_config import TensorSpec

Tensors = tuple[torch.Tensor, ...]  # (input_1, ..., input_k, target); rows along dim 0


class CommonParams(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    epochs: int = Field(5, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, le=1_000_000)  # per worker: the global batch is batch_size * workers
    learning_rate: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=1)
    log_every_n_steps: int | None = Field(None, ge=1)  # metrics events; None -> about 50 per job
    max_steps: int | None = Field(None, ge=1)  # stop early after this many optimizer steps (smoke tests)


class Recipe(ABC):
    name: ClassVar[str]
    Params: ClassVar[type[CommonParams]]
    formats: ClassVar[tuple[str, ...]]  # accepted training file formats
    input_names: ClassVar[tuple[str, ...]]
    output_names: ClassVar[tuple[str, ...]]

    def __init__(self, params: CommonParams) -> None:
        self.params = params

    @classmethod
    def from_hyperparameters(cls, hp: dict[str, Any]) -> Recipe:
        try:
            params = cls.Params.model_validate(hp)
        except ValidationError as e:
            raise InvalidInput(
                f"recipe {cls.name!r}: " + format_errors(e, "hyperparameters"), param="hyperparameters"
            ) from None
        return cls(params)

    # -- data -----------------------------------------------------------------------------------
    def check_file(self, path: Path, fmt: str) -> None:
        if fmt not in self.formats:
            raise InvalidInput(f"recipe {self.name!r} takes {' or '.join(self.formats)} files, not {fmt}")

    @abstractmethod
    def prepare(self, train: Path) -> dict[str, Any]:
        """Fit what the data decides (classes, stats, id maps); raises InvalidInput for unusable data."""

    @abstractmethod
    def tensors(self, path: Path, meta: dict[str, Any]) -> Tensors:
        """Load a file as (inputs..., target) tensors, with meta's encoding."""

    # -- model ----------------------------------------------------------------------------------
    @abstractmethod
    def build_model(self, meta: dict[str, Any]) -> nn.Module: ...

    @abstractmethod
    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def metrics(self, output: np.ndarray, target: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        """Held-out metrics from the raw model outputs (logits / predictions) on the whole file."""

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            model.parameters(), lr=self.params.learning_rate, weight_decay=self.params.weight_decay
        )

    # -- export ---------------------------------------------------------------------------------
    @abstractmethod
    def export_module(self, model: nn.Module, meta: dict[str, Any]) -> nn.Module:
        """The module the served model runs: raw client inputs in (standardization etc. baked in)."""

    @abstractmethod
    def tensor_specs(self, meta: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
        """V2 inputs and outputs of the exported model, batch axis -1."""

    @abstractmethod
    def example_inputs(self, meta: dict[str, Any]) -> Tensors: ...

    def export(self, model: nn.Module, meta: dict[str, Any], path: Path) -> Path:
        module = self.export_module(model, meta).eval()
        names = (*self.input_names, *self.output_names)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is the documented legacy path
            torch.onnx.export(
                module,
                self.example_inputs(meta),
                str(path),
                input_names=list(self.input_names),
                output_names=list(self.output_names),
                dynamic_axes={n: {0: "batch"} for n in names},
                opset_version=17,
                dynamo=False,
            )
        self.postprocess_onnx(path, meta)
        return path

    def postprocess_onnx(self, path: Path, meta: dict[str, Any]) -> None:
        """Hook for graph edits torch cannot express (e.g. id lookup tables)."""

    def raw_inputs(self, path: Path, meta: dict[str, Any]) -> Tensors:
        """The file's inputs as the served model's clients send them (unstandardized, raw ids)."""
        return self.tensors(path, meta)[:-1]

    def parity_inputs(self, path: Path, meta: dict[str, Any], n: int) -> tuple[dict[str, np.ndarray], Tensors] | None:
        """(ONNX feed, the same rows for ``export_module``) for the export check; None to skip it."""
        raw = tuple(t[:n] for t in self.raw_inputs(path, meta))
        return {name: t.numpy() for name, t in zip(self.input_names, raw, strict=True)}, raw


# -- shared pieces ------------------------------------------------------------------------------
def mlp(n_in: int, hidden: list[int], n_out: int, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(n_in, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        n_in = h
    layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class ClassifierHead(nn.Module):
    """logits -> (probabilities, label index): what a client of a served classifier wants."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(*x)
        return torch.softmax(logits, dim=-1), torch.argmax(logits, dim=-1)


def classifier_specs(n_classes: int) -> list[TensorSpec]:
    return [
        TensorSpec(name="probabilities", datatype="FP32", shape=[-1, n_classes]),
        TensorSpec(name="label", datatype="INT64", shape=[-1]),
    ]


def classification_metrics(logits: np.ndarray, target: np.ndarray) -> dict[str, float]:
    pred = logits.argmax(axis=1)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    out = {
        "accuracy": float((pred == target).mean()),
        "log_loss": float(-logp[np.arange(len(target)), target].mean()),
    }
    if logits.shape[1] == 2:
        auc = roc_auc(np.exp(logp[:, 1]), target == 1)
        if auc is not None:
            out["auc"] = auc
    return out


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """Mann-Whitney AUC with tie handling; None when one class is absent."""
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def regression_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    err = pred.reshape(-1) - target.reshape(-1)
    var = float(np.var(target))
    out = {"rmse": float(math.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}
    if var > 0:
        out["r2"] = float(1 - np.mean(err**2) / var)
    return out


def encode_labels(path: Path, column: str, values: np.ndarray, classes: list[Any], lines: list[int]) -> np.ndarray:
    """Map labels to class indices; a label unseen in training is an error naming its line."""
    index = {str(c): i for i, c in enumerate(classes)}
    out = np.empty(len(values), dtype=np.int64)
    for k, v in enumerate(values):
        i = index.get(_label_key(v))
        if i is None:
            raise InvalidInput(
                f"{path.name}: line {lines[k]}, column {column!r}: label {_label_key(v)!r} does not occur in the "
                "training file"
            )
        out[k] = i
    return out


def _label_key(v: Any) -> str:
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def label_classes(values: np.ndarray) -> list[Any]:
    keys = sorted({_label_key(v) for v in values}, key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, s))
    return [int(k) if k.lstrip("-").isdigit() else k for k in keys]
