"""The OpenAI API's wire format (the subset aiaas serves), as pydantic models: one protocol module per endpoint
family (``completions``, ``chat``, ``models``, ``embeddings``, ``audio``) over ``common``.

Parameters aiaas cannot honour (tools, logit_bias, best_of > n, non-text response formats) are accepted by the
models and refused by the serving layer with a 400 naming them rather than silently ignored.
"""

from aiaas.types.openai.audio import SpeechRequest, Transcription
from aiaas.types.openai.chat import (
    AssistantMessage,
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatMessage,
    ChoiceLogprobs,
    ChunkChoice,
    Delta,
    ResponseFormat,
    TokenLogprob,
    TopLogprob,
)
from aiaas.types.openai.common import Req, Resp, Sampling, StreamOptions, Usage
from aiaas.types.openai.completions import (
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    CompletionResponse,
)
from aiaas.types.openai.embeddings import Embedding, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage
from aiaas.types.openai.models import ModelCard, ModelList

__all__ = [
    "AssistantMessage",
    "ChatChoice",
    "ChatCompletionChunk",
    "ChatCompletionRequest",
    "ChatCompletionResponse",
    "ChatMessage",
    "ChoiceLogprobs",
    "ChunkChoice",
    "CompletionChoice",
    "CompletionLogprobs",
    "CompletionRequest",
    "CompletionResponse",
    "Delta",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "ModelCard",
    "ModelList",
    "Req",
    "Resp",
    "ResponseFormat",
    "Sampling",
    "SpeechRequest",
    "StreamOptions",
    "TokenLogprob",
    "TopLogprob",
    "Transcription",
    "Usage",
]
