"""A worker process that holds one model replica (``placement: process``): ``python -m aiaas.placement.worker FD``.

It loads the model named by the LOAD frame, then answers INFER frames one at a time, reading inputs from the
request buffer and writing outputs into the response buffer. It exits when the server closes the channel. If
the model crashes the process (a segfault in a native library, ``os._exit``, the OOM killer), the server sees
the channel close, answers or retries the batch and starts a new worker.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

from aiaas.placement import channel as ch
from aiaas.placement import wire
from aiaas.placement.base import encode_error
from aiaas.runtime.base import RuntimeContext, backend_class, predict_blocking
from aiaas.types.model_config import ModelConfig


def serve(sock: socket.socket) -> None:
    kind, payload, _ = ch.recv(sock)
    if kind != ch.LOAD:
        raise SystemExit("worker: expected LOAD first")
    spec = json.loads(bytes(payload))  # written by the server from model.yaml, not by clients
    config = ModelConfig.model_validate(spec["config"])
    try:
        model = backend_class(config.backend)(
            config, Path(spec["version_dir"]), RuntimeContext(default_intra_op_threads=spec["intra_op_threads"])
        )
        model.load()
        sig = model.signature()
    except Exception as e:
        ch.send(sock, ch.ERROR, f"{type(e).__name__}: {e}".encode())
        return
    sig_doc = None if sig is None else [[t.model_dump() for t in sig[0]], [t.model_dump() for t in sig[1]]]
    ch.send(sock, ch.READY, json.dumps(sig_doc).encode())
    request: ch.Segment | None = None
    response: ch.Segment | None = None
    while True:
        try:
            kind, payload, fds = ch.recv(sock)
        except EOFError:
            return
        if kind == ch.SEGMENT:
            seg = ch.Segment.attach(fds[0])
            if bytes(payload[:1]) == ch.REQUEST:
                request = seg
            else:
                response = seg
            continue
        if kind != ch.INFER or request is None:
            ch.send(sock, ch.ERROR, b"protocol error: INFER before the request buffer")
            continue
        (plen,) = ch.U32.unpack_from(payload, 0)
        parameters = json.loads(bytes(payload[4 : 4 + plen])) if plen else {}
        try:
            inputs = wire.read(payload[4 + plen :], request.view, copy=False)
            outputs = predict_blocking(model, inputs, parameters)
            plan, size = wire.layout(outputs)
        except Exception as e:
            ch.send(sock, ch.ERROR, encode_error(e))
            continue
        if response is not None and size <= response.size:
            ch.send(sock, ch.OK, b"\0" + wire.write(plan, response.view))
        else:  # does not fit: inline this once (the server sends a bigger buffer for next time)
            data = bytearray(size)
            header = wire.write(plan, memoryview(data))
            ch.send(sock, ch.OK, b"\1" + ch.U32.pack(len(header)) + header + bytes(data))


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
