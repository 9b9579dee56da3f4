"""Alias: ``aiaas.catalog.models.medical`` before the catalog had one module per model (tabular_common,
breast_cancer, pima_diabetes). Kept so that code importing the old path keeps working; new code imports the
model modules."""

from __future__ import annotations

from aiaas.catalog.models import breast_cancer, pima_diabetes
from aiaas.catalog.models.breast_cancer import build_breast_cancer
from aiaas.catalog.models.pima_diabetes import PIMA_FEATURES, build_pima
from aiaas.catalog.models.tabular_common import RDATASETS, SKLEARN, build_gbm

SPECS = [breast_cancer.SPEC, pima_diabetes.SPEC]

__all__ = [
    "PIMA_FEATURES",
    "RDATASETS",
    "SKLEARN",
    "SPECS",
    "build_breast_cancer",
    "build_gbm",
    "build_pima",
]
