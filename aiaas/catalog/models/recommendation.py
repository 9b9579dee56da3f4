"""Alias: ``aiaas.catalog.models.recommendation`` before the catalog had one module per model (movielens_mf).
Kept so that code importing the old path keeps working; new code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import movielens_mf
from aiaas.catalog.models.movielens_mf import (
    BIAS_REG,
    CONFIG,
    DAMPING,
    HOLDOUT,
    MOVIELENS_REQ,
    RANK_DIM,
    RATE_DIM,
    RATE_REG,
    build_movielens,
    fit_als,
    fit_biases,
    load_movielens,
    pure_svd,
    recall_at,
    temporal_split,
)

SPECS = [movielens_mf.SPEC]

__all__ = [
    "BIAS_REG",
    "CONFIG",
    "DAMPING",
    "HOLDOUT",
    "MOVIELENS_REQ",
    "RANK_DIM",
    "RATE_DIM",
    "RATE_REG",
    "SPECS",
    "build_movielens",
    "fit_als",
    "fit_biases",
    "load_movielens",
    "pure_svd",
    "recall_at",
    "temporal_split",
]
