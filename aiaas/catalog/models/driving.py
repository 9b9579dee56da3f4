"""Alias: ``aiaas.catalog.models.driving`` before the catalog had one module per model (astar_planner,
highway_policy). Kept so that code importing the old path keeps working; new code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import astar_planner, highway_policy
from aiaas.catalog.models.astar_planner import PLANNER, build_astar, path_ok, random_problem, reference_cost
from aiaas.catalog.models.highway_policy import HIGHWAY, HIGHWAY_ACTIONS, HIGHWAY_EVAL_SEEDS, build_highway

SPECS = [astar_planner.SPEC, highway_policy.SPEC]

__all__ = [
    "HIGHWAY",
    "HIGHWAY_ACTIONS",
    "HIGHWAY_EVAL_SEEDS",
    "PLANNER",
    "SPECS",
    "build_astar",
    "build_highway",
    "path_ok",
    "random_problem",
    "reference_cost",
]
