"""Registers the backends that ship with aiaas. Later backends (torch, tvm, llm) register the same way."""

from __future__ import annotations

from aiaas.runtime.base import register_backend
from aiaas.runtime.llm import LLMModel
from aiaas.runtime.onnx import OnnxModel
from aiaas.runtime.pipeline import PipelineModel
from aiaas.runtime.python import PythonModel

register_backend("onnx", OnnxModel)
register_backend("python", PythonModel)
register_backend("pipeline", PipelineModel)
register_backend("llm", LLMModel)
