"""Request body limits for every route, enforced while the body is read (ASGI level, before any parsing).

FastAPI reads and parses a JSON body *before* it runs a route's dependencies, so without a limit here a caller
with no key could make the server read and parse hundreds of megabytes before it answers 401. ``guard`` wraps
``receive``: a declared ``Content-Length`` over the route's limit is refused with 413 before a byte is read,
and a body that grows past it (chunked, or a lying length) is refused as soon as the limit is crossed; the app
then sees a disconnect, and whatever it tries to answer is dropped.

Limits differ per route (``Settings``): V2 infer bodies carry tensors (``max_request_bytes``), OpenAI routes
carry prompts and audio (``max_openai_request_bytes``), everything else is a small control document
(``max_control_request_bytes``). Uploads (``POST /v1/files``) stream to disk under their own limit. The V2 infer
fast path (``server/fastpath.py``) runs under the same guard, so its 413s are the routed path's.
"""

from __future__ import annotations

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aiaas.errors import PayloadTooLarge
from aiaas.settings import Settings

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_OPENAI_PREFIXES = ("/v1/completions", "/v1/chat/", "/v1/embeddings", "/v1/audio/")


class BodyLimits:
    """Which limit applies to a request path; ``None`` for routes that enforce their own."""

    def __init__(self, settings: Settings) -> None:
        self.infer = settings.max_request_bytes
        self.openai = settings.max_openai_request_bytes
        self.control = settings.max_control_request_bytes

    def limit_for(self, path: str) -> tuple[int, str] | None:
        if path == "/v1/files":
            return None  # multipart upload streamed to disk under max_upload_bytes (api/files.py)
        if path.startswith("/v2/models/") and path.endswith("/infer"):
            return None  # authenticates first, then reads under max_request_bytes: no key -> 401, body unread
        if path.startswith(_OPENAI_PREFIXES):
            return self.openai, "max_openai_request_bytes"
        return self.control, "max_control_request_bytes"

    async def guard(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Run ``app`` with the body limit of the request's route applied to ``receive``."""
        found = self.limit_for(scope["path"]) if scope["method"] in _BODY_METHODS else None
        if found is None:
            await app(scope, receive, send)
            return
        limit, setting = found
        v2 = scope["path"].startswith("/v2")
        for k, v in scope["headers"]:
            if k == b"content-length":
                if v.isdigit() and int(v) > limit:
                    await _refuse(
                        send, v2, f"request body of {int(v)} bytes exceeds the limit of {limit} bytes ({setting})"
                    )
                    return
                break
        state = {"seen": 0, "refused": False, "started": False}

        async def limited_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit:
                    state["refused"] = True
                    if not state["started"]:
                        await _refuse(send, v2, f"request body exceeds the limit of {limit} bytes ({setting})")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the 413 went out already; the app's answer to the disconnect is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await app(scope, limited_receive, guarded_send)
        except ClientDisconnect:
            if not state["refused"]:
                raise  # the client really went away
            # else: the 413 went out; the app only saw the body end early, which is not an error of the server


async def _refuse(send: Send, v2: bool, message: str) -> None:
    err = PayloadTooLarge(message)
    body = orjson.dumps(err.to_v2() if v2 else err.to_openai())
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
