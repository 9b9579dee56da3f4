"""``mf``: matrix factorization on (user, item, rating) rows: rating ~ mu + b_u + b_i + <p_u, q_i>.

Ids are mapped to dense indices at prepare time (the maps are kept in the model card). The exported graph
takes the *raw* ids: an ``ai.onnx.ml`` LabelEncoder in front of the embeddings does the mapping, and an id not
seen in training maps to a zero row, so it gets the global/bias-only prediction instead of an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper
from pydantic import Field
from torch import nn

from aiaas.errors import InvalidInput
from aiaas.training.files import detect_format, load_table
from aiaas.training.recipes.base import CommonParams, Recipe, Tensors, regression_metrics
from aiaas.types.model_config import TensorSpec


class MFParams(CommonParams):
    user_column: str = "user"
    item_column: str = "item"
    rating_column: str = "rating"
    factors: int = Field(16, ge=1, le=4096)
    batch_size: int = Field(256, ge=1, le=1_000_000)
    learning_rate: float = Field(0.01, gt=0, le=10)


class MFRecipe(Recipe):
    name = "mf"
    Params = MFParams
    formats = ("csv", "jsonl", "parquet")
    input_names = ("user_index", "item_index")  # names in the torch graph; the served ones are user, item
    output_names = ("rating",)
    params: MFParams

    def _columns(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
        p = self.params
        table = load_table(path, detect_format(path))
        for c in (p.user_column, p.item_column, p.rating_column):
            if c not in table.columns:
                raise InvalidInput(f"{path.name}: no column {c!r} (columns: {', '.join(table.columns)})")
        r = table.columns[p.rating_column]
        if r.dtype == object:
            raise InvalidInput(f"{path.name}: rating column {p.rating_column!r} holds text; ratings must be numbers")
        return table.columns[p.user_column], table.columns[p.item_column], r.astype(np.float64), table.lines

    def prepare(self, train: Path) -> dict[str, Any]:
        users, items, ratings, _ = self._columns(train)
        return {
            "users": _ids(users),
            "items": _ids(items),
            "id_type": "int64" if users.dtype != object and items.dtype != object else "string",
            "mean": float(ratings.mean()),
        }

    def _index(self, values: np.ndarray, ids: list[Any]) -> np.ndarray:
        index = {str(v): i for i, v in enumerate(ids)}
        unknown = len(ids)  # the zero row
        return np.asarray([index.get(_key(v), unknown) for v in values], dtype=np.int64)

    def tensors(self, path: Path, meta: dict[str, Any]) -> Tensors:
        users, items, ratings, _ = self._columns(path)
        u = torch.from_numpy(self._index(users, meta["users"]))
        i = torch.from_numpy(self._index(items, meta["items"]))
        return u, i, torch.from_numpy(ratings.astype(np.float32))

    def parity_inputs(self, path: Path, meta: dict[str, Any], n: int) -> tuple[dict[str, np.ndarray], Tensors] | None:
        if meta["id_type"] != "int64":
            return None  # string ids cannot ride in torch tensors; the id lookup is covered by the int path
        users, items, _, _ = self._columns(path)
        u, i, _ = self.tensors(path, meta)
        return {"user": users[:n].astype(np.int64), "item": items[:n].astype(np.int64)}, (u[:n], i[:n])

    def build_model(self, meta: dict[str, Any]) -> nn.Module:
        return _MF(len(meta["users"]), len(meta["items"]), self.params.factors, meta["mean"])

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, target)

    def metrics(self, output: np.ndarray, target: np.ndarray, meta: dict[str, Any]) -> dict[str, float]:
        return regression_metrics(output, target)

    def export_module(self, model: nn.Module, meta: dict[str, Any]) -> nn.Module:
        return model

    def tensor_specs(self, meta: dict[str, Any]) -> tuple[list[TensorSpec], list[TensorSpec]]:
        dt = "INT64" if meta["id_type"] == "int64" else "BYTES"
        return (
            [TensorSpec(name="user", datatype=dt, shape=[-1]), TensorSpec(name="item", datatype=dt, shape=[-1])],  # type: ignore[arg-type]
            [TensorSpec(name="rating", datatype="FP32", shape=[-1])],
        )

    def example_inputs(self, meta: dict[str, Any]) -> Tensors:
        return torch.zeros(2, dtype=torch.int64), torch.zeros(2, dtype=torch.int64)

    def postprocess_onnx(self, path: Path, meta: dict[str, Any]) -> None:
        """Put raw-id -> index LabelEncoders in front of the graph's index inputs."""
        model = onnx.load(str(path))
        g = model.graph
        string_ids = meta["id_type"] == "string"
        elem = onnx.TensorProto.STRING if string_ids else onnx.TensorProto.INT64
        nodes = []
        new_inputs = []
        for raw, idx, ids in (("user", "user_index", meta["users"]), ("item", "item_index", meta["items"])):
            keys = {"keys_strings": [str(v) for v in ids]} if string_ids else {"keys_int64s": [int(v) for v in ids]}
            nodes.append(
                helper.make_node(
                    "LabelEncoder",
                    [raw],
                    [idx],
                    domain="ai.onnx.ml",
                    name=f"{raw}_ids",
                    values_int64s=list(range(len(ids))),
                    default_int64=len(ids),
                    **keys,
                )
            )
            new_inputs.append(helper.make_tensor_value_info(raw, elem, ["batch"]))
        kept = [i for i in g.input if i.name not in ("user_index", "item_index")]
        del g.input[:]
        g.input.extend([*new_inputs, *kept])
        for n in reversed(nodes):
            g.node.insert(0, n)
        if not any(o.domain == "ai.onnx.ml" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 2))
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


def _key(v: Any) -> str:
    if isinstance(v, float | np.floating) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _ids(values: np.ndarray) -> list[Any]:
    """Distinct ids in first-seen order (deterministic, so every rank gets the same map)."""
    seen: dict[str, Any] = {}
    for v in values.tolist():
        seen.setdefault(_key(v), v)
    return list(seen.values())


class _MF(nn.Module):
    def __init__(self, n_users: int, n_items: int, k: int, mean: float) -> None:
        super().__init__()
        # one extra zero row each: ids unseen in training
        self.p = nn.Embedding(n_users + 1, k)
        self.q = nn.Embedding(n_items + 1, k)
        self.bu = nn.Embedding(n_users + 1, 1)
        self.bi = nn.Embedding(n_items + 1, 1)
        for e in (self.p, self.q):
            nn.init.normal_(e.weight, std=0.05)
        for e in (self.bu, self.bi):
            nn.init.zeros_(e.weight)
        with torch.no_grad():
            self.p.weight[n_users].zero_()
            self.q.weight[n_items].zero_()
        self.mu = nn.Parameter(torch.tensor(float(mean)))

    def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        dot = (self.p(u) * self.q(i)).sum(-1)
        return self.mu + self.bu(u).squeeze(-1) + self.bi(i).squeeze(-1) + dot
