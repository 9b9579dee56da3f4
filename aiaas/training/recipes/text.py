"""``text``: a classifier head on top of a sentence embedding model.

The embedder is pluggable: ``embedder`` names a function ``f(texts: list[str], **embedder_options) -> (n, dim)
float array``. ``catalog`` is the catalog's sentence embedding model (all-MiniLM-L6-v2) as built in the
repository (options: ``model``, ``version``; build it first with ``aiaas catalog build minilm-embedding``), the
best choice for real text; ``hashing`` (feature hashing of word unigrams/bigrams) needs nothing and is what most
tests use. The exported model is the head only: it takes the
``embedding`` tensor, so serving it is a pipeline step after the embedding model (the card names the embedder).
"""

from __future__ import annotations

import importlib
import itertools
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field
from torch import nn

from aiaas.errors import InvalidInput
from aiaas.registry.plugins import installed_catalog
from aiaas.training.files import detect_format, load_table
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
)
from aiaas.types.model_config import TensorSpec

Embedder = Callable[..., np.ndarray]
_WORD = re.compile(r"\w+", re.UNICODE)


def hashing_embedder(texts: list[str], dim: int = 256) -> np.ndarray:
    """Deterministic bag of hashed unigrams and bigrams, L2-normalized (crc32: stable across processes)."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for r, t in enumerate(texts):
        words = _WORD.findall(t.lower())
        for tok in [*words, *(a + " " + b for a, b in itertools.pairwise(words))]:
            h = zlib.crc32(tok.encode())
            out[r, h % dim] += 1.0 if (h >> 31) & 1 == 0 else -1.0
        n = np.linalg.norm(out[r])
        if n > 0:
            out[r] /= n
    return out


# short names for the built-in embedders; installed catalog plug-ins add theirs (the built-in catalog: "catalog",
# its minilm-embedding model), see aiaas.registry.plugins.CatalogPlugin.embedders
EMBEDDERS = {"hashing": "aiaas.training.recipes.text:hashing_embedder"}


def resolve_embedder(spec: str) -> Embedder:
    known = {**installed_catalog().embedders(), **EMBEDDERS} if ":" not in spec else {}
    module, _, attr = known.get(spec, spec).partition(":")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as e:
        raise InvalidInput(
            f"embedder {spec!r} cannot be imported ({e}); use 'package.module:function'", param="embedder"
        ) from None
    if not callable(fn):
        raise InvalidInput(f"embedder {spec!r} is not callable", param="embedder")
    return fn


class TextParams(CommonParams):
    text_column: str = "text"
    label: str = "label"
    embedder: str = "hashing"  # catalog | hashing | package.module:function
    embedder_options: dict[str, Any] = {}
    hidden: list[int] = Field(default_factory=lambda: [64], max_length=16)
    dropout: float = Field(0.0, ge=0, lt=1)


class TextRecipe(Recipe):
    name = "text"
    Params = TextParams
    formats = ("csv", "jsonl", "parquet")
    input_names = ("embedding",)
    output_names = ("probabilities", "label")
    params: TextParams

    def __init__(self, params: TextParams, embedder: Embedder | None = None) -> None:
        super().__init__(params)
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = resolve_embedder(self.params.embedder)
        return self._embedder

    def _embed(self, texts: list[str]) -> np.ndarray:
        emb = np.asarray(self.embedder(texts, **self.params.embedder_options), dtype=np.float32)
        if emb.ndim != 2 or len(emb) != len(texts):
            raise InvalidInput(
                f"embedder {self.params.embedder!r} returned shape {list(emb.shape)} for {len(texts)} texts; expected "
                "(n, dim)"
            )
        return emb

    def _columns(self, path: Path) -> tuple[np.ndarray, np.ndarray, list[int]]:
        p = self.params
        table = load_table(path, detect_format(path))
        for c in (p.text_column, p.label):
            if c not in table.columns:
                raise InvalidInput(f"{path.name}: no column {c!r} (columns: {', '.join(table.columns)})")
        return table.columns[p.text_column], table.columns[p.label], table.lines

    def prepare(self, train: Path) -> dict[str, Any]:
        texts, labels, _ = self._columns(train)
        classes = label_classes(labels)
        if len(classes) < 2:
            raise InvalidInput(
                f"{train.name}: column {self.params.label!r} has a single class; a classifier needs two or more"
            )
        dim = self._embed([str(texts[0])]).shape[1]
        return {
            "classes": classes,
            "dim": int(dim),
            "embedder": self.params.embedder,
            "embedder_options": self.params.embedder_options,
        }

    def tensors(self, path: Path, meta: dict[str, Any]) -> Tensors:
        texts, labels, lines = self._columns(path)
        x = torch.from_numpy(self._embed([str(t) for t in texts]))
        y = torch.from_numpy(encode_labels(path, self.params.label, labels, meta["classes"], lines))
        return x, y

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        return mlp(meta["dim"], self.params.hidden, len(meta["classes"]), self.params.dropout)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(output, target)

    def metrics(self, output: np.ndarray, target: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        return classification_metrics(output, target)

    def export_module(self, model: nn.Module, meta: dict[str, Any]) -> nn.Module:
        return ClassifierHead(model)

    def tensor_specs(self, meta: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return [TensorSpec(name="embedding", datatype="FP32", shape=[-1, meta["dim"]])], classifier_specs(
            len(meta["classes"])
        )

    def example_inputs(self, meta: dict[str, Any]) -> Tensors:
        return (torch.zeros(2, meta["dim"]),)
