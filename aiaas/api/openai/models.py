"""``GET /v1/models`` and ``GET /v1/models/{model}``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aiaas.api.deps import principal
from aiaas.api.openai.common import json_response, service
from aiaas.service.governance import Principal

router = APIRouter()


@router.get("/models")
async def list_models(request: Request, p: Principal = Depends(principal)) -> Response:
    return json_response(service(request).models.list_models(p))


@router.get("/models/{model:path}")
async def get_model(model: str, request: Request, p: Principal = Depends(principal)) -> Response:
    return json_response(service(request).models.get_model(p, model))
