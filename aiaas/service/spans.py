"""Child spans of an inference, built after the fact from what the batcher measured (``InferResult``): the
request's span (FastAPI's, when tracing is on: ``server/tracing.py``) gets ``queue`` then ``batch`` with
``model`` inside it. Called only when the data plane has a tracer."""

from __future__ import annotations

from typing import Any


def infer_spans(tracer: Any, model: str, version: str, end_ns: int, result: Any) -> None:
    """``queue`` -> ``batch`` > ``model`` child spans of the current span, from a finished ``InferResult``."""
    compute_ns, queue_ns = int(result.compute_s * 1e9), int(result.queue_s * 1e9)
    batch_start = end_ns - compute_ns
    attrs = {"aiaas.model": model, "aiaas.model_version": version}
    tracer.start_span("queue", start_time=batch_start - queue_ns, attributes=attrs).end(end_time=batch_start)
    batch = tracer.start_span(
        "batch", start_time=batch_start, attributes={**attrs, "aiaas.batch_size": result.batch_size}
    )
    from opentelemetry import trace

    with trace.use_span(batch, end_on_exit=False):
        tracer.start_span("model", start_time=batch_start, attributes=attrs).end(end_time=end_ns)
    batch.end(end_time=end_ns)
