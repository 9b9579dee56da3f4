"""The list of built-in catalog models: one module per model under ``aiaas/catalog/models/``, each with
``SPEC: CatalogSpec``. Reading the specs imports no numpy or torch: a model module imports its frameworks inside
its build and evaluation functions."""

from __future__ import annotations

import importlib
import logging

from aiaas.registry.catalogspec import CatalogSpec
from aiaas.registry.plugins import in_dependency_order

log = logging.getLogger("aiaas.catalog")

# the scenarios in the order the README lists them (scripts/catalog_readme.py)
SCENARIOS = ("nlp", "vision", "speech", "recommendation", "game", "driving", "medical", "credit", "llm")

# one module per model under aiaas/catalog/models/, in the catalog's order (README, `aiaas catalog list`)
MODEL_MODULES = (
    "minilm_embedding",
    "vader_sentiment",
    "extractive_summarizer",
    "apertium",
    "fashion_cnn",
    "fashion_vae",
    "ocr",
    "face_detector",
    "pocketsphinx_asr",
    "piper_tts",
    "silero_vad",
    "movielens_mf",
    "cartpole_ppo",
    "chess_stockfish",
    "astar_planner",
    "highway_policy",
    "breast_cancer",
    "pima_diabetes",
    "credit_risk",
    "gemma",
)


def all_specs() -> dict[str, CatalogSpec]:
    specs: dict[str, CatalogSpec] = {}
    for mod in MODEL_MODULES:
        module = importlib.import_module(f"aiaas.catalog.models.{mod}")
        for spec in getattr(module, "SPECS", [module.SPEC] if hasattr(module, "SPEC") else []):
            specs[spec.name] = spec
    return specs


def select(names: list[str] | None) -> list[CatalogSpec]:
    """Specs for ``names`` (None = all) in dependency order; unknown names raise ValueError."""
    return in_dependency_order(all_specs(), names)
