"""Serving side of ``astar-planner``: shortest paths on occupancy grids with A*.

A grid cell is free when 0 and blocked otherwise. Moves are 8-connected by default (straight 1, diagonal
sqrt 2; a diagonal may not cut the corner of a blocked cell) or 4-connected (``connectivity: 4``). The
octile (or Manhattan) distance is a consistent heuristic for these costs, so the first time the goal is
popped its cost is optimal; the catalog build checks that against an independent Dijkstra (scipy).

Two request forms: tensors (``grid`` UINT8 [n, H, W], ``start`` and ``goal`` INT32 [n, 2] as (row, col)), or
``request`` BYTES [n], one JSON object per problem: ``{"grid": ["..#.", "...."] | [[0, 1], ...],
"start": [r, c], "goal": [r, c]}`` (in string rows '#' or 'X' or '1' is blocked) -- the short form for curl.
"""

from __future__ import annotations

import heapq
import json
import math
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.runtime import BlockingModel, Tensors

MAX_CELLS = 512 * 512  # pure-Python search: bigger maps belong to a compiled planner
SQRT2 = math.sqrt(2.0)


def moves(connectivity: int) -> list[tuple[int, int, float]]:
    straight = [(-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0)]
    if connectivity == 4:
        return straight
    return [*straight, (-1, -1, SQRT2), (-1, 1, SQRT2), (1, -1, SQRT2), (1, 1, SQRT2)]


def step_allowed(grid: np.ndarray, r: int, c: int, dr: int, dc: int) -> bool:
    """Is the move (r, c) -> (r + dr, c + dc) legal: in bounds, free, and not cutting a blocked corner?"""
    h, w = grid.shape
    nr, nc = r + dr, c + dc
    if not (0 <= nr < h and 0 <= nc < w) or grid[nr, nc]:
        return False
    return not (dr and dc and (grid[r + dr, c] or grid[r, c + dc]))


def astar(
    grid: np.ndarray, start: tuple[int, int], goal: tuple[int, int], connectivity: int = 8
) -> tuple[list[tuple[int, int]] | None, float, int]:
    """(path from start to goal inclusive or None, its cost or -1, nodes expanded)."""
    h, w = grid.shape
    if grid[start] or grid[goal]:
        return None, -1.0, 0
    occ = grid.tolist()  # Python lists index far faster than numpy scalars in this loop
    gr, gc = goal
    steps = moves(connectivity)

    def heuristic(r: int, c: int) -> float:
        dr, dc = abs(r - gr), abs(c - gc)
        if connectivity == 4:
            return float(dr + dc)
        return (SQRT2 - 1.0) * min(dr, dc) + max(dr, dc)

    best = {start: 0.0}
    parent: dict[tuple[int, int], tuple[int, int]] = {}
    closed: set[tuple[int, int]] = set()
    heap = [(heuristic(*start), -0.0, start)]
    expanded = 0
    while heap:
        _, neg_g, node = heapq.heappop(heap)
        g = -neg_g
        if node in closed:
            continue
        closed.add(node)
        expanded += 1
        if node == goal:
            path = [node]
            while node in parent:
                node = parent[node]
                path.append(node)
            return path[::-1], g, expanded
        r, c = node
        for dr, dc, cost in steps:
            nr, nc = r + dr, c + dc
            if not (0 <= nr < h and 0 <= nc < w) or occ[nr][nc]:
                continue
            if dr and dc and (occ[r + dr][c] or occ[r][c + dc]):
                continue
            nxt = (nr, nc)
            ng = g + cost
            if nxt not in closed and ng < best.get(nxt, math.inf) - 1e-12:
                best[nxt] = ng
                parent[nxt] = node
                # ties on f prefer the deeper node (smaller h): fewer expansions on open maps
                heapq.heappush(heap, (ng + heuristic(nr, nc), -ng, nxt))
    return None, -1.0, expanded


def parse_grid(value: Any) -> np.ndarray:
    """A JSON grid: a list of strings ('.' free, '#'/'X'/'1' blocked) or a list of lists of 0/1."""
    if not isinstance(value, list) or not value:
        raise InvalidInput("'grid' must be a non-empty list of rows")
    if all(isinstance(row, str) for row in value):
        width = len(value[0])
        if any(len(row) != width for row in value):
            raise InvalidInput("all grid rows must have the same length")
        return np.array([[ch in "#X1x" for ch in row] for row in value], dtype=np.uint8)
    try:
        arr = np.array(value, dtype=np.int64)
    except (ValueError, TypeError):
        raise InvalidInput("'grid' rows must all be strings or all be lists of numbers of equal length") from None
    if arr.ndim != 2:
        raise InvalidInput("'grid' must be 2-dimensional")
    return (arr != 0).astype(np.uint8)


def parse_cell(value: Any, name: str, shape: tuple[int, int]) -> tuple[int, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        raise InvalidInput(f"'{name}' must be [row, col]")
    r, c = int(value[0]), int(value[1])
    if not (0 <= r < shape[0] and 0 <= c < shape[1]):
        raise InvalidInput(f"'{name}' {[r, c]} is outside the {shape[0]}x{shape[1]} grid")
    return r, c


class AStarPlanner(BlockingModel):
    """``grid``/``start``/``goal`` tensors or JSON ``request`` -> ``path`` (JSON), ``cost``, ``found``."""

    def load(self) -> None:
        self.connectivity = int(self.config.parameters.get("connectivity", 8))

    def problems(self, inputs: Tensors) -> list[tuple[np.ndarray, tuple[int, int], tuple[int, int], int]]:
        tensors = [n for n in ("grid", "start", "goal") if n in inputs]
        if "request" in inputs:
            if tensors:
                raise InvalidInput("send either 'request' (JSON) or the grid/start/goal tensors, not both")
            out = []
            for i, raw in enumerate(inputs["request"].reshape(-1)):
                try:
                    doc = json.loads(raw)
                except (ValueError, TypeError):
                    raise InvalidInput(f"request[{i}] is not JSON") from None
                if not isinstance(doc, dict):
                    raise InvalidInput(f"request[{i}] must be an object with grid, start, goal")
                grid = parse_grid(doc.get("grid"))
                conn = int(doc.get("connectivity", self.connectivity))
                out.append(
                    (
                        grid,
                        parse_cell(doc.get("start"), "start", grid.shape),
                        parse_cell(doc.get("goal"), "goal", grid.shape),
                        conn,
                    )
                )
            return out
        if len(tensors) != 3:
            raise InvalidInput("send 'grid' UINT8 [n, H, W], 'start' and 'goal' INT32 [n, 2] (or a JSON 'request')")
        grids, starts, goals = inputs["grid"], inputs["start"], inputs["goal"]
        if not (len(grids) == len(starts) == len(goals)):
            raise InvalidInput("grid, start and goal need the same number of rows")
        return [
            (g, parse_cell(s.tolist(), "start", g.shape), parse_cell(t.tolist(), "goal", g.shape), self.connectivity)
            for g, s, t in zip(grids, starts, goals, strict=True)
        ]

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        paths, costs, found, expanded = [], [], [], []
        for grid, start, goal, conn in self.problems(inputs):
            conn = int(parameters.get("connectivity", conn))
            if conn not in (4, 8):
                raise InvalidInput(f"connectivity must be 4 or 8, got {conn}")
            if grid.size > MAX_CELLS:
                raise InvalidInput(f"grid of {grid.size} cells is larger than the {MAX_CELLS} this planner serves")
            path, cost, n = astar(np.ascontiguousarray(grid != 0, dtype=np.uint8), start, goal, conn)
            paths.append(json.dumps([list(p) for p in path] if path else []).encode())
            costs.append(cost)
            found.append(path is not None)
            expanded.append(n)
        return {
            "path": np.array(paths, dtype=object),
            "cost": np.array(costs, dtype=np.float32),
            "found": np.array(found, dtype=bool),
            "expanded": np.array(expanded, dtype=np.int32),
        }
