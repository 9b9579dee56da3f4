"""``/v1/chat/completions``: chat requests, whole responses and streamed chunks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from aiaas.types.openai.common import Req, Resp, Sampling, Usage


class ChatMessage(Req):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ResponseFormat(Req):
    type: str = "text"


class ChatCompletionRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


class TopLogprob(Resp):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(Resp):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob] = []


class ChoiceLogprobs(Resp):
    content: list[TokenLogprob] | None = None


class AssistantMessage(Resp):
    role: Literal["assistant"] = "assistant"
    content: str | None = None


class ChatChoice(Resp):
    index: int
    message: AssistantMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionResponse(Resp):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(Resp):
    role: str | None = None
    content: str | None = None


class ChunkChoice(Resp):
    index: int
    delta: Delta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(Resp):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
