"""Replica routes: GET /v1/models/{m}/replicas, POST /v1/models/{m}/scale {"replicas": N}."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from aiaas.api.deps import principal, read_body, services
from aiaas.errors import InvalidInput
from aiaas.service.governance import Principal
from aiaas.service.replicas import ReplicaControl

router = APIRouter(prefix="/v1/models", tags=["replicas"])


def _control(request: Request) -> ReplicaControl:
    svc = services(request)
    return ReplicaControl(svc.models, svc.control, svc.store)


@router.get("/{model}/replicas", summary="A model's replicas: placement, node, pid, state, batches, restarts")
async def list_replicas(request: Request, model: str, p: Principal = Depends(principal)) -> dict[str, Any]:
    return _control(request).list(p, model)


@router.post("/{model}/scale", summary="Change a model's replica count without dropping a request")
async def scale(request: Request, model: str, p: Principal = Depends(principal)) -> dict[str, Any]:
    import orjson

    body = await read_body(request, 4096)
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or "replicas" not in doc:
        raise InvalidInput('request body must be a JSON object like {"replicas": 2}')
    return await _control(request).scale(p, model, doc["replicas"])
