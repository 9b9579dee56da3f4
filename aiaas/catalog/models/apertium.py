"""``apertium-en-es`` and ``apertium-es-en``: Debian's rule-based Apertium translator (one model, two
directions), measured by chrF and BLEU on aiaas's parallel sentences."""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter

from aiaas.catalog.assets import json_asset
from aiaas.catalog.models.nlp_common import TEXT_IN, text_example, timing_ms, write_json
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

ENG_SPA_MODE = "/usr/share/apertium/modes/eng-spa.mode"  # Debian apertium-eng-spa installs this: the pair is there
APERTIUM_REQ = Requirement(apt=(("apertium", "apertium"), ("apertium-eng-spa", ENG_SPA_MODE)))


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
    metrics.update(timing_ms(lambda: translate(src[0], pair), 3 if ctx.quick else 10))
    eval_path = write_json(
        ctx.workdir / "evaluation.json",
        [{"source": s, "reference": r, "apertium": h} for s, r, h in zip(src, ref, hyps, strict=True)],
    )
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
        "parameters": {
            "class": "aiaas.catalog.runtime.nlp_translate:ApertiumTranslator",
            "pair": pair,
            "max_kb": 16,
            "timeout_s": 30,
            "workers": 2,
        },
    }
    card = {
        "source": "Apertium rule-based MT, Debian packages apertium + apertium-eng-spa (https://www.apertium.org)",
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


PARALLEL_EN_ES: list[tuple[str, str]] = [
    (a, b) for a, b in json_asset("parallel_en_es.json")
]  # assets/parallel_en_es.json

SPECS = [
    CatalogSpec(
        name="apertium-en-es",
        build_s=11,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
        scenario="nlp",
        task="translation",
        summary="English -> Spanish translation (Apertium, rule-based)",
        source="Debian apertium + apertium-eng-spa",
        license="GPL-2.0-or-later",
        build=build_apertium_en_es,
        requires=APERTIUM_REQ,
        floors=(Floor("chrf", ">=", 40),),  # aiaas's sanity floor: well above unrelated text (~15)
        example=text_example("The weather is nice today and I want to walk to the beach."),
    ),
    CatalogSpec(
        name="apertium-es-en",
        build_s=9,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
        scenario="nlp",
        task="translation",
        summary="Spanish -> English translation (Apertium, rule-based)",
        source="Debian apertium + apertium-eng-spa",
        license="GPL-2.0-or-later",
        build=build_apertium_es_en,
        requires=APERTIUM_REQ,
        floors=(Floor("chrf", ">=", 40),),
        example=text_example("Mañana vamos a visitar a mis abuelos en el pueblo."),
    ),
]
