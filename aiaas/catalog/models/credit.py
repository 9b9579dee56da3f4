"""Alias: ``aiaas.catalog.models.credit`` before the catalog had one module per model (credit_risk). Kept so
that code importing the old path keeps working; new code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import credit_risk
from aiaas.catalog.models.credit_risk import COLUMNS, MISSING, build_credit, encode_frame

SPECS = [credit_risk.SPEC]

__all__ = [
    "COLUMNS",
    "MISSING",
    "SPECS",
    "build_credit",
    "encode_frame",
]
