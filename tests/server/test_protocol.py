"""The one-write HTTP protocol (aiaas/server/fastpath.py: http_protocol), driven the way uvicorn's own tests drive
theirs: a protocol object on a fake transport, requests fed as bytes, the writes recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from aiaas.server.fastpath import http_protocol

pytestmark = pytest.mark.anyio


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, *args: Any, **kwargs: Any) -> None: ...


async def _stream(request: Request) -> Response:
    gate = request.app.state.gate

    async def chunks() -> Any:
        yield b"first"
        await gate.wait()
        yield b"second"

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def _fail(request: Request) -> Response:
    raise RuntimeError("boom")


def _app() -> Starlette:
    app = Starlette(
        routes=[
            Route("/plain", lambda r: PlainTextResponse("hello")),
            Route("/stream", _stream),
            Route("/fail", _fail),
        ]
    )
    app.state.gate = asyncio.Event()
    return app


def _protocol(app: Starlette) -> tuple[Any, FakeTransport]:
    cls = http_protocol(True)
    assert not isinstance(cls, str), "httptools is installed: the one-write protocol must be in use"
    config = uvicorn.Config(app, http=cls, lifespan="off", log_level="critical")
    config.load()
    proto = cls(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    proto.connection_made(transport)
    return proto, transport


async def _settle(proto: Any) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
        if not proto.tasks:
            return
    await asyncio.gather(*proto.tasks)


async def test_a_response_with_a_length_leaves_in_one_write_per_request_on_keep_alive() -> None:
    proto, transport = _protocol(_app())
    for _ in range(2):
        proto.data_received(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
        await _settle(proto)
    assert len(transport.writes) == 2
    for w in transport.writes:
        assert w.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 5\r\n" in w and w.endswith(b"\r\n\r\nhello")
    assert not transport.closed


async def test_connection_close_is_honoured_after_the_single_write() -> None:
    proto, transport = _protocol(_app())
    proto.data_received(b"GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await _settle(proto)
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"hello") and transport.closed


async def test_a_streamed_response_sends_its_headers_at_once() -> None:
    app = _app()
    proto, transport = _protocol(app)
    proto.data_received(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(20):
        await asyncio.sleep(0)
    # headers and the first chunk are out while the stream still waits for its second chunk
    assert (
        transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in transport.writes[0]
    )
    assert any(b"first" in w for w in transport.writes) and not any(b"second" in w for w in transport.writes)
    app.state.gate.set()
    await _settle(proto)
    assert transport.writes[-1].endswith(b"0\r\n\r\n")


async def test_an_app_error_still_answers_500() -> None:
    proto, transport = _protocol(_app())
    proto.data_received(b"GET /fail HTTP/1.1\r\nHost: x\r\n\r\n")
    await _settle(proto)
    assert b"".join(transport.writes).startswith(b"HTTP/1.1 500 ")
