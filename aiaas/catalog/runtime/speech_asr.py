"""Speech recognition with PocketSphinx (CMU Sphinx, US English acoustic model + 3-gram LM from its wheel).

A classic HMM/GMM recogniser: small, CPU-only, no torch; accurate on clear read speech, weak on noisy or
accented audio. Audio of any rate/channels is mixed to mono and resampled to 16 kHz first.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from aiaas.catalog.runtime.nlp_common import bytes_tensor
from aiaas.catalog.runtime.speech_audio import audio_rows, load_audio
from aiaas.runtime import BlockingModel, Tensors

RATE = 16000


def pocketsphinx_decoder() -> Any:
    """A decoder on the wheel's en-us model (hmm, LM, dictionary), logging off."""
    from pocketsphinx import Decoder, get_model_path

    base = os.path.join(get_model_path(), "en-us")
    return Decoder(
        hmm=os.path.join(base, "en-us"),
        lm=os.path.join(base, "en-us.lm.bin"),
        dict=os.path.join(base, "cmudict-en-us.dict"),
        samprate=RATE,
        logfn=os.devnull,
    )


def recognize(decoder: Any, samples: np.ndarray) -> str:
    """Words in 16 kHz mono float ``samples`` (an empty string for silence)."""
    return recognize_words(decoder, samples)[0]


def recognize_words(decoder: Any, samples: np.ndarray) -> tuple[str, list[dict[str, Any]]]:
    """The text and its words with start/end seconds (the decoder's segmentation, 100 frames per second)."""
    if len(samples) < RATE // 10:
        return "", []
    peak = float(np.max(np.abs(samples))) or 1.0
    pad = np.zeros(RATE // 4, dtype=np.float32)  # the decoder wants a little silence around tightly cut speech
    x = np.concatenate([pad, samples * (0.9 / peak if peak < 0.25 else 1.0), pad])  # and lifts very quiet audio
    pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    if hyp is None:
        return "", []
    offset = len(pad) / RATE
    words = [
        {
            "word": seg.word.split("(")[0],
            "start": round(max(0.0, seg.start_frame / 100 - offset), 2),
            "end": round(max(0.0, (seg.end_frame + 1) / 100 - offset), 2),
        }
        for seg in decoder.seg()
        if not (seg.word.startswith("<") or seg.word.startswith("[") or seg.word.startswith("+"))
    ]
    return hyp.hypstr.strip(), words


class PocketSphinxASR(BlockingModel):
    """``audio`` | ``audio_b64`` (WAV) -> ``text`` (lower-case words) and ``words`` (JSON: word, start, end s)."""

    def load(self) -> None:
        self.max_seconds = float(self.config.parameters.get("max_seconds", 300))
        self.decoder = pocketsphinx_decoder()

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        signals = [load_audio(b, RATE, self.max_seconds) for b in audio_rows(inputs)]
        results = [recognize_words(self.decoder, s) for s in signals]
        return {
            "text": bytes_tensor([text for text, _ in results]),
            "words": bytes_tensor([json.dumps(words) for _, words in results]),
        }

    def unload(self) -> None:
        self.decoder = None
