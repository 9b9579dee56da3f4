"""Tensors as raw buffers: a small binary header (names, dtypes, shapes, offsets) plus the bytes themselves.

Used between the server and its worker processes (data in shared memory) and Ray actors (data in one ``bytes``).
Nothing here is JSON or pickle: a header is struct-packed and the data is the arrays' memory, so a peer can
only describe arrays of the allowed dtypes. BYTES tensors (object arrays of ``bytes``) travel as
length-prefixed items.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from aiaas.runtime.base import Tensors

_KINDS = frozenset("biuf")  # bool, signed, unsigned, float: the numeric V2 datatypes
_OBJ = b"O"
_HEAD = struct.Struct("<H")  # tensor count
_DESC = struct.Struct("<HBBQQ")  # name length, dtype length, ndim, offset, nbytes
_ALIGN = 64


def _bytes_blob(arr: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in arr.reshape(-1):
        b = item if isinstance(item, bytes) else str(item).encode("utf-8")
        parts.append(struct.pack("<I", len(b)))
        parts.append(b)
    return b"".join(parts)


def layout(tensors: Tensors) -> tuple[list[tuple[str, bytes, tuple[int, ...], int, int, np.ndarray | bytes]], int]:
    """Plan where each tensor goes: (name, dtype, shape, offset, nbytes, source) and the total size."""
    plan: list[tuple[str, bytes, tuple[int, ...], int, int, np.ndarray | bytes]] = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        if arr.dtype == object:
            src: np.ndarray | bytes = _bytes_blob(arr)
            dtype, nbytes = _OBJ, len(src)
        else:
            if arr.dtype.kind not in _KINDS:
                raise TypeError(f"tensor {name!r} has dtype {arr.dtype}, which cannot cross to a replica")
            src = np.ascontiguousarray(arr)
            dtype, nbytes = arr.dtype.str.encode(), arr.nbytes
        plan.append((name, dtype, tuple(arr.shape), offset, nbytes, src))
        offset += -(-nbytes // _ALIGN) * _ALIGN
    return plan, offset


def write(plan: list[tuple[str, bytes, tuple[int, ...], int, int, np.ndarray | bytes]], buf: memoryview) -> bytes:
    """Copy each tensor into ``buf`` at its offset; return the header that describes them."""
    head = [_HEAD.pack(len(plan))]
    for name, dtype, shape, offset, nbytes, src in plan:
        if isinstance(src, bytes):
            buf[offset : offset + nbytes] = src
        elif nbytes:
            np.frombuffer(buf, dtype=np.uint8, count=nbytes, offset=offset)[:] = src.reshape(-1).view(np.uint8)
        raw = name.encode("utf-8")
        head.append(_DESC.pack(len(raw), len(dtype), len(shape), offset, nbytes))
        head.append(raw + dtype + struct.pack(f"<{len(shape)}q", *shape))
    return b"".join(head)


def read(header: bytes | memoryview, buf: memoryview, copy: bool) -> Tensors:
    """The tensors ``header`` describes in ``buf``; ``copy=False`` returns views (valid while ``buf`` is)."""
    head = memoryview(header)
    (count,) = _HEAD.unpack_from(head, 0)
    pos = _HEAD.size
    out: Tensors = {}
    for _ in range(count):
        nlen, dlen, ndim, offset, nbytes = _DESC.unpack_from(head, pos)
        pos += _DESC.size
        name = bytes(head[pos : pos + nlen]).decode("utf-8")
        pos += nlen
        dtype = bytes(head[pos : pos + dlen])
        pos += dlen
        shape = struct.unpack_from(f"<{ndim}q", head, pos)
        pos += 8 * ndim
        if offset + nbytes > len(buf) or any(d < 0 for d in shape):
            raise ValueError(f"tensor {name!r} lies outside the shared buffer")
        if dtype == _OBJ:
            out[name] = _read_bytes(buf[offset : offset + nbytes], shape)
            continue
        dt = np.dtype(dtype.decode("ascii"))
        if dt.kind not in _KINDS or math.prod(shape) * dt.itemsize != nbytes:
            raise ValueError(f"tensor {name!r}: dtype {dt} and shape {shape} do not match {nbytes} bytes")
        arr = np.frombuffer(buf, dtype=dt, count=math.prod(shape), offset=offset).reshape(shape)
        out[name] = arr.copy() if copy else arr
    return out


def _read_bytes(blob: memoryview, shape: tuple[int, ...]) -> np.ndarray:
    n = math.prod(shape)
    items: list[bytes] = []
    pos = 0
    for _ in range(n):
        (ln,) = struct.unpack_from("<I", blob, pos)
        pos += 4
        if pos + ln > len(blob):
            raise ValueError("BYTES tensor is truncated")
        items.append(bytes(blob[pos : pos + ln]))
        pos += ln
    arr = np.empty(n, dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def pack(tensors: Tensors) -> tuple[bytes, bytes]:
    """(header, data) in two ``bytes`` objects, for transports without shared memory (Ray)."""
    plan, size = layout(tensors)
    data = bytearray(size)
    header = write(plan, memoryview(data))
    return header, bytes(data)


def unpack(header: bytes, data: bytes) -> Tensors:
    return read(header, memoryview(data), copy=False)
