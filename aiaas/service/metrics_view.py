"""What a /metrics scrape may see: model names are labels only for callers who may see those models.

Prometheus labels carry model names, and a model private to a tenant is a secret of that tenant (its name
alone may say what the tenant builds). The rule: a scrape shows a model's own series only when the scraper
could see the model through the API -- an anonymous scrape (``metrics_require_key`` false, no key sent) sees
the public models; a tenant's key sees its own, granted and public ones; an admin key sees all. Every other
model's series are summed into one ``model="_private"`` series per remaining label set, so totals (requests,
latency histograms, queue depth, states) stay whole. See docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from aiaas.service.governance import Governance, ModelRef, Principal
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager

PRIVATE = "_private"
ANONYMOUS = Principal(key_id="", tenant_id="", role="user")  # sees public models only


def model_visibility(
    models: ModelManager, governance: Governance, principal: Principal | None
) -> Callable[[str], bool]:
    """Whether the scraper may see a model's name; models no longer known to the server are hidden."""
    who = principal or ANONYMOUS
    cache: dict[str, bool] = {}

    def visible(name: str) -> bool:
        seen = cache.get(name)
        if seen is None:
            rec = models.models.get(name)
            owner = rec.config.owner if rec is not None and rec.config is not None else None
            seen = cache[name] = rec is not None and governance.can_see(who, ModelRef(name, owner=owner))
        return seen

    return visible


class _Relabelled(Collector):
    def __init__(self, registry: CollectorRegistry, visible: Callable[[str], bool]) -> None:
        self._registry = registry
        self._visible = visible

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            merged: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
            for s in family.samples:
                labels = s.labels
                model = labels.get("model")
                if model is not None and not self._visible(model):
                    labels = {**labels, "model": PRIVATE}
                key = (s.name, tuple(labels.items()))
                merged[key] = merged.get(key, 0.0) + s.value
            out.samples = [Sample(name, dict(labels), value) for (name, labels), value in merged.items()]
            yield out


def exposition(metrics: Metrics, visible: Callable[[str], bool] | None) -> bytes:
    """The Prometheus text of ``metrics``; ``visible`` None shows every model (an admin scrape)."""
    from prometheus_client import generate_latest

    if visible is None:
        return generate_latest(metrics.registry)
    return generate_latest(_Relabelled(metrics.registry, visible))
