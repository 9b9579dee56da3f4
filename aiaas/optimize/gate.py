"""Accept or reject a candidate against the criterion, with a reason a user can read.

The metric delta is relative to the baseline and signed so that positive means worse, whichever direction the
metric goes (accuracy down or rmse up). Speed is compared at the serving batch size (p50), because that is
where the bill is; an int8 model that is faster at batch 1 but slower at batch 32 is caught here. When the
candidate's measurement carries ``speedup_ci`` (``speedci.interleaved_speedup``), the speedup is that median
ratio and a speed floor is met only when the interval's low end clears it: noise cannot pass for a speedup.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aiaas.optimize.artifacts import Criterion


@dataclass
class Decision:
    accepted: bool
    reason: str
    relative_loss: float  # > 0: worse than the baseline, as a fraction of the baseline metric
    absolute_delta: float  # candidate - baseline
    speedup: float | None  # baseline p50 / candidate p50 at the serving batch size (interleaved median when measured)
    speedup_low: float | None = None  # the confidence interval of the speedup, when measured
    speedup_high: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "reason": self.reason,
            "relative_loss": self.relative_loss,
            "absolute_delta": self.absolute_delta,
            "speedup": self.speedup,
            "speedup_ci": None if self.speedup_low is None else [self.speedup_low, self.speedup_high],
        }


def _pct(x: float) -> str:
    if abs(x) < 0.0005:
        return "0%"
    s = f"{x * 100:.1f}".rstrip("0").rstrip(".")
    return f"{s}%"


def relative_loss(baseline: float, candidate: float, higher_is_better: bool) -> float:
    worse = baseline - candidate if higher_is_better else candidate - baseline
    if baseline == 0:
        return 0.0 if worse <= 0 else math.inf
    return worse / abs(baseline)


def _serving_p50(measurement: dict[str, Any], batch: int) -> float | None:
    lat = measurement.get("latency", {}).get(f"batch_{batch}")
    return None if lat is None else float(lat["p50_ms"])


def gate(criterion: Criterion, baseline: dict[str, Any], candidate: dict[str, Any], batch_size: int) -> Decision:
    """``baseline`` and ``candidate`` are ``measure()`` results."""
    name = baseline["metric"]["name"]
    higher = bool(baseline["metric"]["higher_is_better"])
    b, c = float(baseline["metric"]["value"]), float(candidate["metric"]["value"])
    delta = c - b
    loss = relative_loss(b, c, higher) if not (math.isnan(b) or math.isnan(c)) else math.inf
    b_ms, c_ms = _serving_p50(baseline, batch_size), _serving_p50(candidate, batch_size)
    speedup = b_ms / c_ms if b_ms and c_ms else None
    ci = candidate.get("speedup_ci")
    low = high = None
    if ci is not None:
        speedup, low, high = float(ci["speedup"]), float(ci["low"]), float(ci["high"])
    signed = -loss  # as a change: -35.4% means 35.4% worse
    metric_text = f"{name} {c:.4g} vs {b:.4g} baseline, {'+' if signed >= 0.0005 else ''}{_pct(signed)} relative"
    interval = f" [{ci['confidence']:.0%} CI {low:.2f}-{high:.2f}x, {ci['rounds']} interleaved rounds]" if ci else ""
    speed_text = (
        f"{speedup:.2f}x{interval} at batch {batch_size} (p50 {c_ms:.3g} ms vs {b_ms:.3g} ms)"
        if speedup is not None and b_ms and c_ms
        else "speed not measured"
    )
    claim = low if low is not None else speedup  # what must clear the floor
    allowed = _pct(criterion.max_relative_loss)
    if not loss <= criterion.max_relative_loss:
        return Decision(False, f"rejected: {metric_text} > {allowed} allowed", loss, delta, speedup, low, high)
    if criterion.min_speedup is not None and (claim is None or claim < criterion.min_speedup):
        below = (
            "the interval does not clear"
            if low is not None and speedup is not None and speedup >= criterion.min_speedup
            else "below"
        )
        return Decision(
            False,
            f"rejected: {speed_text}, {below} the {criterion.min_speedup:g}x required ({metric_text}); "
            "criterion.min_speedup sets the floor (0: any speed)",
            loss,
            delta,
            speedup,
            low,
            high,
        )
    return Decision(True, f"accepted: {metric_text} (within {allowed}); {speed_text}", loss, delta, speedup, low, high)
