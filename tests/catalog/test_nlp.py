"""NLP catalog models (quick builds) served over KServe V2: embeddings, sentiment, summaries, translation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from catkit import AUTH, needs, serve_quick_builds
from fastapi.testclient import TestClient

from aiaas.catalog.registry import all_specs
from aiaas.registry import ModelRepository

NAMES = ["minilm-embedding", "vader-sentiment", "extractive-summarizer", "apertium-en-es", "apertium-es-en"]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from serve_quick_builds(tmp_path_factory, "nlp", NAMES)


def infer(client: TestClient, name: str, body: dict) -> dict:
    r = client.post(f"/v2/models/{name}/infer", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]}


def text_body(*rows: str, **parameters: object) -> dict:
    body: dict = {"inputs": [{"name": "text", "shape": [len(rows)], "datatype": "BYTES", "data": list(rows)}]}
    if parameters:
        body["parameters"] = parameters
    return body


def example(name: str) -> dict:
    return json.loads(all_specs()[name].example)


# -- embedding ----------------------------------------------------------------------------------------------
def test_embedding_readme_example_is_a_close_paraphrase(client: TestClient) -> None:
    needs("minilm-embedding")
    r = client.post("/v2/models/minilm-embedding/infer", json=example("minilm-embedding"), headers=AUTH)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["name"] == "embedding" and out["shape"] == [2, 384] and out["datatype"] == "FP32"
    emb = np.array(out["data"], dtype=np.float32).reshape(2, 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert float(emb[0] @ emb[1]) > 0.6


def test_embedding_ranks_paraphrase_above_unrelated(client: TestClient) -> None:
    needs("minilm-embedding")
    rows = ["The cat is sleeping on the sofa.", "A kitten naps on the couch.", "Interest rates rose by half a point."]
    emb = np.array(infer(client, "minilm-embedding", text_body(*rows))["embedding"]).reshape(3, 384)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.3


def test_embedding_batch_padding_changes_nothing(client: TestClient) -> None:
    """Rows of very different lengths share one padded ONNX batch; each must equal its embedding alone."""
    needs("minilm-embedding")
    rows = ["Hi.", "A much longer sentence that needs many more tokens than the first one does, by far."]
    together = np.array(infer(client, "minilm-embedding", text_body(*rows))["embedding"]).reshape(2, 384)
    for i, row in enumerate(rows):
        alone = np.array(infer(client, "minilm-embedding", text_body(row))["embedding"])
        np.testing.assert_allclose(together[i], alone, atol=1e-5)


# -- sentiment ----------------------------------------------------------------------------------------------
def test_sentiment_labels_obvious_text(client: TestClient) -> None:
    needs("vader-sentiment")
    out = infer(
        client,
        "vader-sentiment",
        text_body(
            "I love this phone, it is absolutely wonderful!",
            "This was a terrible, awful experience.",
            "The train leaves at nine o'clock.",
        ),
    )
    assert out["label"] == ["positive", "negative", "neutral"]
    assert out["score"][0] > 0.5 > -0.5 > out["score"][1]
    scores = np.array(out["scores"]).reshape(3, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=0.01)
    assert scores[2, 1] == pytest.approx(1.0, abs=0.01)  # all neutral


def test_sentiment_readme_example(client: TestClient) -> None:
    needs("vader-sentiment")
    out = infer(client, "vader-sentiment", example("vader-sentiment"))
    assert out["label"][0] in ("positive", "negative", "neutral") and -1 <= out["score"][0] <= 1


# -- summarizer ---------------------------------------------------------------------------------------------
def test_summarizer_readme_example_keeps_the_topic(client: TestClient) -> None:
    needs("extractive-summarizer")
    body = example("extractive-summarizer")
    text = body["inputs"][0]["data"][0]
    summary = infer(client, "extractive-summarizer", body)["summary"][0]
    from aiaas.catalog.runtime.nlp_summarizer import split_sentences

    picked = split_sentences(summary)
    source = split_sentences(text)
    assert len(picked) == body["parameters"]["sentences"] == 2
    assert all(s in source for s in picked)
    assert [source.index(s) for s in picked] == sorted(source.index(s) for s in picked)  # text order
    assert not any("bakery" in s for s in picked)  # the off-topic sentence is the least central one


def test_summarizer_parameters_and_short_text(client: TestClient) -> None:
    needs("extractive-summarizer")
    short = "Only one sentence here."
    assert infer(client, "extractive-summarizer", text_body(short))["summary"] == [short]
    r = client.post("/v2/models/extractive-summarizer/infer", json=text_body(short, sentences=0), headers=AUTH)
    assert r.status_code == 400 and "sentences" in r.json()["error"]


# -- translation --------------------------------------------------------------------------------------------
def test_translation_both_directions(client: TestClient) -> None:
    needs("apertium-en-es")
    es = infer(client, "apertium-en-es", text_body("The house is very big.", "I want to learn Spanish."))["text"]
    assert es[0] == "La casa es muy grande." and "español" in es[1].lower()
    en = infer(client, "apertium-es-en", example("apertium-es-en"))["text"][0]
    assert "tomorrow" in en.lower() and "grandparents" in en.lower()


def test_translation_refuses_oversized_text(client: TestClient) -> None:
    needs("apertium-en-es")
    r = client.post("/v2/models/apertium-en-es/infer", json=text_body("word " * 5000), headers=AUTH)
    assert r.status_code == 400 and "KB" in r.json()["error"]


def test_translation_requirement_names_the_apt_command(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the apertium binary the models are UNAVAILABLE with the exact install command."""
    from aiaas.catalog.builder import status

    monkeypatch.setenv("PATH", "/nonexistent")
    spec = all_specs()["apertium-en-es"]
    missing = spec.requires.missing()
    assert missing is not None and missing.startswith("apt-get install -y apertium")
    assert status(spec, ModelRepository(Path("/nonexistent"))).state == "unavailable"


def test_bleu_and_chrf_score_identity_and_garbage() -> None:
    from aiaas.catalog.models.nlp import bleu, chrf

    refs = ["La casa es muy grande.", "Me gusta leer libros por la tarde."]
    assert chrf(refs, refs) == pytest.approx(100.0) and bleu(refs, refs) == pytest.approx(100.0)
    garbage = ["Xyzzy plugh.", "Qwerty uiop asdf."]
    assert chrf(garbage, refs) < 20 and bleu(garbage, refs) == 0.0


def test_text_recipe_trains_on_the_catalog_embedder(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``text`` training recipe with ``embedder: catalog`` uses the built MiniLM from the repository: the
    vectors equal what the served model answers, and a head trained on a few sentences generalises to
    paraphrases that share no words with them."""
    needs("minilm-embedding")
    import onnxruntime as ort

    from aiaas.catalog.runtime.nlp_embedding import repository_embedder
    from aiaas.errors import InvalidInput
    from aiaas.jobs.jobdir import JobDir
    from aiaas.training.launcher import prepare_job_dir, validate_job
    from aiaas.training.spec import parse_spec
    from aiaas.training.worker import Worker

    home = str(client.app.state.services.settings.home)  # type: ignore[attr-defined]
    served = np.array(infer(client, "minilm-embedding", text_body("a quiet river"))["embedding"], np.float32)
    assert np.allclose(repository_embedder(["a quiet river"], home=home)[0], served, atol=1e-5)
    with pytest.raises(InvalidInput, match="aiaas catalog build no-such-embedder"):
        repository_embedder(["x"], model="no-such-embedder", home=home)

    pos = ["I loved this film", "what a wonderful movie", "great acting and a great story", "a delightful evening"]
    neg = ["I hated this film", "what a terrible movie", "awful acting and a dull story", "a miserable evening"]
    data = tmp_path / "reviews.csv"
    data.write_text("text,label\n" + "".join(f"{t},pos\n" for t in pos * 4) + "".join(f"{t},neg\n" for t in neg * 4))
    spec = parse_spec(
        {
            "recipe": "text",
            "training_file": str(data),
            "model": "reviews",
            "hyperparameters": {
                "epochs": 30,
                "batch_size": 8,
                "learning_rate": 0.01,
                "embedder": "catalog",
                "embedder_options": {"home": home},
            },
        }
    )
    validate_job(spec)
    root = tmp_path / "job"
    prepare_job_dir(spec, root)
    for k, v in {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "0",
    }.items():
        monkeypatch.setenv(k, v)
    Worker(JobDir(root).spec).run()
    result = json.loads(JobDir(root).result.read_text())
    assert result["meta"]["dim"] == 384 and result["meta"]["embedder"] == "catalog"
    head = ort.InferenceSession(str(root / result["onnx"]))
    unseen = ["an excellent, moving picture", "superb performances", "a boring, painful waste of time", "dreadful"]
    (labels,) = head.run(["label"], {"embedding": repository_embedder(unseen, home=home)})
    assert [result["meta"]["classes"][i] for i in labels] == ["pos", "pos", "neg", "neg"]
