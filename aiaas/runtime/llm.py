"""The ``llm`` backend: a decoder-only language model served by a continuous-batching engine.

The version directory is a Hugging Face model directory (``config.json``, ``*.safetensors``, tokenizer
files). ``parameters`` in ``model.yaml`` size the engine::

    backend: llm
    task: text-generation
    parameters:
      engine: torch            # the only engine today; the interface (aiaas.llm.base.Engine) admits llama.cpp
      max_num_seqs: 32         # sequences in the running batch
      max_num_tokens: 65536    # prompt + max_tokens reserved by running sequences
      max_waiting: 256         # queued beyond the batch; more answers 503 + Retry-After
      max_model_len: 4096      # context (default: the model's max_position_embeddings)
      dtype: float32           # or bfloat16
      default_max_tokens: 1024 # chat requests without max_tokens
      chat_template: null      # override the tokenizer's template

The OpenAI routes (``aiaas.service.openai``) use ``engine`` directly for token streaming and metering; the V2
``infer`` route still works through ``predict_async``: input ``text`` (BYTES [-1]) -> output ``text``, one
greedy completion per row with ``parameters.max_tokens`` (default 64).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from aiaas.codecs.datatypes import utf8_array
from aiaas.errors import InvalidInput
from aiaas.llm.base import Engine, SamplingParams
from aiaas.runtime.base import Model, RuntimeContext, Tensors
from aiaas.types.model_config import ModelConfig, TensorSpec

_ENGINE_KEYS = ("max_num_seqs", "max_num_tokens", "max_waiting", "max_model_len", "max_prefill_tokens",
                "default_max_tokens", "dtype", "device", "threads", "chat_template")  # fmt: skip


def model_dir(version_dir: Path) -> Path:
    """The HF directory: the version directory itself, or its single subdirectory holding config.json."""
    if (version_dir / "config.json").is_file():
        return version_dir
    subs = [p for p in version_dir.iterdir() if p.is_dir() and (p / "config.json").is_file()] if version_dir.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    raise ValueError(f"{version_dir} holds no Hugging Face model directory (config.json, safetensors, tokenizer)")


class LLMModel(Model):
    is_async: ClassVar[bool] = True  # one engine per version; requests go straight to it on the event loop

    def __init__(self, config: ModelConfig, version_dir: Path, context: RuntimeContext) -> None:
        super().__init__(config, version_dir, context)
        self.engine: Engine | None = None

    def load(self) -> None:
        params = dict(self.config.parameters)
        kind = params.get("engine", "torch")
        if kind != "torch":
            raise ValueError(f"unknown LLM engine {kind!r}; available: torch")
        from aiaas.llm.torch_engine import TorchEngine

        kwargs: dict[str, Any] = {k: params[k] for k in _ENGINE_KEYS if k in params}
        if "threads" not in kwargs and self.config.runtime.intra_op_threads:
            kwargs["threads"] = self.config.runtime.intra_op_threads
        engine = TorchEngine(model_dir(self.version_dir), **kwargs)
        engine.start()
        self.engine = engine

    def predict(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        raise NotImplementedError("the llm backend runs on the event loop (predict_async)")

    async def predict_async(self, inputs: Tensors, parameters: dict[str, Any]) -> Tensors:
        assert self.engine is not None
        if "text" not in inputs:
            raise InvalidInput("an llm model takes input 'text' (BYTES)")
        texts = list(utf8_array("text", np.asarray(inputs["text"])).reshape(-1))
        max_tokens = int(parameters.get("max_tokens", 64))
        temperature = float(parameters.get("temperature", 0.0))
        engine = self.engine

        async def one(text: str) -> bytes:
            ids = engine.tokenizer.encode(text)
            gen = engine.generate(ids, SamplingParams(max_tokens=max_tokens, temperature=temperature))
            out: list[int] = []
            try:
                async for step in gen:
                    out.extend(t.token_id for t in step.tokens)
            finally:
                gen.cancel()
            return engine.tokenizer.decode(out, skip_special_tokens=True).encode()

        results = await asyncio.gather(*(one(t) for t in texts))
        return {"text": np.array(results, dtype=object)}

    def unload(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None

    def signature(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return ([TensorSpec(name="text", datatype="BYTES", shape=[-1])],
                [TensorSpec(name="text", datatype="BYTES", shape=[-1])])  # fmt: skip
