"""gRPC points of ``make bench`` (bench/serving.py): a KServe V2 ``ModelInfer`` request body and a load generator.

The load generator is ``h2load`` (nghttp2-client, C, like wrk for the REST points): gRPC over cleartext HTTP/2 is
a POST to ``/inference.GRPCInferenceService/ModelInfer`` with ``content-type: application/grpc`` and a
length-prefixed protobuf body, so h2load drives it without a gRPC library in the loop. ``-c{conc} -m1``: one
connection per simulated client and one request in flight on each, as wrk does for REST. Latency percentiles come
from h2load's per-request log. HTTP status is 200 even for a failed RPC (the gRPC status is in the trailers), so
every point checks the server's inference count against the requests h2load completed (``check_count``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"


def available() -> bool:
    return shutil.which("h2load") is not None


def infer_body(model: str, input_name: str, datatype: str, row: np.ndarray) -> bytes:
    """One gRPC message: the 5-byte prefix (not compressed, big-endian length) and a raw-input ModelInferRequest."""
    from tritonclient.grpc import service_pb2 as pb

    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name=input_name, datatype=datatype, shape=list(row.shape))
    req.raw_input_contents.append(np.ascontiguousarray(row).tobytes())
    msg = req.SerializeToString()
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


def check_answer(port: int, body: bytes, auth: str, output: str, expected: np.ndarray) -> None:
    """One call through grpcio before the load: it must succeed and agree with raw onnxruntime."""
    import grpc
    from tritonclient.grpc import InferResult
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pbg

    req = pb.ModelInferRequest.FromString(body[5:])
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        resp = pbg.GRPCInferenceServiceStub(channel).ModelInfer(req, metadata=(("authorization", auth),), timeout=30)
    got = InferResult(resp).as_numpy(output)
    if got is None or not np.allclose(got.reshape(expected.shape), expected, atol=1e-4):
        raise RuntimeError(f"{req.model_name}: gRPC output differs from raw onnxruntime")


def h2load(work: Path, port: int, body: bytes, auth: str, conc: int, seconds: float) -> dict[str, Any]:
    bfile = work / f"grpc-{abs(hash(body))}.bin"
    bfile.write_bytes(body)
    log = work / "h2load.log"
    log.unlink(missing_ok=True)
    argv = [
        "h2load",
        "-t1",
        f"-c{conc}",
        "-m1",
        f"-D{max(1, round(seconds))}",
        "-d",
        str(bfile),
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-H",
        f"authorization: {auth}",
        "--log-file",
        str(log),
        f"http://127.0.0.1:{port}{GRPC_PATH}",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rows = np.loadtxt(log, dtype=np.int64, ndmin=2) if log.stat().st_size else np.empty((0, 3), np.int64)
    if not len(rows):
        raise RuntimeError(f"h2load completed no request:\n{out}")
    ok = rows[:, 1] == 200
    lat_ms = rows[:, 2] / 1000.0
    span_s = ((rows[:, 0] + rows[:, 2]).max() - rows[:, 0].min()) / 1e6  # first start to last end
    return {
        "rps": float(len(rows) / max(span_s, 1e-9)),
        "requests": len(rows),
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "errors": int((~ok).sum()),
    }
