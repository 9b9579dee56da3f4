"""Alias: ``aiaas.catalog.models.speech`` before the catalog had one module per model (speech_common,
pocketsphinx_asr, piper_tts, silero_vad). Kept so that code importing the old path keeps working; new code
imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import piper_tts, pocketsphinx_asr, silero_vad
from aiaas.catalog.models.piper_tts import TTS_CONFIG, TTS_REQ, build_tts
from aiaas.catalog.models.pocketsphinx_asr import ASR_CONFIG, ASR_REQ, build_asr
from aiaas.catalog.models.silero_vad import VAD_CONFIG, VAD_REQ, build_vad, vad_clip
from aiaas.catalog.models.speech_common import (
    ASR,
    ASR_HARVARD,
    ASR_SENTENCES,
    AUDIO_IN,
    EVERYDAY,
    FLITE_VOICES,
    HARVARD,
    RATE,
    TTS_HARVARD,
    TTS_SENTENCES,
    VAD_SENTENCES,
    edit_distance,
    flite_available,
    flite_speech,
    normalize_words,
    wer,
)

SPECS = [pocketsphinx_asr.SPEC, piper_tts.SPEC, silero_vad.SPEC]

__all__ = [
    "ASR",
    "ASR_CONFIG",
    "ASR_HARVARD",
    "ASR_REQ",
    "ASR_SENTENCES",
    "AUDIO_IN",
    "EVERYDAY",
    "FLITE_VOICES",
    "HARVARD",
    "RATE",
    "SPECS",
    "TTS_CONFIG",
    "TTS_HARVARD",
    "TTS_REQ",
    "TTS_SENTENCES",
    "VAD_CONFIG",
    "VAD_REQ",
    "VAD_SENTENCES",
    "build_asr",
    "build_tts",
    "build_vad",
    "edit_distance",
    "flite_available",
    "flite_speech",
    "normalize_words",
    "vad_clip",
    "wer",
]
