"""``vader-sentiment``: VADER's lexicon (pip vaderSentiment) measured on aiaas's own labelled sentences."""

from __future__ import annotations

from aiaas.catalog.assets import json_asset
from aiaas.catalog.common import package_version
from aiaas.catalog.models.nlp_common import TEXT_IN, text_example, timing_ms, write_json
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed
from aiaas.types.model_config import ModelConfig

VADER_REQ = Requirement(pip=(("vaderSentiment", "vaderSentiment==3.3.2"),))


@timed
def build_vader(ctx: BuildContext) -> BuildResult:
    import numpy as np

    from aiaas.catalog.runtime.nlp_sentiment import VaderSentiment, label_of
    from aiaas.runtime import RuntimeContext

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
    metrics.update(timing_ms(lambda: model.polarity("The food was great, but the service was slow."), 200))
    eval_path = write_json(
        ctx.workdir / "evaluation.json", [{"text": t, "label": lab, "compound": round(c, 4)} for t, lab, c in results]
    )
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


SENTIMENT: dict[str, list[str]] = json_asset("sentiment.json")  # assets/sentiment.json

SPEC = CatalogSpec(
    name="vader-sentiment",
    scenario="nlp",
    task="sentiment-analysis",
    summary="English sentiment: positive/negative/neutral with scores (VADER)",
    source="pip vaderSentiment (lexicon in the wheel)",
    license="MIT",
    build=build_vader,
    requires=VADER_REQ,
    floors=(Floor("accuracy", ">=", 0.7),),  # aiaas's sanity floor on its own labelled set
    example=text_example("The food was great, but the service was painfully slow."),
    build_s=1,  # measured: 0.3 s (2 cores, 2026-12-03)
)
