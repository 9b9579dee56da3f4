"""``silero-vad``: Silero's voice activity detector (its ONNX model, copied out of the wheel), measured on
speech clips padded with silence and noise."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.catalog.common import package_version, size_mb
from aiaas.catalog.models.speech_common import (
    AUDIO_IN,
    HELLO_WAV_B64,
    RATE,
    VAD_SENTENCES,
    audio_example,
    speech_source,
    timing_ms,
    write_json,
)
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.types.model_config import ModelConfig

if TYPE_CHECKING:
    import numpy as np


VAD_REQ = Requirement(pip=(("silero_vad", "silero-vad==6.2.3"),))

VAD_CONFIG: dict[str, Any] = {
    "backend": "python",
    "task": "audio-classification",
    "description": "Voice activity detection (Silero VAD): speech segments [[start_s, end_s], ...] as JSON and "
    "the share of speech, per WAV",
    "max_batch_size": 8,
    "batching": {"max_queue_delay_ms": 2.0, "timeout_ms": 60_000},
    "inputs": AUDIO_IN,
    "outputs": [
        {"name": "segments", "datatype": "BYTES", "shape": [-1]},
        {"name": "speech_ratio", "datatype": "FP32", "shape": [-1]},
    ],
    "parameters": {"class": "aiaas.catalog.runtime.speech_vad:SileroVAD", "max_seconds": 600},
}


def vad_clip(rng: np.random.Generator, utterances: list[np.ndarray]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 16 kHz test clip: utterances separated by 0.6-1.6 s gaps over background noise, with a non-speech
    tone or noise burst in one gap; returns the clip and the true speech spans (trimmed of TTS silence)."""
    import numpy as np

    parts: list[np.ndarray] = [np.zeros(int(rng.uniform(0.4, 1.5) * RATE), np.float32)]
    spans: list[tuple[int, int]] = []
    pos = len(parts[0])
    for k, u in enumerate(utterances):
        active = np.nonzero(np.abs(u) > 0.02 * np.abs(u).max())[0]
        u = u[active[0] : active[-1] + 1] * rng.uniform(0.3, 1.0)
        spans.append((pos, pos + len(u)))
        parts.append(u.astype(np.float32))
        pos += len(u)
        gap = np.zeros(int(rng.uniform(0.6, 1.6) * RATE), np.float32)
        if k == 0:  # a distractor that is not speech: a beep or a burst of noise
            n = int(0.3 * RATE)
            t = np.arange(n) / RATE
            burst = (
                0.3 * np.sin(2 * np.pi * rng.uniform(300, 2000) * t)
                if rng.random() < 0.5
                else 0.1 * rng.standard_normal(n)
            )
            start = (len(gap) - n) // 2
            gap[start : start + n] = burst
        parts.append(gap)
        pos += len(gap)
    clip = np.concatenate(parts)
    snr_noise = 10 ** (-rng.uniform(25, 45) / 20)  # background noise 25-45 dB below full scale speech
    clip = clip + snr_noise * rng.standard_normal(len(clip)).astype(np.float32)
    return np.clip(clip, -1, 1).astype(np.float32), spans


@timed
def build_vad(ctx: BuildContext) -> BuildResult:
    import numpy as np
    import silero_vad

    from aiaas.catalog.runtime.speech_audio import resample, write_wav
    from aiaas.catalog.runtime.speech_vad import FRAME, SileroVAD, frame_labels
    from aiaas.runtime import RuntimeContext

    ctx.progress(0.05, "copying the Silero VAD ONNX model out of its wheel")
    onnx_path = ctx.workdir / "silero_vad.onnx"
    shutil.copy2(Path(silero_vad.__file__).parent / "data" / "silero_vad.onnx", onnx_path)
    model = SileroVAD(ModelConfig.model_validate(VAD_CONFIG), ctx.workdir, RuntimeContext())
    model.load()
    source, speak = speech_source(ctx)
    rng = np.random.default_rng(ctx.seed)
    n_clips = 3 if ctx.quick else 16
    metrics: dict[str, float] = {}
    rows = []
    if speak is not None:
        correct = total = tp = fp = fn = 0
        for c in range(n_clips):
            ctx.progress(0.1 + 0.8 * c / n_clips, f"clip {c + 1}/{n_clips}: speech + silence + noise")
            utts = []
            for j in range(2):
                text = VAD_SENTENCES[(2 * c + j) % len(VAD_SENTENCES)]
                x, rate = speak(text, 2 * c + j)
                utts.append(resample(x, rate, RATE))
            clip, spans = vad_clip(rng, utts)
            found = model.detect([clip], {})[0]
            n_frames = len(clip) // FRAME
            truth, pred = frame_labels(spans, n_frames), frame_labels(found, n_frames)
            correct += int((truth == pred).sum())
            total += n_frames
            tp += int((truth & pred).sum())
            fp += int((~truth & pred).sum())
            fn += int((truth & ~pred).sum())
            rows.append(
                {
                    "truth_s": [[round(a / RATE, 2), round(b / RATE, 2)] for a, b in spans],
                    "found_s": [[round(a / RATE, 2), round(b / RATE, 2)] for a, b in found],
                }
            )
        metrics = {
            "frame_accuracy": correct / total,
            "speech_precision": tp / max(1, tp + fp),
            "speech_recall": tp / max(1, tp + fn),
            "test_clips": float(n_clips),
        }
        example = write_wav(clip, RATE)
        metrics.update(
            timing_ms(lambda: model.run({"audio": np.array([example], dtype=object)}, {}), 3 if ctx.quick else 10)
        )
        metrics["clip_seconds"] = len(clip) / RATE
    metrics["size_mb"] = size_mb(onnx_path)
    eval_path = write_json(ctx.workdir / "evaluation.json", rows)
    card = {
        "source": f"Silero VAD v6 ONNX model from pip silero-vad {package_version('silero-vad')}",
        "license": "MIT (Silero VAD)",
        "notes": (
            "Runs on onnxruntime (no torch): 32 ms frames at 16 kHz, recurrent state carried across frames; "
            "segments from frame probabilities as silero-vad's get_speech_timestamps does (threshold 0.5, "
            "min speech 250 ms, min silence 100 ms, 30 ms padding; all adjustable per request). "
            + (
                f"frame_accuracy: {n_clips} synthetic clips, each two held-out sentences read by {source}, "
                "separated by silence with a beep or noise burst, over background noise at -25..-45 dB; truth = "
                "the speech spans (TTS leading/trailing silence trimmed), scored per 32 ms frame. latency_p50_ms "
                "is for the last clip (latency metrics name its length in clip_seconds)."
                if rows
                else "frame_accuracy not measured: neither flite nor Piper is installed to make test speech."
            )
        ),
        "extra": {"sample_rate": RATE, "frame_ms": 32, "test_speech": source or None},
    }
    ctx.write({"silero_vad.onnx": onnx_path, "evaluation.json": eval_path}, VAD_CONFIG, card)
    ctx.progress(1.0, f"frame accuracy {metrics.get('frame_accuracy', float('nan')):.3f}")
    return BuildResult(metrics)


SPEC = CatalogSpec(
    name="silero-vad",
    build_s=15,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="speech",
    task="audio-classification",
    summary="Voice activity detection: speech segments in a WAV (Silero VAD, ONNX)",
    source="pip silero-vad (ONNX in the wheel)",
    license="MIT",
    build=build_vad,
    requires=VAD_REQ,
    floors=(Floor("frame_accuracy", ">=", 0.9),),  # aiaas's sanity floor
    example=audio_example(HELLO_WAV_B64),
)
