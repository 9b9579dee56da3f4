"""The OpenAI API's wire format (the subset aiaas serves), as pydantic models.

Requests validate ranges here so a bad value is a 400 that names the parameter before any model work;
unknown fields are ignored, as OpenAI-compatible servers do, so newer SDKs keep working. Parameters aiaas
cannot honour (tools, logit_bias, best_of > n, non-text response formats) are refused by the service with a
400 naming them rather than silently ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Req(BaseModel):
    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class _Resp(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


# --- shared -----------------------------------------------------------------------------------------
class StreamOptions(_Req):
    include_usage: bool = False


class Usage(_Resp):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class _Sampling(_Req):
    model: str = Field(min_length=1, max_length=256)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)  # vLLM extension; -1 or 0 = off
    n: int = Field(default=1, ge=1, le=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    logit_bias: dict[str, float] | None = None
    user: str | None = Field(default=None, max_length=256)
    ignore_eos: bool = False  # vLLM extension: generate exactly max_tokens (benchmarks)

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


# --- completions --------------------------------------------------------------------------------------
class CompletionRequest(_Sampling):
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(default=16, ge=1)
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    best_of: int | None = Field(default=None, ge=1)
    suffix: str | None = None


class CompletionLogprobs(_Resp):
    tokens: list[str] = []
    token_logprobs: list[float | None] = []
    top_logprobs: list[dict[str, float] | None] = []
    text_offset: list[int] = []


class CompletionChoice(_Resp):
    index: int
    text: str
    logprobs: CompletionLogprobs | None = None
    finish_reason: str | None = None


class CompletionResponse(_Resp):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- chat ---------------------------------------------------------------------------------------------
class ChatMessage(_Req):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ResponseFormat(_Req):
    type: str = "text"


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


class TopLogprob(_Resp):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(_Resp):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = []


class ChoiceLogprobs(_Resp):
    content: list[TokenLogprob] | None = None


class AssistantMessage(_Resp):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(_Resp):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionResponse(_Resp):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(_Resp):
    role: str | None = None
    content: str | None = None


class ChunkChoice(_Resp):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(_Resp):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


# --- models -------------------------------------------------------------------------------------------
class ModelCard(_Resp):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    task: str | None = None  # aiaas extension: what the model does (text-generation, embedding, ...)


class ModelList(_Resp):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# --- embeddings ---------------------------------------------------------------------------------------
class EmbeddingRequest(_Req):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = Field(default=None, max_length=256)


class Embedding(_Resp):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(_Resp):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(_Resp):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


# --- audio --------------------------------------------------------------------------------------------
class SpeechRequest(_Req):
    model: str = Field(min_length=1, max_length=256)
    input: str = Field(min_length=1, max_length=4096)
    voice: str | dict[str, Any] = "default"
    response_format: str = "wav"
    speed: float = Field(default=1.0, ge=0.25, le=4.0)
    instructions: str | None = None


class Transcription(_Resp):
    text: str
