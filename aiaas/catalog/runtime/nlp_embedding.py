"""Sentence embeddings with an exported transformer: ``tokenizers`` + onnxruntime, no torch at serve time.

The ONNX graph (written by the catalog build) takes ``input_ids``/``attention_mask``/``token_type_ids`` and
already does the mean pooling over real tokens and the L2 normalisation, so the answer is exactly the
sentence-transformers embedding and clients can compare rows with a plain dot product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aiaas.catalog.runtime.nlp_common import ort_session, texts
from aiaas.runtime import Model, Tensors

CHUNK = 32  # rows per onnxruntime call: sorting by length and chunking keeps padding (wasted compute) small


class TextEmbedding(Model):
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

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        return {"embedding": self.embed(texts(inputs))}

    def unload(self) -> None:
        self.session = None
