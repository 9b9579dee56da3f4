"""What every OpenAI endpoint family shares: the request/response base classes, sampling parameters, usage.

Requests validate ranges here so a bad value is a 400 that names the parameter before any model work;
unknown fields are ignored, as OpenAI-compatible servers do, so newer SDKs keep working.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Req(BaseModel):
    """A request body: unknown fields are ignored (newer SDKs send more than this server reads)."""

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class Resp(BaseModel):
    """A response body."""

    model_config = ConfigDict(protected_namespaces=())


class StreamOptions(Req):
    include_usage: bool = False


class Usage(Resp):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class Sampling(Req):
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
