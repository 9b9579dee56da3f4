"""``breast-cancer``: gradient-boosted trees on the Wisconsin diagnostic breast cancer data (scikit-learn),
measured on a stratified held-out split."""

from __future__ import annotations

import json

from aiaas.catalog.common import snake
from aiaas.catalog.models.tabular_common import SKLEARN, build_gbm
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, timed


@timed
def build_breast_cancer(ctx: BuildContext) -> BuildResult:
    import numpy as np
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
    return build_gbm(
        ctx,
        spec,
        (x_tr, y_tr, x_te, y_te),
        params,
        "Breast cancer diagnosis (malignant/benign) from 30 cell-nucleus measurements",
        card,
    )


SPEC = CatalogSpec(
    name="breast-cancer",
    build_s=6,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
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
    example=json.dumps(
        {
            "inputs": [
                {
                    "name": "rows",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [
                        json.dumps(
                            [
                                17.99,
                                10.38,
                                122.8,
                                1001.0,
                                0.1184,
                                0.2776,
                                0.3001,
                                0.1471,
                                0.2419,
                                0.07871,
                                1.095,
                                0.9053,
                                8.589,
                                153.4,
                                0.006399,
                                0.04904,
                                0.05373,
                                0.01587,
                                0.03003,
                                0.006193,
                                25.38,
                                17.33,
                                184.6,
                                2019.0,
                                0.1622,
                                0.6656,
                                0.7119,
                                0.2654,
                                0.4601,
                                0.1189,
                            ]
                        )
                    ],
                }
            ]
        }
    ),
)
