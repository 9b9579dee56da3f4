"""Registers the backends that ship with aiaas. A backend whose package is optional (tvm, llm) imports it only in
``load``, so registering it costs nothing and a missing package makes just its models UNAVAILABLE."""

from __future__ import annotations

from aiaas.runtime.base import register_backend
from aiaas.runtime.llm import LLMModel
from aiaas.runtime.onnx import OnnxModel
from aiaas.runtime.pipeline import PipelineModel
from aiaas.runtime.python import PythonModel
from aiaas.runtime.tvm import TvmModel

register_backend("onnx", OnnxModel)
register_backend("python", PythonModel)
register_backend("pipeline", PipelineModel)
register_backend("llm", LLMModel)
register_backend("tvm", TvmModel)
