"""``/v1/embeddings``: text in, vectors out (floats or base64 little-endian float32)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from aiaas.types.openai.common import Req, Resp


class EmbeddingRequest(Req):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)


class Embedding(Resp):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(Resp):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(Resp):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
