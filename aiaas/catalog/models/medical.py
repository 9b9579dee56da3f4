"""Medical diagnosis: gradient-boosted classifiers on real clinical datasets, exported with skl2onnx.

Requests send one named FP32 tensor per feature (shape [rows, 1]); answers carry the predicted ``label``
(BYTES, e.g. "malignant") and ``probabilities`` (FP32, one column per class, in the card's class order).
"""

from __future__ import annotations

import numpy as np

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.catalog.common import onnx_latency_ms, size_mb, sklearn_to_onnx, snake, tabular_feed

SKLEARN = Requirement(pip=(("sklearn", "scikit-learn"), ("skl2onnx", "skl2onnx")))


@timed
def build_breast_cancer(ctx: BuildContext) -> BuildResult:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    ctx.progress(0.05, "loading Wisconsin breast cancer (569 cases)")
    data = load_breast_cancer()
    names = [snake(n) for n in data.feature_names]
    labels = np.array([data.target_names[t] for t in data.target])  # 'malignant' / 'benign'
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.data.astype(np.float32), labels, test_size=0.25, stratify=labels, random_state=ctx.seed
    )
    ctx.progress(0.2, "training gradient boosting")
    model = GradientBoostingClassifier(n_estimators=50 if ctx.quick else 300, max_depth=3, learning_rate=0.1,
                                       subsample=0.8, random_state=ctx.seed)
    model.fit(x_tr, y_tr)
    ctx.progress(0.7, "exporting to ONNX and evaluating on the held-out 25%")
    path = sklearn_to_onnx(model, names, ctx.workdir / "model.onnx")
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out_label, out_proba = sess.run(None, tabular_feed(x_te, names))
    classes = [str(c) for c in model.classes_]
    pos = classes.index("malignant")
    metrics = {
        "auc": float(roc_auc_score(y_te == "malignant", out_proba[:, pos])),
        "accuracy": float(accuracy_score(y_te, out_label)),
        "test_cases": float(len(y_te)),
    }
    metrics.update(onnx_latency_ms(path, tabular_feed(x_te[:1], names)))
    metrics["size_mb"] = size_mb(path)
    config = {
        "backend": "onnx",
        "task": "tabular-classification",
        "description": "Breast cancer diagnosis (malignant/benign) from 30 cell-nucleus measurements",
        "max_batch_size": 256,
        "inputs": [{"name": n, "datatype": "FP32", "shape": [-1, 1]} for n in names],
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(classes)]},
        ],
    }
    card = {
        "source": "scikit-learn load_breast_cancer (UCI Wisconsin Diagnostic Breast Cancer, 569 cases)",
        "license": "dataset: CC BY 4.0 (UCI); model: trained by aiaas",
        "notes": f"GradientBoostingClassifier, stratified 75/25 split (seed {ctx.seed}); probabilities columns: {classes}",
        "extra": {"classes": classes, "features": names, "training_rows": len(y_tr)},
    }
    ctx.write({"model.onnx": path}, config, card)
    ctx.progress(1.0, f"AUC {metrics['auc']:.3f}")
    return BuildResult(metrics)


SPECS = [
    CatalogSpec(
        name="breast-cancer",
        scenario="medical",
        task="tabular-classification",
        summary="Breast cancer diagnosis from cell measurements (gradient boosting)",
        source="scikit-learn breast_cancer (UCI WDBC)",
        license="CC BY 4.0 data; model trained by aiaas",
        build=build_breast_cancer,
        requires=SKLEARN,
        floors=(Floor("auc", ">=", 0.98),),
        example='{"inputs": [' + ", ".join(
            f'{{"name": "{n}", "shape": [1, 1], "datatype": "FP32", "data": [{v}]}}'
            for n, v in [("mean_radius", 17.99), ("mean_texture", 10.38)]
        ) + ", ...]}",
    ),
]
