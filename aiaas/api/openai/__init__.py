"""OpenAI-compatible routes under ``/v1``: one thin router per endpoint family (``models``, ``completions``,
``chat``, ``embeddings``, ``audio``) that parses, authenticates and hands over to its serving object in
``aiaas.service.openai``. Errors (``aiaas.errors``) render in OpenAI's shape through ``aiaas.api.errors``."""

from __future__ import annotations

from fastapi import APIRouter

from aiaas.api.openai import audio, chat, completions, embeddings, models

router = APIRouter(prefix="/v1", tags=["openai"])
for _family in (models, completions, chat, embeddings, audio):  # the order of the OpenAPI document
    router.include_router(_family.router)
