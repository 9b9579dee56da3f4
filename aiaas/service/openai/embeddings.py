"""``/v1/embeddings``: texts through an embedding model (see ``models.py`` for the tensor convention)."""

from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np

from aiaas.errors import InvalidInput
from aiaas.service.dataplane import DataPlane
from aiaas.service.governance import Principal
from aiaas.service.openai.models import ModelsServing, infer
from aiaas.types import openai as oa

MAX_INPUTS = 2048  # texts in one request, as OpenAI allows
_WORDS = re.compile(r"\w+|[^\w\s]")  # usage counts words and punctuation: the model's tokenizer is not visible here


def _texts(req: oa.EmbeddingRequest) -> list[str]:
    raw: list[Any] = [req.input] if isinstance(req.input, str) else list(req.input)
    if not raw:
        raise InvalidInput("input must not be empty", param="input")
    if not all(isinstance(t, str) for t in raw):
        raise InvalidInput("token-id input is not supported; send text", param="input")
    texts: list[str] = raw
    if any(not t for t in texts):
        raise InvalidInput("input must not contain empty strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise InvalidInput(f"at most {MAX_INPUTS} inputs per request", param="input")
    return texts


class EmbeddingsServing:
    def __init__(self, models: ModelsServing, dataplane: DataPlane) -> None:
        self.models = models
        self.dataplane = dataplane

    async def create(self, principal: Principal, req: oa.EmbeddingRequest) -> oa.EmbeddingResponse:
        texts = _texts(req)
        outputs = await infer(
            self.models,
            self.dataplane,
            principal,
            req.model,
            {"text": np.array([t.encode() for t in texts], dtype=object)},
            "openai.embeddings",
        )
        emb = outputs.get("embedding")
        if emb is None:
            raise InvalidInput(f"model {req.model!r} does not produce embeddings (output 'embedding')", param="model")
        emb = np.asarray(emb, dtype=np.float32).reshape(len(texts), -1)
        if req.dimensions is not None:
            if req.dimensions > emb.shape[1]:
                raise InvalidInput(f"dimensions must be <= {emb.shape[1]} for this model", param="dimensions")
            emb = emb[:, : req.dimensions]
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.where(norms > 0, norms, 1.0)
        data = []
        for i, row in enumerate(emb):
            value: list[float] | str
            if req.encoding_format == "base64":
                value = base64.b64encode(row.astype("<f4").tobytes()).decode()
            else:
                value = row.tolist()
            data.append(oa.Embedding(index=i, embedding=value))
        tokens = sum(len(_WORDS.findall(t)) for t in texts)
        return oa.EmbeddingResponse(
            data=data, model=req.model, usage=oa.EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)
        )
