"""Per-model requests per second and p50/p99 latency over the last hour, for the console's small charts.

Sampled from the server's own Prometheus histogram (``aiaas_request_duration_seconds``) every ``interval_s``:
each point is the difference between two samples, so it costs the serving path nothing (no extra per-request
work) and quantiles are estimated within the histogram's buckets, as Prometheus' ``histogram_quantile`` does.
The sampler starts with the first console request and lives as long as the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiaas.service.metrics import Metrics


@dataclass(frozen=True, slots=True)
class Point:
    t: float  # epoch seconds at the end of the interval
    rps: float
    p50_ms: float | None  # None: no request in the interval
    p99_ms: float | None


def quantile(q: float, bounds: list[float], counts: list[float]) -> float | None:
    """The q-quantile of a histogram given cumulative ``counts`` at upper ``bounds`` (the last is +Inf)."""
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cum in zip(bounds, counts, strict=True):
        if cum >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its lower edge is all we know
            inside = cum - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cum
    return lower


class Timeline:
    def __init__(self, metrics: Metrics, interval_s: float = 15.0, window_s: float = 3600.0) -> None:
        self.metrics = metrics
        self.interval_s = interval_s
        self.points: dict[str, deque[Point]] = {}
        self._maxlen = max(2, int(window_s / interval_s))
        self._last: dict[str, tuple[float, list[float], list[float]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._sampled_at: float | None = None  # time of the previous sample (a model first seen started at 0 then)

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self.sample()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="aiaas-ui-timeline")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            with contextlib.suppress(Exception):  # a sampling hiccup must never end the sampler
                self.sample()

    def _read(self) -> dict[str, tuple[list[float], list[float]]]:
        hist: dict[str, dict[float, float]] = {}
        for family in self.metrics.latency.collect():
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    hist.setdefault(s.labels["model"], {})[float(s.labels["le"])] = s.value
        return {m: (sorted(b), [b[k] for k in sorted(b)]) for m, b in hist.items()}

    def sample(self) -> None:
        now, previous = time.time(), self._sampled_at
        self._sampled_at = now
        for model, (bounds, counts) in self._read().items():
            last = self._last.get(model)
            if last is None and previous is not None:  # its first requests came after the previous sample
                last = (previous, bounds, [0.0] * len(counts))
            self._last[model] = (now, bounds, counts)
            if last is None or last[1] != bounds or now - last[0] <= 0:
                continue
            delta = [c - p for c, p in zip(counts, last[2], strict=True)]
            p50, p99 = quantile(0.5, bounds, delta), quantile(0.99, bounds, delta)
            point = Point(
                now,
                delta[-1] / (now - last[0]),
                p50 * 1e3 if p50 is not None else None,
                p99 * 1e3 if p99 is not None else None,
            )
            self.points.setdefault(model, deque(maxlen=self._maxlen)).append(point)

    def series(self, model: str) -> dict[str, list[Any]]:
        """uPlot-ready columns: t, rps, p50_ms, p99_ms."""
        pts = list(self.points.get(model, ()))
        return {
            "t": [round(p.t) for p in pts],
            "rps": [round(p.rps, 3) for p in pts],
            "p50": [None if p.p50_ms is None else round(p.p50_ms, 3) for p in pts],
            "p99": [None if p.p99_ms is None else round(p.p99_ms, 3) for p in pts],
        }

    def summary(self, model: str) -> dict[str, float | None]:
        """The hour's request rate and the latest interval's quantiles that saw traffic."""
        pts = list(self.points.get(model, ()))
        busy = [p for p in pts if p.p50_ms is not None]
        return {
            "rps": sum(p.rps for p in pts) / len(pts) if pts else None,
            "p50": busy[-1].p50_ms if busy else None,
            "p99": busy[-1].p99_ms if busy else None,
        }
