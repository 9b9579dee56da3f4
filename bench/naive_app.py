"""The baseline of ``bench/serving.py``: what a user would write to serve an ONNX model with FastAPI.

One route, a pydantic model for the V2 JSON body, one ``session.run`` per request in FastAPI's thread pool,
the outputs back as JSON lists. No batching, no queue, no auth check (the header is sent and ignored), no
metrics. Models come from ``BENCH_NAIVE_MODELS`` (JSON ``{name: onnx path}``), threads per session from
``BENCH_NAIVE_THREADS``. Run with ``uvicorn bench.naive_app:app`` (uvicorn picks uvloop and httptools when
they are installed, as they are here, so the baseline is not handicapped by the event loop).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

_DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32}


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferRequest(BaseModel):
    inputs: list[Tensor]


def _session(path: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


_threads = int(os.environ.get("BENCH_NAIVE_THREADS", "0"))
sessions = {name: _session(p, _threads) for name, p in json.loads(os.environ.get("BENCH_NAIVE_MODELS", "{}")).items()}
app = FastAPI()


@app.post("/v2/models/{name}/infer")
def infer(name: str, req: InferRequest) -> dict[str, Any]:
    session = sessions.get(name)
    if session is None:
        raise HTTPException(404, f"unknown model {name}")
    feed = {t.name: np.asarray(t.data, dtype=_DTYPES[t.datatype]).reshape(t.shape) for t in req.inputs}
    names = [o.name for o in session.get_outputs()]
    outs = session.run(names, feed)
    return {
        "model_name": name,
        "outputs": [
            {"name": n, "datatype": "FP32", "shape": list(v.shape), "data": v.reshape(-1).tolist()}
            for n, v in zip(names, outs, strict=True)
        ],
    }
