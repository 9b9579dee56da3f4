"""``POST /v1/embeddings``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aiaas.api.deps import principal
from aiaas.api.openai.common import json_response, service
from aiaas.service.governance import Principal
from aiaas.types import openai as oa

router = APIRouter()


@router.post("/embeddings")
async def embeddings(body: oa.EmbeddingRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    return json_response(await service(request).embeddings.create(p, body))
