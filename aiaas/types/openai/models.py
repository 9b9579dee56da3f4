"""``/v1/models``: the model list and one model's card."""

from __future__ import annotations

from typing import Literal

from aiaas.types.openai.common import Resp


class ModelCard(Resp):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    task: str | None = None  # aiaas extension: what the model does (text-generation, embedding, ...)


class ModelList(Resp):
    object: Literal["list"] = "list"
    data: list[ModelCard]
