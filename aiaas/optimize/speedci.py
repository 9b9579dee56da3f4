"""Speedup with a confidence interval, measured so that timing noise cannot pass for a speedup.

Baseline and candidate run interleaved (ABBA: the order flips every round, so drift and a neighbour's load
hit both alike), a few calls each per round; each round gives one ratio baseline time / candidate time. Rounds
go on until the interval of the median ratio is narrow (``rel_width`` either side) or the time cap is reached.
The interval is a bootstrap percentile interval of the median of the per-round log-ratios (robust to the
outliers a busy machine produces). The gate accepts a speed claim only when the interval's low end clears it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from aiaas.optimize.artifacts import Artifact, Evaluation, Workload
from aiaas.optimize.measure import Runner, _tile, open_runner


def bootstrap_median_ci(log_ratios: list[float], confidence: float, resamples: int = 1000) -> tuple[float, float]:
    x = np.asarray(log_ratios)
    rng = np.random.default_rng(0)  # deterministic: the same rounds give the same interval
    medians = np.median(x[rng.integers(0, len(x), size=(resamples, len(x)))], axis=1)
    alpha = (1.0 - confidence) / 2
    return float(np.exp(np.quantile(medians, alpha))), float(np.exp(np.quantile(medians, 1 - alpha)))


def interleaved_speedup(
    base: Runner,
    cand: Runner,
    feed: dict[str, np.ndarray],
    batch: int,
    *,
    min_rounds: int = 10,
    max_rounds: int = 400,
    max_seconds: float = 10.0,
    rel_width: float = 0.05,
    confidence: float = 0.95,
    calls: int = 2,
    warmup: int = 2,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """``{"speedup", "low", "high", "confidence", "rounds", "converged"}``; speedup = baseline / candidate time."""
    x = _tile(feed, batch)
    for _ in range(warmup):
        base.run(x)
        cand.run(x)
    logs: list[float] = []
    lo = hi = 1.0
    deadline = timer() + max_seconds
    converged = False
    while len(logs) < max_rounds:
        spent = [0.0, 0.0]
        for which in (0, 1) if len(logs) % 2 == 0 else (1, 0):
            runner = base if which == 0 else cand
            t0 = timer()
            for _ in range(calls):
                runner.run(x)
            spent[which] = timer() - t0
        logs.append(math.log(max(spent[0], 1e-12) / max(spent[1], 1e-12)))
        if len(logs) >= min_rounds and (len(logs) % 5 == 0 or timer() >= deadline):
            lo, hi = bootstrap_median_ci(logs, confidence)
            point = math.exp(float(np.median(logs)))
            converged = hi / point - 1 <= rel_width and 1 - lo / point <= rel_width
            if converged or timer() >= deadline:
                break
    lo, hi = bootstrap_median_ci(logs, confidence)
    return {
        "speedup": math.exp(float(np.median(logs))),
        "low": lo,
        "high": hi,
        "confidence": confidence,
        "rounds": len(logs),
        "converged": converged,
        "batch_size": batch,
    }


def speedup_ci(base: Artifact, cand: Artifact, evaluation: Evaluation, workload: Workload) -> dict[str, Any]:
    """The interleaved speedup of two artifacts at the serving batch size, on evaluation rows."""
    b, c = open_runner(base, workload), open_runner(cand, workload)
    feed = {k: v for k, v in evaluation.inputs.items() if k in b.input_names}
    return interleaved_speedup(b, c, feed, workload.batch_size, max_seconds=max(2.0, 3 * workload.max_seconds))
