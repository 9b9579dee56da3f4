"""``/v1/audio/transcriptions`` and ``/v1/audio/speech``: WAV through a speech recognizer, text through a speech
synthesizer (see ``models.py`` for the tensor convention)."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import numpy as np
import orjson

from aiaas.errors import InvalidInput
from aiaas.service import audio_formats
from aiaas.service.dataplane import DataPlane
from aiaas.service.governance import Principal
from aiaas.service.openai.models import ModelsServing, infer
from aiaas.types import openai as oa

TRANSCRIPTION_FORMATS = ("json", "text", "verbose_json")  # what a transcription may answer in


def verbose_transcription(text: str, duration: float | None, words_out: Any) -> dict[str, Any]:
    """OpenAI's verbose_json: one segment for the utterance and, when the recognizer gives them (an output
    ``words``: JSON [{word, start, end}]), word timestamps; without them the segment spans the audio."""
    words: list[dict[str, Any]] = []
    if words_out is not None:
        raw = np.asarray(words_out).reshape(-1)[0]
        try:
            words = [
                {"word": str(w["word"]), "start": float(w["start"]), "end": float(w["end"])} for w in orjson.loads(raw)
            ]
        except (ValueError, TypeError, KeyError):
            words = []
    start = words[0]["start"] if words else 0.0
    end = words[-1]["end"] if words else (duration or 0.0)
    segments = [{"id": 0, "seek": 0, "start": start, "end": end, "text": text}] if text else []
    doc: dict[str, Any] = {
        "task": "transcribe",
        "language": None,
        "duration": duration,
        "text": text,
        "segments": segments,
    }
    if words:
        doc["words"] = words
    return doc


def _wav_seconds(audio: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(audio)) as w:
            frames: int = w.getnframes()
            return frames / float(w.getframerate())
    except Exception:
        return None


class AudioServing:
    def __init__(self, models: ModelsServing, dataplane: DataPlane) -> None:
        self.models = models
        self.dataplane = dataplane

    async def transcription(
        self, principal: Principal, model: str, audio: bytes, response_format: str = "json"
    ) -> oa.Transcription | dict[str, Any] | str:
        """The text (``text``), OpenAI's JSON (``json``) or segments and words (``verbose_json``)."""
        if response_format not in TRANSCRIPTION_FORMATS:
            raise InvalidInput(
                f"response_format {response_format!r} is not supported; use json, text or verbose_json",
                param="response_format",
            )
        if not audio:
            raise InvalidInput("the audio file is empty", param="file")
        if not (audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"):
            raise InvalidInput("the audio file must be WAV (RIFF/WAVE)", param="file")
        outputs = await infer(
            self.models,
            self.dataplane,
            principal,
            model,
            {"audio": np.array([audio], dtype=object)},
            "openai.transcriptions",
        )
        text = outputs.get("text")
        if text is None:
            raise InvalidInput(f"model {model!r} is not a speech recognizer (output 'text')", param="model")
        first = np.asarray(text).reshape(-1)[0]
        value = first.decode() if isinstance(first, bytes) else str(first)
        if response_format == "text":
            return value
        if response_format == "verbose_json":
            return verbose_transcription(value, _wav_seconds(audio), outputs.get("words"))
        return oa.Transcription(text=value)

    async def speech(self, principal: Principal, req: oa.SpeechRequest) -> bytes:
        audio_formats.check_format(req.response_format)
        outputs = await infer(
            self.models,
            self.dataplane,
            principal,
            req.model,
            {"text": np.array([req.input.encode()], dtype=object)},
            "openai.speech",
        )
        audio = outputs.get("audio")
        if audio is None:
            raise InvalidInput(f"model {req.model!r} is not a speech synthesizer (output 'audio')", param="model")
        first = np.asarray(audio).reshape(-1)[0]
        return await asyncio.to_thread(audio_formats.encode, bytes(first), req.response_format)
