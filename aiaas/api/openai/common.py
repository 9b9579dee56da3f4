"""What the OpenAI routers share: the service they hand over to and how a result becomes a response."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from aiaas.service.openai import OpenAIService, StreamResult

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # no proxy buffering of event streams


def service(request: Request) -> OpenAIService:
    """The app's OpenAI service, built once from its services."""
    svc: OpenAIService | None = getattr(request.app.state, "openai_service", None)
    if svc is None:
        s = request.app.state.services
        svc = request.app.state.openai_service = OpenAIService(s.models, s.governance, s.dataplane, s.metrics)
    return svc


def json_response(model: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


def reply(result: Any) -> Response:
    """A server-sent-event stream for a ``StreamResult``, else the model as JSON."""
    if isinstance(result, StreamResult):
        return StreamingResponse(
            result.body, media_type="text/event-stream", headers={**STREAM_HEADERS, **result.headers}
        )
    return json_response(result)
