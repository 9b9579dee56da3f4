"""``tabular``: an MLP classifier or regressor on a table (CSV, JSONL or Parquet).

Features are standardized with the training file's mean/std; the stats are baked into the exported ONNX graph
(and kept in the model card), so clients send raw feature values in the listed order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from aiaas.errors import InvalidInput
from aiaas.training.files import Table, detect_format, load_table
from aiaas.training.recipes.base import (
    ClassifierHead,
    CommonParams,
    Recipe,
    Tensors,
    classification_metrics,
    classifier_specs,
    encode_labels,
    label_classes,
    mlp,
    regression_metrics,
)
from aiaas.types.model_config import TensorSpec

MAX_AUTO_CLASSES = 20  # an integer label with at most this many values is taken as classes under task=auto


class TabularParams(CommonParams):
    label: str  # the column to predict
    features: list[str] | None = None  # None: every numeric column except the label
    task: Literal["auto", "classification", "regression"] = "auto"
    hidden: list[int] = Field(default_factory=lambda: [64, 64], max_length=16)
    dropout: float = Field(0.0, ge=0, lt=1)


class TabularRecipe(Recipe):
    name = "tabular"
    Params = TabularParams
    formats = ("csv", "jsonl", "parquet")
    input_names = ("x",)
    params: TabularParams

    @property
    def output_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._outputs

    _outputs: tuple[str, ...] = ("probabilities", "label")

    def prepare(self, train: Path) -> dict[str, Any]:
        p = self.params
        table = load_table(train, detect_format(train))
        if p.label not in table.columns:
            raise InvalidInput(
                f"{train.name}: no label column {p.label!r} (columns: {', '.join(table.columns)})", param="label"
            )
        if p.features is None:
            features = [c for c, a in table.columns.items() if c != p.label and a.dtype != object]
            if not features:
                raise InvalidInput(f"{train.name}: no numeric feature columns besides the label {p.label!r}")
        else:
            features = list(p.features)
            for c in features:
                if c not in table.columns:
                    raise InvalidInput(
                        f"{train.name}: feature column {c!r} does not exist (columns: {', '.join(table.columns)})"
                    )
                if table.columns[c].dtype == object:
                    raise InvalidInput(
                        f"{train.name}: feature column {c!r} holds text; tabular takes numeric features (encode it "
                        "first)"
                    )
                if c == p.label:
                    raise InvalidInput(f"the label column {c!r} cannot also be a feature")
        y = table.columns[p.label]
        task = p.task
        if task == "auto":
            few = y.dtype != np.float64 and len(np.unique(y)) <= MAX_AUTO_CLASSES
            task = "classification" if y.dtype == object or few else "regression"
        x = np.stack([table.columns[c].astype(np.float64) for c in features], axis=1)
        std = x.std(axis=0)
        meta: dict[str, Any] = {
            "task": task,
            "features": features,
            "label": p.label,
            "mean": x.mean(axis=0).tolist(),
            "std": np.where(std > 0, std, 1.0).tolist(),
        }
        if task == "classification":
            classes = label_classes(y)
            if len(classes) < 2:
                raise InvalidInput(
                    f"{train.name}: column {p.label!r} has a single class {classes[0]!r}; a classifier needs two or "
                    "more"
                )
            meta["classes"] = classes
        else:
            if y.dtype == object:
                raise InvalidInput(
                    f"{train.name}: column {p.label!r} holds text; task=regression needs a numeric label"
                )
            meta["y_mean"], meta["y_std"] = float(y.mean()), float(y.std() or 1.0)
        self._configure(meta)
        return meta

    def _configure(self, meta: dict[str, Any]) -> None:
        self._outputs = ("probabilities", "label") if meta["task"] == "classification" else ("prediction",)

    def _table(self, path: Path, meta: dict[str, Any]) -> Table:
        table = load_table(path, detect_format(path))
        for c in [*meta["features"], meta["label"]]:
            if c not in table.columns:
                raise InvalidInput(f"{path.name}: column {c!r} is missing (the training file has it)")
            if c != meta["label"] and table.columns[c].dtype == object:
                raise InvalidInput(f"{path.name}: feature column {c!r} holds text")
        return table

    def raw_inputs(self, path: Path, meta: dict[str, Any]) -> Tensors:
        table = self._table(path, meta)
        x = np.stack([table.columns[c].astype(np.float32) for c in meta["features"]], axis=1)
        return (torch.from_numpy(x),)

    def tensors(self, path: Path, meta: dict[str, Any]) -> Tensors:
        self._configure(meta)
        table = self._table(path, meta)
        x = np.stack([table.columns[c].astype(np.float64) for c in meta["features"]], axis=1)
        x = (x - np.asarray(meta["mean"])) / np.asarray(meta["std"])
        y_raw = table.columns[meta["label"]]
        if meta["task"] == "classification":
            y = torch.from_numpy(encode_labels(path, meta["label"], y_raw, meta["classes"], table.lines))
        else:
            if y_raw.dtype == object:
                raise InvalidInput(f"{path.name}: label column {meta['label']!r} holds text")
            y = torch.from_numpy(((y_raw.astype(np.float64) - meta["y_mean"]) / meta["y_std"]).astype(np.float32))
        return torch.from_numpy(x.astype(np.float32)), y

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        self._configure(meta)
        n_out = len(meta["classes"]) if meta["task"] == "classification" else 1
        return mlp(len(meta["features"]), self.params.hidden, n_out, self.params.dropout)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.dtype == torch.int64:
            return nn.functional.cross_entropy(output, target)
        return nn.functional.mse_loss(output.squeeze(-1), target)

    def metrics(self, output: np.ndarray, target: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        if meta["task"] == "classification":
            return classification_metrics(output, target)
        return regression_metrics(
            output.reshape(-1) * meta["y_std"] + meta["y_mean"], target * meta["y_std"] + meta["y_mean"]
        )

    def export_module(self, model: nn.Module, meta: dict[str, Any]) -> nn.Module:
        self._configure(meta)
        pre = _Standardize(meta["mean"], meta["std"])
        if meta["task"] == "classification":
            return ClassifierHead(nn.Sequential(pre, model))
        return nn.Sequential(pre, model, _Unscale(meta["y_mean"], meta["y_std"]))

    def tensor_specs(self, meta: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
        inputs = [TensorSpec(name="x", datatype="FP32", shape=[-1, len(meta["features"])])]
        if meta["task"] == "classification":
            return inputs, classifier_specs(len(meta["classes"]))
        return inputs, [TensorSpec(name="prediction", datatype="FP32", shape=[-1])]

    def example_inputs(self, meta: dict[str, Any]) -> Tensors:
        return (torch.zeros(2, len(meta["features"])),)


class _Standardize(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class _Unscale(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y.squeeze(-1) * self.std + self.mean
