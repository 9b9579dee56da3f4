"""VADER sentiment: a lexicon and rules tuned for short social-media style English text.

``label`` uses VADER's own recommended cut-offs on the compound score (>= 0.05 positive, <= -0.05 negative,
neutral between), ``score`` is the compound score in [-1, 1] and ``scores`` the neg/neu/pos proportions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiaas.catalog.runtime.nlp_common import bytes_tensor, texts
from aiaas.runtime import BlockingModel, Tensors

POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05


def label_of(compound: float) -> str:
    if compound >= POSITIVE_AT:
        return "positive"
    if compound <= NEGATIVE_AT:
        return "negative"
    return "neutral"


class VaderSentiment(BlockingModel):
    def load(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()

    def polarity(self, text: str) -> dict[str, float]:
        return self.analyzer.polarity_scores(text)

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        rows = [self.polarity(t) for t in texts(inputs)]
        return {
            "label": bytes_tensor([label_of(r["compound"]) for r in rows]),
            "score": np.array([r["compound"] for r in rows], dtype=np.float32),
            "scores": np.array([[r["neg"], r["neu"], r["pos"]] for r in rows], dtype=np.float32).reshape(-1, 3),
        }
