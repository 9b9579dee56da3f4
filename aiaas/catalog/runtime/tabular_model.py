"""Serving side of the catalog's tabular classifiers (breast cancer, Pima diabetes, credit risk).

Why a python model around an ONNX file: clients want to send a row as JSON (``rows`` BYTES, one JSON object
per row, keys = feature names) with categorical values as strings and missing values left out, and want the
answer explained. ONNX graphs take one FP32 matrix; this class turns rows (or one named FP32 tensor [-1, 1]
per numeric feature) into that matrix, runs onnxruntime for the probability, and adds per-feature
contributions computed from the exported tree ensemble.

Artifacts in the version directory:

- ``tabular.json``: features (name, kind numeric|categorical, categories, value standing for "missing"),
  classes, positive class, files.
- ``model.onnx``: input ``features`` FP32 [-1, F] -> ``label`` (strings), ``probabilities`` FP32 [-1, C].
- ``trees.npz`` (optional): a binary gradient-boosted tree ensemble (sklearn ``GradientBoostingClassifier``
  flattened) for Saabas path contributions: each split on the path from the root to the leaf credits
  ``learning_rate * (value(child) - value(node))`` to the split feature, where an internal node's value is the
  training-sample-weighted mean of its children. The contributions of one row therefore sum exactly to its
  log-odds minus ``bias`` (the initial log-odds plus every tree's root value), which the answer also carries.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.runtime import BlockingModel, Tensors


def load_spec(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / "tabular.json").read_text())


class TreeExplainer:
    """Saabas contributions for a flattened binary GBM (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        z = np.load(path)
        self.left, self.right = z["left"], z["right"]
        self.feature, self.threshold = z["feature"], z["threshold"]
        self.value = z["value"]  # per node: leaf value, or weighted mean of the children for internal nodes
        self.roots = z["roots"]  # node index of each tree's root
        self.learning_rate = float(z["learning_rate"])
        self.init = float(z["init"])
        self.n_features = int(z["n_features"])
        self.bias = self.init + self.learning_rate * float(self.value[self.roots].sum())

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions [n, F], log-odds [n]) for the float32 matrix ``x``."""
        # all (row, tree) pairs descend one level per step: a few numpy calls per tree depth, not per tree
        n, f_count = x.shape[0], self.n_features
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        row_base = (np.arange(n) * f_count)[:, None]
        flat = np.zeros(n * f_count, dtype=np.float64)
        xd = x.astype(np.float64)
        while True:
            internal = self.left[node] >= 0
            if not internal.any():
                break
            feat = self.feature[node]
            go_left = xd[np.arange(n)[:, None], feat] <= self.threshold[node]
            child = np.where(internal, np.where(go_left, self.left[node], self.right[node]), node)
            delta = self.value[child] - self.value[node]  # 0 where the node already is a leaf
            flat += np.bincount((row_base + feat).ravel(), weights=delta.ravel(), minlength=n * f_count)
            node = child
        contrib = self.learning_rate * flat.reshape(n, f_count)
        return contrib, self.bias + contrib.sum(axis=1)


def flatten_gbm(model: Any, x_sample: np.ndarray, path: Path, positive: str) -> Path:
    """Write a fitted binary sklearn GradientBoostingClassifier as ``trees.npz`` for ``TreeExplainer``,
    explaining the log-odds of ``positive`` (sklearn's raw score is the log-odds of ``classes_[1]``)."""
    sign = 1.0 if str(model.classes_[1]) == positive else -1.0
    lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
    offset = 0
    for est in model.estimators_[:, 0]:
        t = est.tree_
        left = t.children_left.astype(np.int64)
        right = t.children_right.astype(np.int64)
        value = t.value[:, 0, 0].astype(np.float64).copy()
        weight = t.weighted_n_node_samples.astype(np.float64)
        # children always have higher indices than their parent: fill internal nodes from the bottom up
        for node in range(t.node_count - 1, -1, -1):
            if left[node] >= 0:
                wl, wr = weight[left[node]], weight[right[node]]
                value[node] = (wl * value[left[node]] + wr * value[right[node]]) / (wl + wr)
        lefts.append(np.where(left >= 0, left + offset, -1))
        rights.append(np.where(right >= 0, right + offset, -1))
        feats.append(np.maximum(t.feature, 0).astype(np.int64))
        thrs.append(t.threshold.astype(np.float64))
        vals.append(sign * value)
        roots.append(offset)
        offset += t.node_count
    x0 = x_sample[:1].astype(np.float32)
    lr = float(model.learning_rate)
    raw = float(model.decision_function(x0)[0]) - lr * sum(float(e.predict(x0)[0]) for e in model.estimators_[:, 0])
    init = sign * raw
    np.savez(
        path,
        left=np.concatenate(lefts),
        right=np.concatenate(rights),
        feature=np.concatenate(feats),
        threshold=np.concatenate(thrs),
        value=np.concatenate(vals),
        roots=np.array(roots, dtype=np.int64),
        learning_rate=lr,
        init=init,
        n_features=model.n_features_in_,
    )
    return path


def encode_rows(spec: dict[str, Any], rows: list[Any], impute: bool = False) -> tuple[np.ndarray, list[list[str]]]:
    """JSON rows (objects keyed by feature name, or lists in feature order) -> the FP32 model matrix, and per
    row the features filled with the model's missing-value code. A row that lacks features is refused (a model
    would score ``{}`` as confidently as a real applicant) unless ``impute`` is asked for."""
    feats = spec["features"]
    names = [f["name"] for f in feats]
    x = np.zeros((len(rows), len(feats)), dtype=np.float32)
    imputed: list[list[str]] = []
    for i, row in enumerate(rows):
        if isinstance(row, list):
            if len(row) != len(feats):
                raise InvalidInput(f"row {i}: a list row needs {len(feats)} values in the order {names}")
            row = dict(zip(names, row, strict=True))
        if not isinstance(row, dict):
            raise InvalidInput(f"row {i}: each row must be a JSON object (feature -> value) or a list")
        unknown = sorted(set(row) - set(names))
        if unknown:
            raise InvalidInput(f"row {i}: unknown feature(s) {unknown}; features are {names}")
        lacking = [f["name"] for f in feats if _absent(row.get(f["name"]))]
        if lacking and not impute:
            fillable = all(f.get("missing") is not None for f in feats if f["name"] in lacking)
            hint = (
                ", or set parameters.impute=true to fill them with the model's missing-value code" if fillable else ""
            )
            raise InvalidInput(f"row {i}: missing feature(s) {lacking}: send every feature{hint}")
        for j, f in enumerate(feats):
            x[i, j] = _encode_value(f, row.get(f["name"]), i)
        imputed.append(lacking)
    return x, imputed


def _absent(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _encode_value(f: dict[str, Any], v: Any, i: int) -> float:
    name = f["name"]
    if _absent(v):
        if f.get("missing") is None:
            raise InvalidInput(f"row {i}: feature {name!r} is required")
        return float(f["missing"])
    if f["kind"] == "categorical":
        cats = f["categories"]
        if v not in cats:
            raise InvalidInput(f"row {i}: feature {name!r} must be one of {cats} (or left out), got {v!r}")
        return float(cats.index(v))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise InvalidInput(f"row {i}: feature {name!r} must be a number, got {v!r}")
    return float(v)


class TabularClassifier(BlockingModel):
    """``rows`` (JSON BYTES) or named FP32 features -> label, score, probabilities [, contributions]."""

    def load(self) -> None:
        import onnxruntime as ort

        self.spec = load_spec(self.version_dir)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.config.runtime.intra_op_threads or self.context.default_intra_op_threads or 1
        self.session = ort.InferenceSession(
            str(self.version_dir / self.spec.get("onnx", "model.onnx")),
            sess_options=opts,
            providers=["CPUExecutionProvider"],
        )
        self.names = [f["name"] for f in self.spec["features"]]
        self.classes = list(self.spec["classes"])
        self.pos = self.classes.index(self.spec["positive"])
        trees = self.spec.get("trees")
        self.explainer = TreeExplainer(self.version_dir / trees) if trees else None

    def matrix(self, inputs: Tensors, impute: bool = False) -> tuple[np.ndarray, list[list[str]] | None]:
        named = [n for n in self.names if n in inputs]
        if "rows" in inputs:
            if named:
                raise InvalidInput("send either 'rows' or the named feature tensors, not both")
            rows = []
            for i, raw in enumerate(inputs["rows"].reshape(-1)):
                try:
                    rows.append(json.loads(raw))
                except (ValueError, TypeError):
                    raise InvalidInput(f"rows[{i}] is not JSON") from None
            return encode_rows(self.spec, rows, impute)
        if not named:
            raise InvalidInput(f"send 'rows' (JSON objects) or one FP32 [-1, 1] tensor per feature: {self.names}")
        lacking = [n for n in self.names if n not in inputs]
        if lacking:
            raise InvalidInput(f"missing feature tensor(s) {lacking}")
        x = np.concatenate([inputs[n].reshape(-1, 1).astype(np.float32) for n in self.names], axis=1)
        if np.isnan(x).any():
            raise InvalidInput(
                f"NaN in feature tensor(s) {[n for j, n in enumerate(self.names) if np.isnan(x[:, j]).any()]}"
            )
        return x, None

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        impute = parameters.get("impute", False)
        if not isinstance(impute, bool):
            raise InvalidInput(f"parameters.impute must be true or false, got {impute!r}")
        x, imputed = self.matrix(inputs, impute)
        labels, proba = self.session.run(None, {"features": x})
        out: Tensors = {
            "label": np.array([str(v).encode() for v in labels], dtype=object),
            "score": proba[:, self.pos].astype(np.float32),
            "probabilities": proba.astype(np.float32),
        }
        if impute and imputed is not None:  # say which features were filled in, row by row
            out["imputed"] = np.array([json.dumps(names).encode() for names in imputed], dtype=object)
        if self.explainer is not None:
            contrib, _ = self.explainer.explain(x)
            out["contributions"] = contrib.astype(np.float32)
            out["bias"] = np.full(len(x), self.explainer.bias, dtype=np.float32)
            out["explanation"] = np.array(
                [
                    json.dumps({"bias": round(self.explainer.bias, 4), "contributions": _top(self.names, c)}).encode()
                    for c in contrib
                ],
                dtype=object,
            )
        return out

    def unload(self) -> None:
        self.session = None


def _top(names: list[str], contrib: np.ndarray) -> dict[str, float]:
    """Feature -> contribution to the positive class's log-odds, largest effect first."""
    order = np.argsort(-np.abs(contrib), kind="stable")
    return {names[j]: round(float(contrib[j]), 4) for j in order}


def tabular_config(spec: dict[str, Any], description: str, explain: bool) -> dict[str, Any]:
    """model.yaml for a ``TabularClassifier``: ``rows`` plus (for all-numeric models) named features."""
    inputs = [{"name": "rows", "datatype": "BYTES", "shape": [-1], "optional": True}]
    if all(f["kind"] == "numeric" for f in spec["features"]):
        inputs += [
            {"name": f["name"], "datatype": "FP32", "shape": [-1, 1], "optional": True} for f in spec["features"]
        ]
    n_cls, n_feat = len(spec["classes"]), len(spec["features"])
    outputs = [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "score", "datatype": "FP32", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, n_cls]},
        {"name": "imputed", "datatype": "BYTES", "shape": [-1]},  # only with parameters.impute=true: JSON list per row
    ]
    if explain:
        outputs += [
            {"name": "contributions", "datatype": "FP32", "shape": [-1, n_feat]},
            {"name": "bias", "datatype": "FP32", "shape": [-1]},
            {"name": "explanation", "datatype": "BYTES", "shape": [-1]},
        ]
    return {
        "backend": "python",
        "task": "tabular-classification",
        "description": description,
        "max_batch_size": 256,
        "parameters": {"class": "aiaas.catalog.runtime.tabular_model:TabularClassifier"},
        "inputs": inputs,
        "outputs": outputs,
    }
