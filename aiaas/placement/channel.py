"""Length-prefixed frames over a Unix socket, with file descriptors (shared-memory segments) attached.

The first byte of every frame is its kind. Server -> worker: LOAD (model config), SEGMENT (a new request or
response buffer, its memfd attached), INFER (parameters + tensor header; the data is in the request buffer).
Worker -> server: READY (signature), OK (tensor header; the data is in the response buffer or inline after
the header when it did not fit), ERROR (a message).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
import struct

LOAD, SEGMENT, INFER, READY, OK, ERROR = b"L", b"S", b"I", b"R", b"K", b"E"
REQUEST, RESPONSE = b"q", b"p"  # which buffer a SEGMENT frame replaces
_LEN = struct.Struct("<I")
U32 = struct.Struct("<I")


def send(sock: socket.socket, kind: bytes, payload: bytes = b"", fds: tuple[int, ...] = ()) -> None:
    data = _LEN.pack(len(payload) + 1) + kind + payload
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.sendall(data)


def recv(sock: socket.socket) -> tuple[bytes, memoryview, list[int]]:
    """(kind, payload, fds); EOFError when the peer is gone."""
    first, fds, _flags, _addr = socket.recv_fds(sock, _LEN.size, 4)
    if not first:
        raise EOFError("peer closed the channel")
    head = first + _exact(sock, _LEN.size - len(first)) if len(first) < _LEN.size else first
    (n,) = _LEN.unpack(head)
    body = _exact(sock, n)
    return bytes(body[:1]), memoryview(body)[1:], fds


def _exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError("peer closed the channel")
        got += k
    return buf


class Segment:
    """An anonymous shared-memory buffer (memfd): no name in /dev/shm, gone when both sides close it."""

    def __init__(self, size: int, fd: int | None = None) -> None:
        if fd is None:
            fd = os.memfd_create("aiaas-tensors", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
        self.fd = fd
        self.size = size
        self.map = mmap.mmap(fd, size)
        self.view = memoryview(self.map)

    @classmethod
    def attach(cls, fd: int) -> Segment:
        return cls(os.fstat(fd).st_size, fd)

    def close(self) -> None:
        self.view.release()
        with contextlib.suppress(BufferError):  # a numpy view still points into it: it goes with the last view
            self.map.close()
        os.close(self.fd)
