"""``/v1/audio/speech`` and ``/v1/audio/transcriptions`` (the transcription request is a multipart form,
read by its router)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from aiaas.types.openai.common import Req, Resp


class SpeechRequest(Req):
    model: str = Field(min_length=1, max_length=256)
    input: str = Field(min_length=1, max_length=4096)
    voice: str | dict[str, Any] = "default"
    response_format: str = "wav"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = None


class Transcription(Resp):
    text: str
