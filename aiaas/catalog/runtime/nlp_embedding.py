"""Sentence embeddings with an exported transformer: ``tokenizers`` + onnxruntime, no torch at serve time.

The ONNX graph (written by the catalog build) takes ``input_ids``/``attention_mask``/``token_type_ids`` and
already does the mean pooling over real tokens and the L2 normalisation, so the answer is exactly the
sentence-transformers embedding and clients can compare rows with a plain dot product.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from aiaas.catalog.runtime.nlp_common import ort_session, texts
from aiaas.runtime import BlockingModel, RuntimeContext, Tensors

CHUNK = 32  # rows per onnxruntime call: sorting by length and chunking keeps padding (wasted compute) small


class TextEmbedding(BlockingModel):
    def load(self) -> None:
        from tokenizers import Tokenizer

        self.max_length = int(self.config.parameters.get("max_length", 256))
        self.tokenizer = Tokenizer.from_file(str(self.version_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()
        self.session = ort_session(
            str(self.version_dir / "model.onnx"), self.config, self.context.default_intra_op_threads
        )
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.dim = int(self.session.get_outputs()[0].shape[-1])

    def embed(self, sentences: list[str]) -> np.ndarray:
        """L2-normalised embeddings [len(sentences), dim] (FP32); usable directly by builds and other models."""
        out = np.zeros((len(sentences), self.dim), dtype=np.float32)
        if not sentences:
            return out
        encodings = self.tokenizer.encode_batch(sentences)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        for start in range(0, len(order), CHUNK):
            rows = order[start : start + CHUNK]
            width = max(len(encodings[r].ids) for r in rows)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            types = np.zeros_like(ids)
            for j, r in enumerate(rows):
                e = encodings[r]
                ids[j, : len(e.ids)] = e.ids
                mask[j, : len(e.ids)] = 1
                types[j, : len(e.ids)] = e.type_ids
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            (emb,) = self.session.run(None, {k: v for k, v in feed.items() if k in self.input_names})
            out[rows] = emb
        return out

    def run(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        return {"embedding": self.embed(texts(inputs))}

    def unload(self) -> None:
        self.session = None


# -- the embedding model as a training-time feature extractor -----------------------------------------------
_LOADED: dict[tuple[str, str, int], TextEmbedding] = {}
_LOCK = threading.Lock()


def repository_embedder(
    sentences: list[str],
    model: str = "minilm-embedding",
    version: int | None = None,
    home: str | None = None,
    threads: int = 1,
) -> np.ndarray:
    """Embed ``sentences`` with a built embedding model from the repository (``$AIAAS_HOME/models``): what the
    ``text`` training recipe uses for ``embedder: catalog``, so a trained head sees exactly the vectors the
    served embedding model answers. One loaded copy per (home, model, version) per process."""
    from aiaas.errors import InvalidInput
    from aiaas.registry import ModelRepository
    from aiaas.settings import Settings

    root = Path(home) / "models" if home else Settings().models_dir
    repo = ModelRepository(root)
    if not repo.exists(model):
        raise InvalidInput(
            f"the embedding model {model!r} is not in the repository {root}; build it first "
            f"(`aiaas catalog build {model}`, or start the server with the catalog on)",
            param="embedder_options.model",
        )
    entry = repo.read(model)
    if entry.config is None or entry.error:
        raise InvalidInput(f"the embedding model {model!r} is unusable: {entry.error}", param="embedder_options.model")
    chosen = version if version is not None else max(entry.versions)
    if chosen not in entry.versions:
        raise InvalidInput(
            f"the embedding model {model!r} has no version {chosen} (has {entry.versions})",
            param="embedder_options.version",
        )
    key = (str(root.resolve()), model, chosen)
    with _LOCK:
        embedder = _LOADED.get(key)
        if embedder is None:
            embedder = TextEmbedding(
                entry.config, repo.version_dir(model, chosen), RuntimeContext(default_intra_op_threads=threads)
            )
            embedder.load()
            _LOADED[key] = embedder
    return embedder.embed([str(s) for s in sentences])
