"""Helpers shared by the NLP catalog models: the text input, the embedding loader, timings, the README
examples, and the topic paragraphs both MiniLM models are checked on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from aiaas.catalog.assets import json_asset
from aiaas.types.model_config import ModelConfig

EMBEDDING = "minilm-embedding"
TEXT_IN = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False))
    return path


def timing_ms(fn: Any, runs: int) -> dict[str, float]:
    import numpy as np

    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


def load_embedding(config: ModelConfig, version_dir: Path) -> Any:
    from aiaas.catalog.runtime.nlp_embedding import TextEmbedding
    from aiaas.runtime import RuntimeContext

    model = TextEmbedding(config, version_dir, RuntimeContext())
    model.load()
    return model


def text_example(*rows: str, parameters: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"inputs": [{"name": "text", "shape": [len(rows)], "datatype": "BYTES", "data": list(rows)}]}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body, ensure_ascii=False)


TOPICS: dict[str, list[str]] = json_asset("topics.json")  # assets/topics.json
