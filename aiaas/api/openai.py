"""OpenAI-compatible routes under ``/v1``: a thin layer that parses, authenticates and hands over to
``aiaas.service.openai``. Errors render in OpenAI's shape through ``aiaas.api.errors``."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from aiaas.api.deps import principal
from aiaas.errors import PayloadTooLarge
from aiaas.service import audio_formats
from aiaas.service.governance import Principal
from aiaas.service.openai import OpenAIService, StreamResult
from aiaas.types import openai as oa

router = APIRouter(prefix="/v1", tags=["openai"])


def _service(request: Request) -> OpenAIService:
    svc = getattr(request.app.state, "openai_service", None)
    if svc is None:
        s = request.app.state.services
        svc = request.app.state.openai_service = OpenAIService(s.models, s.governance, s.dataplane, s.metrics)
    return svc


def _json(model: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(), media_type="application/json", headers=headers)


def _reply(result: Any) -> Response:
    if isinstance(result, StreamResult):
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **result.headers}
        return StreamingResponse(result.body, media_type="text/event-stream", headers=headers)
    return _json(result)


@router.get("/models")
async def list_models(request: Request, p: Principal = Depends(principal)) -> Response:
    return _json(_service(request).list_models(p))


@router.get("/models/{model:path}")
async def get_model(model: str, request: Request, p: Principal = Depends(principal)) -> Response:
    return _json(_service(request).get_model(p, model))


@router.post("/completions")
async def completions(body: oa.CompletionRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    return _reply(await _service(request).completion(p, body))


@router.post("/chat/completions")
async def chat_completions(body: oa.ChatCompletionRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    return _reply(await _service(request).chat(p, body))


@router.post("/embeddings")
async def embeddings(body: oa.EmbeddingRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    return _json(await _service(request).embeddings(p, body))


@router.post("/audio/transcriptions")
async def transcriptions(
    request: Request,
    file: UploadFile = File(...),
    model: str = Form(...),
    response_format: str = Form("json"),
    language: str | None = Form(None),
    prompt: str | None = Form(None),
    temperature: float | None = Form(None),
    p: Principal = Depends(principal),
) -> Response:
    limit = request.app.state.services.settings.max_request_bytes
    audio = await file.read(limit + 1)
    if len(audio) > limit:
        raise PayloadTooLarge(f"the audio file exceeds the limit of {limit} bytes")
    result = await _service(request).transcription(p, model, audio, response_format)
    if isinstance(result, str):
        return Response(result, media_type="text/plain")
    if isinstance(result, dict):
        return Response(orjson.dumps(result), media_type="application/json")
    return _json(result)


@router.post("/audio/speech")
async def speech(body: oa.SpeechRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    audio = await _service(request).speech(p, body)
    return Response(audio, media_type=audio_formats.media_type(body.response_format))
