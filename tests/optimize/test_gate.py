"""The accuracy/speed gate and the Pareto set."""

from __future__ import annotations

import math

from aiaas.optimize import Criterion, gate
from aiaas.optimize.measure import pareto


def m(value: float, p50: float, name: str = "accuracy", higher: bool = True, batch: int = 32) -> dict:
    return {
        "metric": {"name": name, "value": value, "higher_is_better": higher},
        "latency": {f"batch_{batch}": {"p50_ms": p50}},
    }


def test_large_accuracy_drop_is_rejected_with_a_readable_reason() -> None:
    d = gate(Criterion(), m(0.947, 10.0), m(0.612, 5.0), 32)
    assert not d.accepted
    assert d.reason == "rejected: accuracy 0.612 vs 0.947 baseline, -35.4% relative > 1% allowed"
    assert math.isclose(d.relative_loss, (0.947 - 0.612) / 0.947)


def test_small_drop_within_the_criterion_is_accepted_and_says_the_speedup() -> None:
    d = gate(Criterion(max_relative_loss=0.01), m(0.900, 10.0), m(0.895, 4.0), 32)
    assert d.accepted and d.speedup == 2.5
    assert d.reason.startswith(
        "accepted: accuracy 0.895 vs 0.9 baseline, -0.6% relative (within 1%); 2.50x at batch 32"
    )


def test_improvement_is_accepted() -> None:
    d = gate(Criterion(max_relative_loss=0.0), m(0.90, 10.0), m(0.91, 10.0), 32)
    assert d.accepted and d.relative_loss < 0 and "+1.1% relative" in d.reason


def test_lower_is_better_metrics_count_an_increase_as_a_loss() -> None:
    rejected = gate(Criterion(max_relative_loss=0.05), m(1.00, 10, "rmse", False), m(1.10, 5, "rmse", False), 32)
    assert not rejected.accepted and math.isclose(rejected.relative_loss, 0.10)
    assert "rmse 1.1 vs 1 baseline, -10% relative > 5% allowed" in rejected.reason
    assert gate(Criterion(), m(1.00, 10, "rmse", False), m(0.95, 5, "rmse", False), 32).accepted


def test_min_speedup_rejects_a_slower_candidate_even_when_accurate() -> None:
    d = gate(Criterion(min_speedup=1.5), m(0.9, 10.0), m(0.9, 8.0), 32)
    assert not d.accepted
    assert "1.25x at batch 32" in d.reason and "below the 1.5x required" in d.reason


def test_nan_metric_is_rejected() -> None:
    assert not gate(Criterion(), m(0.9, 1.0), m(float("nan"), 1.0), 32).accepted


def test_pareto_drops_dominated_points() -> None:
    points = {
        "baseline": (100.0, 10.0, 0.95),
        "int8": (25.0, 5.0, 0.94),
        "worse": (30.0, 6.0, 0.93),  # bigger, slower and less accurate than int8
        "graph": (100.0, 9.0, 0.95),  # dominates baseline (faster, same size and metric)
    }
    assert sorted(pareto(points, higher_is_better=True)) == ["graph", "int8"]
