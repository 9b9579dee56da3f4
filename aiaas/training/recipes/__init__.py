"""Built-in training recipes, by name."""

from __future__ import annotations

from typing import Any

from aiaas.errors import InvalidInput
from aiaas.training.recipes.base import CommonParams, Recipe
from aiaas.training.recipes.image import ImageRecipe
from aiaas.training.recipes.mf import MFRecipe
from aiaas.training.recipes.tabular import TabularRecipe
from aiaas.training.recipes.text import TextRecipe, hashing_embedder

RECIPES: dict[str, type[Recipe]] = {r.name: r for r in (TabularRecipe, ImageRecipe, MFRecipe, TextRecipe)}


def get_recipe(name: str, hyperparameters: dict[str, Any] | None = None) -> Recipe:
    """The recipe with validated hyperparameters; InvalidInput names the wrong field."""
    cls = RECIPES.get(name)
    if cls is None:
        raise InvalidInput(f"unknown recipe {name!r}; built in: {', '.join(RECIPES)}", param="recipe")
    return cls.from_hyperparameters(hyperparameters or {})


__all__ = [
    "RECIPES",
    "CommonParams",
    "ImageRecipe",
    "MFRecipe",
    "Recipe",
    "TabularRecipe",
    "TextRecipe",
    "get_recipe",
    "hashing_embedder",
]
