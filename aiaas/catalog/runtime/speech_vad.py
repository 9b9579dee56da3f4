"""Voice activity detection with Silero VAD (ONNX) through onnxruntime: where in a recording is speech.

The network scores 32 ms frames (512 samples at 16 kHz, each with 64 samples of left context and a recurrent
state carried across frames); rows of a batch run side by side as one ONNX batch. Frame probabilities become
segments the way silero-vad's ``get_speech_timestamps`` does: speech starts at ``threshold``, ends after
``min_silence_ms`` below ``threshold - 0.15``, segments shorter than ``min_speech_ms`` are dropped and the rest
padded by ``speech_pad_ms``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiaas.catalog.runtime.nlp_common import float_parameter, int_parameter, json_tensor, ort_session
from aiaas.catalog.runtime.speech_audio import audio_rows, load_audio
from aiaas.runtime import BlockingModel, Tensors

RATE = 16000
FRAME = 512
CONTEXT = 64


def frame_probabilities(session: Any, signals: list[np.ndarray]) -> list[np.ndarray]:
    """Speech probability of each 32 ms frame of each 16 kHz signal (one ONNX batch for all signals)."""
    if not signals:
        return []
    frames = [max(1, -(-len(s) // FRAME)) for s in signals]
    n = max(frames)
    padded = np.zeros((len(signals), n * FRAME + CONTEXT), dtype=np.float32)
    for i, s in enumerate(signals):
        padded[i, CONTEXT : CONTEXT + len(s)] = s
    state = np.zeros((2, len(signals), 128), dtype=np.float32)
    sr = np.array(RATE, dtype=np.int64)
    probs = np.zeros((len(signals), n), dtype=np.float32)
    for f in range(n):
        chunk = padded[:, f * FRAME : f * FRAME + FRAME + CONTEXT]
        out, state = session.run(None, {"input": chunk, "state": state, "sr": sr})
        probs[:, f] = out[:, 0]
    return [probs[i, : frames[i]] for i in range(len(signals))]


def segments_from_probs(
    probs: np.ndarray,
    n_samples: int,
    threshold: float = 0.5,
    min_speech_ms: int = 250,
    min_silence_ms: int = 100,
    speech_pad_ms: int = 30,
) -> list[tuple[int, int]]:
    """[(start, end)] in samples of the speech segments, from per-frame probabilities (hysteresis + padding)."""
    neg = max(threshold - 0.15, 0.01)
    min_speech = RATE * min_speech_ms / 1000
    min_silence = RATE * min_silence_ms / 1000
    pad = int(RATE * speech_pad_ms / 1000)
    out: list[list[int]] = []
    start: int | None = None
    quiet_since = 0
    for i, p in enumerate(probs):
        at = i * FRAME
        if p >= threshold:
            quiet_since = 0
            if start is None:
                start = at
        elif p < neg and start is not None:
            if not quiet_since:
                quiet_since = at
            if at - quiet_since >= min_silence:
                if quiet_since - start > min_speech:
                    out.append([start, quiet_since])
                start, quiet_since = None, 0
    if start is not None and n_samples - start > min_speech:
        out.append([start, n_samples])
    for seg in out:  # pad, without running into the neighbours (split a short gap between them)
        seg[0] = max(0, seg[0] - pad)
        seg[1] = min(n_samples, seg[1] + pad)
    merged: list[list[int]] = []
    for seg in out:
        if merged and seg[0] <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], seg[1])
        else:
            merged.append(seg)
    return [(a, b) for a, b in merged]


def frame_labels(segments: list[tuple[int, int]], n_frames: int, frame: int = FRAME) -> np.ndarray:
    """Boolean speech flag per frame (a frame counts as speech when its centre lies in a segment)."""
    centres = np.arange(n_frames) * frame + frame // 2
    flags = np.zeros(n_frames, dtype=bool)
    for a, b in segments:
        flags |= (centres >= a) & (centres < b)
    return flags


class SileroVAD(BlockingModel):
    """``audio`` | ``audio_b64`` -> ``segments`` (JSON [[start_s, end_s], ...] per row) + ``speech_ratio``.

    Request parameters: ``threshold`` (0.5), ``min_speech_ms`` (250), ``min_silence_ms`` (100),
    ``speech_pad_ms`` (30)."""

    def load(self) -> None:
        self.max_seconds = float(self.config.parameters.get("max_seconds", 600))
        self.session = ort_session(
            str(self.version_dir / "silero_vad.onnx"), self.config, self.context.default_intra_op_threads or 1
        )

    def detect(self, signals: list[np.ndarray], parameters: dict[str, Any]) -> list[list[tuple[int, int]]]:
        threshold = float_parameter(parameters, "threshold", 0.5, 0.02, 0.99)
        min_speech = int_parameter(parameters, "min_speech_ms", 250, 0, 60_000)
        min_silence = int_parameter(parameters, "min_silence_ms", 100, 0, 60_000)
        pad = int_parameter(parameters, "speech_pad_ms", 30, 0, 5_000)
        probs = frame_probabilities(self.session, signals)
        return [
            segments_from_probs(p, len(s), threshold, min_speech, min_silence, pad)
            for p, s in zip(probs, signals, strict=True)
        ]

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        signals = [load_audio(b, RATE, self.max_seconds) for b in audio_rows(inputs)]
        found = self.detect(signals, parameters)
        ratios = [sum(b - a for a, b in segs) / max(1, len(s)) for segs, s in zip(found, signals, strict=True)]
        return {
            "segments": json_tensor([[[round(a / RATE, 3), round(b / RATE, 3)] for a, b in segs] for segs in found]),
            "speech_ratio": np.array(ratios, dtype=np.float32),
        }

    def unload(self) -> None:
        self.session = None
