"""``extractive-summarizer``: TextRank over the catalog's MiniLM embeddings, measured by how often it keeps
on-topic sentences."""

from __future__ import annotations

from aiaas.catalog.models.nlp_common import (
    EMBEDDING,
    TEXT_IN,
    TOPICS,
    load_embedding,
    text_example,
    timing_ms,
    write_json,
)
from aiaas.registry.catalogspec import BuildContext, BuildResult, CatalogSpec, Floor, Requirement, timed

SUMMARIZER_REQ = Requirement(pip=(("tokenizers", "tokenizers==0.23.3"),))


@timed
def build_summarizer(ctx: BuildContext) -> BuildResult:
    import numpy as np

    from aiaas.catalog.runtime.nlp_summarizer import choose, split_sentences

    ctx.progress(0.05, f"loading the built {EMBEDDING} model")
    entry = ctx.repo.read(EMBEDDING)
    if entry.config is None or not entry.versions:
        raise RuntimeError(f"build {EMBEDDING!r} first: the summarizer ranks sentences with its embeddings")
    embedder = load_embedding(entry.config, ctx.repo.version_dir(EMBEDDING, max(entry.versions)))

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
    metrics.update(timing_ms(lambda: choose(embedder.embed(split_sentences(sample)), k), 5 if ctx.quick else 20))
    eval_path = write_json(ctx.workdir / "evaluation.json", docs)
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


SPEC = CatalogSpec(
    name="extractive-summarizer",
    build_s=3,  # measured: a first start on 2 cores at top CPU priority (2026-12-03)
    scenario="nlp",
    task="summarization",
    summary="Extractive summaries: the most central sentences by MiniLM embeddings (TextRank)",
    source=f"aiaas, over the catalog's {EMBEDDING}",
    license="Apache-2.0",
    build=build_summarizer,
    requires=SUMMARIZER_REQ,
    depends=(EMBEDDING,),
    floors=(Floor("on_topic_precision", ">=", 0.9),),  # aiaas's sanity floor
    example=text_example(
        "The city council met on Monday to discuss the new park. Residents asked for more trees and a "
        "playground. The mayor said the budget allows both. A local bakery also opened a second shop. "
        "Work on the park will start in the spring and finish by autumn.",
        parameters={"sentences": 2},
    ),
)
