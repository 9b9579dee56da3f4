"""uvicorn's httptools protocol, writing each complete response with one ``send()`` instead of two.

Stock uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and the
body when it sends ``http.response.body``: two system calls and two TCP segments per response, and on loopback
two wake-ups of the client. For a small V2 request the two writes were ~30% of the event loop thread's time
under load (py-spy, bench/serving.py); one write gave ~8% more requests/s on the small MLP. Here a start message whose body length is known (``content-length``: every
non-streaming Starlette response) is held until its first body message, and both leave in one write.
Streaming responses (no content-length, e.g. server-sent events) are written as before, so their headers
reach the client at once.

Everything else -- header validation, content-length accounting, keep-alive, errors -- is uvicorn's own code:
the held messages run through uvicorn's ``send`` against a buffer, then the buffer goes to the socket. Without
httptools, or if uvicorn's internals ever change shape, ``protocol_class`` returns uvicorn's stock protocol.
"""

from __future__ import annotations

from typing import Any

_CONTENT_LENGTH = b"content-length"


class _Collect:
    """Stands in for the transport while uvicorn formats a response: keeps the bytes and a close request."""

    __slots__ = ("_real", "close_requested", "parts")

    def __init__(self, real: Any) -> None:
        self.parts: list[bytes] = []
        self.close_requested = False
        self._real = real

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def close(self) -> None:
        self.close_requested = True

    def is_closing(self) -> bool:
        return bool(self._real.is_closing())

    def __getattr__(self, name: str) -> Any:  # anything else uvicorn may ask of a transport
        return getattr(self._real, name)


def protocol_class() -> Any:
    """The HTTP protocol class for ``uvicorn.Config(http=...)``: the one-write protocol, or "h11" without
    httptools, or "httptools" (stock) when uvicorn's internals are not what this module was written against."""
    try:
        from uvicorn.protocols.http import httptools_impl as impl
    except ImportError:
        return "h11"
    cycle_cls, proto_cls = getattr(impl, "RequestResponseCycle", None), getattr(impl, "HttpToolsProtocol", None)
    if cycle_cls is None or proto_cls is None or not all(
        hasattr(c, a) for c, a in ((cycle_cls, "send"), (cycle_cls, "run_asgi"), (proto_cls, "on_headers_complete"))
    ):
        return "httptools"

    class OneWriteCycle(cycle_cls):  # type: ignore[misc,valid-type]
        _held: Any = None  # the start message waiting for its body
        transport: Any  # uvicorn's attribute (its type is not visible through the dynamic base class)

        async def send(self, message: Any) -> None:
            kind = message["type"]
            if kind == "http.response.start" and not self.response_started:
                if any(k.lower() == _CONTENT_LENGTH for k, _ in message.get("headers", ())):
                    self._held = message
                    return
            elif kind == "http.response.body" and self._held is not None:
                start, self._held = self._held, None
                real = self.transport
                self.transport = buf = _Collect(real)
                try:
                    await super().send(start)
                    await super().send(message)
                finally:
                    self.transport = real
                    if buf.parts and not real.is_closing():
                        real.write(b"".join(buf.parts))
                    if buf.close_requested:
                        real.close()
                return
            await super().send(message)

    class OneWriteProtocol(proto_cls):  # type: ignore[misc,valid-type]
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            # uvicorn builds the cycle here and schedules its task, which has not run yet: give the new cycle
            # the one-write ``send`` before the app first sees it
            if type(self.cycle) is cycle_cls:
                self.cycle.__class__ = OneWriteCycle

    return OneWriteProtocol
