"""Alias: ``aiaas.catalog.models.nlp`` before the catalog had one module per model (nlp_common,
minilm_embedding, vader_sentiment, extractive_summarizer, apertium). Kept so that code importing the old path
keeps working; new code imports the model modules."""

from __future__ import annotations

from aiaas.catalog.models import (
    apertium,
    extractive_summarizer,
    minilm_embedding,
    vader_sentiment,
)
from aiaas.catalog.models.apertium import (
    APERTIUM_REQ,
    PARALLEL_EN_ES,
    bleu,
    build_apertium_en_es,
    build_apertium_es_en,
    chrf,
)
from aiaas.catalog.models.extractive_summarizer import SUMMARIZER_REQ, build_summarizer
from aiaas.catalog.models.minilm_embedding import MINILM_REQ, PARAPHRASES, build_minilm, pair_metrics
from aiaas.catalog.models.nlp_common import EMBEDDING, TEXT_IN, TOPICS
from aiaas.catalog.models.vader_sentiment import SENTIMENT, VADER_REQ, build_vader

SPECS = [minilm_embedding.SPEC, vader_sentiment.SPEC, extractive_summarizer.SPEC, *apertium.SPECS]

__all__ = [
    "APERTIUM_REQ",
    "EMBEDDING",
    "MINILM_REQ",
    "PARALLEL_EN_ES",
    "PARAPHRASES",
    "SENTIMENT",
    "SPECS",
    "SUMMARIZER_REQ",
    "TEXT_IN",
    "TOPICS",
    "VADER_REQ",
    "bleu",
    "build_apertium_en_es",
    "build_apertium_es_en",
    "build_minilm",
    "build_summarizer",
    "build_vader",
    "chrf",
    "pair_metrics",
]
