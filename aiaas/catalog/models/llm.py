"""Alias: ``aiaas.catalog.models.llm`` before the catalog had one module per model (gemma). Kept so that code
importing the old path keeps working; new code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import gemma
from aiaas.catalog.models.gemma import HELD_OUT, build_gemma, serving_engine

SPECS = [gemma.SPEC]

__all__ = [
    "HELD_OUT",
    "SPECS",
    "build_gemma",
    "serving_engine",
]
