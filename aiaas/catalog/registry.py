"""The list of catalog models. Scenario modules are imported lazily; their build functions import their
heavy dependencies (torch, sklearn, ...) only when they run."""

from __future__ import annotations

import importlib
import logging

from aiaas.catalog.base import CatalogSpec

log = logging.getLogger("aiaas.catalog")

# one module per scenario under aiaas/catalog/models/, each with SPECS: list[CatalogSpec]
SCENARIO_MODULES = (
    "nlp",
    "vision",
    "speech",
    "recommendation",
    "game",
    "driving",
    "medical",
    "credit",
    "llm",
)


def all_specs() -> dict[str, CatalogSpec]:
    specs: dict[str, CatalogSpec] = {}
    for mod in SCENARIO_MODULES:
        try:
            module = importlib.import_module(f"aiaas.catalog.models.{mod}")
        except ModuleNotFoundError as e:
            if e.name == f"aiaas.catalog.models.{mod}":
                continue  # scenario not written yet
            raise
        for spec in getattr(module, "SPECS", []):
            specs[spec.name] = spec
    return specs


def select(names: list[str] | None) -> list[CatalogSpec]:
    """Specs for ``names`` (None = all) in dependency order; unknown names raise ValueError."""
    specs = all_specs()
    wanted = list(specs) if names is None else names
    unknown = [n for n in wanted if n not in specs]
    if unknown:
        raise ValueError(f"unknown catalog model(s) {unknown}; known: {', '.join(sorted(specs))}")
    ordered: list[CatalogSpec] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in stack:
            raise ValueError(f"catalog dependency cycle: {' -> '.join((*stack, name))}")
        spec = specs[name]
        for dep in spec.depends:
            visit(dep, (*stack, name))
        if spec not in ordered:
            ordered.append(spec)

    for n in wanted:
        visit(n, ())
    return ordered
