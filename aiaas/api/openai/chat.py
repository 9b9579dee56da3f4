"""``POST /v1/chat/completions``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from aiaas.api.deps import principal
from aiaas.api.openai.common import reply, service
from aiaas.service.governance import Principal
from aiaas.types import openai as oa

router = APIRouter()


@router.post("/chat/completions")
async def chat_completions(
    body: oa.ChatCompletionRequest, request: Request, p: Principal = Depends(principal)
) -> Response:
    return reply(await service(request).chat.create(p, body))
