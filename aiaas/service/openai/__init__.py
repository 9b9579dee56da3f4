"""The OpenAI-compatible API, transport-free, shaped like vLLM's entrypoints: one serving module per endpoint
family (``models``, ``completions``, ``chat``, ``embeddings``, ``audio``) over the protocol in
``aiaas.types.openai`` and the shared generation machinery (``generation``, ``admission``, ``engine``); the
routers live in ``aiaas.api.openai``.

Text generation talks to the model's engine directly (``engine.llm_engine``) so tokens can stream; embeddings
and audio are ordinary models called through the data plane.
"""

from __future__ import annotations

from aiaas.service.dataplane import DataPlane
from aiaas.service.governance import Governance
from aiaas.service.metrics import Metrics
from aiaas.service.models import ModelManager
from aiaas.service.openai.audio import AudioServing
from aiaas.service.openai.chat import ChatServing
from aiaas.service.openai.completions import CompletionsServing
from aiaas.service.openai.embeddings import EmbeddingsServing
from aiaas.service.openai.generation import StreamResult
from aiaas.service.openai.models import ModelsServing


class OpenAIService:
    """Every family's serving object over one model manager, governance, data plane and metrics."""

    def __init__(self, models: ModelManager, governance: Governance, dataplane: DataPlane, metrics: Metrics) -> None:
        self.governance = governance
        self.metrics = metrics
        self.models = ModelsServing(models, governance)
        self.completions = CompletionsServing(self.models, governance, metrics)
        self.chat = ChatServing(self.models, governance, metrics)
        self.embeddings = EmbeddingsServing(self.models, dataplane)
        self.audio = AudioServing(self.models, dataplane)


__all__ = ["OpenAIService", "StreamResult"]
