"""Shared request dependencies: the services of the app and the authenticated caller."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from fastapi import Request

from aiaas.errors import InvalidInput, PayloadTooLarge, PermissionDenied
from aiaas.service.governance import Principal

if TYPE_CHECKING:
    from aiaas.server.app import Services


def services(request: Request) -> Services:
    return request.app.state.services


async def principal(request: Request) -> Principal:
    return await request.app.state.services.governance.authenticate(request.headers.get("authorization"))


def require_role(p: Principal, *roles: str) -> None:
    if p.role not in roles:
        raise PermissionDenied(f"this action needs role {' or '.join(roles)}; your key has role {p.role}")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (also for chunked uploads), decompressed."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body of {length} bytes exceeds the limit of {limit} bytes")
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
    encoding = request.headers.get("content-encoding", "").lower()
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
