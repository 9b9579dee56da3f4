"""Prometheus view of the replicas, read at scrape time (nothing on the request path): replicas by state and
node, restarts, batches and batch seconds per replica. The per-model metrics are unchanged."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from aiaas.service.models import ModelManager


class ReplicaCollector(Collector):
    def __init__(self, models: ModelManager) -> None:
        self.models = models

    def collect(self) -> Iterator[Any]:
        states = GaugeMetricFamily(
            "aiaas_replicas",
            "Model replicas by state, placement and node",
            labels=["model", "state", "placement", "node"],
        )
        restarts = CounterMetricFamily(
            "aiaas_replica_restarts",
            "Restarts of a replica after its process or node died",
            labels=["model", "replica"],
        )
        batches = CounterMetricFamily("aiaas_replica_batches", "Batches a replica ran", labels=["model", "replica"])
        seconds = CounterMetricFamily(
            "aiaas_replica_batch_seconds",
            "Seconds of model calls of a replica (over aiaas_replica_batches_total: the mean batch time)",
            labels=["model", "replica"],
        )
        for name, rec in list(self.models.models.items()):
            counts: Counter[tuple[str, str, str]] = Counter()
            for vr in list(rec.versions.values()):
                ex = vr.executor
                for r in list(ex.replicas) if ex is not None else []:
                    info = r.info()
                    counts[(info["state"], info["placement"], info["node"])] += 1
                    rid = f"{vr.version}/{r.id}"
                    restarts.add_metric([name, rid], r.stats.restarts)
                    batches.add_metric([name, rid], r.stats.batches)
                    seconds.add_metric([name, rid], r.stats.batch_s)
            for (state, placement, node), n in counts.items():
                states.add_metric([name, state, placement, node], n)
        yield from (states, restarts, batches, seconds)
