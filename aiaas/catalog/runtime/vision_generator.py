"""Fashion-MNIST image generator: the decoder of a class-conditional VAE, served behind a class name.

The version directory holds ``decoder.onnx`` (inputs ``z`` FP32 [N, latent], standard-normal noise, and
``component`` FP32 [N, 10*K], the one-hot of a latent mixture component, K per class; output ``pixels`` FP32
[N, 28, 28] in [0, 1]) and ``mixture.json`` (the components' weights per class). The graph maps the noise
through the component's Gaussian (fitted at build time where the encoder puts that class's images) and
decodes it with the class one-hot. Input ``label`` (BYTES, a class name such as "Sneaker"; case,
spaces and punctuation are ignored, and "tshirt"/"top"/"boot"/"trousers" style short names work) and an
optional ``seed`` (INT64, same rows; the same seed gives the same image). Outputs ``image`` (a 28x28
grayscale PNG, light garment on black like Fashion-MNIST) and ``image_b64`` (the same PNG as base64 text).

Per row, the seed picks a component of the class by weight and draws the noise, scaled by
``parameters.temperature`` (< 1 trades variety for typical, cleaner samples; the build measures the served
value).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import numpy as np

from aiaas.catalog.runtime.vision_classifier import CLASSES
from aiaas.catalog.runtime.vision_images import bytes_tensor, png
from aiaas.errors import InvalidInput
from aiaas.runtime.base import BlockingModel, Tensors

ALIASES = {
    "tshirt": 0,
    "top": 0,
    "tee": 0,
    "trousers": 1,
    "pants": 1,
    "jeans": 1,
    "sweater": 2,
    "jumper": 2,
    "jacket": 4,
    "sandals": 5,
    "shirts": 6,
    "sneakers": 7,
    "trainer": 7,
    "shoe": 7,
    "handbag": 8,
    "boot": 9,
    "boots": 9,
    "ankleboots": 9,
}


def _key(s: str) -> str:
    return re.sub(r"[^a-z0-9]", "", s.lower())


def class_index(classes: list[str]) -> dict[str, int]:
    """Lookup from normalised names ('tshirttop', 'tshirt', 'ankleboot', '7', ...) to class indices."""
    index = {_key(c): i for i, c in enumerate(classes)}
    index.update({str(i): i for i in range(len(classes))})
    if classes == CLASSES:
        for alias, i in ALIASES.items():
            index.setdefault(alias, i)
    return index


class FashionGenerator(BlockingModel):
    def load(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        threads = self.config.runtime.intra_op_threads or self.context.default_intra_op_threads
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(
            str(self.version_dir / "decoder.onnx"), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        params = self.config.parameters
        self.classes = [str(c) for c in params.get("classes", CLASSES)]
        self.latent = int(params.get("latent_dim", self.session.get_inputs()[0].shape[1]))
        weights = np.asarray(json.loads((self.version_dir / "mixture.json").read_text())["weights"], np.float64)
        if weights.shape[0] != len(self.classes):
            raise RuntimeError(f"mixture.json has weights for {weights.shape[0]} classes, not {len(self.classes)}")
        self.weights = weights / weights.sum(axis=1, keepdims=True)
        self.temperature = float(params.get("temperature", 1.0))
        self.index = class_index(self.classes)

    def labels(self, rows: np.ndarray) -> np.ndarray:
        out = []
        for v in np.asarray(rows, dtype=object).reshape(-1):
            name = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            i = self.index.get(_key(name))
            if i is None:
                raise InvalidInput(f"unknown label {name[:60]!r}; choose one of {self.classes}")
            out.append(i)
        return np.asarray(out, dtype=np.int64)

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        if "label" not in inputs:
            raise InvalidInput("input 'label' (a class name) is required")
        idx = self.labels(inputs["label"])
        n = len(idx)
        seeds = inputs.get("seed")
        if seeds is not None:
            seeds = np.asarray(seeds).reshape(-1)
            if len(seeds) != n:
                raise InvalidInput(f"seed has {len(seeds)} rows but label has {n}")
        k = self.weights.shape[1]
        z = np.empty((n, self.latent), np.float32)
        component = np.zeros((n, self.weights.size), np.float32)
        for row, c in enumerate(idx):
            rng = np.random.default_rng(None if seeds is None else int(seeds[row]) & 0xFFFFFFFFFFFFFFFF)
            component[row, c * k + rng.choice(k, p=self.weights[c])] = 1.0
            z[row] = rng.standard_normal(self.latent) * self.temperature
        pixels = self.session.run(None, {"z": z, "component": component})[0] if n else np.zeros((0, 28, 28), np.float32)
        images = [png(np.clip(np.rint(p * 255.0), 0, 255).astype(np.uint8)) for p in pixels]
        return {"image": bytes_tensor(images), "image_b64": bytes_tensor([base64.b64encode(b) for b in images])}

    def unload(self) -> None:
        self.session = None
