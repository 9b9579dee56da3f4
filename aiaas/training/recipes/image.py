"""``image``: a small CNN classifier on NPZ images (``x``: uint8 or float images, ``y``: integer labels).

Layouts: (N, H, W) grayscale, (N, H, W, C) or (N, C, H, W) with C in 1..4 (``layout`` says which when it is
ambiguous). The served model takes images exactly as stored in the training file (same dtype and layout;
uint8 is scaled to [0, 1] inside the graph), so a client sends what it trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from aiaas.errors import InvalidInput
from aiaas.training.files import load_npz
from aiaas.training.recipes.base import (
    ClassifierHead,
    CommonParams,
    Recipe,
    Tensors,
    classification_metrics,
    classifier_specs,
    label_classes,
)
from aiaas.types.model_config import TensorSpec

_V2 = {"uint8": "UINT8", "float32": "FP32", "float64": "FP64"}


class ImageParams(CommonParams):
    x_key: str = "x"
    y_key: str = "y"
    layout: Literal["auto", "nhw", "nhwc", "nchw"] = "auto"
    channels: list[int] = Field(default_factory=lambda: [16, 32], min_length=1, max_length=8)  # conv widths
    hidden: int = Field(64, ge=1, le=65536)


class ImageRecipe(Recipe):
    name = "image"
    Params = ImageParams
    formats = ("npz",)
    input_names = ("x",)
    output_names = ("probabilities", "label")
    params: ImageParams

    def _arrays(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        arrays = load_npz(path)
        for k in (p.x_key, p.y_key):
            if k not in arrays:
                raise InvalidInput(f"{path.name}: no array {k!r} (arrays: {', '.join(arrays)})")
        x, y = arrays[p.x_key], arrays[p.y_key]
        if x.dtype.name not in _V2:
            raise InvalidInput(f"{path.name}: images {p.x_key!r} must be uint8 or float, not {x.dtype}")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise InvalidInput(
                f"{path.name}: labels {p.y_key!r} must be a 1-D integer array, got {y.dtype} {list(y.shape)}"
            )
        if len(x) != len(y):
            raise InvalidInput(f"{path.name}: {len(x)} images but {len(y)} labels")
        return x, y

    def _layout(self, x: np.ndarray) -> str:
        layout = self.params.layout
        if layout == "auto":
            if x.ndim == 3:
                return "nhw"
            if x.ndim == 4 and x.shape[3] <= 4:
                return "nhwc"
            if x.ndim == 4 and x.shape[1] <= 4:
                return "nchw"
            raise InvalidInput(f"images of shape {list(x.shape)}: expected (N,H,W), (N,H,W,C) or (N,C,H,W) with C <= 4")
        if x.ndim != (3 if layout == "nhw" else 4):
            raise InvalidInput(f"images of shape {list(x.shape)} do not match layout {layout!r}")
        return layout

    def prepare(self, train: Path) -> dict[str, Any]:
        x, y = self._arrays(train)
        layout = self._layout(x)
        classes = label_classes(y)
        if len(classes) < 2:
            raise InvalidInput(f"{train.name}: every label is {classes[0]}; a classifier needs two or more classes")
        return {
            "layout": layout,
            "image_shape": list(x.shape[1:]),
            "dtype": x.dtype.name,
            "channels_in": 1 if layout == "nhw" else (x.shape[3] if layout == "nhwc" else x.shape[1]),
            "classes": classes,
        }

    def tensors(self, path: Path, meta: dict[str, Any]) -> Tensors:
        x, y = self._arrays(path)
        if list(x.shape[1:]) != meta["image_shape"] or x.dtype.name != meta["dtype"]:
            raise InvalidInput(
                f"{path.name}: images are {x.dtype} {list(x.shape[1:])}, the training images are {meta['dtype']} "
                f"{meta['image_shape']}"
            )
        index = {int(c): i for i, c in enumerate(meta["classes"])}
        unknown = sorted(set(np.unique(y).tolist()) - set(index))
        if unknown:
            raise InvalidInput(f"{path.name}: labels {unknown[:5]} do not occur in the training file")
        target = torch.from_numpy(np.vectorize(index.__getitem__, otypes=[np.int64])(y))
        # train on NCHW floats; the exported graph converts from the stored layout/dtype itself
        return _to_nchw(torch.from_numpy(np.ascontiguousarray(x)), meta).contiguous(), target

    def raw_inputs(self, path: Path, meta: dict[str, Any]) -> Tensors:
        return (torch.from_numpy(np.ascontiguousarray(self._arrays(path)[0])),)

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        layers: list[nn.Module] = []
        c_in = meta["channels_in"]
        for c in self.params.channels:
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
            c_in = c
        layers += [
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c_in, self.params.hidden),
            nn.ReLU(),
            nn.Linear(self.params.hidden, len(meta["classes"])),
        ]
        return nn.Sequential(*layers)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target)

    def metrics(self, output: np.ndarray, target: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        return classification_metrics(output, target)

    def export_module(self, model: nn.Module, meta: dict[str, Any]) -> nn.Module:
        return ClassifierHead(nn.Sequential(_ToNCHW(meta), model))

    def tensor_specs(self, meta: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
        x = TensorSpec(name="x", datatype=_V2[meta["dtype"]], shape=[-1, *meta["image_shape"]])  # type: ignore[arg-type]
        return [x], classifier_specs(len(meta["classes"]))

    def example_inputs(self, meta: dict[str, Any]) -> Tensors:
        return (torch.zeros(2, *meta["image_shape"], dtype=getattr(torch, meta["dtype"])),)


def _to_nchw(x: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    scaled = x.to(torch.float32) / 255.0 if meta["dtype"] == "uint8" else x.to(torch.float32)
    if meta["layout"] == "nhw":
        return scaled.unsqueeze(1)
    if meta["layout"] == "nhwc":
        return scaled.permute(0, 3, 1, 2)
    return scaled


class _ToNCHW(nn.Module):
    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__()
        self.meta = dict(meta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_nchw(x, self.meta)
