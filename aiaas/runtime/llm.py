"""The ``llm`` backend: a decoder-only language model served by a continuous-batching engine.

The version directory is a Hugging Face model directory (``config.json``, ``*.safetensors``, tokenizer
files). ``parameters`` in ``model.yaml`` size the engine::

    backend: llm
    task: text-generation
    parameters:
      engine: auto             # auto | torch | llamacpp; auto = llamacpp where llama-cpp-python is installed and
                               # the version holds a .gguf, else torch (GGUF-only versions need llamacpp)
      quantize: none           # torch engine: none | int8 (8-bit weights in blocks of 32; docs/llm.md)
      threads: 0               # decode threads while few streams run (0 = settings.llm_threads, 0 there = all cores)
      busy_threads: 0          # threads from busy_streams on (0 = one core fewer, left to the HTTP path)
      busy_streams: 4
      max_prefill_tokens: 512  # prompt tokens read per step (chunked prefill)
      prefix_cache_slots: 4    # llamacpp: finished sequences whose cache is kept for prompt-prefix reuse
      prefix_cache_tokens: 4096 # torch: prompt tokens whose keys/values are kept for prompt-prefix reuse (0 = off)
      max_num_seqs: 16         # sequences in the running batch
      max_num_tokens: 16384    # prompt + max_tokens reserved by running sequences (llamacpp: its KV cache)
      max_waiting: 256         # queued beyond the batch; more answers 503 + Retry-After
      max_model_len: 4096      # context (default: the model's max_position_embeddings)
      dtype: float32           # or bfloat16
      default_max_tokens: 1024 # chat requests without max_tokens
      chat_template: null      # override the tokenizer's template

The engine in use is ``LLMModel.engine_kind`` (and the model's metadata ``parameters.engine``).

The OpenAI routes (``aiaas.service.openai``) use ``engine`` directly for token streaming and metering; the V2
``infer`` route still works through ``predict``: input ``text`` (BYTES [-1]) -> output ``text``, one
greedy completion per row with ``parameters.max_tokens`` (default 64). Its parameters are checked as ``/v1``
checks them (same names and bounds, unknown ones refused with 400).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aiaas.codecs.datatypes import utf8_array
from aiaas.errors import InvalidInput
from aiaas.llm.base import Engine, SamplingParams
from aiaas.runtime.base import Model, RuntimeContext, SequenceUsage, Tensors, llm_usage
from aiaas.types.model_config import ModelConfig, TensorSpec

# engine-specific parameters; the limits every engine shares are EngineLimits' fields
_ENGINE_KEYS = {
    "torch": ("chat_template", "dtype", "device", "quantize", "prefix_cache_tokens"),
    "llamacpp": ("chat_template", "prefix_cache_slots"),
}
ENGINES = ("auto", "torch", "llamacpp")


def find_gguf(version_dir: Path) -> Path | None:
    """The version's GGUF file: in the directory itself or one level down (exactly one, else an error)."""
    if not version_dir.is_dir():
        return None
    found = sorted(version_dir.glob("*.gguf")) or sorted(version_dir.glob("*/*.gguf"))
    if len(found) > 1:
        raise ValueError(f"{version_dir} holds {len(found)} GGUF files; keep one per version")
    return found[0] if found else None


def pick_engine(kind: str, version_dir: Path) -> str:
    """Resolve ``engine: auto`` to the fastest engine this installation can run for this version."""
    from aiaas.llm import llamacpp_engine

    if kind not in ENGINES:
        raise ValueError(f"unknown LLM engine {kind!r}; available: {', '.join(ENGINES)}")
    gguf = find_gguf(version_dir)
    if kind == "llamacpp":
        if gguf is None:
            raise ValueError(f"engine llamacpp serves a GGUF file; {version_dir} holds none")
        if not llamacpp_engine.available():
            raise ValueError(f"engine llamacpp needs llama-cpp-python: {llamacpp_engine.INSTALL_HINT}")
        return kind
    if kind == "auto":
        return "llamacpp" if gguf is not None and llamacpp_engine.available() else "torch"
    return kind


# request-level keys of the V2 protocol itself (not sampling settings), accepted and ignored here
_PROTOCOL_KEYS = frozenset(
    {"binary_data_output", "headers", "priority", "timeout", "sequence_id", "sequence_start", "sequence_end"}
)


class V2Parameters(BaseModel):
    """The sampling parameters of a V2 infer request to an llm model: /v1's names and bounds."""

    model_config = ConfigDict(extra="forbid", strict=True)
    max_tokens: int = Field(default=64, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=0, ge=-1)
    seed: int | None = None
    presence_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    frequency_penalty: float = Field(default=0.0, ge=-2.0, le=2.0)
    ignore_eos: bool = False

    @classmethod
    def parse(cls, parameters: dict[str, Any]) -> V2Parameters:
        given = {k: v for k, v in parameters.items() if k not in _PROTOCOL_KEYS}
        if isinstance(given.get("temperature"), int) and not isinstance(given.get("temperature"), bool):
            given["temperature"] = float(given["temperature"])  # JSON 1 means 1.0
        for key in ("top_p", "presence_penalty", "frequency_penalty"):
            if isinstance(given.get(key), int) and not isinstance(given.get(key), bool):
                given[key] = float(given[key])
        try:
            return cls(**given)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                raise InvalidInput(
                    f"unknown parameter {where!r} for an llm model; it takes {', '.join(cls.model_fields)}",
                    param=f"parameters.{where}",
                ) from None
            raise InvalidInput(f"parameters.{where}: {err['msg']}", param=f"parameters.{where}") from None

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=max(self.top_k, 0),
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
            ignore_eos=self.ignore_eos,
        )


def model_dir(version_dir: Path) -> Path:
    """The HF directory: the version directory itself, or its single subdirectory holding config.json."""
    if (version_dir / "config.json").is_file():
        return version_dir
    subs = (
        [p for p in version_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()]
        if version_dir.is_dir()
        else []
    )
    if len(subs) == 1:
        return subs[0]
    raise ValueError(f"{version_dir} holds no Hugging Face model directory (config.json, safetensors, tokenizer)")


class LLMModel(Model):
    """One engine per version; requests go straight to it on the event loop (``Model.on_loop``)."""

    def __init__(self, config: ModelConfig, version_dir: Path, context: RuntimeContext) -> None:
        super().__init__(config, version_dir, context)
        self.engine: Engine | None = None
        self.engine_kind = ""

    def load(self) -> None:
        from aiaas.llm.queue_engine import EngineLimits  # imports torch: only where an llm model loads

        params = dict(self.config.parameters)
        kind = pick_engine(str(params.get("engine", "auto")), self.version_dir)
        kwargs: dict[str, Any] = {k: params[k] for k in _ENGINE_KEYS[kind] if k in params}
        threads = self.config.runtime.intra_op_threads or int(self.context.extra.get("llm_threads", 0))
        if "threads" not in params and threads:
            params["threads"] = threads
        kwargs["limits"] = EngineLimits.parse(params)
        engine: Engine
        if kind == "llamacpp":
            from aiaas.llm.llamacpp_engine import LlamaCppEngine

            gguf = find_gguf(self.version_dir)
            assert gguf is not None
            try:
                tok_dir: Path | None = model_dir(self.version_dir)
            except ValueError:
                tok_dir = None
            engine = LlamaCppEngine(gguf, tokenizer_dir=tok_dir, **kwargs)
        else:
            from aiaas.llm.torch_engine import TorchEngine

            engine = TorchEngine(model_dir(self.version_dir), **kwargs)
        engine.start()
        self.engine, self.engine_kind = engine, kind

    async def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        assert self.engine is not None
        if "text" not in inputs:
            raise InvalidInput("an llm model takes input 'text' (BYTES)")
        texts = list(utf8_array("text", np.asarray(inputs["text"])).reshape(-1))
        params = V2Parameters.parse(parameters).sampling()
        engine = self.engine
        prompts = [engine.tokenizer.encode(t) for t in texts]
        for i, ids in enumerate(prompts):
            if len(ids) + params.max_tokens > engine.max_model_len:
                raise InvalidInput(
                    f"text[{i}]: this model's maximum context length is {engine.max_model_len} tokens; the request "
                    f"needs {len(ids) + params.max_tokens} ({len(ids)} in the prompt, {params.max_tokens} to generate)",
                    param="parameters.max_tokens",
                )

        usage = llm_usage.get()  # the request's token accounting (metrics, metering), when the caller keeps one

        async def one(ids: list[int]) -> bytes:
            seq = SequenceUsage(prompt_tokens=len(ids))
            if usage is not None:
                usage.append(seq)
            gen = engine.generate(ids, params)
            out: list[int] = []
            try:
                async for step in gen:
                    if step.tokens and seq.t_first is None:
                        seq.t_first = time.perf_counter()
                    out.extend(t.token_id for t in step.tokens)
                    seq.generated = len(out)
            finally:
                gen.cancel()
                seq.t_end = time.perf_counter()
            return engine.tokenizer.decode(out, skip_special_tokens=True).encode()

        results = await asyncio.gather(*(one(ids) for ids in prompts))
        return {"text": np.array(results, dtype=object)}

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return (
            [TensorSpec(name="text", datatype="BYTES", shape=[-1])],
            [TensorSpec(name="text", datatype="BYTES", shape=[-1])],
        )
