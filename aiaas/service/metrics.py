"""Prometheus metrics of one server (its own registry, so tests and several apps never collide)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from aiaas.service.opsmetrics import OpsMetrics

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

STATES = ("LOADING", "READY", "UNLOADING", "UNAVAILABLE")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "aiaas_requests",
            "Inference requests by model, version and outcome",
            ["model", "version", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "aiaas_request_duration_seconds",
            "Total request time inside the server",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_time = Histogram(
            "aiaas_queue_duration_seconds",
            "Time a request waited in its model's queue",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.compute_time = Histogram(
            "aiaas_compute_duration_seconds",
            "Model execution time per batch",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "aiaas_batch_size", "Rows per model execution", ["model"], buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("aiaas_queue_depth", "Requests waiting in a model's queue", ["model"], registry=r)
        self.model_state = Gauge(
            "aiaas_model_state",
            "1 for the current state of each model version",
            ["model", "version", "state"],
            registry=r,
        )

        self.ops = OpsMetrics(r)  # process, refusals by reason, LLM families (service/opsmetrics.py)
        self._request_children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    def request_done(self, model: str, version: str, outcome: str, elapsed_s: float, queue_s: float | None) -> None:
        """Count one finished inference request. The labelled children are cached: ``labels()`` (lock, label
        checks) costs more than the observations and ran three times per request on the hot path."""
        key = (model, version, outcome)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(model, version, outcome),
                self.latency.labels(model),
                self.queue_time.labels(model),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(elapsed_s)
        if queue_s is not None:
            children[2].observe(queue_s)

    def set_state(self, model: str, version: str, state: str) -> None:
        for s in STATES:
            self.model_state.labels(model, version, s).set(1.0 if s == state else 0.0)

    def observer(self, model: str) -> _Observer:
        return _Observer(self, model)


class _Observer:
    """The batcher's view of the metrics (keeps the batching layer free of prometheus)."""

    __slots__ = ("_batch", "_compute", "_depth")

    def __init__(self, metrics: Metrics, model: str) -> None:
        self._batch = metrics.batch_size.labels(model)
        self._compute = metrics.compute_time.labels(model)
        self._depth = metrics.queue_depth.labels(model)

    def batch(self, size: int, compute_s: float) -> None:
        self._batch.observe(size)
        self._compute.observe(compute_s)

    def queue_depth(self, depth: int) -> None:
        self._depth.set(depth)
