"""KServe V2 Open Inference Protocol over REST (plus Triton's repository and statistics extensions).

Thin: each route authenticates, parses, calls one data-plane or model-control method and serializes. The
infer route reads raw bytes and answers raw bytes (no pydantic per request) because it is the hot path.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from aiaas.api.deps import principal, read_body, receive_body, services
from aiaas.codecs.v2 import decode_request, encode_response
from aiaas.errors import InvalidInput, ServiceUnavailable, clip
from aiaas.service.governance import Principal

if TYPE_CHECKING:
    from aiaas.service.container import Services

router = APIRouter(prefix="/v2", tags=["KServe V2"])

HEADER_LEN = "inference-header-content-length"


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)


@router.get("/health/live", summary="Server liveness (no key needed)")
async def live() -> Response:
    return _json({"live": True})


@router.get("/health/ready", summary="Server readiness (no key needed)")
async def ready(request: Request) -> Response:
    svc = services(request)
    if not svc.ready:
        return _json({"ready": False, "error": "server is starting or shutting down"}, 503)
    if svc.settings.strict_readiness and (waiting := svc.models.not_ready()):
        return _json({"ready": False, "error": "strict readiness: models not ready", "models": waiting}, 503)
    deps = await svc.governance.dependencies()
    degraded = sorted(name for name, problem in deps.items() if problem is not None)
    if not degraded:
        return _json({"ready": True})
    # Still ready: what does not need the missing dependency keeps working (see docs/resilience.md).
    return _json({"ready": True, "degraded": degraded, "dependencies": {n: p or "ok" for n, p in deps.items()}})


@router.get("", summary="Server metadata")
async def server_metadata(request: Request, p: Principal = Depends(principal)) -> Response:
    return _json(services(request).dataplane.server_metadata())


# -- model metadata, readiness, statistics ------------------------------------------------------
@router.get("/models/stats", summary="Statistics of every model")
async def all_stats(request: Request, p: Principal = Depends(principal)) -> Response:
    return _json(services(request).dataplane.statistics(p, None, None))


@router.get("/models/{model}", summary="Model metadata")
@router.get("/models/{model}/versions/{version}", summary="Model version metadata")
async def model_metadata(
    request: Request, model: str, version: str | None = None, p: Principal = Depends(principal)
) -> Response:
    return _json(services(request).dataplane.model_metadata(p, model, version))


@router.get("/models/{model}/ready", summary="Model readiness")
@router.get("/models/{model}/versions/{version}/ready", summary="Model version readiness")
async def model_ready(
    request: Request, model: str, version: str | None = None, p: Principal = Depends(principal)
) -> Response:
    ok = services(request).dataplane.model_ready(p, model, version)
    if not ok:
        raise ServiceUnavailable(f"model {model!r} is not ready", retry_after=5)
    return _json({"name": model, "ready": True})


@router.get("/models/{model}/stats", summary="Model statistics")
@router.get("/models/{model}/versions/{version}/stats", summary="Model version statistics")
async def model_stats(
    request: Request, model: str, version: str | None = None, p: Principal = Depends(principal)
) -> Response:
    return _json(services(request).dataplane.statistics(p, model, version))


# -- inference ----------------------------------------------------------------------------------
@router.post("/models/{model}/infer", summary="Inference")
@router.post("/models/{model}/versions/{version}/infer", summary="Inference on a version")
async def infer(
    request: Request, model: str, version: str | None = None, p: Principal = Depends(principal)
) -> Response:
    svc = services(request)
    body = await read_body(request, svc.settings.max_request_bytes)
    return await _infer(svc, p, model, version, body, request.headers.get(HEADER_LEN))


async def _infer(
    svc: Services, p: Principal, model: str, version: str | None, body: bytes, raw_len: str | None
) -> Response:
    header_len = None
    if raw_len is not None:
        digits = raw_len.strip()
        if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
            raise InvalidInput(
                f"Inference-Header-Content-Length must be a byte count (decimal digits), got {clip(raw_len, 40)!r}"
            )
        header_len = int(digits)
    limits = svc.settings
    if len(body) < limits.offload_decode_bytes:
        req = decode_request(body, header_len, limits.max_tensor_elements)
    else:  # a big body takes long to parse: off the event loop, so health checks and small requests go on
        req = await asyncio.to_thread(decode_request, body, header_len, limits.max_tensor_elements)
    requested = [o.name for o in req.outputs] if req.outputs is not None else None
    result = await svc.dataplane.infer(
        p, model, version, req.inputs, _model_params(req.parameters), req.datatypes, requested
    )
    binary: set[str] = set()
    if req.outputs is not None:
        binary = {
            o.name for o in req.outputs if o.binary or (req.binary_output_default and "binary_data" not in o.parameters)
        }
    elif req.binary_output_default:
        binary = set(result.outputs)
    out, json_len = encode_response(model, result.version, req.id, result.outputs, binary)
    headers = dict(result.headers)
    if json_len is None:
        return Response(out, media_type="application/json", headers=headers)
    headers["Inference-Header-Content-Length"] = str(json_len)
    return Response(out, media_type="application/octet-stream", headers=headers)


# The same route straight from the ASGI request, without FastAPI's routing, dependency and middleware layers,
# which cost more CPU per request than everything aiaas itself does for a small model (bench/serving.py).
# ``server/fastpath.py`` sends POSTs whose path matches here and renders errors with the app's handlers; the
# routed ``infer`` above stays for OpenAPI, for AIAAS_FAST_PATH=0 and for apps with middleware or overrides.
INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer")


async def infer_raw(scope: Scope, receive: Receive, model: str, version: str | None) -> Response:
    """The routed ``infer``'s auth, parsing and response from the ASGI scope and ``receive``, byte for byte;
    raises the same errors. ``scope["app"]`` is the app."""
    headers: dict[bytes, bytes] = {}
    for k, v in scope["headers"]:  # names are lower case (ASGI); the first of repeated headers wins, as in Starlette
        if k not in headers:
            headers[k] = v
    svc = scope["app"].state.services  # what ``services(request)`` reads, without building a Request
    client = scope.get("client")
    p = await svc.governance.authenticate(_header(headers, b"authorization"), client[0] if client else None)
    scope["aiaas.tenant"] = p.tenant_id  # for the access log (server/observe.py)
    body = await receive_body(
        receive,
        _header(headers, b"content-length"),
        _header(headers, b"content-encoding"),
        svc.settings.max_request_bytes,
    )
    return await _infer(svc, p, model, version, body, _header(headers, _HEADER_LEN_KEY))


_HEADER_LEN_KEY = HEADER_LEN.encode()


def _header(headers: dict[bytes, bytes], name: bytes) -> str | None:
    value = headers.get(name)
    return None if value is None else value.decode("latin-1")


_PROTOCOL_PARAMS = frozenset({"binary_data_output", "binary_data_size", "headers", "timeout"})


def _model_params(params: dict[str, Any]) -> dict[str, Any]:
    """Protocol parameters steer the transport; the rest reach the model (and split batches when they differ)."""
    if not params:
        return params
    return {k: v for k, v in params.items() if k not in _PROTOCOL_PARAMS}


# -- repository extension -----------------------------------------------------------------------
async def _optional_json(request: Request) -> dict[str, Any]:
    """An optional JSON object body, limited and decompressed like an infer body (no unbounded reads)."""
    body = await read_body(request, services(request).settings.max_request_bytes)
    if not body.strip():
        return {}
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"request body is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    return doc


@router.post("/repository/index", summary="Repository index")
async def repository_index(request: Request, p: Principal = Depends(principal)) -> Response:
    doc = await _optional_json(request)
    return _json(services(request).control.index(p, ready_only=bool(doc.get("ready", False))))


@router.post("/repository/models/{model}/load", summary="Load or reload a model from the repository")
async def repository_load(request: Request, model: str, p: Principal = Depends(principal)) -> Response:
    await _optional_json(request)
    await services(request).control.load(p, model)
    return _json({})


@router.post("/repository/models/{model}/unload", summary="Unload a model (drains in-flight requests)")
async def repository_unload(request: Request, model: str, p: Principal = Depends(principal)) -> Response:
    await _optional_json(request)
    await services(request).control.unload(p, model)
    return _json({})
