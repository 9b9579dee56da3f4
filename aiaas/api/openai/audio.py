"""``POST /v1/audio/transcriptions`` (a multipart form) and ``POST /v1/audio/speech``."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response

from aiaas.api.deps import principal
from aiaas.api.openai.common import json_response, service
from aiaas.errors import PayloadTooLarge
from aiaas.service import audio_formats
from aiaas.service.governance import Principal
from aiaas.types import openai as oa

router = APIRouter()


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
    result = await service(request).audio.transcription(p, model, audio, response_format)
    if isinstance(result, str):
        return Response(result, media_type="text/plain")
    if isinstance(result, dict):
        return Response(orjson.dumps(result), media_type="application/json")
    return json_response(result)


@router.post("/audio/speech")
async def speech(body: oa.SpeechRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    audio = await service(request).audio.speech(p, body)
    return Response(audio, media_type=audio_formats.media_type(body.response_format))
