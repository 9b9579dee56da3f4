"""Shared request dependencies: the services of the app and the authenticated caller."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import Receive

from aiaas.errors import InvalidInput, PayloadTooLarge, PermissionDenied
from aiaas.service.governance import Principal

if TYPE_CHECKING:
    from aiaas.service.container import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def principal(request: Request) -> Principal:
    client = request.client.host if request.client is not None else None
    p: Principal = await request.app.state.services.governance.authenticate(
        request.headers.get("authorization"), client
    )
    request.scope["aiaas.tenant"] = p.tenant_id  # for the access log
    return p


def require_role(p: Principal, *roles: str) -> None:
    if p.role not in roles:
        raise PermissionDenied(f"this action needs role {' or '.join(roles)}; your key has role {p.role}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (also for chunked uploads), decompressed."""
    length = request.headers.get("content-length")
    _check_length(length, limit)
    if length is not None:
        body = await request.body()
    else:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    return _decompress(body, request.headers.get("content-encoding", ""), limit)


async def receive_body(receive: Receive, length: str | None, encoding: str | None, limit: int) -> bytes:
    """``read_body`` straight from the ASGI ``receive`` (the infer fast path, which has no ``Request`` body
    machinery to pay for): same limits, errors and decompression."""
    _check_length(length, limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if length is None and size > limit:
                    raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return _decompress(body, encoding or "", limit)


def _check_length(length: str | None, limit: int) -> None:
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {limit} bytes")


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    # bounded decompression: a small bomb cannot expand past the limit in memory
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise InvalidInput(f"request body is not valid {encoding} data: {e}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed request body exceeds the limit of {limit} bytes")
    return out
