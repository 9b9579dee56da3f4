"""Metrics an operator expects beyond the per-request ones (``service/metrics.py``), in the same registry:

- the Prometheus client's default collectors: ``process_*`` (CPU, memory, open files), ``python_gc_*``,
  ``python_info``;
- ``aiaas_refusals_total{model,tenant,reason}``: requests turned away before they ran, by why: ``rate_limit``
  (429), ``budget`` (402), ``overload`` (503: queue full, model busy);
- vLLM-style LLM families (names as vLLM's ``vllm:*`` with the ``aiaas_llm_`` prefix): prompt and generation
  tokens, time to first token, time per output token, and, read from each engine when scraped, running and
  waiting sequences and KV-cache use (reserved tokens / the engine's token budget).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

REASONS = {429: "rate_limit", 402: "budget", 503: "overload"}
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0)

# (model name, engine) pairs of the LLM versions loaded now; the server's model manager provides them
EngineSource = Callable[[], Iterable[tuple[str, Any]]]


class OpsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        self.refusals = Counter(
            "aiaas_refusals",
            "Requests refused before running, by reason: rate_limit (429), budget (402), overload (503)",
            ["model", "tenant", "reason"],
            registry=registry,
        )
        self.prompt_tokens = Counter("aiaas_llm_prompt_tokens", "Prompt tokens processed", ["model"], registry=registry)
        self.generation_tokens = Counter(
            "aiaas_llm_generation_tokens", "Tokens generated", ["model"], registry=registry
        )
        self.ttft = Histogram(
            "aiaas_llm_time_to_first_token_seconds",
            "Time from request to its first generated token",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=registry,
        )
        self.tpot = Histogram(
            "aiaas_llm_time_per_output_token_seconds",
            "Mean time per generated token after the first",
            ["model"],
            buckets=_TPOT_BUCKETS,
            registry=registry,
        )
        self._engines = _EngineCollector()
        registry.register(self._engines)

    def refused(self, model: str, tenant: str, status: int) -> None:
        reason = REASONS.get(status)
        if reason is not None:
            self.refusals.labels(model, tenant, reason).inc()

    def llm_request(
        self, model: str, prompt_tokens: int, generated: int, t0: float, t_first: float | None, t_end: float
    ) -> None:
        """One finished LLM request (perf_counter times)."""
        self.prompt_tokens.labels(model).inc(prompt_tokens)
        self.generation_tokens.labels(model).inc(generated)
        if t_first is not None:
            self.ttft.labels(model).observe(t_first - t0)
            if generated > 1:
                self.tpot.labels(model).observe((t_end - t_first) / (generated - 1))

    def watch_engines(self, source: EngineSource) -> None:
        self._engines.source = source


def loaded_engines(models: Any) -> Iterator[tuple[str, Any]]:
    """(model, engine) of every ready LLM version of a ``ModelManager`` (duck-typed: any instance with an
    ``engine`` that has ``stats()``)."""
    for name, rec in list(models.models.items()):
        for vr in list(rec.versions.values()):
            for inst in getattr(vr.executor, "instances", ()) if vr.ready else ():
                engine = getattr(inst, "engine", None)
                if engine is not None and hasattr(engine, "stats"):
                    yield name, engine


class _EngineCollector(Collector):
    """Running / waiting sequences and KV-cache use of each loaded LLM, read from its engine at scrape time."""

    def __init__(self) -> None:
        self.source: EngineSource | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        running = GaugeMetricFamily(
            "aiaas_llm_num_requests_running", "Sequences in the running batch", labels=["model"]
        )
        waiting = GaugeMetricFamily("aiaas_llm_num_requests_waiting", "Sequences waiting for a slot", labels=["model"])
        kv = GaugeMetricFamily(
            "aiaas_llm_kv_cache_usage_perc", "KV-cache use: reserved tokens / token budget (0-1)", labels=["model"]
        )
        for name, engine in self.source() if self.source is not None else ():
            stats = engine.stats()
            running.add_metric([name], stats.running)
            waiting.add_metric([name], stats.waiting)
            budget = getattr(engine, "max_num_tokens", 0) or 0
            kv.add_metric([name], stats.tokens_reserved / budget if budget else 0.0)
        yield from (running, waiting, kv)

    def describe(self) -> list[GaugeMetricFamily]:
        return []
