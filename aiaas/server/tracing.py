"""Optional OpenTelemetry tracing (``AIAAS_OTEL_ENDPOINT``; needs the ``otel`` extra).

Each HTTP request gets a server span from FastAPI's own instrumentation (the app is given the tracer provider;
V2 infer requests on the fast path run inside the same instrumentation, server/fastpath.py). A V2 or OpenAI inference
adds child spans
built from what the batcher measured: ``queue`` (waiting for a batch), ``batch`` (the batch it ran in, with
its size) and inside it ``model`` (the model call). Spans go to an OTLP/HTTP collector through a batching span
processor. Off (no endpoint), nothing is imported and the data plane checks one attribute.
"""

from __future__ import annotations

from typing import Any

from aiaas.settings import Settings


def tracer_provider(settings: Settings) -> Any:
    """An SDK tracer provider exporting to ``settings.otel_endpoint`` (OTLP over HTTP), or None when unset."""
    if not settings.otel_endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as e:
        raise RuntimeError(
            "AIAAS_OTEL_ENDPOINT is set but OpenTelemetry is not installed: pip install 'aiaas[otel]'"
        ) from e
    endpoint = settings.otel_endpoint.rstrip("/")
    if not endpoint.endswith("/v1/traces"):
        endpoint += "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": "aiaas"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider
