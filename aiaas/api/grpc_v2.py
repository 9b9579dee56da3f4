"""KServe V2 over gRPC: Triton's ``inference.GRPCInferenceService`` as a thin layer over the same data plane,
model control and governance as the REST routes (``aiaas.api.v2``).

Each RPC authenticates the ``authorization`` metadata, decodes, calls one service method and encodes; every
``AiaasError`` becomes a gRPC status (``status_of``) whose message is the REST message, with the REST headers
(Retry-After, X-RateLimit-*) as trailing metadata. ModelStreamInfer serves the requests of a stream
concurrently, each one's responses in order; an LLM answers as a Triton *decoupled* model: one response per
text increment, the last flagged ``triton_final_response`` (or an empty final response when the request sets
``triton_enable_empty_final_response``). A request that fails inside a stream answers ``error_message`` and the
stream goes on, as in Triton.

The message classes are Triton's own, taken from ``tritonclient.grpc`` (a runtime dependency), so a server and a
``tritonclient.grpc`` client in one process share one descriptor pool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf import json_format
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as pbg

from aiaas.api.v2 import _model_params
from aiaas.codecs.grpc import decode_infer_request, encode_outputs, parameters
from aiaas.errors import AiaasError, InvalidInput
from aiaas.service import textstream
from aiaas.service.governance import Principal
from aiaas.service.openai import OpenAIService
from aiaas.service.textstream import is_llm

log = logging.getLogger("aiaas.grpc")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
STREAM_MAX_IN_FLIGHT = 256  # requests of one ModelStreamInfer served at once; more wait unread

_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    402: grpc.StatusCode.RESOURCE_EXHAUSTED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    499: grpc.StatusCode.CANCELLED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_of(exc: AiaasError) -> grpc.StatusCode:
    return _CODES.get(exc.status_code, grpc.StatusCode.INTERNAL)


def _details(exc: AiaasError) -> str:
    retry = exc.headers.get("Retry-After")
    if retry is not None and "retry after" not in exc.message.lower():
        return f"{exc.message} (retry after {retry} s)"
    return exc.message


def _metadata(headers: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((k.lower(), str(v)) for k, v in headers.items())


async def _abort(context: grpc.aio.ServicerContext, exc: AiaasError) -> None:
    await context.abort(status_of(exc), _details(exc), _metadata(exc.headers))


def _unexpected(exc: Exception, rpc: str) -> AiaasError:
    log.exception("unhandled error in gRPC %s", rpc)
    return AiaasError(f"internal server error: {type(exc).__name__}")


R = TypeVar("R")
Unary = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def _rpc(fn: Unary[R]) -> Unary[R]:
    """Render the errors of a unary RPC as gRPC statuses (client mistakes are never INTERNAL)."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await fn(self, request, context)
        except AiaasError as e:
            await _abort(context, e)
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception as e:
            await _abort(context, _unexpected(e, fn.__name__))
        raise AssertionError("unreachable: abort raises")

    return wrapper


def _tensor_meta(specs: list[dict[str, Any]]) -> list[pb.ModelMetadataResponse.TensorMetadata]:
    return [
        pb.ModelMetadataResponse.TensorMetadata(name=t["name"], datatype=t["datatype"], shape=t["shape"]) for t in specs
    ]


def _config_tensors(specs: list[Any], batched: bool, cls: Any) -> list[Any]:
    out = []
    for t in specs:
        dims = list(t.shape[1:] if batched and t.shape else t.shape)  # Triton's dims leave out the batch axis
        dtype = "TYPE_STRING" if t.datatype == "BYTES" else f"TYPE_{t.datatype}"
        out.append(cls(name=t.name, data_type=mc.DataType.Value(dtype), dims=dims))
    return out


def _stream_error(request: pb.ModelInferRequest, exc: AiaasError) -> pb.ModelStreamInferResponse:
    return pb.ModelStreamInferResponse(
        error_message=f"{status_of(exc).name}: {_details(exc)}",
        infer_response=pb.ModelInferResponse(
            model_name=request.model_name, model_version=request.model_version, id=request.id
        ),
    )


class InferenceServicer(pbg.GRPCInferenceServiceServicer):
    def __init__(self, services: Any) -> None:
        self.svc = services  # aiaas.service.container.Services
        self.dataplane = services.dataplane
        self.oai = OpenAIService(services.models, services.governance, services.dataplane, services.metrics)
        self.draining = asyncio.Event()  # set at shutdown: streams take no new requests, finish theirs, end

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal:
        auth = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                auth = value if isinstance(value, str) else value.decode("latin-1")
                break
        principal: Principal = await self.svc.governance.authenticate(auth)
        return principal

    # -- health and metadata ----------------------------------------------------------------------
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=bool(self.svc.ready) and not self.draining.is_set())

    @_rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        p = await self._principal(context)
        return pb.ModelReadyResponse(ready=self.dataplane.model_ready(p, request.name, request.version or None))

    @_rpc
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        await self._principal(context)
        meta = self.dataplane.server_metadata()
        return pb.ServerMetadataResponse(name=meta["name"], version=meta["version"], extensions=meta["extensions"])

    @_rpc
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        p = await self._principal(context)
        m = self.dataplane.model_metadata(p, request.name, request.version or None)
        return pb.ModelMetadataResponse(
            name=m["name"],
            versions=m["versions"],
            platform=m["platform"],
            inputs=_tensor_meta(m["inputs"]),
            outputs=_tensor_meta(m["outputs"]),
        )

    @_rpc
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Any) -> pb.ModelConfigResponse:
        p = await self._principal(context)
        m = self.dataplane.model_metadata(p, request.name, request.version or None)  # visibility, version check
        rec = self.svc.models.record(request.name)
        vr = rec.versions.get(int(m["versions"][-1])) if m["versions"] else None
        cfg = vr.config if vr is not None and vr.config is not None else rec.config
        batched = cfg.max_batch_size > 0
        config = mc.ModelConfig(
            name=request.name,
            platform=m["platform"],
            backend=cfg.backend,
            max_batch_size=cfg.max_batch_size,
            input=_config_tensors(cfg.inputs, batched, mc.ModelInput),
            output=_config_tensors(cfg.outputs, batched, mc.ModelOutput),
        )
        return pb.ModelConfigResponse(config=config)

    @_rpc
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Any) -> pb.ModelStatisticsResponse:
        p = await self._principal(context)
        stats = self.dataplane.statistics(p, request.name or None, request.version or None)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse(), ignore_unknown_fields=True)

    # -- repository -------------------------------------------------------------------------------
    @_rpc
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> pb.RepositoryIndexResponse:
        p = await self._principal(context)
        rows = self.svc.control.index(p, ready_only=request.ready)
        models = [
            pb.RepositoryIndexResponse.ModelIndex(
                name=r["name"],
                version=str(r.get("version", "")),
                state=r.get("state", ""),
                reason=r.get("reason", "") or "",
            )
            for r in rows
        ]
        return pb.RepositoryIndexResponse(models=models)

    @_rpc
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> pb.RepositoryModelLoadResponse:
        p = await self._principal(context)
        if request.parameters:
            raise InvalidInput(
                f"RepositoryModelLoad parameters {sorted(request.parameters)} are not supported: "
                "aiaas loads a model from its repository directory as it is"
            )
        await self.svc.control.load(p, request.model_name)
        return pb.RepositoryModelLoadResponse()

    @_rpc
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> pb.RepositoryModelUnloadResponse:
        p = await self._principal(context)
        await self.svc.control.unload(p, request.model_name)
        return pb.RepositoryModelUnloadResponse()

    # -- inference --------------------------------------------------------------------------------
    @_rpc
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        response, headers = await self._infer(await self._principal(context), request)
        if headers:
            context.set_trailing_metadata(_metadata(headers))
        return response

    async def _infer(self, p: Principal, request: pb.ModelInferRequest) -> tuple[pb.ModelInferResponse, dict[str, str]]:
        if not request.model_name:
            raise InvalidInput("model_name is required")
        req = decode_infer_request(request, self.svc.settings.max_tensor_elements)
        requested = [o.name for o in req.outputs] if req.outputs is not None else None
        result = await self.dataplane.infer(
            p,
            request.model_name,
            request.model_version or None,
            req.inputs,
            _model_params(req.parameters),
            req.datatypes,
            requested,
            endpoint="v2.grpc.infer",
        )
        response = pb.ModelInferResponse(model_name=request.model_name, model_version=result.version, id=request.id)
        encode_outputs(response, result.outputs)
        return response, result.headers

    async def ModelStreamInfer(
        self, request_iterator: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        try:
            p = await self._principal(context)
        except AiaasError as e:
            await _abort(context, e)
        out: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        tasks: set[asyncio.Task[None]] = set()
        reader = asyncio.create_task(self._read_stream(request_iterator, p, out, tasks))
        try:
            while (item := await out.get()) is not None:
                yield item
        finally:  # the client cancelled or went away: stop every request of the stream (an LLM stops generating)
            reader.cancel()
            for t in list(tasks):
                t.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)

    async def _read_stream(
        self, requests: Any, p: Principal, out: asyncio.Queue[Any], tasks: set[asyncio.Task[None]]
    ) -> None:
        slots = asyncio.Semaphore(STREAM_MAX_IN_FLIGHT)
        try:
            async for request in self._until_draining(requests):
                await slots.acquire()  # at the cap, stop reading: HTTP/2 flow control pushes back on the client
                task = asyncio.create_task(self._stream_one(p, request, out))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: slots.release())
            while tasks:  # no more requests (half-close or shutdown): finish the ones in flight
                await asyncio.gather(*list(tasks), return_exceptions=True)
        finally:
            out.put_nowait(None)

    async def _until_draining(self, requests: Any) -> AsyncIterator[pb.ModelInferRequest]:
        it = requests.__aiter__()
        drain = asyncio.ensure_future(self.draining.wait())
        try:
            while True:
                nxt = asyncio.ensure_future(it.__anext__())
                await asyncio.wait((nxt, drain), return_when=asyncio.FIRST_COMPLETED)
                if not nxt.done():
                    nxt.cancel()
                    return
                try:
                    yield nxt.result()
                except StopAsyncIteration:
                    return
        finally:
            drain.cancel()

    async def _stream_one(self, p: Principal, request: pb.ModelInferRequest, out: asyncio.Queue[Any]) -> None:
        try:
            if is_llm(self.oai, request.model_name):
                await self._generate(p, request, out)
            else:
                response, _ = await self._infer(p, request)
                out.put_nowait(pb.ModelStreamInferResponse(infer_response=response))
        except AiaasError as e:
            out.put_nowait(_stream_error(request, e))
        except Exception as e:
            out.put_nowait(_stream_error(request, _unexpected(e, "ModelStreamInfer")))

    async def _generate(self, p: Principal, request: pb.ModelInferRequest, out: asyncio.Queue[Any]) -> None:
        req = decode_infer_request(request, self.svc.settings.max_tensor_elements)
        text = req.inputs.get("text")
        if text is None or len(req.inputs) != 1 or text.size != 1 or req.datatypes["text"] != "BYTES":
            raise InvalidInput(f"model {request.model_name!r} streams one prompt: input 'text' (BYTES, one element)")
        raw = parameters(request.parameters)
        empty_final = bool(raw.get("triton_enable_empty_final_response", False))
        params = {k: v for k, v in _model_params(req.parameters).items() if not k.startswith("triton_")}
        prompt = text.reshape(-1)[0]
        stream = await textstream.start(self.oai, p, request.model_name, prompt.decode("utf-8", "replace"), params)

        def response(piece: str | None, final: bool, finish: str | None = None) -> pb.ModelStreamInferResponse:
            r = pb.ModelInferResponse(model_name=request.model_name, model_version=stream.version, id=request.id)
            if piece is not None:
                encode_outputs(r, {"text": np.array([piece.encode()], dtype=object)})
            r.parameters["triton_final_response"].bool_param = final
            if finish is not None:
                r.parameters["finish_reason"].string_param = finish
            return pb.ModelStreamInferResponse(infer_response=r)

        events = stream.events
        try:
            async for piece, finish in events:
                if finish is None and not piece:
                    continue
                out.put_nowait(response(piece, finish is not None and not empty_final, finish))
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        if empty_final:
            out.put_nowait(response(None, True))


def add_to_server(servicer: InferenceServicer, server: grpc.aio.Server) -> None:
    pbg.add_GRPCInferenceServiceServicer_to_server(servicer, server)


__all__ = ["SERVICE_NAME", "InferenceServicer", "add_to_server", "status_of"]
