"""The playgrounds' calls: the page's script posts the same bodies as the API's V2 infer and OpenAI chat
routes, authenticated by the console session plus its CSRF token instead of a bearer key, and answered by the
API's own handlers -- the same admission, limits, budgets, metering and errors as a curl call."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from aiaas.api import v2
from aiaas.api.deps import read_body
from aiaas.api.openai.common import reply, service
from aiaas.types import openai as oa
from aiaas.ui.web import Console, checked

router = APIRouter(prefix="/ui/api", include_in_schema=False)


@router.post("/models/{model}/infer")
async def infer(model: str, request: Request, ctx: Console = Depends(checked)) -> Response:
    svc = ctx.services
    body = await read_body(request, svc.settings.max_request_bytes)
    return await v2._infer(svc, ctx.principal, model, None, body, None)


@router.post("/chat/completions")
async def chat(body: oa.ChatCompletionRequest, request: Request, ctx: Console = Depends(checked)) -> Response:
    return reply(await service(request).chat.create(ctx.principal, body))
