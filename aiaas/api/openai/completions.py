"""``POST /v1/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aiaas.api.deps import principal
from aiaas.api.openai.common import reply, service
from aiaas.service.governance import Principal
from aiaas.types import openai as oa

router = APIRouter()


@router.post("/completions")
async def completions(body: oa.CompletionRequest, request: Request, p: Principal = Depends(principal)) -> Response:
    return reply(await service(request).completions.create(p, body))
